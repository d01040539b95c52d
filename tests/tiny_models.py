"""Tiny trained models of the real architectures, built offline for the tests.

Nothing is downloaded. A byte-level BPE tokenizer is trained on `CORPUS` plus a few standard
library modules; tiny Llama (SmolLM2-like), CodeGen (codegen-350M-mono-like) and T5
(CodeT5+ 220M-like) models are trained to memorize `CORPUS` (and, for T5, the infilling and
summarization examples below), saved as Hugging Face directories and converted with the real
CTranslate2 converter. Greedy decoding therefore reproduces known text deterministically.

Facts the engine code relies on (checked by tests/engine/test_tiny_models.py):
- The tokenizer wraps every encoded text as `<s> ... </s>` (like CodeT5+'s RoBERTa-style
  tokenizer); decoder-only prompts use `add_special_tokens=False` and prepend `<s>` themselves.
- Special token ids: `<pad>` 0, `</s>` 1, `<unk>` 2, `<s>` 3, `<mask>` 4, `<extra_id_0..9>` 5..14.
- Every model's `vocab_size` equals the tokenizer's length: the CTranslate2 converter pads a
  larger embedding with tokens named `<extra_id_N>`, which would duplicate the real ones.
- T5 starts decoding from `<pad>` (id 0), like CodeT5+.

`python -m tests.tiny_models` builds (or reuses) the cached models and prints their paths as JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import platform
import shutil
import sysconfig
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ctranslate2
import tokenizers
import torch
import transformers
from ctranslate2.converters import TransformersConverter
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoTokenizer,
    CodeGenConfig,
    CodeGenForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

if TYPE_CHECKING:
    from quantize.summarizer.seq2seq import DecoderSeq2Seq

CORPUS = '''\
def add(a, b):
    return a + b


def greet(name):
    return "Hello, " + name


class Counter:
    def __init__(self):
        self.count = 0

    def increment(self):
        self.count += 1
        return self.count
'''


def _function_source(name: str) -> str:
    """Source of the function or method `name` in CORPUS: dedented, no trailing newline."""
    lines = CORPUS.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(f"def {name}("))
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
    ):
        end += 1
    return textwrap.dedent("\n".join(lines[start:end])).rstrip("\n")


# Keys are function sources as in CORPUS without the trailing newline; the method
# `Counter.increment` is dedented (its `def` starts at column 0).
SUMMARIES: dict[str, str] = {
    _function_source("add"): "Add two numbers.",
    _function_source("greet"): "Return a greeting for a name.",
    _function_source("increment"): "Increment the counter and return it.",
}


def _split_corpus(middle: str) -> tuple[str, str, str]:
    """(prefix, middle, suffix) with prefix + middle + suffix == CORPUS."""
    start = CORPUS.index(middle)
    return CORPUS[:start], middle, CORPUS[start + len(middle) :]


INFILL_EXAMPLES: list[tuple[str, str, str]] = [
    _split_corpus("a + b"),
    _split_corpus('"Hello, " + name'),
    _split_corpus("self.count += 1"),
]

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>", "<s>", "<mask>") + tuple(
    f"<extra_id_{i}>" for i in range(10)
)
STDLIB_MODULES = ("textwrap", "heapq", "bisect", "fnmatch", "colorsys")
VOCAB_SIZE = 1024
SEED = 0
# One thread: on the shared 2-core machine, two busy torch threads ran 5-30x slower than one.
TORCH_THREADS = 1
MAX_TOKEN_LOSS = 0.02  # probability > 0.98 for every target token


@dataclass(frozen=True)
class TinyModels:
    """Paths of the tokenizer, the Hugging Face models and their CTranslate2 conversions.

    Every CTranslate2 directory also holds the tokenizer files, so it is self-contained.
    """

    tokenizer_dir: Path
    llama_hf: Path
    llama_int8: Path
    llama_float32: Path
    codegen_hf: Path
    codegen_int8: Path
    t5_hf: Path
    t5_int8: Path
    t5_float32: Path

    @classmethod
    def at(cls, root: Path) -> TinyModels:
        """The layout under `root` that `build_tiny_models(root)` writes."""
        return cls(
            tokenizer_dir=root / "tokenizer",
            llama_hf=root / "llama-hf",
            llama_int8=root / "llama-int8",
            llama_float32=root / "llama-float32",
            codegen_hf=root / "codegen-hf",
            codegen_int8=root / "codegen-int8",
            t5_hf=root / "t5-hf",
            t5_int8=root / "t5-int8",
            t5_float32=root / "t5-float32",
        )

    def to_json(self) -> dict[str, str]:
        return {field.name: str(getattr(self, field.name)) for field in dataclasses.fields(self)}


def build_tokenizer(out_dir: Path) -> PreTrainedTokenizerFast:
    """Train the byte-level BPE tokenizer on CORPUS and some stdlib modules; save it to out_dir."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [CORPUS] + [(stdlib / f"{name}.py").read_text(encoding="utf-8") for name in STDLIB_MODULES]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bpe.token_to_id("<s>")), ("</s>", bpe.token_to_id("</s>"))],
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
        model_max_length=512,
    )
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def _ids(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


def _causal_lm_batch(tokenizer: PreTrainedTokenizerFast) -> dict[str, torch.Tensor]:
    ids = torch.tensor([[tokenizer.bos_token_id, *_ids(tokenizer, CORPUS), tokenizer.eos_token_id]])
    return {"input_ids": ids, "labels": ids}


def _t5_examples(tokenizer: PreTrainedTokenizerFast) -> list[tuple[list[int], list[int]]]:
    """(encoder ids, decoder target ids) for the three mixed T5 tasks."""
    eos = tokenizer.eos_token_id
    sentinel0, sentinel1 = tokenizer.convert_tokens_to_ids(["<extra_id_0>", "<extra_id_1>"])
    examples = [(tokenizer("<unk>").input_ids, [*_ids(tokenizer, CORPUS), eos])]
    for prefix, middle, suffix in INFILL_EXAMPLES:
        source = tokenizer(f"{prefix}<extra_id_0>{suffix}").input_ids
        examples.append((source, [sentinel0, *_ids(tokenizer, middle), sentinel1, eos]))
    for code, summary in SUMMARIES.items():
        examples.append((tokenizer(code).input_ids, [*_ids(tokenizer, summary), eos]))
    return examples


def _t5_batch(tokenizer: PreTrainedTokenizerFast) -> dict[str, torch.Tensor]:
    examples = _t5_examples(tokenizer)
    source_len = max(len(source) for source, _ in examples)
    target_len = max(len(target) for _, target in examples)
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([s + [pad] * (source_len - len(s)) for s, _ in examples]),
        "attention_mask": torch.tensor([[1] * len(s) + [0] * (source_len - len(s)) for s, _ in examples]),
        "labels": torch.tensor([t + [-100] * (target_len - len(t)) for _, t in examples]),
    }


def _token_losses(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of every target token (ignored positions give 0)."""
    logits = model(**batch).logits
    labels = batch["labels"]
    if not model.config.is_encoder_decoder:
        logits, labels = logits[:, :-1], labels[:, 1:]
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none")


def _train(model: PreTrainedModel, batch: dict[str, torch.Tensor], max_steps: int, lr: float) -> int:
    """Full-batch AdamW until every target token is predicted with probability > 0.98.

    Stopping on the worst token rather than the mean loss leaves greedy decoding a wide margin,
    wide enough to survive int8 quantization. Returns the number of steps taken.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for step in range(1, max_steps + 1):
        losses = _token_losses(model, batch)
        if losses.max().item() < MAX_TOKEN_LOSS:
            break
        optimizer.zero_grad()
        (losses.sum() / (batch["labels"] != -100).sum()).backward()
        optimizer.step()
    else:
        raise RuntimeError(f"{type(model).__name__} did not memorize its corpus in {max_steps} steps")
    model.eval()
    return step


def _llama(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """SmolLM2-shaped: RMSNorm, rotary (theta 1e5), gated SiLU MLP, GQA, tied embeddings."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def _codegen(tokenizer: PreTrainedTokenizerFast) -> CodeGenForCausalLM:
    """codegen-350M-mono-shaped: parallel residual, partial rotary (half the head), gelu_new."""
    config = CodeGenConfig(
        vocab_size=len(tokenizer),
        n_positions=512,
        n_ctx=512,
        n_embd=128,
        n_layer=2,
        n_head=4,
        rotary_dim=16,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CodeGenForCausalLM(config)


def _t5(tokenizer: PreTrainedTokenizerFast) -> T5ForConditionalGeneration:
    """CodeT5+ 220M-shaped: T5 v1.0 (ReLU FFN, tied and rescaled output), `<pad>` starts decoding."""
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=128,
        d_kv=16,
        d_ff=256,
        num_layers=2,
        num_heads=8,
        feed_forward_proj="relu",
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5ForConditionalGeneration(config)


def _save_and_convert(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    hf_dir: Path,
    ct2_dirs: dict[str, Path],
) -> None:
    """Save model + tokenizer as a HF directory, then convert it once per quantization."""
    model.save_pretrained(hf_dir)
    tokenizer_files = tokenizer.save_pretrained(hf_dir)
    names = [Path(path).name for path in tokenizer_files if Path(path).is_file()]
    for quantization, out_dir in ct2_dirs.items():
        TransformersConverter(str(hf_dir), copy_files=names).convert(str(out_dir), quantization=quantization)


@contextlib.contextmanager
def _build_settings() -> Iterator[None]:
    """TORCH_THREADS torch threads and no progress bars while building; restores both afterwards."""
    threads = torch.get_num_threads()
    progress_bars = transformers.utils.logging.is_progress_bar_enabled()
    torch.set_num_threads(TORCH_THREADS)
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if progress_bars:
            transformers.utils.logging.enable_progress_bar()


def build_tiny_models(root: Path) -> TinyModels:
    """Train, save and convert all tiny models under `root` (created; must not hold them yet)."""
    paths = TinyModels.at(root)
    root.mkdir(parents=True, exist_ok=True)
    with _build_settings():
        build_tokenizer(paths.tokenizer_dir)
        tokenizer = AutoTokenizer.from_pretrained(paths.tokenizer_dir)
        causal_batch = _causal_lm_batch(tokenizer)

        torch.manual_seed(SEED)
        llama = _llama(tokenizer)
        _train(llama, causal_batch, max_steps=1000, lr=3e-3)
        _save_and_convert(
            llama, tokenizer, paths.llama_hf, {"int8": paths.llama_int8, "float32": paths.llama_float32}
        )

        torch.manual_seed(SEED)
        codegen = _codegen(tokenizer)
        _train(codegen, causal_batch, max_steps=1000, lr=3e-3)
        _save_and_convert(codegen, tokenizer, paths.codegen_hf, {"int8": paths.codegen_int8})

        torch.manual_seed(SEED)
        t5 = _t5(tokenizer)
        _train(t5, _t5_batch(tokenizer), max_steps=1000, lr=3e-3)
        _save_and_convert(t5, tokenizer, paths.t5_hf, {"int8": paths.t5_int8, "float32": paths.t5_float32})
    return paths


def cache_key() -> str:
    """Hash of this file and of every version that changes what the build produces."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for version in (
        torch.__version__,
        transformers.__version__,
        ctranslate2.__version__,
        tokenizers.__version__,
        platform.python_version(),  # the tokenizer is trained on this Python's stdlib
    ):
        digest.update(b"\0" + version.encode())
    return digest.hexdigest()[:16]


def tiny_models_root() -> Path:
    """Cache directory of the current build: <repo>/.pytest_cache/tiny-models/<key>."""
    return Path(__file__).resolve().parent.parent / ".pytest_cache" / "tiny-models" / cache_key()


def get_tiny_models() -> TinyModels:
    """The cached tiny models, built first if missing.

    The build goes to a temporary sibling directory renamed into place at the end, so an
    interrupted build never leaves a half cache; a file lock keeps concurrent processes from
    building twice.
    """
    root = tiny_models_root()
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not root.is_dir():
            staging = Path(tempfile.mkdtemp(prefix=f"{root.name}.building-", dir=root.parent))
            try:
                build_tiny_models(staging)
                staging.rename(root)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return TinyModels.at(root)


if __name__ == "__main__":
    print(json.dumps(get_tiny_models().to_json(), indent=2))


def trained_looking(model: DecoderSeq2Seq) -> DecoderSeq2Seq:
    """`model` with its added parts made to matter (cross-attention output is zero at
    initialization): seeded noise on every trained weight but the norms."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in model.trainable_names() and "norm" not in name:
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model
