"""Indentation as columns: a line's leading whitespace and its width."""

from __future__ import annotations

TAB_WIDTH = 4  # columns of a tab when comparing indentation


def lead(line: str) -> str:
    """The line's indentation (spaces and tabs)."""
    return line[: len(line) - len(line.lstrip(" \t"))]


def width(indentation: str, tab: int = TAB_WIDTH) -> int:
    """Columns taken by spaces and tabs, a tab advancing to the next multiple of `tab`."""
    column = 0
    for ch in indentation:
        column = column + tab - column % tab if ch == "\t" else column + 1
    return column
