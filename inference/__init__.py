"""From document and cursor to suggestion or summary: engines, models, the completion and summary
pipelines, syntax. No LSP here.

Names are imported on first use (PEP 562), so `import inference.<module>` loads only what that
module needs: the CTranslate2 runtime loads with `inference.runtime`, not with this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CapabilityError": "completion_model",
    "CodeModel": "model",
    "CompletionModel": "completion_model",
    "load_model": "loading",
    "PRESETS": "presets",
    "Preset": "presets",
    "find_preset": "presets",
    "TextStream": "stream",
    "implied_summary_model": "embedded",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .embedded import implied_summary_model
    from .completion_model import CapabilityError, CompletionModel
    from .loading import load_model
    from .model import CodeModel
    from .presets import PRESETS, Preset, find_preset
    from .stream import TextStream


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'inference' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
