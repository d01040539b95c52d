"""Conversion to CTranslate2 (HF directories and GGUF files), cache helpers and atomic writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ctranslate2
import numpy as np
import pytest
from transformers import AutoTokenizer

from inference.models import cache
from inference.models.cache import atomic_directory
from inference.models.convert import (
    METADATA_FILE,
    QUANTIZATIONS,
    ConversionError,
    convert_gguf_to_ct2,
    convert_to_ct2,
    gguf_to_hf,
    is_ct2_dir,
    read_metadata,
)
from tests.tiny_gguf import write_llama_gguf
from tests.tiny_models import CORPUS, SUMMARIES


@pytest.fixture(scope="session")
def tiny_gguf(tiny_models, tmp_path_factory) -> Path:
    return write_llama_gguf(tiny_models.llama_hf, tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


def _continues_corpus(model_dir: Path, prompt_tokens: int = 12, new_tokens: int = 8) -> bool:
    """Whether a converted decoder, using only the files in `model_dir`, greedily continues
    CORPUS (which the tiny models memorized) from its first `prompt_tokens` tokens."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    corpus = [tokenizer.bos_token_id, *tokenizer(CORPUS, add_special_tokens=False).input_ids]
    prompt = tokenizer.convert_ids_to_tokens(corpus[:prompt_tokens])
    result = ctranslate2.Generator(str(model_dir)).generate_batch(
        [prompt], max_length=new_tokens, include_prompt_in_result=False
    )
    return result[0].sequences_ids[0] == corpus[prompt_tokens : prompt_tokens + new_tokens]


def _sibling_names(path: Path) -> set[str]:
    return {entry.name for entry in path.parent.iterdir()}


# --- cache helpers --------------------------------------------------------------------------


def test_cache_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "c"))
    assert cache.cache_root() == tmp_path / "c"
    assert cache.models_dir() == tmp_path / "c" / "models"
    monkeypatch.delenv(cache.CACHE_ENV)
    assert cache.cache_root().name == "codet5-lsp"


def test_atomic_directory_renames_on_success(tmp_path):
    final = tmp_path / "nested" / "model"
    with atomic_directory(final) as tmp:
        assert tmp.parent == final.parent and tmp != final
        (tmp / "weights").write_text("new")
        assert not final.exists()
    assert (final / "weights").read_text() == "new"
    assert _sibling_names(final) == {"model"}


def test_atomic_directory_replaces_existing_only_on_success(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "weights").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(final) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("conversion crashed")
    assert (final / "weights").read_text() == "old"
    assert _sibling_names(final) == {"model"}
    with atomic_directory(final) as tmp:
        (tmp / "weights").write_text("new")
    assert (final / "weights").read_text() == "new"
    assert _sibling_names(final) == {"model"}


# --- Hugging Face -> CTranslate2 ------------------------------------------------------------


@pytest.mark.parametrize("quantization", ["int8", "float32"])
def test_convert_llama_is_self_contained(tiny_models, tmp_path, quantization):
    out = convert_to_ct2(tiny_models.llama_hf, tmp_path / "llama", quantization)
    assert is_ct2_dir(out)
    assert (out / "tokenizer.json").is_file() and (out / "tokenizer_config.json").is_file()
    metadata = read_metadata(out)
    assert metadata == {
        "source": str(tiny_models.llama_hf),
        "quantization": quantization,
        "ctranslate2": ctranslate2.__version__,
        "transformers": metadata["transformers"],
        "format_version": 1,
        "architecture": "LlamaForCausalLM",
        "context_length": json.loads((tiny_models.llama_hf / "config.json").read_text())["max_position_embeddings"],
        "model_bin": {"size": (out / "model.bin").stat().st_size, "sampled_sha256": metadata["model_bin"]["sampled_sha256"],
                      "blocks": 33, "block_bytes": 65536},
    }
    # The tiny model memorized CORPUS: the converted model, loaded alone, continues it.
    assert _continues_corpus(out)


@pytest.mark.parametrize("quantization", ["int8", "float32"])
def test_convert_t5_is_self_contained(tiny_models, tmp_path, quantization):
    progress: list[str] = []
    out = convert_to_ct2(tiny_models.t5_hf, tmp_path / "t5", quantization, progress=progress.append)
    assert progress and quantization in progress[0]
    assert is_ct2_dir(out)
    assert read_metadata(out)["architecture"] == "T5ForConditionalGeneration"
    tokenizer = AutoTokenizer.from_pretrained(out)
    code, summary = next(iter(SUMMARIES.items()))
    source = tokenizer.convert_ids_to_tokens(tokenizer(code).input_ids)
    result = ctranslate2.Translator(str(out)).translate_batch([source], beam_size=1)
    ids = tokenizer.convert_tokens_to_ids(result[0].hypotheses[0])
    assert tokenizer.decode(ids, skip_special_tokens=True) == summary


def test_convert_records_source_label(tiny_models, tmp_path):
    out = convert_to_ct2(tiny_models.codegen_hf, tmp_path / "cg", "int8", source_label="org/name")
    assert read_metadata(out)["source"] == "org/name"
    assert read_metadata(out)["architecture"] == "CodeGenForCausalLM"


@pytest.mark.parametrize("bad", ["int4", "INT8", "", "q4_0"])
def test_bad_quantization_lists_valid_values(tiny_models, tmp_path, bad):
    with pytest.raises(ValueError) as info:
        convert_to_ct2(tiny_models.llama_hf, tmp_path / "out", bad)
    assert all(name in str(info.value) for name in QUANTIZATIONS)
    assert not (tmp_path / "out").exists()


def test_corrupt_config_leaves_nothing(tiny_models, tmp_path):
    src = Path(shutil.copytree(tiny_models.llama_hf, tmp_path / "src"))
    (src / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], ')
    with pytest.raises(ConversionError, match="config.json"):
        convert_to_ct2(src, tmp_path / "out")
    assert _sibling_names(tmp_path / "out") == {"src"}


def test_failure_inside_converter_leaves_nothing(tiny_models, tmp_path):
    src = Path(shutil.copytree(tiny_models.llama_hf, tmp_path / "src"))
    weights = src / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ConversionError, match="could not convert"):
        convert_to_ct2(src, tmp_path / "out")
    assert _sibling_names(tmp_path / "out") == {"src"}


def test_failed_conversion_keeps_previous_output(tiny_models, tmp_path):
    out = convert_to_ct2(tiny_models.llama_hf, tmp_path / "out", "int8")
    before = (out / "model.bin").read_bytes()
    src = Path(shutil.copytree(tiny_models.llama_hf, tmp_path / "src"))
    (src / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConversionError):
        convert_to_ct2(src, out, "float32")
    assert (out / "model.bin").read_bytes() == before
    assert read_metadata(out)["quantization"] == "int8"


def test_missing_tokenizer_is_an_error(tiny_models, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        if (tiny_models.llama_hf / name).is_file():
            shutil.copy(tiny_models.llama_hf / name, src / name)
    with pytest.raises(ConversionError, match="tokenizer"):
        convert_to_ct2(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_source_is_an_error(tmp_path):
    with pytest.raises(ConversionError, match="not found"):
        convert_to_ct2(tmp_path / "nowhere", tmp_path / "out")


def test_read_metadata_and_is_ct2_dir_on_other_directories(tiny_models, tmp_path):
    assert read_metadata(tiny_models.llama_hf) is None
    assert not is_ct2_dir(tiny_models.llama_hf)
    assert is_ct2_dir(tiny_models.llama_int8)  # converted without metadata: still a CT2 dir
    (tmp_path / METADATA_FILE).write_text("[1, 2")
    assert read_metadata(tmp_path) is None


# --- GGUF -------------------------------------------------------------------------------------


def test_gguf_to_ct2_matches_direct_conversion(tiny_models, tiny_gguf, tmp_path):
    progress: list[str] = []
    out = convert_gguf_to_ct2(tiny_gguf, tmp_path / "from-gguf", "float32", progress=progress.append)
    assert is_ct2_dir(out)
    assert read_metadata(out)["source"] == str(tiny_gguf)
    assert read_metadata(out)["architecture"] == "LlamaForCausalLM"
    assert _sibling_names(out) == {"from-gguf"}  # the float32 intermediate is gone
    assert any("Converting to CTranslate2 float32" in message for message in progress)

    reference = AutoTokenizer.from_pretrained(tiny_models.tokenizer_dir)
    converted = AutoTokenizer.from_pretrained(out)
    plain = reference(CORPUS, add_special_tokens=False).input_ids
    assert converted(CORPUS, add_special_tokens=False).input_ids == plain
    ids = [[reference.bos_token_id, *plain]]
    expected = np.asarray(ctranslate2.Generator(str(tiny_models.llama_float32)).forward_batch(ids))
    actual = np.asarray(ctranslate2.Generator(str(out)).forward_batch(ids))
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_gguf_to_hf_writes_a_plain_checkpoint(tiny_gguf, tmp_path):
    out = gguf_to_hf(tiny_gguf, tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


def test_gguf_errors_are_clear(tmp_path):
    with pytest.raises(ConversionError, match="not found"):
        gguf_to_hf(tmp_path / "missing.gguf", tmp_path / "out")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF but not really")
    with pytest.raises(ConversionError, match="GGUF"):
        convert_gguf_to_ct2(fake, tmp_path / "out")
    assert _sibling_names(tmp_path / "out") == {"fake.gguf"}
