"""Models only: engines, prompt formats, presets, resolution and conversion. No LSP here."""

from .model import CapabilityError, CodeModel
from .presets import PRESETS, Preset, find_preset
from .stream import TextStream

__all__ = ["CapabilityError", "CodeModel", "PRESETS", "Preset", "TextStream", "find_preset"]
