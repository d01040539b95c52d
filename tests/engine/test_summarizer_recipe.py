"""The embedded summarizer's recipe: data extraction, cleaning, dedup, split, licences, tokenizer, shipped model."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from quantize.summarizer.data import deduplicate, split_by_module, stdlib_source
from quantize.summarizer.extract import Pair, first_sentence, is_usable_summary, pairs_from_source, strip_docstring
from quantize.summarizer.licences import classify, spdx_is_permissive

MODULE = textwrap.dedent('''\
    import os


    class Store:
        @property
        def size(self):
            """Return the number of stored items.

            >>> Store().size
            0
            """
            # counted lazily
            return len(self._items)

        async def fetch(self, key,
                        default=None):
            """Fetch the value stored under key, e.g. a path.  Falls back to default."""
            text = """
    not a docstring
    """
            return self._items.get(key, default) or text


    def only_docstring():
        """Nothing else is here to summarize."""


    def one_line(): "Docstring on the def line."; return 1
    ''')


def _function(source: str, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    return next(n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name)


def test_strip_docstring_keeps_the_rest_byte_identical_and_valid() -> None:
    lines = MODULE.splitlines(keepends=True)
    code = strip_docstring(lines, _function(MODULE, "size"))
    assert code == "def size(self):\n    # counted lazily\n    return len(self._items)\n"
    stripped = _function(code, "size")
    original = _function(MODULE, "size")
    original.body = original.body[1:]
    original.decorator_list = []
    assert ast.dump(stripped) == ast.dump(original)


def test_strip_docstring_leaves_other_strings_and_multiline_signatures() -> None:
    code = strip_docstring(MODULE.splitlines(keepends=True), _function(MODULE, "fetch"))
    assert code is None  # a string line outside the method's indentation cannot be dedented safely
    method = textwrap.dedent('''\
        def fetch(self, key,
                  default=None):
            """Fetch it."""
            text = """
            kept
            """
            return text
        ''')
    code = strip_docstring(method.splitlines(keepends=True), _function(method, "fetch"))
    assert code == method.replace('    """Fetch it."""\n', "")


def test_strip_docstring_refuses_docstring_only_and_one_line_functions() -> None:
    lines = MODULE.splitlines(keepends=True)
    assert strip_docstring(lines, _function(MODULE, "only_docstring")) is None
    assert strip_docstring(lines, _function(MODULE, "one_line")) is None


def test_pairs_from_source() -> None:
    pairs = list(pairs_from_source(MODULE, "pkg:store"))
    assert [(p.name, p.summary, p.module) for p in pairs] == [("size", "Return the number of stored items.", "pkg:store")]
    assert ">>>" not in pairs[0].code and '"""' not in pairs[0].code
    assert list(pairs_from_source("def broken(:\n", "pkg:broken")) == []


@pytest.mark.parametrize(
    ("docstring", "expected"),
    [
        ("Return the sum. Raises on overflow.", "Return the sum."),
        ("Fetch the value, e.g. a path.  Falls back.", "Fetch the value, e.g. a path."),
        ("Open the\n    file for reading\n\n    More detail.", "Open the file for reading"),
        ("Compute it\n>>> compute()\n1", "Compute it"),
        ("Parse args\nArgs:\n    x: the input", "Parse args"),
        ("Call :func:`os.path.join` on ``parts``.", "Call os.path.join on parts."),
        ("Version 2.0 is parsed here. Then more.", "Version 2.0 is parsed here."),
        ("", ""),
    ],
)
def test_first_sentence(docstring: str, expected: str) -> None:
    assert first_sentence(docstring) == expected


@pytest.mark.parametrize(
    ("summary", "usable"),
    [
        ("Return the number of stored items.", True),
        ("Helper.", False),  # too short
        ("Gibt die Anzahl der gespeicherten Elemente zurück.", False),  # not ASCII
        ("Auto-generated method for the protocol.", False),
        ("sorted(iterable) -> list of the items.", False),
        ("See https://example.com/docs for the details.", False),
        ("x = 1 + 2 * y / z", False),  # not prose
        (" ".join(["word"] * 41), False),
    ],
)
def test_is_usable_summary(summary: str, usable: bool) -> None:
    assert is_usable_summary(summary) is usable


def test_deduplicate_by_normalized_code_and_by_name_and_summary() -> None:
    pairs = [
        Pair("def f(a):\n    return a  # one\n", "Return a value.", "f", "m1"),
        Pair("def f(a):\n    # other comment\n    return   a\n", "Give it back.", "f", "m2"),
        Pair("def g(b):\n    return b + 1\n", "Return a value.", "g", "m3"),
        Pair("def g(c):\n    return c * 2\n", "return a  VALUE.", "g", "m4"),
    ]
    assert [p.module for p in deduplicate(pairs)] == ["m1", "m3"]


def test_split_by_module_is_disjoint_complete_and_seeded() -> None:
    pairs = [Pair(f"def f{i}(): pass\n", "Do a thing now.", f"f{i}", f"pkg:mod{i % 97}") for i in range(1000)]
    splits = split_by_module(pairs, seed=7)
    modules = {name: {p.module for p in split} for name, split in splits.items()}
    assert not modules["train"] & modules["test"] and not modules["train"] & modules["valid"] and not modules["valid"] & modules["test"]
    assert sum(len(s) for s in splits.values()) == len(pairs)
    assert len(modules["test"]) == len(modules["valid"]) == 5
    assert split_by_module(pairs, seed=7) == splits
    assert split_by_module(pairs, seed=8)["test"] != splits["test"]


@pytest.mark.parametrize(
    ("expression", "permissive"),
    [
        ("MIT", True),
        ("BSD-3-Clause", True),
        ("Apache-2.0 OR BSD-2-Clause", True),
        ("Apache-2.0 WITH LLVM-exception", True),
        ("BSD-3-Clause AND 0BSD AND MIT AND Zlib", False),
        ("MPL-2.0", False),
        ("MPL-2.0 AND MIT", False),
        ("GPL-3.0-only OR MIT", True),
        ("PSF-2.0", False),
    ],
)
def test_spdx_licence_filter(expression: str, permissive: bool) -> None:
    assert spdx_is_permissive(expression) is permissive


def test_licence_from_classifiers_and_licence_field() -> None:
    mit = "License :: OSI Approved :: MIT License"
    assert classify({"Classifier": [mit, "License :: DFSG approved"]}).permissive
    assert not classify({"Classifier": ["License :: DFSG approved"]}).permissive
    assert not classify({"Classifier": ["License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)"]}).permissive
    assert classify({"License": ["Apache 2.0 License"]}).permissive
    assert not classify({"License": ["Proprietary"]}).permissive
    assert not classify({}).permissive
    # the SPDX expression wins over classifiers
    assert not classify({"License-Expression": ["MPL-2.0"], "Classifier": [mit]}).permissive


def test_stdlib_source_leaves_out_tests_and_site_packages() -> None:
    source = stdlib_source()
    assert source.licence == "PSF-2.0" and source.files
    assert all(not {"test", "tests", "site-packages", "idle_test"} & set(f.parts) for f in source.files)
    assert Path("json/decoder.py") in source.files


def test_cli_options_map_onto_the_training_config() -> None:
    from quantize.summarizer.cli import _train_config, build_parser
    from quantize.summarizer.training import TrainConfig

    args = build_parser().parse_args(["all", "--seed", "5", "--steps", "10", "--cross-learning-rate", "0.5", "--out", "x"])
    assert _train_config(args) == TrainConfig(seed=5, steps=10, cross_learning_rate=0.5)  # `all` shares the data seed
    assert _train_config(build_parser().parse_args(["train"])) == TrainConfig()
