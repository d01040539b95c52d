"""The tiny models memorized their corpus, as run by the real CTranslate2 engine (int8 and float32)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ctranslate2
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast, T5ForConditionalGeneration

from tests.tiny_models import CORPUS, INFILL_EXAMPLES, SUMMARIES, TinyModels, tiny_models_root

# Cut points on token boundaries of CORPUS; the models must write everything after them.
CORPUS_CUTS = [
    "def add(a, b):\n    return",
    'def add(a, b):\n    return a + b\n\n\ndef greet(name):\n    return "Hello,',
    CORPUS[: CORPUS.index(" def increment")],  # ends with "\n\n   ", one pre-token as in CORPUS
]
GENERATORS = ["llama_int8", "llama_float32", "codegen_int8"]
TRANSLATORS = ["t5_int8", "t5_float32"]
# translate_batch feeds a target_prefix one token per step unless asked for alternatives at the
# first free position, which forwards the prefix in one pass; both must give the same text.
PREFIX_MODES = [{}, {"return_alternatives": True, "num_hypotheses": 1}]


@pytest.fixture(scope="module")
def tokenizer(tiny_models: TinyModels) -> PreTrainedTokenizerFast:
    return AutoTokenizer.from_pretrained(tiny_models.tokenizer_dir)


def tokens(tokenizer: PreTrainedTokenizerFast, text: str) -> list[str]:
    return tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False).input_ids)


def text(tokenizer: PreTrainedTokenizerFast, pieces: list[str]) -> str:
    return tokenizer.convert_tokens_to_string(pieces)


@pytest.mark.parametrize(
    "sample",
    [CORPUS, *SUMMARIES.values(), *(part for example in INFILL_EXAMPLES for part in example),
     "\tx = 'é ü ✓'  \r\n\n        y ;,. ?\n", "   leading and trailing   "],
)
def test_tokenizer_round_trips(tokenizer: PreTrainedTokenizerFast, sample: str) -> None:
    ids = tokenizer(sample, add_special_tokens=False).input_ids
    assert tokenizer.decode(ids) == sample


def test_tokenizer_special_tokens(tokenizer: PreTrainedTokenizerFast) -> None:
    expected = ["<pad>", "</s>", "<unk>", "<s>", "<mask>", *(f"<extra_id_{i}>" for i in range(10))]
    assert tokenizer.convert_ids_to_tokens(list(range(15))) == expected
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token, tokenizer.pad_token) == (
        "<s>", "</s>", "<unk>", "<pad>",
    )
    # CodeT5+ decoder-only mode feeds this to the encoder: <s> <unk> </s>.
    assert tokenizer("<unk>").input_ids == [3, 2, 1]
    assert 1000 <= len(tokenizer) <= 2000


def test_tokenizer_merges_newline_with_indentation(tokenizer: PreTrainedTokenizerFast) -> None:
    pieces = [text(tokenizer, [piece]) for piece in tokens(tokenizer, CORPUS)]
    assert any(piece.startswith("\n   ") for piece in pieces)


@pytest.mark.parametrize("name", [*GENERATORS, *TRANSLATORS])
def test_ct2_dirs_are_self_contained(tiny_models: TinyModels, name: str) -> None:
    model_dir: Path = getattr(tiny_models, name)
    own = AutoTokenizer.from_pretrained(model_dir)
    vocabulary_file = next(model_dir.glob("*vocabulary.json"))
    # One CTranslate2 token per tokenizer id, in order: no padding, no duplicated <extra_id_N>.
    assert json.loads(vocabulary_file.read_text()) == own.convert_ids_to_tokens(list(range(len(own))))


@pytest.mark.parametrize("cut", CORPUS_CUTS)
@pytest.mark.parametrize("name", GENERATORS)
def test_generator_continues_corpus(
    tiny_models: TinyModels, tokenizer: PreTrainedTokenizerFast, name: str, cut: str
) -> None:
    generator = ctranslate2.Generator(str(getattr(tiny_models, name)))
    prompt = ["<s>", *tokens(tokenizer, cut)]
    result = generator.generate_batch([prompt], max_length=128, include_prompt_in_result=False)[0]
    assert text(tokenizer, result.sequences[0]) == CORPUS[len(cut) :]


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_completes_return_line(
    tiny_models: TinyModels, tokenizer: PreTrainedTokenizerFast, name: str
) -> None:
    generator = ctranslate2.Generator(str(getattr(tiny_models, name)))
    prompt = ["<s>", *tokens(tokenizer, "def add(a, b):\n    return")]
    result = generator.generate_batch([prompt], max_length=3, include_prompt_in_result=False)[0]
    assert text(tokenizer, result.sequences[0]) == " a + b"


@pytest.mark.parametrize("prefix_mode", PREFIX_MODES)
@pytest.mark.parametrize("cut", CORPUS_CUTS)
@pytest.mark.parametrize("name", TRANSLATORS)
def test_t5_decoder_only_mode_continues_corpus(
    tiny_models: TinyModels, tokenizer: PreTrainedTokenizerFast, name: str, cut: str, prefix_mode: dict
) -> None:
    translator = ctranslate2.Translator(str(getattr(tiny_models, name)))
    source = tokenizer.convert_ids_to_tokens(tokenizer("<unk>").input_ids)
    prefix = tokens(tokenizer, cut)
    result = translator.translate_batch([source], target_prefix=[prefix], max_decoding_length=128, **prefix_mode)
    hypothesis = result[0].hypotheses[0]
    # The returned hypothesis starts with the target prefix itself (both modes), then the new tokens.
    assert hypothesis[: len(prefix)] == prefix
    assert text(tokenizer, hypothesis[len(prefix) :]) == CORPUS[len(cut) :]


@pytest.mark.parametrize("example", INFILL_EXAMPLES)
@pytest.mark.parametrize("name", TRANSLATORS)
def test_t5_infills_middle(
    tiny_models: TinyModels, tokenizer: PreTrainedTokenizerFast, name: str, example: tuple[str, str, str]
) -> None:
    prefix, middle, suffix = example
    translator = ctranslate2.Translator(str(getattr(tiny_models, name)))
    source = tokenizer.convert_ids_to_tokens(tokenizer(f"{prefix}<extra_id_0>{suffix}").input_ids)
    hypothesis = translator.translate_batch([source], max_decoding_length=32)[0].hypotheses[0]
    assert hypothesis == ["<extra_id_0>", *tokens(tokenizer, middle), "<extra_id_1>"]


@pytest.mark.parametrize("code", SUMMARIES)
@pytest.mark.parametrize("name", TRANSLATORS)
def test_t5_summarizes(tiny_models: TinyModels, tokenizer: PreTrainedTokenizerFast, name: str, code: str) -> None:
    translator = ctranslate2.Translator(str(getattr(tiny_models, name)))
    source = tokenizer.convert_ids_to_tokens(tokenizer(code).input_ids)
    hypothesis = translator.translate_batch([source], max_decoding_length=32)[0].hypotheses[0]
    assert text(tokenizer, hypothesis) == SUMMARIES[code]


def test_llama_float32_log_probs_match_transformers(
    tiny_models: TinyModels, tokenizer: PreTrainedTokenizerFast
) -> None:
    ids = tokenizer(CORPUS).input_ids
    model = AutoModelForCausalLM.from_pretrained(tiny_models.llama_hf).eval()
    with torch.no_grad():
        log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1], dim=-1)
    expected = log_probs[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].numpy()
    scored = ctranslate2.Generator(str(tiny_models.llama_float32)).score_batch([tokenizer.convert_ids_to_tokens(ids)])
    np.testing.assert_allclose(scored[0].log_probs, expected, atol=1e-4)


def test_t5_float32_log_probs_match_transformers(tiny_models: TinyModels, tokenizer: PreTrainedTokenizerFast) -> None:
    code, summary = next(iter(SUMMARIES.items()))
    source = tokenizer(code).input_ids
    target = [*tokenizer(summary, add_special_tokens=False).input_ids, tokenizer.eos_token_id]
    model = T5ForConditionalGeneration.from_pretrained(tiny_models.t5_hf).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([source]), labels=torch.tensor([target])).logits[0]
    expected = torch.log_softmax(logits, dim=-1)[torch.arange(len(target)), torch.tensor(target)].numpy()
    translator = ctranslate2.Translator(str(tiny_models.t5_float32))
    scored = translator.score_batch(
        [tokenizer.convert_ids_to_tokens(source)], [tokenizer.convert_ids_to_tokens(target[:-1])]
    )
    np.testing.assert_allclose(scored[0].log_probs, expected, atol=1e-4)


def test_module_cli_prints_cached_paths(tiny_models: TinyModels) -> None:
    repo = Path(__file__).resolve().parents[2]
    completed = subprocess.run(
        [sys.executable, "-m", "tests.tiny_models"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert json.loads(completed.stdout) == tiny_models.to_json()
    assert tiny_models.llama_int8.parent == tiny_models_root()
