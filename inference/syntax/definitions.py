"""Where a definition's name, header and attached decorators are, across grammars."""

from __future__ import annotations

from tree_sitter import Node

from .languages import LanguageSpec
from .nodes import first_leaf_of_type
from .source import Source

# Function values (JS/TS) that get their name from what they are assigned to.
FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function"})
_NAMING_PARENTS = {
    "variable_declarator": "name",
    "pair": "key",
    "public_field_definition": "name",
    "field_definition": "property",
    "assignment_expression": "left",
}
# Nodes that carry a function value and are what a doc comment is written above.
_VALUE_CARRIERS = frozenset({"pair", "public_field_definition", "field_definition"})
_DECLARATIONS = frozenset({"lexical_declaration", "variable_declaration"})


def name_node(node: Node) -> Node | None:
    """The identifier naming a definition; for a JS function value, the name it is assigned
    to (``const a = function b() {}`` is called as ``a``), else its own name."""
    name = node.child_by_field_name("name")
    parent = node.parent
    if node.type not in FUNCTION_VALUES or parent is None:
        return name
    field = _NAMING_PARENTS.get(parent.type)
    if field is None or parent.child_by_field_name("value" if field != "left" else "right") != node:
        return name
    target = parent.child_by_field_name(field)
    if target is not None and target.type == "member_expression":
        target = target.child_by_field_name("property")
    return target or name


def outer_node(node: Node) -> Node:
    """The statement that holds a definition: decorated definition, declaration, export, pair."""
    outer = node
    parent = node.parent
    if parent is not None and parent.type == "decorated_definition":
        outer = parent
    elif node.type in FUNCTION_VALUES and parent is not None:
        if parent.type == "variable_declarator" and parent.parent is not None and parent.parent.type in _DECLARATIONS:
            outer = parent.parent
        elif parent.type in _VALUE_CARRIERS:
            outer = parent
        elif parent.type == "assignment_expression" and parent.parent is not None:
            outer = parent.parent if parent.parent.type == "expression_statement" else parent
    if outer.parent is not None and outer.parent.type == "export_statement":
        outer = outer.parent
    return outer


def attached_start(outer: Node, spec: LanguageSpec) -> int:
    """Start byte of ``outer`` including the decorators / attributes written just before it."""
    start = outer.start_byte
    sibling = outer.prev_named_sibling
    while sibling is not None and sibling.type in spec.attachments:
        start = sibling.start_byte
        sibling = sibling.prev_named_sibling
    return start


def header_colon(node: Node) -> Node | None:
    """Python: the ':' that ends a definition's header."""
    colon = None
    for child in node.children:
        if child.type == ":":
            colon = child
        elif child.type == "block":
            break
    return colon


def header_end(node: Node, spec: LanguageSpec) -> int:
    """Byte just after a definition's header: after Python's ':' or the body's opening '{'.

    For a body that is an expression (arrow functions) it is where the body starts; for a
    definition without body (signatures, Go types without braces) it is the definition's end.
    """
    if not spec.braces:
        colon = header_colon(node)
        return colon.end_byte if colon is not None else node.end_byte
    body = node.child_by_field_name("body")
    if body is not None:
        first = body.children[0] if body.child_count else None  # Node.child(i) raises when out of range
        return first.end_byte if first is not None and first.type == "{" else body.start_byte
    if node.type == "type_declaration":  # Go: `type T struct {`, the braces belong to the type
        brace = first_leaf_of_type(node, "{")
        if brace is not None:
            return brace.end_byte
    return node.end_byte


def header_start(node: Node, src: Source) -> int:
    """Byte where a definition's header text starts: the start of the line naming it.

    Annotations and decorators on earlier lines are left out; text that belongs to the
    definition's statement (``export const f =``) is kept.
    """
    name = name_node(node)
    anchor = name if name is not None else node
    line_start = src.byte_at(src.line_of(anchor.start_byte), 0)
    outer = outer_node(node)
    return max(line_start, min(outer.start_byte, node.start_byte))


def header_text(node: Node, src: Source, spec: LanguageSpec) -> str:
    """The header as written, from ``header_start`` to ``header_end``, stripped."""
    return src.slice(header_start(node, src), header_end(node, spec)).strip()
