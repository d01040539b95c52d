"""Docstrings from the encoder-decoder mode: hover summaries and the streamed "Generate docstring" command."""

from .actions import DOCSTRING_ACTION_KIND, GENERATE_DOCSTRING_COMMAND, docstring_actions
from .hover import function_hover, hover_markdown
from .summarizer import Summarizer
from .writer import DocstringResult, write_docstring

__all__ = [
    "DOCSTRING_ACTION_KIND",
    "GENERATE_DOCSTRING_COMMAND",
    "DocstringResult",
    "Summarizer",
    "docstring_actions",
    "function_hover",
    "hover_markdown",
    "write_docstring",
]
