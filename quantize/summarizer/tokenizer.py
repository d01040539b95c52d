"""Byte-level BPE tokenizer trained on the pairs, with CodeT5's special tokens and template."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

EXTRA_IDS = 10
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>", "<s>", "<mask>", *(f"<extra_id_{i}>" for i in range(EXTRA_IDS)))
MAX_LENGTH = 512
# Words, numbers, whitespace runs and punctuation runs are pre-split apart (camelCase too), so
# `get_user_name` in code and "user name" in a summary share the tokens `user` and `name`: the
# tied embeddings then make copying a name into the summary easy for a small model.
PRE_SPLIT = r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+|\s+|[^\sA-Za-z0-9]+"


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: Path) -> PreTrainedTokenizerFast:
    """Train on `texts`, save to `out_dir` (tokenizer.json & co.) and return it.

    Byte-level BPE over pieces split by `PRE_SPLIT`. Ids as in CodeT5: `<pad>` 0, `</s>` 1, `<unk>` 2, `<s>` 3, `<mask>` 4, then `<extra_id_N>`;
    encoding with special tokens wraps the text as `<s> ... </s>`.
    """
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRE_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    bos, eos = bpe.token_to_id("<s>"), bpe.token_to_id("</s>")
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        additional_special_tokens=list(SPECIAL_TOKENS[5:]),
        clean_up_tokenization_spaces=False,
        model_max_length=MAX_LENGTH,
    )
    tokenizer.save_pretrained(out_dir)
    return tokenizer
