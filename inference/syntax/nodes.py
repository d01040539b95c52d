"""Grammar-independent walks over tree-sitter nodes (iterative: trees can be deep)."""

from __future__ import annotations

from collections.abc import Iterator

from tree_sitter import Node

_OPENERS = {"(": ")", "[": "]", "{": "}", "${": "}", "#{": "}"}
_CLOSERS = frozenset(_OPENERS.values())


def is_comment(node: Node) -> bool:
    return "comment" in node.type


def _is_code_leaf(node: Node) -> bool:
    return node.child_count == 0 and node.end_byte > node.start_byte


def last_code_leaf_before(node: Node, byte: int) -> Node | None:
    """The last token ending at or before ``byte`` that is neither a comment nor missing."""
    stack = [node]
    while stack:
        current = stack.pop()
        if is_comment(current) or current.is_missing:
            continue
        if current.child_count == 0:
            if current.end_byte <= byte and _is_code_leaf(current):
                return current
            continue
        stack.extend(child for child in current.children if child.start_byte < byte)
    return None


def first_code_leaf_after(node: Node, byte: int) -> Node | None:
    """The first token starting at or after ``byte`` that is neither a comment nor missing."""
    stack = [node]
    while stack:
        current = stack.pop()
        if is_comment(current) or current.is_missing:
            continue
        if current.child_count == 0:
            if current.start_byte >= byte and _is_code_leaf(current):
                return current
            continue
        stack.extend(child for child in reversed(current.children) if child.end_byte > byte)
    return None


def first_leaf_of_type(node: Node, node_type: str) -> Node | None:
    """The first token of ``node_type`` inside ``node``, in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.child_count == 0:
            if current.type == node_type and not current.is_missing:
                return current
            continue
        if not is_comment(current):
            stack.extend(reversed(current.children))
    return None


def ancestors(node: Node) -> Iterator[Node]:
    """``node`` and its parents up to the root."""
    current: Node | None = node
    while current is not None:
        yield current
        current = current.parent


def in_error(node: Node) -> bool:
    return any(ancestor.type == "ERROR" for ancestor in ancestors(node))


def unclosed_brackets(node: Node) -> str:
    """Closing brackets, innermost first, for the brackets left open in ``node``'s tokens."""
    open_stack: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if is_comment(current) or current.is_missing:
            continue
        if current.child_count:
            stack.extend(reversed(current.children))
        elif current.type in _OPENERS:
            open_stack.append(_OPENERS[current.type])
        elif current.type in _CLOSERS and open_stack and open_stack[-1] == current.type:
            open_stack.pop()
    return "".join(reversed(open_stack))
