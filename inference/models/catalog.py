"""What the converted-model cache holds for each preset, by the exact directory a load would use."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from .cache import models_dir
from .convert import is_ct2_dir
from .presets import Preset
from .resolve import CACHE_QUANTIZATION


class CacheState(Enum):
    CACHED = "cached"  # a complete CTranslate2 directory: loads without fetching or converting
    INCOMPLETE = "incomplete"  # the directory exists but holds no complete model: rebuilt at first use
    ABSENT = "-"  # fetched and converted at first use (or `codet5-lsp models pull`)


def cached_dir(preset: Preset) -> Path:
    """The directory a preset is converted into (embedded and hub presets alike)."""
    return models_dir() / f"{preset.name}-{CACHE_QUANTIZATION}"


def cache_state(preset: Preset) -> CacheState:
    """Whether `preset`'s own directory is in the cache; another model's folder whose name merely
    starts with this one's (`smollm2-135m-summarizer-int8` for `smollm2-135m`) does not count."""
    directory = cached_dir(preset)
    if is_ct2_dir(directory):
        return CacheState.CACHED
    return CacheState.INCOMPLETE if directory.exists() else CacheState.ABSENT
