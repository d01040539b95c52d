"""What tree-sitter tells a completion request: block or line, indentation, scope, imports."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tree_sitter import Node, Tree

from .definitions import attached_start, header_end, header_start, outer_node
from .languages import LanguageSpec, parse, spec_for
from .nodes import ancestors, first_code_leaf_after, in_error, last_code_leaf_before, unclosed_brackets
from .source import Source, indent_unit, indent_width, leading_whitespace

# Python headers that open a block, for files where the parse around the header failed.
_PYTHON_COMPOUND = re.compile(
    r"\s*(?:async\s+)?(?:def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b"
)
# Nodes that can hold import statements (outside them only top-level imports count).
_IMPORT_CONTAINERS = frozenset(
    {
        "module",
        "program",
        "source_file",
        "ERROR",
        "block",
        "if_statement",
        "elif_clause",
        "else_clause",
        "try_statement",
        "except_clause",
        "finally_clause",
    }
)


@dataclass(frozen=True)
class CompletionSyntax:
    """Syntax facts about a completion position.

    multiline: True when the cursor sits alone on the first line of a block that was just
        opened and is still empty (write the whole body); False for a single-line completion.
    indent: the whitespace the cursor's line should start with. For a line with code, its own
        leading whitespace; for a new block's first line, the body's indentation (the
        whitespace already typed if it is deeper than the header, else header + one step);
        for an empty line elsewhere, the previous code line's indentation.
    scope_headers: headers of the enclosing definitions (classes, functions, methods, impls,
        closures ...), outermost first: from the start of the line naming the definition
        (indentation included, decorators and annotation lines left out) up to the ':' or '{'
        that opens the body; a header that spans lines keeps its line breaks.
    imports: the file's import statements as written, in order (top level, plus Python
        imports inside module-level if/try blocks; ``require`` declarations in JS/TS).
    scope_start_line: first line of the innermost enclosing definition, decorators and
        attributes included; None at top level.
    """

    multiline: bool
    indent: str
    scope_headers: list[str]
    imports: list[str]
    scope_start_line: int | None


def analyze_completion(text: str, language: str, line: int, character: int) -> CompletionSyntax:
    """Analyze ``text`` (grammar ``language``) for a completion at (line, character)."""
    spec = spec_for(language)
    src = Source(text)
    line = max(0, min(line, src.line_count - 1))
    character = max(0, min(character, len(src.lines[line])))
    tree = parse(src.data, language)
    line_text = src.lines[line]
    before, after = line_text[:character], line_text[character:]
    header_line = None
    if not before.strip() and not after.strip():
        header_line = _fresh_block_header(tree.root_node, src, spec, line)
    indent = _indent(tree.root_node, src, spec, line, before, header_line)
    scopes = _enclosing_scopes(tree, src, spec, line, character, indent)
    return CompletionSyntax(
        multiline=header_line is not None,
        indent=indent,
        scope_headers=[_scope_header(node, src, spec) for node in scopes],
        imports=_imports(tree.root_node, src, spec),
        scope_start_line=src.line_of(attached_start(outer_node(scopes[-1]), spec)) if scopes else None,
    )


def _scope_header(node: Node, src: Source, spec: LanguageSpec) -> str:
    """A definition's header lines as written, from the start of the line naming it."""
    return src.slice(src.byte_at(src.line_of(header_start(node, src)), 0), header_end(node, spec)).rstrip()


def _fresh_block_header(root: Node, src: Source, spec: LanguageSpec, line: int) -> int | None:
    """When the last code line before ``line`` ends with a ':' / '{' opening a block that is
    still empty, the first line of that block's header; else None."""
    leaf = last_code_leaf_before(root, src.byte_at(line, 0))
    if leaf is None or leaf.type != (":" if not spec.braces else "{"):
        return None
    opener_line = src.line_of(leaf.start_byte)
    parent = leaf.parent
    if spec.braces:
        closing = next((c for c in parent.children if c.type == "}" and c.start_byte > leaf.start_byte), None)
        if parent.type != "ERROR" and closing is not None and not closing.is_missing:
            after = first_code_leaf_after(root, leaf.end_byte)
            return _header_line(parent.parent, parent, opener_line, src) if after == closing else None
    else:
        body = leaf.next_named_sibling
        while body is not None and body.type == "comment":
            body = body.next_named_sibling
        if parent.type != "ERROR" and body is not None and body.type == "block":
            if first_code_leaf_after(body, body.start_byte) is not None:
                return None
            return _header_line(parent, body, opener_line, src)
        if not _PYTHON_COMPOUND.match(src.lines[opener_line]):
            return None
    # The parse around the opener failed: the block is empty when the next code is not
    # indented deeper than the opener's line (or there is none).
    following = first_code_leaf_after(root, src.byte_at(line + 1, 0)) if line + 1 < src.line_count else None
    if following is not None:
        following_indent = indent_width(src.indent_of_line(src.line_of(following.start_byte)))
        if following_indent > indent_width(src.indent_of_line(opener_line)):
            return None
    return opener_line


def _header_line(statement: Node | None, block: Node, opener_line: int, src: Source) -> int:
    """First line of the statement a block belongs to, when the block ends that statement."""
    if statement is None or statement.type == "ERROR" or statement.end_byte != block.end_byte:
        return opener_line
    return min(opener_line, src.line_of(statement.start_byte))


def _indent(root: Node, src: Source, spec: LanguageSpec, line: int, before: str, header_line: int | None) -> str:
    if header_line is not None:
        header_indent = src.indent_of_line(header_line)
        if indent_width(before) > indent_width(header_indent):
            return before
        return header_indent + indent_unit(src, spec.default_indent)
    own = leading_whitespace(src.lines[line])
    if own or src.lines[line].strip():
        return own
    previous = last_code_leaf_before(root, src.byte_at(line, 0))
    if previous is None:
        return ""
    indent = src.indent_of_line(src.line_of(previous.start_byte))
    following = first_code_leaf_after(root, src.byte_at(line + 1, 0)) if line + 1 < src.line_count else None
    if following is not None:
        # Top of a block that already has a body: line up with that body.
        next_indent = src.indent_of_line(src.line_of(following.start_byte))
        if previous.type in (":", "{") and indent_width(next_indent) > indent_width(indent):
            return next_indent
    return indent


def _enclosing_scopes(
    tree: Tree, src: Source, spec: LanguageSpec, line: int, character: int, indent: str
) -> list[Node]:
    """Definitions enclosing the cursor, outermost first."""
    cursor = src.byte_at(line, character)
    blank_before = not src.lines[line][:character].strip()
    anchor = _anchor(tree.root_node, src, spec, cursor, src.byte_at(line, 0), blank_before)
    previous = last_code_leaf_before(tree.root_node, cursor)
    if (anchor is not None and in_error(anchor)) or (previous is not None and in_error(previous)):
        # Typically a block still open at the cursor: scopes come from the text before it.
        repaired = _repaired_prefix(src, spec, line)
        anchor = _anchor(repaired.root_node, src, spec, cursor, src.byte_at(line, 0), blank_before)
    if anchor is None:
        return []
    scopes = [node for node in ancestors(anchor) if node.type in spec.scopes]
    if not spec.braces and blank_before:
        # Python blocks end at their last statement: a definition encloses a blank line
        # when the line is indented deeper than the definition.
        width = indent_width(indent)
        scopes = [n for n in scopes if indent_width(src.indent_of_line(src.line_of(n.start_byte))) < width]
    return scopes[::-1]


def _anchor(
    root: Node, src: Source, spec: LanguageSpec, cursor: int, line_start: int, blank_before: bool
) -> Node | None:
    """The node whose ancestors are the cursor's scopes."""
    if spec.braces:
        if cursor > line_start:
            # Right after a token the user may be extending (`x => x|`): anchor on that token.
            token = root.descendant_for_byte_range(cursor - 1, cursor)
            if token.child_count == 0 and token.end_byte == cursor and token.type not in ("}", ")", "]", ";"):
                return token
        return root.descendant_for_byte_range(cursor, cursor)
    if blank_before:
        # Python blocks end at their last token, not at the blank lines after it.
        return last_code_leaf_before(root, line_start)
    # The last non-blank character before the cursor.
    code_end = line_start + len(src.data[line_start:cursor].rstrip())
    return root.descendant_for_byte_range(code_end - 1, code_end)


def _repaired_prefix(src: Source, spec: LanguageSpec, line: int) -> Tree:
    """Parse of the text up to the end of ``line`` with its open brackets closed after it."""
    end = src.byte_at(line, len(src.lines[line]))
    prefix = src.data[:end]
    tree = parse(prefix, spec.name)
    closers = unclosed_brackets(tree.root_node)
    return parse(prefix + b"\n" + closers.encode(), spec.name) if closers else tree


def _imports(root: Node, src: Source, spec: LanguageSpec) -> list[str]:
    found: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type in spec.imports or (node.parent == root and _is_require(node)):
            found.append(node)
        elif node.type in _IMPORT_CONTAINERS:
            stack.extend(reversed(node.children))
    return [src.slice(node.start_byte, node.end_byte) for node in found]


def _is_require(node: Node) -> bool:
    """A JS/TS declaration whose values are ``require(...)`` calls."""
    if node.type not in ("lexical_declaration", "variable_declaration"):
        return False
    declarators = [c for c in node.named_children if c.type == "variable_declarator"]
    for declarator in declarators:
        value = declarator.child_by_field_name("value")
        callee = (
            value.child_by_field_name("function") if value is not None and value.type == "call_expression" else None
        )
        if callee is None or callee.type != "identifier" or callee.text != b"require":
            return False
    return bool(declarators)
