"""Model resolution: local CTranslate2 and Hugging Face directories, the converted cache, presets, hub ids offline."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from inference.models.cache import models_dir
from inference.models.convert import METADATA_FILE, is_ct2_dir, read_metadata
from inference.models.embedded import EMBEDDED_BUILDERS
from inference.models.presets import DEFAULT_PRESET, PRESETS, Architecture, PromptFormat, find_preset
from inference.models.resolve import Backend, ModelNotFoundError, describe_local, resolve_model
from inference.summarizer_assembly import SUMMARIZER_PRESET
from tests.tiny_models import TinyModels



def tiny_gpt2(tokenizer_dir: Path, out: Path, n_positions: int) -> Path:
    """A small random GPT-2 (learned absolute positions) with the tiny tokenizer, saved as an HF directory."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=32, n_layer=1, n_head=2,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty converted-model cache and an empty Hugging Face cache."""
    from huggingface_hub import constants

    monkeypatch.setenv("CODET5_LSP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))  # read when snapshot_download runs
    return tmp_path / "cache"


@pytest.mark.parametrize(
    ("name", "architecture", "fmt"),
    [
        ("llama_int8", Architecture.DECODER, PromptFormat.PLAIN),
        ("codegen_int8", Architecture.DECODER, PromptFormat.PLAIN),
        ("t5_float32", Architecture.ENCODER_DECODER, PromptFormat.CODET5_CLM),
    ],
)
def test_explicit_ct2_dir(
    tiny_models: TinyModels, cache: Path, name: str, architecture: Architecture, fmt: PromptFormat
) -> None:
    path = getattr(tiny_models, name)
    resolved = resolve_model(str(path))
    assert (resolved.path, resolved.backend) == (path, Backend.CTRANSLATE2)
    assert (resolved.preset.architecture, resolved.preset.completion_format) == (architecture, fmt)
    assert resolved.preset.name == path.name
    assert not cache.exists()  # used in place, nothing converted


def test_explicit_hf_dir_converted_once(tiny_models: TinyModels, cache: Path) -> None:
    messages: list[str] = []
    first = resolve_model(str(tiny_models.llama_hf), progress=messages.append)
    assert first.backend is Backend.CTRANSLATE2 and is_ct2_dir(first.path)
    assert first.path.parent == models_dir() and first.path.is_relative_to(cache)
    assert first.path.name.startswith("local-llama-hf-") and first.path.name.endswith("-int8")
    assert read_metadata(first.path)["source"] == str(tiny_models.llama_hf)
    assert first.preset.architecture is Architecture.DECODER
    assert any("Converting" in m for m in messages)

    mtime = (first.path / "model.bin").stat().st_mtime_ns
    messages.clear()
    second = resolve_model(str(tiny_models.llama_hf), progress=messages.append)
    assert second == first
    assert (first.path / "model.bin").stat().st_mtime_ns == mtime  # not converted again
    assert messages == []
    assert [p.name for p in models_dir().iterdir()] == [first.path.name]


def test_hf_encoder_decoder_dir(tiny_models: TinyModels) -> None:
    resolved = resolve_model(str(tiny_models.t5_hf))
    assert resolved.backend is Backend.CTRANSLATE2 and is_ct2_dir(resolved.path)
    assert resolved.preset.architecture is Architecture.ENCODER_DECODER and resolved.preset.summarizes


def test_changed_hf_dir_is_converted_again(tiny_models: TinyModels, tmp_path: Path) -> None:
    src = tmp_path / "codegen-hf"
    shutil.copytree(tiny_models.codegen_hf, src)
    first = resolve_model(str(src))
    time.sleep(0.01)
    (src / "config.json").write_text((src / "config.json").read_text())  # a new checkpoint: config rewritten
    second = resolve_model(str(src))
    assert second.path != first.path and is_ct2_dir(second.path)


@pytest.mark.parametrize("spec", ["/no/such/no-such-model-dir", "./no-such-model-dir", "~/no-such-model-dir"])
def test_missing_path(spec: str) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist") as error:
        resolve_model(spec)
    assert "no-such-model-dir" in str(error.value)


def test_directory_that_is_no_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="neither a CTranslate2 model") as error:
        resolve_model(str(tmp_path))
    assert str(tmp_path) in str(error.value)


@pytest.mark.parametrize("spec", ["no-such-model", "a/b/c"])
def test_unknown_name_lists_presets(spec: str) -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model") as error:
        resolve_model(spec)
    assert all(name in str(error.value) for name in PRESETS)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("spec", ["codet5-lsp-tests/no-such-model", "codet5p-220m", "Salesforce/codet5p-770m"])
def test_hub_id_offline_fails_fast(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="network access is off") as error:
        resolve_model(spec)
    assert time.monotonic() - start < 30
    preset = find_preset(spec)
    hub_id = preset.hub_id if preset else spec
    assert f"codet5-quantize {hub_id}" in str(error.value)  # says what to do


def test_local_files_only_never_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ModelNotFoundError, match="network access is off"):
        resolve_model("codet5-lsp-tests/no-such-model", local_files_only=True)


@pytest.mark.parametrize("spec", ["codet5p-220m", "CodeT5P-220M", "Salesforce/codet5p-220m"])
def test_preset_from_converted_cache(tiny_models: TinyModels, monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = models_dir() / "codet5p-220m-int8"
    shutil.copytree(tiny_models.t5_int8, cached)
    resolved = resolve_model(spec)
    assert (resolved.path, resolved.preset, resolved.backend) == (cached, PRESETS["codet5p-220m"], Backend.CTRANSLATE2)


def test_unknown_hub_id_from_converted_cache(tiny_models: TinyModels, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = models_dir() / "someorg--tiny-llama-int8"
    shutil.copytree(tiny_models.llama_int8, cached)
    resolved = resolve_model("someorg/tiny-llama")
    assert resolved.path == cached and resolved.preset.architecture is Architecture.DECODER


def copy_with_metadata(src: Path, dest: Path, **metadata: str) -> Path:
    shutil.copytree(src, dest)
    if metadata:
        (dest / METADATA_FILE).write_text(json.dumps(metadata))
    return dest


@pytest.mark.parametrize(
    ("name", "architecture"),
    [
        ("llama_int8", Architecture.DECODER),  # CTranslate2 decoder config
        ("t5_int8", Architecture.ENCODER_DECODER),  # CTranslate2 config with a decoder start token
        ("llama_hf", Architecture.DECODER),  # transformers config: LlamaForCausalLM
        ("codegen_hf", Architecture.DECODER),
        ("t5_hf", Architecture.ENCODER_DECODER),  # T5ForConditionalGeneration
    ],
)
def test_describe_local_from_config(tiny_models: TinyModels, name: str, architecture: Architecture) -> None:
    preset = describe_local(getattr(tiny_models, name))
    assert preset.architecture is architecture and preset.hub_id is None
    if architecture is Architecture.ENCODER_DECODER:
        assert (preset.completion_format, preset.infill_format, preset.summarizes) == (
            PromptFormat.CODET5_CLM, PromptFormat.CODET5_SPAN, True,
        )
    else:
        assert (preset.completion_format, preset.summarizes) == (PromptFormat.PLAIN, False)


def test_describe_local_reads_context_length(tiny_models: TinyModels, tmp_path: Path) -> None:
    hf_dir = tiny_gpt2(tiny_models.tokenizer_dir, tmp_path / "gpt2", n_positions=64)
    assert describe_local(hf_dir).max_context_tokens == 64


def test_describe_local_metadata_architecture_wins(tiny_models: TinyModels, tmp_path: Path) -> None:
    # A decoder directory whose metadata says it came from an encoder-decoder checkpoint, and the reverse.
    t5_like = copy_with_metadata(tiny_models.llama_int8, tmp_path / "a", architecture="T5ForConditionalGeneration")
    assert describe_local(t5_like).architecture is Architecture.ENCODER_DECODER
    llama_like = copy_with_metadata(tiny_models.t5_int8, tmp_path / "b", architecture="LlamaForCausalLM")
    assert describe_local(llama_like).architecture is Architecture.DECODER


def test_describe_local_names_a_preset(tiny_models: TinyModels, tmp_path: Path) -> None:
    by_source = copy_with_metadata(tiny_models.t5_int8, tmp_path / "x", source="/models/Salesforce/codet5p-770m-py/")
    assert describe_local(by_source) == PRESETS["codet5p-770m-py"]
    by_name = copy_with_metadata(tiny_models.llama_int8, tmp_path / "codegen-350M-mono")
    assert describe_local(by_name) == PRESETS["codegen-350m-mono"]
    embedded = describe_local(copy_with_metadata(tiny_models.llama_int8, tmp_path / "Qwen2.5-Coder-0.5B-Instruct"))
    assert embedded.name == DEFAULT_PRESET.name and not embedded.embedded  # a local copy is never rebuilt


@pytest.mark.parametrize(
    ("name", "expected"),
    [("default", "qwen2.5-coder-0.5b"), (" Default ", "qwen2.5-coder-0.5b"), ("SMOLLM2-135M", "smollm2-135m"),
     ("codet5p-220m-py", "codet5p-220m-py"), ("codet5-base-multi-sum", "codet5-base-multi-sum")],
)
def test_find_preset(name: str, expected: str) -> None:
    assert find_preset(name) is PRESETS[expected]


@pytest.mark.parametrize("name", ["", "smollm2", "Salesforce/codet5p-220m", "codet5p"])
def test_find_preset_unknown(name: str) -> None:
    assert find_preset(name) is None


def test_presets_are_consistent() -> None:
    for name, preset in PRESETS.items():
        assert preset.name == name
        if preset.summarizes or preset.infill_format is PromptFormat.CODET5_SPAN:
            assert preset.architecture is Architecture.ENCODER_DECODER
        if preset.completion_format is PromptFormat.FIM:
            assert preset.fim is not None
    embedded = {p.name for p in PRESETS.values() if p.embedded}
    assert DEFAULT_PRESET.name in embedded and SUMMARIZER_PRESET in embedded
    assert set(EMBEDDED_BUILDERS) == embedded
