"""Supported grammars, what their node types mean to us, and parsing.

Each grammar's ``tree_sitter.Language`` is built once; parsers are kept per thread because a
``tree_sitter.Parser`` must not be used by two threads at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import tree_sitter
import tree_sitter_go
import tree_sitter_java
import tree_sitter_javascript
import tree_sitter_python
import tree_sitter_rust
import tree_sitter_typescript

_JS_FUNCTIONS = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "function_expression",
        "function",
        "generator_function",
        "arrow_function",
        "method_definition",
    }
)
_JS_SCOPES = _JS_FUNCTIONS | {"class_declaration", "class"}
_TS_SCOPES = _JS_SCOPES | {
    "abstract_class_declaration",
    "interface_declaration",
    "internal_module",
    "module",
    "enum_declaration",
}
_TS_FUNCTIONS = _JS_FUNCTIONS | {"function_signature", "method_signature", "abstract_method_signature"}


@dataclass(frozen=True)
class LanguageSpec:
    """How one grammar spells the constructs the analysis cares about."""

    name: str
    load: Callable[[], object]
    braces: bool  # blocks are delimited by { } (False: by indentation, Python)
    scopes: frozenset[str]  # definitions whose headers enclose a completion
    functions: frozenset[str]  # definitions function_at can return
    imports: frozenset[str]
    doc_style: str  # "python" | "jsdoc" | "javadoc" | "rustdoc" | "go"
    default_indent: str
    # Nodes that precede a definition and belong to it (decorators, attributes).
    attachments: frozenset[str] = frozenset()


SPECS: dict[str, LanguageSpec] = {
    spec.name: spec
    for spec in (
        LanguageSpec(
            name="python",
            load=tree_sitter_python.language,
            braces=False,
            scopes=frozenset({"function_definition", "class_definition"}),
            functions=frozenset({"function_definition"}),
            imports=frozenset({"import_statement", "import_from_statement", "future_import_statement"}),
            doc_style="python",
            default_indent="    ",
        ),
        LanguageSpec(
            name="javascript",
            load=tree_sitter_javascript.language,
            braces=True,
            scopes=_JS_SCOPES,
            functions=_JS_FUNCTIONS,
            imports=frozenset({"import_statement"}),
            doc_style="jsdoc",
            default_indent="  ",
            attachments=frozenset({"decorator"}),
        ),
        LanguageSpec(
            name="typescript",
            load=tree_sitter_typescript.language_typescript,
            braces=True,
            scopes=_TS_SCOPES,
            functions=_TS_FUNCTIONS,
            imports=frozenset({"import_statement"}),
            doc_style="jsdoc",
            default_indent="  ",
            attachments=frozenset({"decorator"}),
        ),
        LanguageSpec(
            name="tsx",
            load=tree_sitter_typescript.language_tsx,
            braces=True,
            scopes=_TS_SCOPES,
            functions=_TS_FUNCTIONS,
            imports=frozenset({"import_statement"}),
            doc_style="jsdoc",
            default_indent="  ",
            attachments=frozenset({"decorator"}),
        ),
        LanguageSpec(
            name="java",
            load=tree_sitter_java.language,
            braces=True,
            scopes=frozenset(
                {
                    "class_declaration",
                    "interface_declaration",
                    "enum_declaration",
                    "record_declaration",
                    "annotation_type_declaration",
                    "method_declaration",
                    "constructor_declaration",
                    "compact_constructor_declaration",
                    "lambda_expression",
                }
            ),
            functions=frozenset({"method_declaration", "constructor_declaration", "compact_constructor_declaration"}),
            imports=frozenset({"import_declaration"}),
            doc_style="javadoc",
            default_indent="    ",
        ),
        LanguageSpec(
            name="go",
            load=tree_sitter_go.language,
            braces=True,
            scopes=frozenset({"function_declaration", "method_declaration", "func_literal", "type_declaration"}),
            functions=frozenset({"function_declaration", "method_declaration"}),
            imports=frozenset({"import_declaration"}),
            doc_style="go",
            default_indent="\t",
        ),
        LanguageSpec(
            name="rust",
            load=tree_sitter_rust.language,
            braces=True,
            scopes=frozenset(
                {
                    "function_item",
                    "impl_item",
                    "trait_item",
                    "mod_item",
                    "struct_item",
                    "enum_item",
                    "union_item",
                    "closure_expression",
                }
            ),
            functions=frozenset({"function_item", "function_signature_item"}),
            imports=frozenset({"use_declaration", "extern_crate_declaration"}),
            doc_style="rustdoc",
            default_indent="    ",
            attachments=frozenset({"attribute_item"}),
        ),
    )
}

_LANGUAGE_IDS = {
    "python": "python",
    "javascript": "javascript",
    "javascriptreact": "javascript",
    "typescript": "typescript",
    "typescriptreact": "tsx",
    "java": "java",
    "go": "go",
    "rust": "rust",
}

_EXTENSIONS = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".java": "java",
    ".go": "go",
    ".rs": "rust",
}


def language_for(language_id: str | None, path: str | None) -> str | None:
    """Grammar name for an LSP languageId, else for the path's extension; None if unsupported.

    A ``typescript`` document whose path ends in ``.tsx`` gets the tsx grammar.
    """
    by_path = None
    if path:
        name = path.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].lower()
        dot = name.rfind(".")
        by_path = _EXTENSIONS.get(name[dot:]) if dot > 0 else None
    by_id = _LANGUAGE_IDS.get(language_id.lower()) if language_id else None
    if by_id == "typescript" and by_path == "tsx":
        return "tsx"
    return by_id or by_path


@cache
def grammar(name: str) -> tree_sitter.Language:
    """The ``tree_sitter.Language`` of a grammar name, built once."""
    return tree_sitter.Language(SPECS[name].load())


def spec_for(language: str) -> LanguageSpec:
    """The spec of a grammar name from ``language_for``; ValueError for any other name."""
    spec = SPECS.get(language)
    if spec is None:
        raise ValueError(f"unsupported language: {language!r}")
    return spec


_parsers = threading.local()


def parse(data: bytes, language: str) -> tree_sitter.Tree:
    """Parse UTF-8 bytes with this thread's parser for ``language``."""
    spec_for(language)
    parsers = getattr(_parsers, "by_language", None)
    if parsers is None:
        parsers = _parsers.by_language = {}
    parser = parsers.get(language)
    if parser is None:
        parser = parsers[language] = tree_sitter.Parser(grammar(language))
    return parser.parse(data)
