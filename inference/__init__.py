"""Models only: engines, prompt formats, presets, resolution and conversion. No LSP here."""

import os

# OpenMP threads that spin while idle starve the Python threads that feed CTranslate2 between
# decoding steps: on this 2-core machine a one-line completion through the server took 15.8 s
# with the default policy and 1.35 s with PASSIVE (measured with `codet5-lsp complete`). It must
# be set before the runtime loads; a user's explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .embedded import implied_summary_model
from .model import CapabilityError, CodeModel
from .presets import PRESETS, Preset, find_preset
from .stream import TextStream

__all__ = ["CapabilityError", "CodeModel", "PRESETS", "Preset", "TextStream", "find_preset", "implied_summary_model"]
