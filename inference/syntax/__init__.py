"""Tree-sitter analysis for the language server: plain positions and dataclasses, no LSP types.

Positions are 0-based (line, character), characters counted in Python ``str`` indices.
"""

from .completion import CompletionSyntax, analyze_completion
from .conventions import in_convention
from .doc_comments import format_docstring
from .function_info import FunctionInfo
from .functions import function_at, functions_in
from .languages import language_for

__all__ = [
    "CompletionSyntax",
    "FunctionInfo",
    "analyze_completion",
    "format_docstring",
    "function_at",
    "functions_in",
    "in_convention",
    "language_for",
]
