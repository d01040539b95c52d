"""A function's own doc text (markers already stripped) as Markdown for a hover.

Code stays code: fenced blocks are kept, and Python doctests and ``::`` literal blocks, Go's
indented blocks, JSDoc ``@example`` and Javadoc ``<pre>`` become fenced blocks. Rustdoc and JSDoc
text is Markdown already; Python, Go and Javadoc text is not, so it is escaped, keeps its line
breaks and indentation, and its conventions (reST roles and section underlines, Javadoc HTML and
``{@code}``, ``@param`` tags) become the Markdown that shows them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_DOC_CHARS = 6_000  # longer doc text is shown up to a line break before this, then a note

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")  # deeper, it is indented code (CommonMark)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|&~])")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_REST_ROLE = re.compile(r":[\w:+.-]+:(?=`)")
_UNDERLINE = re.compile(r"^[ \t]*([-=~^*+#])\1{2,}[ \t]*$")
_GO_HEADING = re.compile(r"^# (\S.*)$")
_TAG = re.compile(r"^@(\w+)\s*(\{(?!@)[^}]*\})?\s*(.*)$", re.DOTALL)
_NAMED_TAGS = frozenset({"param", "arg", "argument", "property", "prop", "template", "throws", "exception", "typeParam"})
_RUST_FENCE_WORDS = frozenset({"", "rust", "ignore", "no_run", "should_panic", "compile_fail", "test_harness"})
_JAVADOC_INLINE = re.compile(r"\{@(code|literal|link|linkplain|value|inheritDoc)\b\s*|<(/?)(\w+)[^>]*>", re.IGNORECASE)


@dataclass(frozen=True)
class _Code:
    lines: list[str]
    language: str


# A rendered piece: a prose line (kept on its own line), a Markdown line (Markdown's own line
# joining), a blank line, or a code block.
_Piece = tuple[str, str] | _Code


def doc_markdown(text: str, style: str, language: str) -> str:
    """Markdown for the doc text `text` of a function in `language` ("python", "go", ...), whose
    doc convention is `style` ("python" | "jsdoc" | "javadoc" | "rustdoc" | "go")."""
    lines = _LINE_BREAK.split(text.strip("\r\n"))
    shown = _clip(lines)
    pieces: list[_Piece] = []
    for fenced, segment, info in _fenced_segments(shown):
        if fenced:
            pieces.append(_fenced_code(segment, info, style, language))
        elif style == "python":
            pieces.extend(_python_pieces(segment))
        elif style == "go":
            pieces.extend(_go_pieces(segment))
        elif style in ("jsdoc", "javadoc"):
            pieces.extend(_tagged_pieces(segment, style, language))
        else:
            pieces.extend(_markdown_pieces(segment))
    markdown = _join(pieces)
    if len(shown) < len(lines):
        markdown += f"\n\n*… {len(lines) - len(shown)} more lines*"
    return markdown


def _clip(lines: list[str]) -> list[str]:
    """The lines that fit in MAX_DOC_CHARS (the first one cut when it alone is too long)."""
    total = 0
    for index, line in enumerate(lines):
        total += len(line) + 1
        if total > MAX_DOC_CHARS:
            return lines[:index] if index else [lines[0][:MAX_DOC_CHARS] + " …"]
    return lines


def _fenced_segments(lines: list[str]) -> Iterator[tuple[bool, list[str], str]]:
    """(fenced, lines, info string): the text between fenced code blocks, and each block's
    content (an unclosed block runs to the end)."""
    segment: list[str] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None or (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            segment.append(lines[index])
            index += 1
            continue
        if segment:
            yield False, segment, ""
            segment = []
        marker, end = opening.group(1), index + 1
        while end < len(lines) and not re.match(rf"^[ \t]*{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$", lines[end]):
            end += 1
        yield True, _dedent(lines[index + 1 : end]), opening.group(2).strip()
        index = end + 1
    if segment:
        yield False, segment, ""


def _fenced_code(lines: list[str], info: str, style: str, language: str) -> _Code:
    words = {word for word in re.split(r"[\s,]+", info) if word}
    if style == "rustdoc" and all(word in _RUST_FENCE_WORDS or word.startswith("edition") for word in words):
        # rustdoc hides `# ` lines (setup code) from the rendered example
        return _Code([line for line in lines if line.strip() != "#" and not line.lstrip().startswith("# ")], "rust")
    return _Code(lines, info.split()[0] if info else language)


def _markdown_pieces(lines: list[str]) -> Iterator[_Piece]:
    return (("markdown", line) if line.strip() else ("blank", "") for line in lines)


def _python_pieces(lines: list[str]) -> Iterator[_Piece]:
    """reST-ish docstring text: doctests and ``::`` literal blocks as code, underlined section
    titles in bold, the rest escaped line by line."""
    index = 0
    previous_prose = False
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if stripped.startswith(">>>"):
            end = index
            while end < len(lines) and lines[end].strip():
                end += 1
            yield _Code(_dedent(lines[index:end]), "python")
            index, previous_prose = end, False
            continue
        if _UNDERLINE.match(line) and previous_prose:
            yield "underline", ""
            index += 1
            continue
        if stripped.endswith("::"):
            block_end = _indented_block_end(lines, index)
            if block_end > index + 1:
                title = stripped[:-2].rstrip()
                if title:
                    yield "prose", _indent(line) + _escape(title + ":", rest=True)
                yield _Code(_dedent(lines[index + 1 : block_end]), "")
                index, previous_prose = block_end, False
                continue
        yield ("prose", _indent(line) + _escape(stripped, rest=True)) if stripped else ("blank", "")
        previous_prose = bool(stripped)
        index += 1


def _indented_block_end(lines: list[str], start: int) -> int:
    """End of the block indented deeper than lines[start] that follows it (blank lines inside),
    or start + 1 when none follows."""
    width = _width(lines[start])
    end = last = start + 1
    while end < len(lines) and (not lines[end].strip() or _width(lines[end]) > width):
        if lines[end].strip():
            last = end + 1
        end += 1
    return last


def _go_pieces(lines: list[str]) -> Iterator[_Piece]:
    """Go doc text: indented lines are code, ``# Title`` lines headings, the rest escaped."""
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.strip() and line[0] in " \t":
            end = last = index
            while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t"):
                if lines[end].strip():
                    last = end + 1
                end += 1
            yield _Code(_dedent(lines[index:last]), "go")
            index = last
            continue
        heading = _GO_HEADING.match(line)
        if heading is not None and (index + 1 == len(lines) or not lines[index + 1].strip()):
            yield "markdown", "**" + _escape(heading.group(1)) + "**"
        else:
            yield ("prose", _escape(line.strip())) if line.strip() else ("blank", "")
        index += 1


def _tagged_pieces(lines: list[str], style: str, language: str) -> Iterator[_Piece]:
    """JSDoc (Markdown) or Javadoc (HTML) text: the description, then one paragraph per ``@tag``."""
    starts = [index for index, line in enumerate(lines) if line.lstrip().startswith("@")]
    first = starts[0] if starts else len(lines)
    yield from _description(lines[:first], style)
    for start, end in zip(starts, [*starts[1:], len(lines)]):
        match = _TAG.match("\n".join(lines[start:end]).strip())
        if match is None:
            yield from _description(lines[start:end], style)
            continue
        tag, kind, rest = match.groups()
        yield "blank", ""
        if tag == "example":  # code (a fenced example was split off before, and follows)
            yield "markdown", "*@example*"
            yield _Code(_dedent(_LINE_BREAK.split(rest.strip("\r\n"))), language)
            continue
        head = f"*@{tag}*"
        if tag in _NAMED_TAGS and rest.strip():
            name, *about = re.split(r"\s+", rest.strip(), maxsplit=1)
            head += " " + _code_span(name)
            rest = (about[0] if about else "").removeprefix("- ")
        head += " " + _code_span(kind) if kind else ""
        head += " —" if rest.strip() and tag in _NAMED_TAGS else ""
        about_lines = _LINE_BREAK.split(rest.strip())
        yield "markdown", (head + " " + _inline(about_lines[0], style)).rstrip()
        yield from _description(about_lines[1:], style)


def _description(lines: list[str], style: str) -> Iterator[_Piece]:
    if style == "jsdoc":  # Markdown, but its {@link X} tags shown as code
        yield from _markdown_pieces([_inline(line, style) for line in lines])
        return
    for line in _javadoc_to_markdown("\n".join(lines)):
        if isinstance(line, _Code):
            yield line
        else:
            yield ("markdown", line) if line.strip() else ("blank", "")


def _javadoc_to_markdown(text: str) -> Iterator[str | _Code]:
    """Javadoc HTML as Markdown lines and code blocks: <pre> blocks, {@code}/{@link}, <code>,
    <p>/<br>/<li>, bold and italics; other tags dropped, text escaped."""
    for index, part in enumerate(re.split(r"<pre[^>]*>(.*?)(?:</pre>|\Z)", text, flags=re.DOTALL | re.IGNORECASE)):
        if index % 2:
            code = part.strip("\r\n")
            wrapped = re.fullmatch(r"\s*\{@code\s?(.*)\}\s*", code, re.DOTALL)
            code = wrapped.group(1).strip("\r\n") if wrapped else html.unescape(code)
            yield _Code(_dedent(_LINE_BREAK.split(code)), "java")
        else:
            yield from _LINE_BREAK.split(_inline(part, "javadoc"))


def _inline(text: str, style: str) -> str:
    """One stretch of text with its inline markup as Markdown (escaped unless it is Markdown)."""
    if style == "jsdoc":
        return re.sub(r"\{@link(?:plain|code)?\s+([^}|\s]+)(?:[ |]\s*([^}]*))?\}",
                      lambda m: m.group(2).strip() if m.group(2) else _code_span(m.group(1)), text)
    out: list[str] = []
    position = 0
    for match in _JAVADOC_INLINE.finditer(text):
        if match.start() < position:
            continue
        out.append(_escape(html.unescape(text[position : match.start()])))
        position = match.end()
        inline_tag, closing, element = match.group(1), match.group(2), (match.group(3) or "").lower()
        if inline_tag is not None:
            body, position = _braced(text, position)
            name = inline_tag.lower()
            if name == "inheritdoc":
                out.append("*(inherited)*")
            elif name.startswith("link"):
                target, _, label = body.strip().partition(" ")
                out.append(_escape(label.strip()) if label.strip() else _code_span(target))
            else:
                out.append(_code_span(body) if name != "literal" else _escape(body))
        elif element in ("code", "tt"):
            if not closing:
                end = text.lower().find(f"</{element}>", position)
                end = len(text) if end < 0 else end
                out.append(_code_span(html.unescape(re.sub(r"<[^>]*>", "", text[position:end]))))
                position = min(len(text), end + len(element) + 3)
        elif element == "p":
            out.append("\n\n")
        elif element == "br":
            out.append("  \n")
        elif element == "li" and not closing:
            out.append("\n- ")
        elif element in ("b", "strong"):
            out.append("**")
        elif element in ("i", "em"):
            out.append("*")
    out.append(_escape(html.unescape(text[position:])))
    return "".join(out)


def _braced(text: str, start: int) -> tuple[str, int]:
    """The text up to the brace that closes an inline tag opened before `start`, and the
    position after that brace (balanced braces inside, as Javadoc allows)."""
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[start:index], index + 1
    return text[start:], len(text)


def _code_span(text: str) -> str:
    text = " ".join(text.split())
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}" if text else ""


def escape_markdown(text: str) -> str:
    """Plain text made literal in Markdown."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def code_fence(lines: list[str]) -> str:
    """A backtick fence longer than any fence-like run of backticks in `lines`."""
    return "`" * max(3, max((len(run) + 1 for line in lines for run in re.findall(r"`{3,}", line)), default=3))


def _escape(text: str, rest: bool = False) -> str:
    """Plain text made literal in Markdown; with `rest`, reST/Markdown code spans (``x``, `x`,
    :role:`x`) are kept as code."""
    if not rest:
        return escape_markdown(text)
    text = _REST_ROLE.sub("", text)
    out, position = [], 0
    for match in _CODE_SPAN.finditer(text):
        out.append(escape_markdown(text[position : match.start()]))
        out.append(_code_span(match.group(2)))
        position = match.end()
    out.append(escape_markdown(text[position:]))
    return "".join(out)


def _indent(line: str) -> str:
    """A line's indentation as no-break spaces, which Markdown keeps (a tab counts four)."""
    return "\u00a0" * _width(line)


def _width(line: str) -> int:
    return len(line[: len(line) - len(line.lstrip(" \t"))].expandtabs(4))


def _dedent(lines: list[str]) -> list[str]:
    """`lines` without their common indentation (tabs as four spaces) and outer blank lines."""
    lines = [line.expandtabs(4).rstrip() for line in lines]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    common = min((_width(line) for line in lines if line), default=0)
    return [line[common:] for line in lines]


def _join(pieces: list[_Piece]) -> str:
    """The pieces as Markdown: prose lines keep their breaks, code blocks are fenced with
    blank lines around them, runs of blank lines become one."""
    out: list[str] = []
    previous = "blank"
    for piece in pieces:
        if isinstance(piece, _Code):
            if not piece.lines:
                continue
            if out and out[-1]:
                out.append("")
            fence = code_fence(piece.lines)
            out.extend([fence + piece.language, *piece.lines, fence, ""])
            previous = "blank"
            continue
        kind, text = piece
        if kind == "underline":  # the title above, underlined in reST: bold
            out[-1] = "**" + out[-1].lstrip("\u00a0") + "**"
            previous = "title"
            continue
        if kind == "blank":
            if out and out[-1]:
                out.append("")
            previous = "blank"
            continue
        if previous in ("prose", "title") and kind == "prose":
            out[-1] += "  "  # a hard line break: the doc's line breaks are kept
        out.append(text)
        previous = kind
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)
