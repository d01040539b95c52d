"""Tree-sitter analysis: block vs line completions, scopes, imports, functions and docstrings."""

from __future__ import annotations

import ast
import re
from textwrap import dedent

import pytest

from inference.syntax import FunctionInfo, analyze_completion, format_docstring, function_at, functions_in, language_for
from inference.syntax.languages import parse

CURSOR = "<|>"


def at_cursor(source: str) -> tuple[str, int, int]:
    """Text without the cursor marker, and the marker's (line, character)."""
    before, marker, after = source.partition(CURSOR)
    assert marker, "fixture has no cursor"
    line = before.count("\n")
    return before + after, line, len(before) - (before.rfind("\n") + 1)


def complete(language: str, source: str):
    text, line, character = at_cursor(dedent(source))
    return analyze_completion(text, language, line, character)


def insert(text: str, info: FunctionInfo, insertion: str) -> str:
    lines = re.split(r"(?<=\n)", text)
    offset = sum(len(line) for line in lines[: info.insert_line]) + info.insert_character
    return text[:offset] + insertion + text[offset:]


def has_errors(text: str, language: str) -> bool:
    return parse(text.encode(), language).root_node.has_error


# --- language_for ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language_id", "path", "expected"),
    [
        ("python", None, "python"),
        ("javascriptreact", None, "javascript"),
        ("typescript", "/src/app.ts", "typescript"),
        ("typescript", "/src/App.tsx", "tsx"),
        ("typescriptreact", None, "tsx"),
        ("java", None, "java"),
        ("go", None, "go"),
        ("rust", None, "rust"),
        (None, "/src/lib.rs", "rust"),
        (None, "C:\\src\\main.GO", "go"),
        ("plaintext", "/notes.txt", None),
        (None, "/Makefile", None),
        (None, None, None),
    ],
)
def test_language_for(language_id, path, expected):
    assert language_for(language_id, path) == expected


# --- multiline decision -----------------------------------------------------------------------

MULTILINE_CASES = [
    # (language, source, multiline, indent)
    ("python", "def f(x):\n    <|>\n", True, "    "),
    ("python", "def f(x):\n<|>\n", True, "    "),  # editor that does not auto-indent
    ("python", "class A:\n  def f(self):\n    if self:\n      <|>\n  x = 1\n", True, "      "),
    ("python", "def f():\n    # the plan\n    <|>\n", True, "    "),
    ("python", "for x in y:  # loop\n    <|>", True, "    "),
    ("python", "def f(x):\n    <|>\n\nfoo(\n", True, "    "),  # syntax error below
    ("python", "def f(x):\n    <|>\n    return x\n", False, "    "),  # body already written
    ("python", "def f(x):\n    y = 1\n    <|>\n", False, "    "),
    ("python", "def f(x):\n    return x<|>\n", False, "    "),
    ("python", "def f(x):\n    <|>return x\n", False, "    "),
    ("python", "def f(x):<|>\n", False, ""),
    ("python", 'x = {\n    "a":\n    <|>', False, "    "),  # a dict's ':' opens no block
    ("python", "def f():\n    x = 1\n<|>\n    return x\n", False, "    "),
    ("javascript", "function f(x) {\n  <|>\n}\n", True, "  "),
    ("javascript", "function f(x) {\n  <|>", True, "  "),  # not closed yet
    ("javascript", "class A {\n  m() {\n    <|>\n}\n", True, "    "),
    ("javascript", "const o = {\n  <|>\n};\n", True, "  "),
    ("javascript", "function f() {\n  <|>\n  return 1;\n}\n", False, "  "),
    ("javascript", "function f() {<|>\n}\n", False, ""),
    ("javascript", "function f() {\n  g();\n  <|>\n}\n", False, "  "),
    ("typescript", "class K {\n  run(): void {\n    <|>\n  }\n}\n", True, "    "),
    ("typescript", "if (a) {\n  b();\n} else {\n  <|>\n}\n", True, "  "),
    ("typescript", "const f = (a: number) => a +<|>\n", False, ""),
    ("tsx", "function App() {\n  <|>\n}\n", True, "  "),
    ("tsx", "function App() {\n  return <div>{<|>}</div>;\n}\n", False, "  "),
    ("java", "class A {\n    int f() {\n        <|>\n    }\n}\n", True, "        "),
    (
        "java",
        "class A {\n    int f() {\n        if (x) {\n            y();\n        }<|>\n    }\n}\n",
        False,
        "        ",
    ),
    ("go", "package main\n\nfunc main() {\n\t<|>\n}\n", True, "\t"),
    ("go", "package main\n\nfunc main() {\n<|>", True, "\t"),
    ("go", "package main\n\nfunc main() {\n\t<|>\n\tfmt.Println()\n}\n", False, "\t"),
    ("rust", "fn main() {\n    <|>\n}\n", True, "    "),
    ("rust", "impl S {\n    <|>\n}\n", True, "    "),
    ("rust", "fn f(x: u8) {\n    match x {\n        <|>\n        1 => {}\n    }\n}\n", False, "        "),
]


@pytest.mark.parametrize(("language", "source", "multiline", "indent"), MULTILINE_CASES)
def test_multiline_decision(language, source, multiline, indent):
    syntax = complete(language, source)
    assert (syntax.multiline, syntax.indent) == (multiline, indent)


def test_indent_step_follows_the_file():
    source = "def f():\n  x = 1\n  if x:\n    y = 2\n\ndef g():\n<|>\n"
    assert complete("python", source).indent == "  "


# --- scope headers, imports, scope start ------------------------------------------------------


def test_python_scopes_and_imports():
    source = """\
        from __future__ import annotations
        import os
        try:
            import numpy as np
        except ImportError:
            np = None


        class Counter:
            @staticmethod
            def make(
                start: int,
            ) -> "Counter":
                def inner():
                    import json
                    <|>
        """
    syntax = complete("python", source)
    assert not syntax.multiline  # the body already has a statement
    assert syntax.scope_headers == [
        "class Counter:",
        '    def make(\n        start: int,\n    ) -> "Counter":',
        "        def inner():",
    ]
    assert syntax.imports == ["from __future__ import annotations", "import os", "import numpy as np"]
    assert syntax.scope_start_line == 13


def test_python_blank_line_after_a_body_belongs_to_the_indentation():
    source = "class A:\n    def f(self):\n        return 1\n\n    <|>\n"
    syntax = complete("python", source)
    assert syntax.scope_headers == ["class A:"]
    assert syntax.scope_start_line == 0
    assert complete("python", "def f():\n    return 1\n\nx = <|>\n").scope_headers == []
    nested = "def outer():\n    def inner():\n        return 1\n    ret<|>urn inner\n"
    assert complete("python", nested).scope_headers == ["def outer():"]


def test_javascript_scopes_and_imports():
    source = """\
        import fs from "fs";
        const path = require("path");
        const x = compute();

        export class Store {
          async load(name) {
            const handler = (event) => {
              <|>
            };
          }
        }
        """
    syntax = complete("javascript", source)
    assert syntax.scope_headers == ["export class Store {", "  async load(name) {", "    const handler = (event) => {"]
    assert syntax.imports == ['import fs from "fs";', 'const path = require("path");']
    assert syntax.scope_start_line == 6


def test_unclosed_blocks_still_give_scopes():
    source = "import fs from 'fs';\nclass A {\n  m(x) {\n    <|>"
    syntax = complete("javascript", source)
    assert syntax.multiline
    assert syntax.scope_headers == ["class A {", "  m(x) {"]
    assert syntax.imports == ["import fs from 'fs';"]
    python = "import os\ndef f(x):\n    y = call(x,\n             <|>"
    assert complete("python", python).scope_headers == ["def f(x):"]


def test_typescript_scopes():
    source = """\
        import { Injectable } from "@angular/core";

        @Injectable()
        export class Api {
          @Cached()
          get<T>(url: string,
                 retries = 3): Promise<T> {
            if (retries > 0) {
              <|>
            }
          }
        }
        """
    syntax = complete("typescript", source)
    assert syntax.scope_headers == ["export class Api {", "  get<T>(url: string,\n         retries = 3): Promise<T> {"]
    assert syntax.imports == ['import { Injectable } from "@angular/core";']
    assert syntax.scope_start_line == 4  # the decorator line


def test_tsx_scopes():
    source = """\
        import React from "react";
        export function App({ items }: Props) {
          const rows = items.map((item) => {
            <|>
          });
        }
        """
    syntax = complete("tsx", source)
    assert syntax.multiline
    assert syntax.scope_headers == ["export function App({ items }: Props) {", "  const rows = items.map((item) => {"]
    assert syntax.imports == ['import React from "react";']


def test_java_scopes():
    source = """\
        package demo;

        import java.util.List;
        import static java.lang.Math.max;

        public class Counter {
            private int n;

            @Override
            public String toString() {
                return "n=" + <|>
            }
        }
        """
    syntax = complete("java", source)
    assert not syntax.multiline
    assert syntax.scope_headers == ["public class Counter {", "    public String toString() {"]
    assert syntax.imports == ["import java.util.List;", "import static java.lang.Math.max;"]
    assert syntax.scope_start_line == 8


def test_go_scopes():
    source = """\
        package main

        import (
        \t"fmt"
        \t"strings"
        )

        type Counter struct {
        \tn int
        }

        func (c *Counter) Inc(by int) int {
        \tfor i := 0; i < by; i++ {
        \t\t<|>
        \t}
        }
        """
    syntax = complete("go", source)
    assert syntax.multiline and syntax.indent == "\t\t"
    assert syntax.scope_headers == ["func (c *Counter) Inc(by int) int {"]
    assert syntax.imports == ['import (\n\t"fmt"\n\t"strings"\n)']
    assert syntax.scope_start_line == 11


def test_rust_scopes():
    source = """\
        use std::collections::HashMap;
        use std::fmt;

        mod inner {
            pub struct S;

            impl S {
                #[inline]
                pub fn get(&self, key: &str) -> Option<u8> {
                    let f = |x: u8| {
                        <|>
                    };
                }
            }
        }
        """
    syntax = complete("rust", source)
    assert syntax.scope_headers == [
        "mod inner {",
        "    impl S {",
        "        pub fn get(&self, key: &str) -> Option<u8> {",
        "            let f = |x: u8| {",
    ]
    assert syntax.imports == ["use std::collections::HashMap;", "use std::fmt;"]
    assert syntax.scope_start_line == 9


def test_top_level_has_no_scope():
    syntax = complete("go", "package main\n\nvar x = <|>\n")
    assert (syntax.scope_headers, syntax.scope_start_line) == ([], None)


def test_positions_count_code_points():
    # A line of non-ASCII text before and on the cursor's line: byte offsets would differ.
    source = 's = "héllo 😀"\ndef f():\n    t = "ü😀"; <|>\n'
    syntax = complete("python", source)
    assert syntax.scope_headers == ["def f():"]
    text, line, character = at_cursor(source)
    for newline in ("\r\n", "\r"):  # LSP line breaks; tree-sitter rows count only "\n"
        crlf = analyze_completion(text.replace("\n", newline), "python", line, character)
        assert crlf.scope_headers == ["def f():"] and crlf.scope_start_line == 1
        info = function_at(text.replace("\n", newline), "python", line, character)
        assert (info.name, info.start_line, info.end_line, info.insert_line) == ("f", 1, 2, 2)


def test_broken_and_truncated_files_never_raise():
    fixtures = {
        "python": "import os\n@d\nasync def f(x: int) -> int:\n    '''doc'''\n    return [x for x in (1, 2)]\n"
        "class A:\n    def g(self): pass\n",
        "javascript": "import a from 'a';\nclass B { async m(x) { return `${x}`; } }\n"
        "const f = (y) => { if (y) { return 1; } };\nexport default (z) => z;\n",
        "typescript": "@dec\nclass C<T> { f(a: {x: number}): T[] { return []; } }\ninterface I { g(): void; }\n",
        "tsx": "export const App = () => { return <div className='x'>{items.map((i) => <b>{i}</b>)}</div>; };\n",
        "java": "import x.Y;\nclass A { @Override public A(int n) { this.n = n; } int f() { return 1; } }\n",
        "go": 'package p\nimport "fmt"\nfunc (c *C) F(n int) int { if n > 0 { return n }; return 0 }\n',
        "rust": "use a::b;\nimpl<T> S<T> { #[inline] pub fn f(&self) -> i32 { match 1 { _ => 2 } } }\n"
        "fn g() { let h = |x| x; }\n",
    }
    for language, text in fixtures.items():
        for cut in range(0, len(text) + 1, 3):
            truncated = text[:cut]
            line = truncated.count("\n")
            character = len(truncated) - (truncated.rfind("\n") + 1)
            broken = truncated + "\n" + text[cut:][::-1]
            analyze_completion(truncated, language, line, character)
            analyze_completion(broken, language, line, character)
            info = function_at(broken, language, line, character)
            if info is not None:
                format_docstring("Summary.", info)


# --- function_at ------------------------------------------------------------------------------

PYTHON_MODULE = '''\
import functools


def outer(a):
    """Outer's docstring.

    More about outer.
    """

    def inner(b):
        return a + b

    return inner(1)


@functools.cache
@staticmethod
async def fetch(url):
    return await get(url)


def square(x): return x * x


class Counter:
    def __init__(self):
        self.n = 0

    def increment(self):
        self.n += square(1)
        return self.helper() + helper()

    def helper(self):
        return 0


def helper():
    return 1
'''


def find(text: str, needle: str, offset: int = 0) -> tuple[int, int]:
    """(line, character) of the first occurrence of ``needle``, plus ``offset`` characters."""
    index = text.index(needle) + offset
    return text.count("\n", 0, index), index - (text.rfind("\n", 0, index) + 1)


def test_python_nested_functions():
    inner = function_at(PYTHON_MODULE, "python", *find(PYTHON_MODULE, "a + b"))
    assert (inner.name, inner.signature, inner.start_line, inner.end_line) == ("inner", "def inner(b):", 9, 10)
    assert inner.text == "    def inner(b):\n        return a + b"
    assert inner.body_indent == "        " and inner.docstring is None
    outer = function_at(PYTHON_MODULE, "python", *find(PYTHON_MODULE, "return inner(1)"))
    assert (outer.name, outer.start_line, outer.end_line) == ("outer", 3, 12)
    assert outer.docstring == "Outer's docstring.\n\nMore about outer."
    assert outer.docstring_range == (4, 4, 7, 7)
    on_name = function_at(PYTHON_MODULE, "python", *find(PYTHON_MODULE, "outer", 2))
    assert on_name.name == "outer"


def test_python_decorated_async_function():
    for needle in ("@functools", "fetch", "await"):
        info = function_at(PYTHON_MODULE, "python", *find(PYTHON_MODULE, needle, 1))
        assert info.name == "fetch"
        assert info.signature == "async def fetch(url):"
        assert (info.start_line, info.end_line) == (15, 18)
        assert info.text.startswith("@functools.cache\n@staticmethod\nasync def fetch(url):")
        assert (info.insert_line, info.insert_character) == (18, 0)


def test_python_one_line_function_and_methods():
    square = function_at(PYTHON_MODULE, "python", *find(PYTHON_MODULE, "x * x"))
    assert (square.name, square.signature, square.body_indent) == ("square", "def square(x):", "    ")
    assert (square.insert_line, square.insert_character) == (21, 14)
    method = function_at(PYTHON_MODULE, "python", *find(PYTHON_MODULE, "self.n = 0"))
    assert (method.name, method.signature, method.body_indent) == ("__init__", "def __init__(self):", "        ")
    assert method.text == "    def __init__(self):\n        self.n = 0"


def test_python_call_sites_resolve_to_definitions():
    call = find(PYTHON_MODULE, "square(1)", 2)
    assert function_at(PYTHON_MODULE, "python", *call).name == "square"
    method_call = function_at(PYTHON_MODULE, "python", *find(PYTHON_MODULE, "self.helper()", 6))
    assert (method_call.name, method_call.start_line) == ("helper", 32)
    plain_call = function_at(PYTHON_MODULE, "python", *find(PYTHON_MODULE, "+ helper()", 3))
    assert (plain_call.name, plain_call.start_line) == ("helper", 36)
    # An argument of a call is not the callee: the enclosing method is returned.
    argument = function_at(PYTHON_MODULE, "python", *find(PYTHON_MODULE, "square(1)", 7))
    assert argument.name == "increment"


def test_nothing_outside_functions():
    assert function_at(PYTHON_MODULE, "python", 0, 3) is None
    assert function_at("x = undefined_function(1)\n", "python", 0, 6) is None


def test_function_after_a_syntax_error():
    text = "def broken(x):\n    y = call(x,\n\ndef good(y):\n    return y\n"
    info = function_at(text, "python", 4, 8)
    assert (info.name, info.start_line, info.end_line) == ("good", 3, 4)
    assert info.text == "def good(y):\n    return y"
    assert function_at(text, "python", 1, 5).name == "broken"
    js = "function broken() {\n  if (x {\n}\n\nfunction good(a) {\n  return a;\n}\n"
    good = function_at(js, "javascript", 5, 4)
    assert (good.name, good.start_line, good.end_line) == ("good", 4, 6)


JS_MODULE = """\
import { get } from "./http";

/**
 * Fetches a user.
 * @param {string} id
 */
export async function fetchUser(id) {
  return get(`/users/${id}`);
}

const double = (x) => x * 2;

class Cache {
  constructor() {
    this.items = new Map();
  }

  async load(key) {
    return this.items.get(key) ?? double(await fetchUser(key));
  }
}

const handlers = { onClick(event) { return event; } };
"""


def test_javascript_functions():
    fetch = function_at(JS_MODULE, "javascript", *find(JS_MODULE, "get(`"))
    assert (fetch.name, fetch.signature) == ("fetchUser", "export async function fetchUser(id)")
    assert (fetch.start_line, fetch.end_line, fetch.insert_line, fetch.insert_character) == (6, 8, 6, 0)
    assert fetch.docstring == "Fetches a user.\n@param {string} id"
    assert fetch.docstring_range == (2, 0, 5, 3)
    assert fetch.style == "jsdoc"
    double = function_at(JS_MODULE, "javascript", *find(JS_MODULE, "x * 2"))
    assert (double.name, double.signature, double.text) == (
        "double",
        "const double = (x) =>",
        "const double = (x) => x * 2;",
    )
    load = function_at(JS_MODULE, "javascript", *find(JS_MODULE, "return this"))
    assert (load.name, load.signature, load.body_indent, load.start_line) == ("load", "async load(key)", "    ", 17)
    constructor = function_at(JS_MODULE, "javascript", *find(JS_MODULE, "this.items = "))
    assert constructor.name == "constructor"
    on_click = function_at(JS_MODULE, "javascript", *find(JS_MODULE, "return event"))
    assert (on_click.name, on_click.text, on_click.insert_character) == (
        "onClick",
        "onClick(event) { return event; }",
        19,
    )


def test_javascript_expression_bodies_and_default_exports():
    text = "export default function () {\n  return 1;\n}\nconst id = x => x;\n"
    default = function_at(text, "typescript", 1, 3)
    assert (default.name, default.signature, default.start_line) == ("", "export default function ()", 0)
    identity = function_at(text, "typescript", 3, 16)
    assert (identity.name, identity.signature, identity.text) == ("id", "const id = x =>", "const id = x => x;")
    assert complete("typescript", "const id = x => x<|>;\n").scope_headers == ["const id = x =>"]
    # A named function expression is called by the name it is assigned to.
    assigned = "const a = function b() {\n  return 1;\n};\nconst x = a();\n"
    assert function_at(assigned, "javascript", 1, 4).name == "a"
    assert function_at(assigned, "javascript", 3, 10).start_line == 0


def test_javascript_call_sites_resolve_to_definitions():
    assert function_at(JS_MODULE, "javascript", *find(JS_MODULE, "double(await")).name == "double"
    assert function_at(JS_MODULE, "javascript", *find(JS_MODULE, "fetchUser(key)", 3)).name == "fetchUser"
    # `this.items.get` is Map.get, not a function of this file.
    assert function_at(JS_MODULE, "javascript", *find(JS_MODULE, "get(key)")).name == "load"


JAVA_CLASS = """\
package demo;

public class Counter {
    private int n;

    /**
     * Creates a counter.
     *
     * @param start first value
     */
    public Counter(int start) {
        this.n = start;
    }

    @Override
    public String toString() {
        return "n=" + add(0);
    }

    int add(int by) { return n + by; }
}
"""


def test_java_constructors_and_methods():
    constructor = function_at(JAVA_CLASS, "java", *find(JAVA_CLASS, "this.n"))
    assert (constructor.name, constructor.signature) == ("Counter", "public Counter(int start)")
    assert constructor.docstring == "Creates a counter.\n\n@param start first value"
    assert constructor.docstring_range == (5, 4, 9, 7)
    assert constructor.style == "javadoc"
    method = function_at(JAVA_CLASS, "java", *find(JAVA_CLASS, "toString"))
    assert (method.signature, method.start_line, method.end_line) == ("public String toString()", 14, 17)
    assert method.text.startswith("    @Override\n") and method.docstring is None
    assert function_at(JAVA_CLASS, "java", *find(JAVA_CLASS, "add(0)")).name == "add"


GO_FILE = """\
package counter

// Counter counts.
type Counter struct {
\tn int
}

// Inc adds by to the counter.
// It returns the new value.
func (c *Counter) Inc(by int) int {
\tc.n += by
\treturn c.n
}

func New() *Counter { return &Counter{} }

func use() { New().Inc(1) }
"""


def test_go_methods_and_doc_comments():
    inc = function_at(GO_FILE, "go", *find(GO_FILE, "c.n += by"))
    assert (inc.name, inc.signature, inc.body_indent) == ("Inc", "func (c *Counter) Inc(by int) int", "\t")
    assert inc.docstring == "Inc adds by to the counter.\nIt returns the new value."
    assert inc.docstring_range == (7, 0, 8, 28)
    new = function_at(GO_FILE, "go", *find(GO_FILE, "return &"))
    assert (new.name, new.docstring, new.style) == ("New", None, "go")
    assert function_at(GO_FILE, "go", *find(GO_FILE, "Inc(1)")).name == "Inc"
    assert function_at(GO_FILE, "go", *find(GO_FILE, "New()")).name == "New"


RUST_FILE = """\
use std::fmt;

pub struct Stack {
    items: Vec<i32>,
}

impl Stack {
    /// Pushes a value.
    ///
    /// Returns the new length.
    #[inline]
    pub fn push(&mut self, value: i32) -> usize {
        self.items.push(value);
        self.len()
    }

    fn len(&self) -> usize { self.items.len() }
}

// A plain comment, not documentation.
fn main() {}
"""


def test_rust_impl_methods_and_doc_comments():
    push = function_at(RUST_FILE, "rust", *find(RUST_FILE, "self.items.push"))
    assert (push.name, push.signature) == ("push", "pub fn push(&mut self, value: i32) -> usize")
    assert (push.start_line, push.end_line, push.insert_line) == (10, 14, 10)
    assert push.text.startswith("    #[inline]\n    pub fn push")
    assert push.docstring == "Pushes a value.\n\nReturns the new length."
    assert push.docstring_range == (7, 4, 9, 31)
    assert function_at(RUST_FILE, "rust", *find(RUST_FILE, "len()", 1)).name == "len"
    assert function_at(RUST_FILE, "rust", *find(RUST_FILE, "main")).docstring is None


@pytest.mark.parametrize(
    "first",
    [
        '"""Plain."""', "'''Plain.'''", '"Plain."', 'u"Plain."', 'U"Plain."', 'r"Plain \\d."', 'R"""Plain."""',
        '"Implicitly " "joined."', '("Parenthesized "\n     "and joined.")', '("Parenthesized.")', '(  # why\n "a"  # b\n "c")',
        '"Escapes\\tand \\"quotes\\"."', '"""\n    Indented\n      more.\n    """', '""""""', '"Bad \\q escape."',
        'f"""log {audit(r)}"""', 'f"no placeholders"', 'F"x"', 'b"bytes"', 'rb"raw bytes"', 'Rb"x"', 'BR"x"',
        'fr"x{y}"', '"plain " f"then {f}"', '"a" + "b"', '"a", "b"', '("a", "b")', "audit(r)", "...",
    ],
)
@pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
def test_python_docstrings_are_what_ast_get_docstring_says(first):
    """Only string literals without an f or b prefix are docstrings, concatenated or in parentheses
    too: "Regenerate docstring" replaces `docstring_range`, so anything else must stay code."""
    text = f"def f(r):\n    {first}\n    return r\n"
    info = function_at(text, "python", 2, 4)
    expected = ast.get_docstring(ast.parse(text).body[0])
    assert info.docstring == expected
    if expected is None:
        assert info.docstring_range is None
    else:
        start_line, start_char, end_line, end_char = info.docstring_range
        lines = text.split("\n")
        assert (start_line, start_char) == (1, 4) and lines[end_line][:end_char].endswith(first.split("\n")[-1])


def test_python_docstring_being_typed_or_not_encodable_never_raises():
    assert function_at('def f():\n    """Not closed\n    return 1\n', "python", 0, 4).docstring is None
    assert function_at('def f():\n    "Lone \udcff surrogate."\n', "python", 0, 4).docstring == "Lone \udcff surrogate."


def test_block_doc_comments_without_stars_keep_their_relative_indentation():
    text = "/**\n   Adds.\n\n     add(1, 2)\n */\nfunction add(a, b) { return a + b; }\n"
    assert function_at(text, "javascript", 5, 10).docstring == "Adds.\n\n  add(1, 2)"
    starred = "/**\n * Adds.\n *\n *     add(1, 2)\n */\nfunction add(a, b) { return a + b; }\n"
    assert function_at(starred, "javascript", 5, 10).docstring == "Adds.\n\n    add(1, 2)"


def test_go_directives_are_not_doc_text_and_stay_out_of_its_range():
    below = "package p\n\n// Add adds.\n//\n//go:noinline\nfunc Add(a, b int) int { return a + b }\n"
    info = function_at(below, "go", 5, 6)
    assert (info.docstring, info.docstring_range) == ("Add adds.", (2, 0, 3, 2))
    above = "package p\n\n//go:generate stringer\n// Add adds.\nfunc Add(a, b int) int { return a + b }\n"
    assert function_at(above, "go", 4, 6).docstring_range == (3, 0, 3, 12)
    only = "package p\n\n//export Add\nfunc Add(a, b int) int { return a + b }\n"
    assert function_at(only, "go", 3, 6).docstring is None


# --- functions_in: test code left out -------------------------------------------------------

RUST_TESTS = """\
/// Adds.
pub fn add(a: i32, b: i32) -> i32 { a + b }

/// Checks add.
#[test]
fn adds() { assert_eq!(add(1, 2), 3); }

#[tokio::test]
async fn adds_later() {}

#[cfg(not(test))]
fn only_in_builds() {}

#[cfg(test)]
mod tests {
    fn helper() -> i32 { 1 }
    #[rstest]
    fn cases() {}
}

#[cfg(all(test, feature = "slow"))]
mod slow { fn long() {} }
"""
JAVA_TESTS = """\
class PoolTest {
    @Test
    void borrows() {}
    @org.junit.jupiter.api.ParameterizedTest
    @ValueSource(ints = {1, 2})
    void borrowsMany(int n) {}
    @BeforeEach
    void setUp() {}
    @Override
    public String toString() { return "pool"; }
    void helper() {}
}
"""
GO_TESTS = """\
package p

func TestAdd(t *testing.T) {}
func BenchmarkAdd(b *testing.B) {}
func FuzzAdd(f *testing.F) {}
func check(tb testing.TB, got int) {}
func Add(a, b int) int { return a + b }
func Testify(s string) string { return s }
"""
JS_TESTS = """\
function add(a, b) { return a + b; }
describe("add", () => {
  function twice(x) { return add(x, x); }
  it.each([1, 2])("adds %i", function addsOne(n) {});
});
test("plain", async () => {});
app.get("/", function handler(req, res) {});
"""


@pytest.mark.parametrize(("text", "language", "kept"), [
    (RUST_TESTS, "rust", ["add", "only_in_builds"]),
    ("#![cfg(test)]\nfn helper() {}\n", "rust", []),
    (JAVA_TESTS, "java", ["toString", "helper"]),
    (GO_TESTS, "go", ["Add", "Testify"]),
    (JS_TESTS, "javascript", ["add", "handler"]),
    (JS_TESTS, "typescript", ["add", "handler"]),
    ("import type QUnit from 'qunit'\nconst pub = (jwk: object) => jwk\nfunction run() {}\n", "typescript", []),
    ("const tap = require('tap');\nfunction check(t) {}\n", "javascript", []),
    ("import { expect } from '@jest/globals';\nexport function twice(x) { return 2 * x; }\n", "javascript", []),
    ("import taper from 'taper';\nimport 'mocha-like/setup';\nconst x = require(name);\nfunction kept() {}\n", "javascript", ["kept"]),
])
def test_functions_in_can_leave_test_code_out(text, language, kept):
    """Test functions and what only tests compile or call are left out by the tree, not by name:
    `Testify` is no test, a `#[cfg(not(test))]` function is built code; a JavaScript or TypeScript
    file that imports a test framework is test code (`taper` and `mocha-like` are not one)."""
    assert [f.name for f in functions_in(text, language, tests=False)] == kept
    assert set(kept) <= {f.name for f in functions_in(text, language)}


# --- format_docstring: golden insertions ------------------------------------------------------


def document(text: str, language: str, needle: str, summary: str) -> str:
    info = function_at(text, language, *find(text, needle))
    assert info is not None
    result = insert(text, info, format_docstring(summary, info))
    assert not has_errors(result, language)
    return result


def test_python_docstring_in_a_method():
    text = "class Counter:\n    def increment(self):\n        self.n += 1\n"
    result = document(text, "python", "self.n", "Add one to the counter.")
    assert result == (
        'class Counter:\n    def increment(self):\n        """Add one to the counter."""\n        self.n += 1\n'
    )


def test_python_docstring_after_decorators_and_multiline_signature():
    text = "@cache\nasync def fetch(\n    url,\n):  # network\n    return await get(url)\n"
    result = document(text, "python", "fetch", "Fetch a URL.\n\nCached.")
    assert result == (
        "@cache\n"
        "async def fetch(\n"
        "    url,\n"
        "):  # network\n"
        '    """Fetch a URL.\n'
        "\n"
        "    Cached.\n"
        '    """\n'
        "    return await get(url)\n"
    )


def test_python_docstring_in_a_one_line_function():
    result = document("def square(x): return x * x\n", "python", "x * x", "Square x.")
    assert result == 'def square(x):\n    """Square x."""\n    return x * x\n'
    tabbed = document("def square(x):\treturn x * x\n", "python", "x * x", "Square x.")
    assert tabbed == 'def square(x):\t\n    """Square x."""\n    return x * x\n'


def test_python_docstring_value_is_the_summary():
    summary = 'Join with "\\" and """quotes"""'
    result = document("def join(a):\n    return a\n", "python", "return", summary)
    assert ast.get_docstring(ast.parse(result).body[0], clean=False) == summary


def test_python_docstring_keeps_crlf():
    text = "def f(x):\r\n    return x\r\n"
    info = function_at(text, "python", 1, 5)
    assert insert(text, info, format_docstring("Identity.", info)) == (
        'def f(x):\r\n    """Identity."""\r\n    return x\r\n'
    )


def test_jsdoc_above_functions_methods_and_arrows():
    text = "export async function load(id) {\n  return id;\n}\n"
    assert document(text, "javascript", "return", "Loads an item.") == (
        "/**\n * Loads an item.\n */\nexport async function load(id) {\n  return id;\n}\n"
    )
    text = "class A {\n  run(a, b) {\n    return a + b;\n  }\n}\n"
    assert document(text, "javascript", "a + b", "Adds.\n\nTwo numbers.") == (
        "class A {\n  /**\n   * Adds.\n   *\n   * Two numbers.\n   */\n  run(a, b) {\n    return a + b;\n  }\n}\n"
    )
    text = "const double = (x) => x * 2;\n"
    assert document(text, "javascript", "x * 2", "Doubles */ x.") == (
        "/**\n * Doubles *\\/ x.\n */\nconst double = (x) => x * 2;\n"
    )
    text = "const o = { k(x) { return x; } };\n"
    assert document(text, "javascript", "return", "Identity.") == (
        "const o = { /** Identity. */ k(x) { return x; } };\n"
    )


def test_jsdoc_above_typescript_decorators_and_tsx_components():
    text = "class Api {\n  @Cached()\n  get(url: string): string {\n    return url;\n  }\n}\n"
    assert document(text, "typescript", "return", "Gets a URL.") == (
        "class Api {\n  /**\n   * Gets a URL.\n   */\n  @Cached()\n  get(url: string): string {\n"
        "    return url;\n  }\n}\n"
    )
    text = "export const App = () => {\n  return <div>hi</div>;\n};\n"
    assert document(text, "tsx", "<div>", "Renders the app.") == (
        "/**\n * Renders the app.\n */\nexport const App = () => {\n  return <div>hi</div>;\n};\n"
    )


def test_javadoc_above_annotations():
    result = document(JAVA_CLASS, "java", "toString", "Formats the counter.")
    expected = JAVA_CLASS.replace("    @Override\n", "    /**\n     * Formats the counter.\n     */\n    @Override\n")
    assert result == expected
    text = "class A {\n    A(int n) {\n        this.n = n;\n    }\n}\n"
    assert document(text, "java", "this", "Creates an A.") == (
        "class A {\n    /**\n     * Creates an A.\n     */\n    A(int n) {\n        this.n = n;\n    }\n}\n"
    )


def test_rustdoc_above_attributes():
    result = document(RUST_FILE, "rust", "self.items.len", "Number of items.")
    expected = RUST_FILE.replace("    fn len(", "    /// Number of items.\n    fn len(")
    assert result == expected
    text = "#[test]\nfn works() {\n    assert!(true);\n}\n"
    assert document(text, "rust", "assert", "Checks.\n\nAlways.") == (
        "/// Checks.\n///\n/// Always.\n#[test]\nfn works() {\n    assert!(true);\n}\n"
    )


def test_go_comments_are_written_as_given():
    """The summary arrives in Go's form (`in_convention`: "New returns ..."); the comment is its lines."""
    result = document(GO_FILE, "go", "return &", "New returns a new counter.")
    assert result == GO_FILE.replace("func New()", "// New returns a new counter.\nfunc New()")
