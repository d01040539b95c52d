"""The function at a position, with what documenting it needs."""

from __future__ import annotations

import re
from functools import cache

from tree_sitter import Node, Query, QueryCursor

from .definitions import (
    FUNCTION_VALUES,
    attached_start,
    header_colon,
    header_end,
    header_start,
    header_text,
    name_node,
    outer_node,
)
from .doc_comments import absorbs_gap, existing_doc
from .function_info import FunctionInfo
from .languages import SPECS, LanguageSpec, grammar, parse, spec_for
from .nodes import ancestors, first_code_leaf_after, last_code_leaf_before
from .source import Source, indent_unit, leading_whitespace
from .testing import is_test_code

# Call nodes and the field holding the callee.
_CALLS = {"call": "function", "call_expression": "function", "method_invocation": "name"}
# Member accesses (obj.name, Type::name) and the field holding the member's name.
_MEMBERS = {
    "attribute": "attribute",
    "member_expression": "property",
    "selector_expression": "field",
    "field_expression": "field",
    "scoped_identifier": "name",
}
# Definitions whose methods a member call (self.f(), this.f(), Self::f()) looks at first.
_CONTAINERS = frozenset(
    {
        "class_definition",
        "class_declaration",
        "abstract_class_declaration",
        "class",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "impl_item",
        "trait_item",
    }
)
_MASKABLE = re.compile(rb"[^\r\n]")
_MAX_RETRIES = 4


def function_at(text: str, language: str, line: int, character: int) -> FunctionInfo | None:
    """The function at a position: the callee's definition when the position is on the name
    of a call to a function defined in this file, else the innermost function enclosing the
    position (its decorators and name included)."""
    spec = spec_for(language)
    src = Source(text)
    line = max(0, min(line, src.line_count - 1))
    position = src.byte_at(line, character)
    tree = parse(src.data, language)
    found, clean = _resolve(tree.root_node, src, spec, position)
    if not clean and tree.root_node.has_error:
        # The position sits in a region the parser could not make sense of: parse again with
        # the text above an enclosing line blanked out, leaving errors there behind.
        for start in _retry_lines(src, line):
            if start == 0:
                break  # nothing above to blank out
            masked = _MASKABLE.sub(b" ", src.data[: src.byte_at(start, 0)]) + src.data[src.byte_at(start, 0) :]
            retry, retry_clean = _resolve(parse(masked, language).root_node, src, spec, position)
            if retry is not None and retry_clean:
                found = retry
                break
    return _info(found, src, spec) if found is not None else None


def functions_in(text: str, language: str, *, tests: bool = True) -> list[FunctionInfo]:
    """Every function and method definition of a file, in source order (nested ones included);
    with ``tests=False``, not those of test code (``testing.is_test_code``)."""
    spec = spec_for(language)
    src = Source(text)
    captures = QueryCursor(_functions_query(language)).captures(parse(src.data, language).root_node).get("function", [])
    return [_info(node, src, spec) for node in sorted(captures, key=lambda n: n.start_byte)
            if tests or not is_test_code(node, spec.name)]


def _resolve(root: Node, src: Source, spec: LanguageSpec, position: int) -> tuple[Node | None, bool]:
    """(function node, whether no parse error lies between it and the position)."""
    leaves = [root.descendant_for_byte_range(position, position)]
    if position > 0:
        leaves.append(root.descendant_for_byte_range(position - 1, position - 1))
    # After the last token of a line (trailing blanks, end of line): that token.
    line_start = src.byte_at(src.line_of(position), 0)
    previous = last_code_leaf_before(root, position)
    if previous is not None and previous.start_byte >= line_start:
        leaves.append(previous)
    for leaf in leaves:
        callee = _callee(leaf)
        if callee is not None:
            target = _definition_named(root, spec, *callee, leaf)
            if target is not None:
                return target, True
    for leaf in leaves:
        for node in ancestors(leaf):
            function = _as_function(node, spec)
            if function is not None:
                return function, not any(a.type == "ERROR" for a in _between(leaf, node))
    return None, not any(a.type == "ERROR" for a in ancestors(leaves[0]))


def _between(leaf: Node, top: Node) -> list[Node]:
    result = []
    for node in ancestors(leaf):
        if node == top:
            break
        result.append(node)
    return result


def _as_function(node: Node, spec: LanguageSpec) -> Node | None:
    """``node`` when it is a documentable function, or the function a wrapper statement holds."""
    if node.type in spec.functions:
        # A function value is documentable when it has a name or is a default export.
        exported = node.parent is not None and node.parent.type == "export_statement"
        return node if node.type not in FUNCTION_VALUES or exported or name_node(node) is not None else None
    if node.type in ("decorated_definition", "export_statement"):
        inner = next(
            (child for field in ("definition", "declaration", "value") if (child := node.child_by_field_name(field))),
            None,
        )
        return _as_function(inner, spec) if inner is not None else None
    if node.type in ("lexical_declaration", "variable_declaration"):
        declarators = [c for c in node.named_children if c.type == "variable_declarator"]
        value = declarators[0].child_by_field_name("value") if len(declarators) == 1 else None
        return _as_function(value, spec) if value is not None else None
    return None


def _callee(leaf: Node) -> tuple[str, bool] | None:
    """(name, called as a member) when ``leaf`` is the name in a call's callee: f(), obj.f(),
    T::f(), Java's f() and obj.f()."""
    if leaf.type not in ("identifier", "property_identifier", "field_identifier"):
        return None
    callee = leaf
    parent = leaf.parent
    if parent is not None and parent.type in _MEMBERS and parent.child_by_field_name(_MEMBERS[parent.type]) == leaf:
        callee = parent
        parent = parent.parent
    if parent is None or parent.type not in _CALLS:
        return None
    if parent.type == "method_invocation":
        if parent.child_by_field_name("name") != leaf:
            return None
        return leaf.text.decode("utf-8", "surrogatepass"), parent.child_by_field_name("object") is not None
    if parent.child_by_field_name(_CALLS[parent.type]) != callee:
        return None
    return leaf.text.decode("utf-8", "surrogatepass"), callee != leaf


@cache
def _functions_query(language: str) -> Query:
    language_object = grammar(language)
    kinds = [k for k in sorted(SPECS[language].functions) if language_object.id_for_node_kind(k, True) is not None]
    return Query(language_object, "[" + " ".join(f"({k})" for k in kinds) + "] @function")


def _definition_named(root: Node, spec: LanguageSpec, name: str, member: bool, call: Node) -> Node | None:
    """The file's function named ``name``. A member call (and any Java call) prefers a method
    of the class around the call, then any method; a plain call prefers a function outside
    classes."""
    captures = QueryCursor(_functions_query(spec.name)).captures(root).get("function", [])
    candidates = []
    for node in sorted(captures, key=lambda n: n.start_byte):
        named = name_node(node)
        if named is not None and named.text.decode("utf-8", "surrogatepass") == name:
            candidates.append(node)
    if not candidates:
        return None
    call_containers = {n.id for n in ancestors(call) if _is_container(n)}

    def rank(node: Node) -> int:
        container = next((n for n in ancestors(node) if n != node and _is_container(n)), None)
        if not member and spec.name != "java":
            return 0 if container is None else 1
        if container is not None and container.id in call_containers:
            return 0
        return 1 if container is not None else 2

    return min(candidates, key=rank)


def _is_container(node: Node) -> bool:
    return node.type in _CONTAINERS


def _retry_lines(src: Source, line: int) -> list[int]:
    """Lines to re-parse from: the position's line, then each less indented line above it,
    each moved up over the decorator / attribute lines just above it."""
    starts: list[int] = []
    width: int | None = None
    for number in range(line, -1, -1):
        content = src.lines[number]
        if not content.strip():
            continue
        indent = len(leading_whitespace(content).expandtabs(8))
        if width is None or indent < width:
            width = indent
            start = number
            while start > 0 and src.lines[start - 1].lstrip().startswith(("@", "#[")):
                start -= 1
            starts.append(start)
            if len(starts) == _MAX_RETRIES or indent == 0:
                break
    return starts


def _info(node: Node, src: Source, spec: LanguageSpec) -> FunctionInfo:
    outer = outer_node(node)
    start = attached_start(outer, spec)
    start_line = src.line_of(start)
    end_byte = max(node.end_byte, outer.end_byte)
    end_line = src.line_of(max(start, end_byte - 1))
    name = name_node(node)
    signature = header_text(node, src, spec)
    if spec.braces:
        signature = signature.removesuffix("{").removesuffix(";").rstrip()
    definition_indent = src.indent_of_line(src.line_of(header_start(node, src)))
    body_indent = _body_indent(node, src, spec) or definition_indent + indent_unit(src, spec.default_indent)
    inline = bool(src.lines[start_line][: src.position(start)[1]].strip())
    if spec.doc_style == "python":
        insert_line, insert_character = _python_insert_position(node, src, spec, body_indent)
    elif inline:
        insert_line, insert_character = src.position(start)
    else:
        insert_line, insert_character = start_line, 0
    doc = existing_doc(node, start, src, spec)
    return FunctionInfo(
        name=name.text.decode("utf-8", "surrogatepass") if name is not None else "",
        signature=signature,
        text=src.slice(start if inline else src.byte_at(start_line, 0), end_byte),
        start_line=start_line,
        end_line=end_line,
        body_indent=body_indent,
        docstring=doc.text if doc is not None else None,
        docstring_range=doc.range if doc is not None else None,
        insert_line=insert_line,
        insert_character=insert_character,
        language=spec.name,
    )


def _body_indent(node: Node, src: Source, spec: LanguageSpec) -> str | None:
    """Indentation of the body's first statement, when it starts a line after the header."""
    end = header_end(node, spec)
    body = node.child_by_field_name("body")
    if body is None:
        return None
    first = first_code_leaf_after(body, end)
    if first is None or (spec.braces and first.type == "}" and first.parent == body):
        return None
    first_line = src.line_of(first.start_byte)
    if first_line == src.line_of(end) or src.lines[first_line][: src.position(first.start_byte)[1]].strip():
        return None
    return src.indent_of_line(first_line)


def _python_insert_position(node: Node, src: Source, spec: LanguageSpec, body_indent: str) -> tuple[int, int]:
    colon = header_colon(node)
    end = colon.end_byte if colon is not None else header_end(node, spec)
    line, character = src.position(end)
    body = node.child_by_field_name("body")
    first = first_code_leaf_after(body, end) if body is not None else None
    if first is not None and src.line_of(first.start_byte) == line:
        # One-line function: the docstring goes after the ':' and pushes the body down.
        gap = src.lines[line][character : src.position(first.start_byte)[1]]
        if not absorbs_gap(body_indent, gap):
            character = src.position(first.start_byte)[1]
        return line, character
    if line + 1 < src.line_count:
        return line + 1, 0
    return line, len(src.lines[line])
