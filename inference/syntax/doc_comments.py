"""Existing docstrings and doc comments, and the text of new ones."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import warnings
from dataclasses import dataclass

from tree_sitter import Node

from .function_info import FunctionInfo
from .languages import LanguageSpec
from .nodes import ancestors, is_comment
from .source import Source, leading_whitespace


_STRING_PREFIX = re.compile(r"^([a-zA-Z]*)('''|\"\"\"|'|\")")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Go directives (//go:noinline, //line f.go:1, //export F) are not doc text (go/ast's isDirective).
_GO_DIRECTIVE = re.compile(r"//(?:line |extern |export |[a-z0-9]+:[a-z0-9])")


@dataclass(frozen=True)
class Doc:
    """An existing docstring or doc comment: its text without markers, and its range."""

    text: str
    range: tuple[int, int, int, int]


def existing_doc(function: Node, start: int, src: Source, spec: LanguageSpec) -> Doc | None:
    """The docstring in a Python function's body, or the doc comment just above ``start``."""
    if spec.doc_style == "python":
        return _python_docstring(function, src)
    root = list(ancestors(function))[-1]
    comments: list[Node] = []
    comment = _comment_before(root, src, start)
    while spec.doc_style == "go" and comment is not None and _GO_DIRECTIVE.match(_text(comment, src)):
        comment = _comment_before(root, src, comment.start_byte)  # directives below the doc stay out of it
    while comment is not None and _is_doc(comment, src, spec.doc_style):
        comments.insert(0, comment)
        if _text(comment, src).startswith("/*"):
            break  # a /** */ block stands alone; `///` and Go's `//` lines run together
        comment = _comment_before(root, src, comment.start_byte)
        if comment is not None and _text(comment, src).startswith("/*"):
            break
    if not comments:
        return None
    end = comments[-1].end_byte
    while end > comments[-1].start_byte and src.data[end - 1 : end] in (b"\n", b"\r"):
        end -= 1
    lines = [line for comment in comments for line in _comment_lines(_text(comment, src))]
    return Doc("\n".join(lines).strip("\n"), (*src.position(comments[0].start_byte), *src.position(end)))


def _python_docstring(function: Node, src: Source) -> Doc | None:
    """The docstring as ``ast.get_docstring`` finds it: a first statement that is a string
    literal without an f or b prefix, implicitly concatenated or parenthesized ones included."""
    body = function.child_by_field_name("body")
    first = next((c for c in body.named_children if not is_comment(c)), None) if body is not None else None
    if first is None or first.type != "expression_statement" or first.named_child_count != 1:
        return None
    literal = first.named_children[0]
    strings = _plain_strings(literal, src)
    if not strings:
        return None
    raw = _text(literal, src)
    try:
        with warnings.catch_warnings():  # invalid escapes warn, as they do when Python compiles them
            warnings.simplefilter("ignore")
            value = ast.literal_eval(raw)
    except (SyntaxError, ValueError, UnicodeError, MemoryError, RecursionError):
        value = "".join(_unquoted(_text(string, src)) for string in strings)  # e.g. unterminated, being typed
    if not isinstance(value, str):
        return None
    return Doc(inspect.cleandoc(value), (*src.position(literal.start_byte), *src.position(literal.end_byte)))


def _plain_strings(node: Node, src: Source) -> list[Node]:
    """The string literals that make up ``node`` when it is a docstring-shaped expression: one
    string, or several concatenated, in any parentheses, none with an f, b or t prefix."""
    while node.type == "parenthesized_expression":
        inner = [c for c in node.named_children if not is_comment(c)]
        if len(inner) != 1:
            return []
        node = inner[0]
    strings = [c for c in node.named_children if not is_comment(c)] if node.type == "concatenated_string" else [node]
    for string in strings:
        if string.type != "string":
            return []
        quote = _STRING_PREFIX.match(_text(string, src))
        if quote is None or not set(quote.group(1).lower()) <= {"r", "u"}:
            return []
    return strings


def _unquoted(raw: str) -> str:
    """A string literal's text between its quotes (the closing ones may be missing)."""
    quote = _STRING_PREFIX.match(raw)
    if quote is None:
        return raw
    content = raw[quote.end() :]
    return content[: -len(quote.group(2))] if content.endswith(quote.group(2)) else content


def _comment_before(root: Node, src: Source, byte: int) -> Node | None:
    """The comment ending right before ``byte``: only whitespace between, no blank line."""
    position = byte
    while position > 0 and src.data[position - 1 : position] in (b" ", b"\t", b"\n", b"\r"):
        position -= 1
    gap = src.data[position:byte]
    if position == 0 or gap.count(b"\n") + gap.replace(b"\r\n", b"").count(b"\r") > 1:
        return None
    leaf = root.descendant_for_byte_range(position - 1, position)
    comment = None
    for node in ancestors(leaf):  # the outermost comment around the leaf (Rust nests them)
        if is_comment(node):
            comment = node
        elif comment is not None:
            break
    return comment


def _is_doc(comment: Node, src: Source, style: str) -> bool:
    text = _text(comment, src)
    if style in ("jsdoc", "javadoc"):
        return text.startswith("/**") and not text.startswith("/**/")
    if style == "rustdoc":
        return (text.startswith("///") and not text.startswith("////")) or (
            text.startswith("/**") and not text.startswith("/**/")
        )
    return text.startswith("//") and not _GO_DIRECTIVE.match(text)


def _comment_lines(text: str) -> list[str]:
    """A comment's lines without markers: ``/** * */``, ``///`` or ``//``."""
    text = text.rstrip("\r\n")
    if text.startswith("/*"):
        lines = _LINE_BREAK.split(text[3:-2] if text.startswith("/**") else text[2:-2])
        if all(line.lstrip().startswith("*") for line in lines[1:] if line.strip()):
            cleaned = []
            for line in lines:
                line = line.strip()
                line = line[1:] if line.startswith("*") else line
                cleaned.append(line[1:] if line.startswith(" ") else line)
        else:  # lines without a leading '*': keep their indentation relative to each other
            cleaned = [lines[0].strip(), *textwrap.dedent("\n".join(lines[1:])).split("\n")]
        while cleaned and not cleaned[0]:
            cleaned.pop(0)
        while cleaned and not cleaned[-1]:
            cleaned.pop()
        return [line.rstrip() for line in cleaned]
    body = text[3:] if text.startswith("///") else text[2:]
    return [(body[1:] if body.startswith(" ") else body).rstrip()]


def _text(node: Node, src: Source) -> str:
    return src.slice(node.start_byte, node.end_byte)


def format_docstring(summary: str, info: FunctionInfo) -> str:
    """The text to insert at (info.insert_line, info.insert_character) documenting ``info``.

    Python: a triple-quoted docstring (escaped so that its value is ``summary``) at the body's
    indentation; for a one-line function it is followed by the line break and indentation
    that move the body onto its own line. JSDoc / Javadoc: a ``/** ... */`` block; Rust:
    ``///`` lines; Go: ``//`` lines (``summary`` as given: ``in_convention`` puts it in the
    language's convention). Comments go above the definition at its indentation, or inline
    (``/** ... */ ``) when code precedes it on its line. Line breaks follow the definition's
    (``\\r\\n`` when it uses them).
    """
    lines = [line.rstrip() for line in _LINE_BREAK.split(summary.strip())]
    info_lines = _LINE_BREAK.split(info.text)
    index = info.insert_line - info.start_line
    insert_line_text = info_lines[index] if 0 <= index < len(info_lines) else ""
    newline = "\r\n" if "\r\n" in info.text else "\n"
    return _doc_text(lines, info, insert_line_text).replace("\n", newline)


def _doc_text(lines: list[str], info: FunctionInfo, insert_line_text: str) -> str:
    if info.style == "python":
        return _python_docstring_text(lines, info, insert_line_text)
    if info.insert_character > 0:
        return "/** " + " ".join(line for line in lines if line).replace("*/", "*\\/") + " */ "
    indent = leading_whitespace(insert_line_text)
    if info.style in ("jsdoc", "javadoc"):
        body = [indent + (" * " + line.replace("*/", "*\\/") if line else " *") for line in lines]
        return "\n".join([indent + "/**", *body, indent + " */"]) + "\n"
    marker = "///" if info.style == "rustdoc" else "//"
    return "".join(indent + (marker + " " + line if line else marker) + "\n" for line in lines)


def _python_docstring_text(lines: list[str], info: FunctionInfo, insert_line_text: str) -> str:
    escaped = [line.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') for line in lines]
    indent = info.body_indent
    if len(escaped) == 1:
        docstring = indent + '"""' + _escape_final_quote(escaped[0]) + '"""'
    else:
        rest = [indent + line if line else "" for line in escaped[1:]]
        docstring = "\n".join([indent + '"""' + escaped[0], *rest, indent + '"""'])
    if info.insert_character == 0:
        return docstring + "\n"
    # After the header's ':' on its line: nothing (end of file), or a one-line body.
    header_last_line = _LINE_BREAK.split(info.signature)[-1]
    found = insert_line_text.find(header_last_line)
    following = insert_line_text[found + len(header_last_line) :] if found >= 0 else ""
    if not following.strip():
        return "\n" + docstring
    gap = leading_whitespace(following)
    return "\n" + docstring + "\n" + (indent[: len(indent) - len(gap)] if absorbs_gap(indent, gap) else indent)


def absorbs_gap(body_indent: str, gap: str) -> bool:
    """Whether the whitespace between a one-line body and its ':' can be kept as the start of
    that body's indentation once the body moves to its own line."""
    return body_indent.endswith(gap) and not gap.strip(" ")


def _escape_final_quote(line: str) -> str:
    """Escape a closing '"' that would merge with the docstring's closing quotes."""
    backslashes = len(line[:-1]) - len(line[:-1].rstrip("\\"))
    return line[:-1] + '\\"' if line.endswith('"') and backslashes % 2 == 0 else line
