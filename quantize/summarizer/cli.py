"""`python -m quantize.summarizer {data,train,convert,all}`: the embedded summarizer's recipe."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from quantize.summarizer.train import TrainConfig

DEFAULT_WORK = Path("build/summarizer")
DEFAULT_SEED = 1234


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m quantize.summarizer", description=__doc__)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"working directory (default {DEFAULT_WORK})")
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="collect, clean, deduplicate and split the pairs")
    data.add_argument("--seed", type=int, default=DEFAULT_SEED)
    train = commands.add_parser("train", help="train the tokenizer and the model on the collected pairs")
    _add_train_options(train)
    convert = commands.add_parser("convert", help="convert the trained model to CTranslate2 int8")
    convert.add_argument("--out", type=Path, default=None, help="output directory (default: the package's data dir)")
    everything = commands.add_parser("all", help="data, train and convert")
    everything.add_argument("--seed", type=int, default=DEFAULT_SEED)
    everything.add_argument("--out", type=Path, default=None)
    _add_train_options(everything, with_seed=False)
    return parser


def _add_train_options(parser: argparse.ArgumentParser, *, with_seed: bool = True) -> None:
    """One option per `TrainConfig` field (`all` shares its data `--seed` with training)."""
    for field in dataclasses.fields(TrainConfig):
        if field.name == "seed" and not with_seed:
            continue
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


def run_data(work: Path, seed: int) -> None:
    from quantize.summarizer.data import build_dataset

    manifest = build_dataset(work / "data", seed)
    print(json.dumps({"pairs": manifest["pairs"], "modules": manifest["modules"]}))


def run_train(work: Path, config: TrainConfig) -> Path:
    from quantize.summarizer.data import read_jsonl
    from quantize.summarizer.tokenizer import train_tokenizer
    from quantize.summarizer.train import train

    train_pairs = read_jsonl(work / "data" / "train.jsonl")
    valid_pairs = read_jsonl(work / "data" / "valid.jsonl")
    texts = (text for pair in train_pairs for text in (pair.code, pair.summary))
    tokenizer = train_tokenizer(texts, config.vocab_size, work / "tokenizer")
    (work / "command.txt").write_text(" ".join(["python", "-m", "quantize.summarizer", *sys.argv[1:]]) + "\n", encoding="utf-8")
    return train(train_pairs, valid_pairs, tokenizer, config, work / "model", log=lambda m: print(m, flush=True))


def run_convert(work: Path, out: Path | None) -> Path:
    from quantize.summarizer.ship import convert_trained

    return convert_trained(work, out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work: Path = args.work
    if args.command in ("data", "all"):
        run_data(work, args.seed)
    if args.command in ("train", "all"):
        run_train(work, _train_config(args))
    if args.command in ("convert", "all"):
        print(run_convert(work, args.out))
    return 0
