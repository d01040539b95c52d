"""`codet5-quantize`: convert a model to a quantized CTranslate2 (or bitsandbytes) checkpoint.

Prints the size on disk and how closely the result follows the float32 source. Exit codes:
0 success, 2 user error (bad arguments, missing source, offline hub, no GPU for --bnb),
1 internal failure (including a conversion that failed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from inference.models.convert import QUANTIZATIONS, ConversionError, convert_to_ct2, gguf_to_hf
from quantize.bnb import BNB_BITS, BnbUnavailable, check_bnb_available

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_QUANTIZATION = "int8"


class UsageError(Exception):
    """An error the user can fix by changing the command line or the environment."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codet5-quantize",
        description="Convert a Hugging Face model (directory or hub id) or a GGUF file to a "
        "quantized CTranslate2 model, or with --bnb to a bitsandbytes checkpoint.",
    )
    parser.add_argument("src", metavar="SRC", help="model directory, hub id, or .gguf file")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        default=None,
        help=f"CTranslate2 weight type (default {DEFAULT_QUANTIZATION})",
    )
    parser.add_argument(
        "--bnb",
        type=int,
        choices=BNB_BITS,
        help="write a bitsandbytes 8- or 4-bit transformers checkpoint instead (needs CUDA)",
    )
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="allow models that ship their own code"
    )
    parser.add_argument(
        "--no-fidelity", action="store_true", help="skip the comparison with the float32 source"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    return parser


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def directory_size(path: Path) -> int:
    """Total size in bytes of the files under `path` (or of `path` itself if it is a file)."""
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def format_size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _check_output(args: argparse.Namespace) -> None:
    out: Path = args.out
    if out.exists() and not args.force:
        raise UsageError(f"{out} already exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    if args.bnb is not None and args.quantization is not None:
        raise UsageError("--quantization applies to CTranslate2 output; leave it out with --bnb")


def _report_size(out: Path, source: Path) -> None:
    size, source_size = directory_size(out), directory_size(source)
    share = f", {size / source_size:.0%} of the source's {format_size(source_size)}" if source_size else ""
    print(f"Size on disk: {format_size(size)}{share}")


def _run_ct2(args: argparse.Namespace, hf_dir: Path, label: str, source_path: Path) -> None:
    from quantize.fidelity import compare_hf_to_ct2

    quantization = args.quantization or DEFAULT_QUANTIZATION
    out = convert_to_ct2(
        hf_dir,
        args.out,
        quantization,
        trust_remote_code=args.trust_remote_code,
        progress=_progress,
        source_label=label,
    )
    print(f"Wrote CTranslate2 {quantization} model to {out}")
    _report_size(out, source_path)
    if not args.no_fidelity:
        _progress("Comparing with the float32 source")
        fidelity = compare_hf_to_ct2(hf_dir, out, trust_remote_code=args.trust_remote_code)
        print(f"Fidelity vs float32 transformers: {fidelity.summary()}")


def _run_bnb(args: argparse.Namespace, hf_dir: Path, source_path: Path) -> None:
    from transformers import AutoTokenizer

    from quantize.bnb import write_bnb_checkpoint
    from quantize.fidelity import (
        FIDELITY_PROMPTS,
        build_cases,
        compare,
        load_float32_model,
        torch_logits_fn,
    )

    model = write_bnb_checkpoint(
        hf_dir, args.out, args.bnb, trust_remote_code=args.trust_remote_code, progress=_progress
    )
    print(f"Wrote bitsandbytes {args.bnb}-bit checkpoint to {args.out}")
    _report_size(args.out, source_path)
    if not args.no_fidelity:
        _progress("Comparing with the float32 source")
        reference = load_float32_model(hf_dir, trust_remote_code=args.trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(hf_dir, trust_remote_code=args.trust_remote_code)
        cases = build_cases(tokenizer, bool(reference.config.is_encoder_decoder), FIDELITY_PROMPTS)
        fidelity = compare(torch_logits_fn(reference), torch_logits_fn(model), cases)
        print(f"Fidelity vs float32 transformers: {fidelity.summary()}")


def run(args: argparse.Namespace) -> None:
    """Carry out one invocation; raises UsageError, BnbUnavailable, SourceError or ConversionError."""
    from quantize.source import resolve_source

    _check_output(args)
    if args.bnb is not None:
        check_bnb_available()
    source = resolve_source(args.src, progress=_progress)
    if args.out.resolve() == source.path.resolve():
        raise UsageError("--out must differ from SRC")
    if source.kind == "hf":
        if args.bnb is not None:
            _run_bnb(args, source.path, source.path)
        else:
            _run_ct2(args, source.path, source.label, source.path)
        return
    # GGUF: dequantize to a temporary float32 directory next to the output, the reference
    # for the fidelity check; it is removed afterwards.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".gguf-hf-", dir=args.out.parent) as tmp:
        hf_dir = gguf_to_hf(source.path, Path(tmp) / "hf", progress=_progress)
        if args.bnb is not None:
            _run_bnb(args, hf_dir, source.path)
        else:
            _run_ct2(args, hf_dir, source.label, source.path)


def main(argv: Sequence[str] | None = None) -> int:
    from quantize.source import SourceError

    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (UsageError, SourceError, BnbUnavailable) as exc:
        print(f"codet5-quantize: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConversionError as exc:
        print(f"codet5-quantize: conversion failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("codet5-quantize: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print("codet5-quantize: internal error (traceback above)", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
