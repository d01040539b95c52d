"""What the converted-model cache holds for each preset, by the exact directory a load would use."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from .cache import models_dir
from .convert import is_ct2_dir, is_onnx_dir
from .embedded import EMBEDDED_SOURCES, ONNX_RUNTIME, embedded_model_dir
from .presets import Preset
from .resolve import CACHE_QUANTIZATION


class CacheState(Enum):
    CACHED = "cached"  # a complete CTranslate2 or ONNX Runtime directory: loads without fetching or converting
    INCOMPLETE = "incomplete"  # the directory exists but holds no complete model: rebuilt at first use
    ABSENT = "-"  # fetched and converted at first use (or `codet5-lsp models pull`)


def cached_dir(preset: Preset) -> Path:
    """The directory a preset is converted into (embedded and hub presets alike)."""
    return models_dir() / f"{preset.name}-{CACHE_QUANTIZATION}"


def cache_state(preset: Preset) -> CacheState:
    """Whether `preset`'s own directory is in the cache; another model's folder whose name merely
    starts with this one's (`smollm2-135m-summarizer-int8` for `smollm2-135m`) does not count."""
    directory = cached_dir(preset)
    onnx_directory = embedded_model_dir(preset.name, ONNX_RUNTIME) if preset.name in EMBEDDED_SOURCES else None
    if is_ct2_dir(directory) or (onnx_directory is not None and is_onnx_dir(onnx_directory)):
        return CacheState.CACHED
    exists = directory.exists() or (onnx_directory is not None and onnx_directory.exists())
    return CacheState.INCOMPLETE if exists else CacheState.ABSENT
