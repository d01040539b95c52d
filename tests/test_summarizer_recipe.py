"""The embedded summarizer's recipe: data extraction, cleaning, dedup, split, licences, tokenizer, shipped model."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from quantize.summarizer.data import deduplicate, split_by_module, stdlib_source
from quantize.summarizer.extract import Pair, first_sentence, is_usable_summary, pairs_from_source, strip_docstring
from quantize.summarizer.licences import classify, spdx_is_permissive
from quantize.summarizer.ship import PACKAGE_DIR

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


def test_tokenizer_has_codet5_special_tokens_and_template(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    from quantize.summarizer.tokenizer import train_tokenizer

    texts = [MODULE, "Return the number of stored items."] * 5
    train_tokenizer(texts, 400, tmp_path)
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert [tok.token_to_id(t) for t in ("<pad>", "</s>", "<unk>", "<s>", "<mask>", "<extra_id_0>")] == [0, 1, 2, 3, 4, 5]
    ids = tok.encode("return len(items)").ids
    assert ids[0] == 3 and ids[-1] == 1
    assert tok.decode(ids, skip_special_tokens=True) == "return len(items)"
    code_tokens = tok.encode("def get_stored_items(self):", add_special_tokens=False).tokens
    summary_tokens = tok.encode("Return the stored items.", add_special_tokens=False).tokens
    assert {"stored", "items"} <= set(code_tokens) & set(summary_tokens)


def test_encode_pair_keeps_the_end_token_when_truncating(tmp_path: Path) -> None:
    from quantize.summarizer.tokenizer import train_tokenizer
    from quantize.summarizer.train import IGNORE_INDEX, TrainConfig, collate, encode_pair, learning_rate

    tokenizer = train_tokenizer([MODULE] * 3, 300, tmp_path)
    config = TrainConfig(max_source_tokens=16, max_target_tokens=4, steps=100, warmup_steps=10, learning_rate=1.0)
    source, target = encode_pair(tokenizer, Pair(MODULE, "Return the number of stored items.", "size", "m"), config)
    assert len(source) == 16 and source[0] == 3 and source[-1] == 1
    assert len(target) == 4 and target[-1] == 1
    batch = collate([(source, target), ([3, 7, 1], [9, 1])], tokenizer.pad_token_id)
    assert batch["attention_mask"][1].tolist() == [1, 1, 1] + [0] * 13
    assert batch["labels"][1].tolist() == [9, 1, IGNORE_INDEX, IGNORE_INDEX]
    assert learning_rate(0, config) == pytest.approx(0.1) and learning_rate(9, config) == pytest.approx(1.0)
    assert learning_rate(55, config) == pytest.approx(0.5) and learning_rate(100, config) == 0.0


def test_name_copy_task(tmp_path: Path) -> None:
    from quantize.summarizer.tokenizer import train_tokenizer
    from quantize.summarizer.train import NAME_TASK_TOKEN, TrainConfig, encode_pair, name_copy_example, name_words

    assert name_words("getUser_name") == "get user name" and name_words("__init__") == "init"
    tokenizer = train_tokenizer([MODULE] * 3, 300, tmp_path)
    pair = Pair("def get_stored_items(self):\n    return self._items\n", "Return the stored items.", "get_stored_items", "m")
    source, target = name_copy_example(tokenizer, pair, TrainConfig())
    summary_source, _ = encode_pair(tokenizer, pair, TrainConfig())
    assert source[:2] == [3, tokenizer.convert_tokens_to_ids(NAME_TASK_TOKEN)] and source[-1] == 1
    assert len(source) == len(summary_source)
    assert tokenizer.decode(target, skip_special_tokens=True) == "get stored items"


def test_name_copy_curriculum_falls_then_holds_and_picks_tasks_by_share() -> None:
    import random

    from quantize.summarizer.train import TrainConfig, name_copy_share, pick_tasks, swapped_sources

    config = TrainConfig(steps=1000, name_copy_start=0.6, name_copy_end=0.1, name_copy_decay=0.5)
    assert name_copy_share(0, config) == pytest.approx(0.6)
    assert name_copy_share(250, config) == pytest.approx(0.35)
    assert name_copy_share(500, config) == name_copy_share(999, config) == pytest.approx(0.1)
    summary, copy = ([3, 7, 1], [9, 1]), ([3, 5, 7, 1], [8, 1])
    rng = random.Random(0)
    assert pick_tasks([(summary, copy)] * 10, 1.0, rng) == [copy] * 10
    assert pick_tasks([(summary, copy)] * 10, 0.0, rng) == [summary] * 10
    assert pick_tasks([(summary, None)] * 10, 1.0, rng) == [summary] * 10
    picked = pick_tasks([(summary, copy)] * 2000, 0.3, rng)
    assert 0.25 < picked.count(copy) / 2000 < 0.35
    assert swapped_sources([([1], [2]), ([3], [4]), ([5], [6])]) == [([3], [2]), ([5], [4]), ([1], [6])]


def test_training_loss_adds_smoothing_and_the_encoder_terms(tmp_path: Path) -> None:
    import torch

    from quantize.summarizer.tokenizer import train_tokenizer
    from quantize.summarizer.train import TrainConfig, bag_of_words_loss, build_model, centering_loss, collate, training_loss

    tokenizer = train_tokenizer([MODULE] * 3, 300, tmp_path)
    config = TrainConfig(d_model=32, d_kv=8, num_heads=4, d_ff=64, encoder_layers=1, decoder_layers=1, max_source_tokens=64)
    model = build_model(tokenizer, config)
    assert model.config.n_positions == 64
    batch = collate([([3, 7, 8, 1], [9, 10, 1]), ([3, 7, 1], [11, 1])], tokenizer.pad_token_id)
    with torch.no_grad():
        plain = float(model(**batch).loss)
        bare = TrainConfig(label_smoothing=0.0, bag_of_words_weight=0.0, centering_weight=0.0)
        assert float(training_loss(model, batch, bare)) == pytest.approx(plain, rel=1e-5)
        states = model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        real = torch.cat([states[0, :4], states[1, :3]])
        centering = float(centering_loss(states, batch["attention_mask"]))
        assert centering == pytest.approx(float(real.mean(0).pow(2).mean()), rel=1e-5)
        bow = float(bag_of_words_loss(model, states, batch["attention_mask"], batch["labels"]))
        both = TrainConfig(label_smoothing=0.0, bag_of_words_weight=0.5, centering_weight=2.0)
        assert float(training_loss(model, batch, both)) == pytest.approx(plain + 0.5 * bow + 2.0 * centering, rel=1e-5)
        # bags of words {9, 10} and {11} (end tokens left out), from pooled states minus their batch mean
        pooled = torch.stack([states[0, :4].mean(0), states[1, :3].mean(0)])
        log_probs = torch.log_softmax(model.lm_head((pooled - pooled.mean(0)) * 32**-0.5), dim=-1)
        expected = (-float(log_probs[0, [9, 10]].mean()) - float(log_probs[1, 11])) / 2
        assert bow == pytest.approx(expected, rel=1e-5)
        # a constant encoder output is what the centering loss penalizes
        constant = torch.ones_like(states)
        assert float(centering_loss(constant, batch["attention_mask"])) == pytest.approx(1.0)


def test_copy_friendly_init_makes_the_decoder_favour_the_codes_tokens(tmp_path: Path) -> None:
    import torch

    from quantize.summarizer.tokenizer import train_tokenizer
    from quantize.summarizer.train import TrainConfig, build_model, collate

    tokenizer = train_tokenizer([MODULE] * 3, 300, tmp_path)
    shape = dict(d_model=64, d_kv=16, num_heads=4, d_ff=128, encoder_layers=2, decoder_layers=2)
    torch.manual_seed(0)
    model = build_model(tokenizer, TrainConfig(**shape, copy_init=0.1)).eval()
    attention = model.decoder.block[0].layer[1].EncDecAttention
    assert not attention.q.weight.any() and torch.equal(attention.v.weight, torch.eye(64))
    word = 200
    with_word = collate([([3, 150, word, 160, 1], [170, 1])], tokenizer.pad_token_id)
    without = collate([([3, 150, 151, 160, 1], [170, 1])], tokenizer.pad_token_id)
    with torch.no_grad():
        gain = model(**with_word).logits[0, 0, word] - model(**without).logits[0, 0, word]
        torch.manual_seed(0)
        plain = build_model(tokenizer, TrainConfig(**shape, copy_init=0.0)).eval()
        plain_gain = plain(**with_word).logits[0, 0, word] - plain(**without).logits[0, 0, word]
    assert gain > 0.5 and gain > plain_gain + 0.5


@pytest.mark.skipif(not (PACKAGE_DIR / "model.bin").is_file(), reason="the shipped summarizer files are absent")
def test_shipped_summarizer_loads_and_summarizes() -> None:
    from inference import CodeModel
    from inference.convert import read_metadata

    assert read_metadata(PACKAGE_DIR)["architecture"] == "T5ForConditionalGeneration"
    assert sum(f.stat().st_size for f in PACKAGE_DIR.iterdir()) < 50_000_000
    model = CodeModel(str(PACKAGE_DIR), cpu_threads=1)
    assert model.can_summarize
    summary = model.summarize("def add(a, b):\n    return a + b\n").read().strip()
    assert len(summary.split()) >= 2 and any(c.isalpha() for c in summary)


def test_cli_options_map_onto_the_training_config() -> None:
    from quantize.summarizer.cli import _train_config, build_parser
    from quantize.summarizer.train import TrainConfig

    args = build_parser().parse_args(["all", "--seed", "5", "--steps", "10", "--learning-rate", "0.5", "--out", "x"])
    assert _train_config(args) == TrainConfig(seed=5, steps=10, learning_rate=0.5)
    assert _train_config(build_parser().parse_args(["train"])) == TrainConfig()
