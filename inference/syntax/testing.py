"""Test code inside source files: functions that only a test runner calls.

Rust: functions with a test attribute (`#[test]`, `#[tokio::test]`, `#[bench]`, `#[rstest]`, ...) and
everything in a module compiled for tests only (`#[cfg(test)] mod tests`, `#![cfg(test)]`). Java:
methods with a JUnit or TestNG annotation (`@Test`, `@ParameterizedTest`, `@BeforeEach`, ...). Go:
functions taking the `testing` package's T, B, F, M or TB (`func TestX(t *testing.T)`, test
helpers). JavaScript and TypeScript: functions inside a `describe`, `it` or `test` call's arguments,
and every function of a file that imports or requires a test framework (`qunit`, `tap`, `mocha`, ...).
"""

from __future__ import annotations

from tree_sitter import Node

from .nodes import ancestors

_RUST_TEST_ATTRIBUTES = frozenset({"test", "bench", "rstest", "test_case", "quickcheck", "wasm_bindgen_test"})
_JAVA_TEST_ANNOTATIONS = frozenset({
    "Test", "ParameterizedTest", "RepeatedTest", "TestFactory", "TestTemplate", "Before", "After", "BeforeClass",
    "AfterClass", "BeforeEach", "AfterEach", "BeforeAll", "AfterAll", "BeforeMethod", "AfterMethod", "BeforeTest",
    "AfterTest", "BeforeSuite", "AfterSuite", "DataProvider",
})
_GO_TESTING_TYPES = frozenset({"T", "B", "F", "M", "TB"})
_JS_TEST_FRAMEWORKS = frozenset({
    "qunit", "tap", "tape", "mocha", "chai", "jest", "@jest/globals", "vitest", "ava", "node:test", "uvu", "jasmine",
    "sinon", "supertest", "@playwright/test", "cypress", "should", "expect.js", "power-assert", "zora", "baretest",
})
_JS_TEST_CALLS = frozenset({"describe", "it", "test", "suite", "beforeEach", "afterEach", "beforeAll", "afterAll",
                            "xdescribe", "xit", "fdescribe", "fit"})


def is_test_code(function: Node, language: str) -> bool:
    """Whether the function node `function` is a test or lies in code that only tests use."""
    if language == "rust":
        return _has_test_attribute(function) or any(
            _is_test_module(node) for node in ancestors(function) if node.type in ("mod_item", "source_file"))
    if language == "java":
        modifiers = next((c for c in function.named_children if c.type == "modifiers"), None)
        return modifiers is not None and any(
            c.type in ("marker_annotation", "annotation") and _last_name(c.child_by_field_name("name")) in _JAVA_TEST_ANNOTATIONS
            for c in modifiers.named_children)
    if language == "go":
        parameters = function.child_by_field_name("parameters")
        return parameters is not None and any(_is_testing_type(p.child_by_field_name("type")) for p in parameters.named_children)
    if language in ("javascript", "typescript", "tsx"):
        lineage = list(ancestors(function))
        return _imports_test_framework(lineage[-1]) or any(
            node.type == "arguments" and _js_callee_name(node.parent) in _JS_TEST_CALLS for node in lineage)
    return False


def _imports_test_framework(program: Node) -> bool:
    """JavaScript/TypeScript: whether a top-level `import ... from "m"`, `import "m"` or `require("m")`
    names a test framework (its package: `@scope/name` or `name`, before any further path)."""
    for statement in program.named_children:
        if statement.type == "import_statement":
            source = statement.child_by_field_name("source")
            modules = [source] if source is not None else []
        else:
            modules = [node for node in _descendants(statement, "call_expression", depth=4) if _is_require(node)]
            modules = [m.child_by_field_name("arguments").named_children[0] for m in modules]
        for module in modules:
            name = _text(module).strip("'\"`")
            parts = name.split("/")
            package = "/".join(parts[:2]) if name.startswith("@") else parts[0]
            if package in _JS_TEST_FRAMEWORKS or package.startswith("@testing-library/"):
                return True
    return False


def _descendants(node: Node, kind: str, depth: int) -> list[Node]:
    """Nodes of type `kind` at most `depth` levels below `node` (a declaration's initializer, not a body)."""
    found, level = [], [node]
    for _ in range(depth + 1):
        found.extend(n for n in level if n.type == kind)
        level = [c for n in level for c in n.named_children]
    return found


def _is_require(call: Node) -> bool:
    """`require("m")` with one string argument."""
    callee, arguments = call.child_by_field_name("function"), call.child_by_field_name("arguments")
    return (callee is not None and callee.type == "identifier" and _text(callee) == "require" and arguments is not None
            and len(arguments.named_children) == 1 and arguments.named_children[0].type == "string")


def _has_test_attribute(item: Node) -> bool:
    """Whether an attribute written just before `item` is a test one (by its path's last segment)."""
    sibling = item.prev_named_sibling
    while sibling is not None and sibling.type in ("attribute_item", "line_comment", "block_comment"):
        attribute = sibling.named_children[0] if sibling.type == "attribute_item" and sibling.named_children else None
        if attribute is not None and _last_name(attribute.named_children[0] if attribute.named_children else None) in _RUST_TEST_ATTRIBUTES:
            return True
        sibling = sibling.prev_named_sibling
    return False


def _is_test_module(module: Node) -> bool:
    """A `mod` with `#[cfg(test)]` before it, or a module (or file) with `#![cfg(test)]` in it."""
    attributes: list[Node] = []
    sibling = module.prev_named_sibling if module.type == "mod_item" else None
    while sibling is not None and sibling.type == "attribute_item":
        attributes.append(sibling)
        sibling = sibling.prev_named_sibling
    body = module.child_by_field_name("body") if module.type == "mod_item" else module
    if body is not None:
        attributes.extend(c for c in body.named_children if c.type == "inner_attribute_item")
    return any(_is_cfg_test(item) for item in attributes)


def _is_cfg_test(item: Node) -> bool:
    """`cfg(test)` or `cfg(all(test, ...))`, not `cfg(not(test))`."""
    attribute = item.named_children[0] if item.named_children else None
    if attribute is None or attribute.type != "attribute" or _last_name(attribute.named_children[0] if attribute.named_children else None) != "cfg":
        return False
    arguments = attribute.child_by_field_name("arguments")
    words = _identifiers(arguments) if arguments is not None else []
    return "test" in words and "not" not in words


def _identifiers(node: Node) -> list[str]:
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        if current.type == "identifier":
            found.append(_text(current))
        stack.extend(current.named_children)
    return found


def _is_testing_type(node: Node | None) -> bool:
    """Go: `*testing.T`, `testing.TB` and the like."""
    if node is not None and node.type == "pointer_type":
        node = node.named_children[0] if node.named_children else None
    if node is None or node.type != "qualified_type":
        return False
    package, name = node.child_by_field_name("package"), node.child_by_field_name("name")
    return package is not None and name is not None and _text(package) == "testing" and _text(name) in _GO_TESTING_TYPES


def _js_callee_name(call: Node | None) -> str | None:
    """The name a call is made by: `describe(...)`, `describe.only(...)`, `it.each(table)(...)` -> describe, it."""
    if call is None or call.type != "call_expression":
        return None
    callee = call.child_by_field_name("function")
    while callee is not None and callee.type in ("member_expression", "call_expression"):
        callee = callee.child_by_field_name("object" if callee.type == "member_expression" else "function")
    return _text(callee) if callee is not None and callee.type == "identifier" else None


def _last_name(node: Node | None) -> str | None:
    """The last segment of a (scoped) name: `tokio::test` -> test, `org.junit.Test` -> Test."""
    while node is not None and node.type in ("scoped_identifier", "scoped_type_identifier"):
        node = node.child_by_field_name("name")
    return _text(node) if node is not None else None


def _text(node: Node) -> str:
    return node.text.decode("utf-8", "surrogatepass") if node.text is not None else ""
