"""From document and cursor to suggestion or summary: engines, models, the completion and summary
pipelines, syntax. No LSP here.

Names are imported on first use (PEP 562), so `import inference.<module>` loads only what that
module needs: the CTranslate2 runtime loads with `inference.engines.runtime`, not with this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CapabilityError": "engines.completion_model",
    "CodeModel": "engines.model",
    "CompletionModel": "engines.completion_model",
    "load_model": "engines.loading",
    "PRESETS": "models.presets",
    "Preset": "models.presets",
    "find_preset": "models.presets",
    "TextStream": "engines.stream",
    "implied_summary_model": "models.embedded",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .engines.completion_model import CapabilityError, CompletionModel
    from .engines.loading import load_model
    from .engines.model import CodeModel
    from .engines.stream import TextStream
    from .models.embedded import implied_summary_model
    from .models.presets import PRESETS, Preset, find_preset


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'inference' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
