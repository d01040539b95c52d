"""Model resolution: a name, hub id or path becomes a runnable local directory.

Order: explicit local path (CTranslate2 or Hugging Face directory) -> converted cache -> Hugging
Face cache (offline) -> hub download when a network exists -> the embedded default.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from .cache import models_dir, remove_build_leftovers
from .convert import (
    FORMAT_VERSION, CacheWriteError, ConversionError, context_length, convert_to_ct2, is_ct2_dir, is_onnx_dir, model_bin_intact,
    read_metadata,
)
from .embedded import EMBEDDED_BUILDERS, EMBEDDED_SOURCES, ONNX_RUNTIME, ensure_embedded_model
from .presets import PRESETS, Architecture, Preset, PromptFormat, find_preset

Progress = Callable[[str], None]
CACHE_QUANTIZATION = "int8"  # cached conversions; CUDA loads them as int8_float16


class ModelNotFoundError(RuntimeError):
    """The model cannot be found locally and cannot be fetched."""


class Backend(str, Enum):
    CTRANSLATE2 = "ctranslate2"
    TRANSFORMERS = "transformers"
    ONNXRUNTIME = ONNX_RUNTIME


RUNTIMES = ("auto", Backend.CTRANSLATE2.value, Backend.ONNXRUNTIME.value)
INT4 = "int4"  # a compute type of ONNX Runtime alone: the embedded models with 4-bit layer weights


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    preset: Preset
    backend: Backend


def _is_hf_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and any(
        (path / name).exists() for name in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
    )


def _architecture_of(path: Path) -> str:
    """The transformers architecture name recorded for a model directory ('' if unknown)."""
    meta = read_metadata(path)
    if meta and meta.get("architecture"):
        return str(meta["architecture"])
    config = path / "config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        if data.get("architectures"):
            return str(data["architectures"][0])
        if "decoder_start_token" in data:  # a CTranslate2 encoder-decoder config
            return "T5ForConditionalGeneration"
    return ""


def _context_limit(path: Path) -> int | None:
    """The context length recorded at conversion, or in an HF config."""
    meta = read_metadata(path) or {}
    if isinstance(meta.get("context_length"), int):
        return meta["context_length"]
    config = path / "config.json"
    try:
        return context_length(json.loads(config.read_text(encoding="utf-8"))) if config.is_file() else None
    except ValueError:
        return None


def describe_local(path: Path) -> Preset:
    """A preset for a local directory: the registry's if its source names one, else inferred;
    its context budget never exceeds what the checkpoint's positions cover."""
    preset = _describe(path)
    limit = _context_limit(path)
    return replace(preset, max_context_tokens=limit) if limit and limit < preset.max_context_tokens else preset


def _describe(path: Path) -> Preset:
    meta = read_metadata(path) or {}
    if meta.get("preset") in PRESETS:
        return replace(PRESETS[meta["preset"]], embedded=False)
    for candidate in (str(meta.get("source", "")), path.name):
        for preset in PRESETS.values():
            if preset.hub_id and candidate.rstrip("/").endswith(preset.hub_id.split("/")[-1]):
                return replace(preset, embedded=False)
    arch = _architecture_of(path)
    if "ConditionalGeneration" in arch or "Seq2Seq" in arch:
        return Preset(
            name=path.name, hub_id=None, architecture=Architecture.ENCODER_DECODER,
            completion_format=PromptFormat.CODET5_CLM, infill_format=PromptFormat.CODET5_SPAN,
            summarizes=True, description=f"local {arch or 'encoder-decoder'} model", max_context_tokens=512,
        )
    return Preset(
        name=path.name, hub_id=None, architecture=Architecture.DECODER,
        completion_format=PromptFormat.PLAIN, description=f"local {arch or 'decoder'} model",
    )


def _converted(src: Path, out: Path, preset: Preset, trust_remote_code: bool, progress: Progress | None) -> ResolvedModel:
    """CTranslate2 conversion of an HF directory, cached at `out`; the transformers backend if it cannot convert.

    A cached conversion in an older format is converted again (the source is at hand).
    """
    if is_ct2_dir(out) and model_bin_intact(out) and (read_metadata(out) or {}).get("format_version") == FORMAT_VERSION:
        return ResolvedModel(out, preset, Backend.CTRANSLATE2)
    try:
        convert_to_ct2(src, out, CACHE_QUANTIZATION, trust_remote_code=trust_remote_code, progress=progress)
        return ResolvedModel(out, preset, Backend.CTRANSLATE2)
    except CacheWriteError:
        raise  # the disk is full: the transformers backend would not help
    except ConversionError as exc:
        if progress:
            progress(f"CTranslate2 cannot convert {src.name} ({exc}); using transformers")
        return ResolvedModel(src, preset, Backend.TRANSFORMERS)


def _local(path: Path, trust_remote_code: bool, progress: Progress | None) -> ResolvedModel:
    if not path.exists():
        raise ModelNotFoundError(f"model path {path} does not exist")
    if is_ct2_dir(path):
        return ResolvedModel(path, describe_local(path), Backend.CTRANSLATE2)
    if is_onnx_dir(path):
        return ResolvedModel(path, describe_local(path), Backend.ONNXRUNTIME)
    if _is_hf_dir(path):
        stamp = hashlib.sha256(f"{path.resolve()}:{(path / 'config.json').stat().st_mtime_ns}".encode()).hexdigest()[:12]
        out = models_dir() / f"local-{path.name}-{stamp}-{CACHE_QUANTIZATION}"
        return _converted(path, out, describe_local(path), trust_remote_code, progress)
    raise ModelNotFoundError(
        f"{path} is neither a CTranslate2 model (model.bin, config.json, vocabulary) nor a Hugging Face checkpoint (config.json + weights)"
    )


def _hub_snapshot(hub_id: str, local_files_only: bool) -> Path:
    from huggingface_hub import constants, snapshot_download

    offline = local_files_only or constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
    try:
        return Path(snapshot_download(hub_id, local_files_only=True))
    except Exception:
        if offline:
            raise ModelNotFoundError(
                f"{hub_id} is not in the converted cache or the Hugging Face cache, and network access is off. "
                f"On a machine with access run `codet5-quantize {hub_id} --out DIR`, copy DIR here and use --model DIR."
            ) from None
    try:
        return Path(snapshot_download(hub_id))
    except Exception as exc:
        raise ModelNotFoundError(
            f"cannot download {hub_id} ({type(exc).__name__}). Without network access, run "
            f"`codet5-quantize {hub_id} --out DIR` elsewhere, copy DIR here and use --model DIR."
        ) from None


def onnx_runtime_builds(preset: Preset | None) -> bool:
    """Whether an ONNX Runtime decoder can be built for `preset` (the embedded completion models, from their GGUF)."""
    return preset is not None and preset.embedded and preset.name in EMBEDDED_SOURCES


def resolve_model(
    spec: str = "default",
    *,
    local_files_only: bool = False,
    trust_remote_code: bool = False,
    runtime: str = "ctranslate2",
    quantization: str = "int8",  # or INT4, with runtime "onnxruntime"
    progress: Progress | None = None,
) -> ResolvedModel:
    """Find or build a runnable directory for `spec` (preset name, hub id or local path); with
    `runtime` "onnxruntime", an embedded completion model is built for ONNX Runtime instead of
    CTranslate2, in `quantization` (int8 or int4; a local directory runs on the runtime it was
    converted for).

    Leftovers of builds that were killed are removed first; a cached conversion whose model.bin
    fails its checksum is built again."""
    remove_build_leftovers()
    spec = spec.strip() or "default"
    preset = find_preset(spec)
    if preset is None:
        path = Path(spec).expanduser()
        if path.exists() or spec.startswith((".", "/", "~")):
            return _local(path, trust_remote_code, progress)
        if spec.count("/") != 1:
            raise ModelNotFoundError(
                f"unknown model {spec!r}: not a preset ({', '.join(PRESETS)}), a hub id (org/name) or an existing path"
            )
        preset = next((p for p in PRESETS.values() if p.hub_id == spec), None)
    if runtime == ONNX_RUNTIME:
        if not onnx_runtime_builds(preset):
            raise ModelNotFoundError(
                f"ONNX Runtime runs the embedded completion models ({', '.join(EMBEDDED_SOURCES)}) and directories "
                f"converted for it, not {spec!r}; use the ctranslate2 runtime for it"
            )
        return ResolvedModel(ensure_embedded_model(preset.name, progress, ONNX_RUNTIME, quantization), preset, Backend.ONNXRUNTIME)
    if preset is not None and preset.embedded:
        return ResolvedModel(EMBEDDED_BUILDERS[preset.name](progress), preset, Backend.CTRANSLATE2)
    name = preset.name if preset else spec.replace("/", "--")
    cached = models_dir() / f"{name}-{CACHE_QUANTIZATION}"
    if is_ct2_dir(cached) and model_bin_intact(cached):
        return ResolvedModel(cached, preset or describe_local(cached), Backend.CTRANSLATE2)
    snapshot = _hub_snapshot(preset.hub_id if preset and preset.hub_id else spec, local_files_only)
    if preset is None:
        preset = replace(describe_local(snapshot), name=name, hub_id=spec)
    return _converted(snapshot, cached, preset, trust_remote_code, progress)
