"""What the syntax layer knows of one function definition."""

from __future__ import annotations

from dataclasses import dataclass

from .languages import spec_for


@dataclass(frozen=True)
class FunctionInfo:
    """A function or method definition.

    name: its name (for a JS function value, the name it is assigned to; "" for an
        anonymous ``export default function``).
    signature: the header as written, without decorators, annotations on their own lines or
        the body's '{' (Python keeps its ':'), e.g. ``async def f(x):``, ``export const f =
        (a) =>``, ``func (c *Counter) Inc(n int) int``.
    text: the source of the whole definition: decorators, attributes, annotations and
        ``export`` included, a doc comment above it not (a Python docstring, being in the
        body, is). It starts at the start of its first line (indentation included), or at
        the definition itself when code precedes it on that line.
    start_line, end_line: 0-based inclusive lines of ``text``.
    body_indent: indentation of the body's statements (the header's plus one step when the
        body is empty or on the header's line).
    docstring, docstring_range: the existing docstring / doc comment, cleaned of quotes and
        comment markers, and its (start_line, start_char, end_line, end_char).
    insert_line, insert_character: where ``format_docstring``'s text goes. Python: the start
        of the line after the header; for a one-line ``def f(x): return x``, just after the
        ':' (the body moves to its own line; where the space after the ':' cannot become
        part of the body's indentation, e.g. a tab, at the body, leaving that space at the
        end of the header line). Other languages: the start of the definition's
        first line (above decorators and attributes), or the definition's first character
        when code precedes it on that line.
    language: the grammar's name ("python", "typescript", "tsx", ...).
    style (derived from it): "python" | "jsdoc" | "javadoc" | "rustdoc" | "go".
    """

    name: str
    signature: str
    text: str
    start_line: int
    end_line: int
    body_indent: str
    docstring: str | None
    docstring_range: tuple[int, int, int, int] | None
    insert_line: int
    insert_character: int
    language: str

    @property
    def style(self) -> str:
        """The doc comment convention of the function's language."""
        return spec_for(self.language).doc_style
