"""`codet5-lsp`: the language server (stdio or TCP daemon), one-shot completion, model management."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from inference import PRESETS, find_preset
from inference.completion.no_suggestion import NoSuggestion
from inference.engines.openai_backend import allow_api_key_for

from .config import COMPUTE_TYPES, DEVICES, RUNTIMES, Settings
from .logs import prepare_logging, redact
from .documents import split_lines
from .model_host import ModelHost, ModelUnavailable, load_code_model
from .transport import add_limit_options, limits_from

DEFAULT_PORT = 2087

# Options that go before or after the subcommand: dest -> default. Every parser declares them with
# default=SUPPRESS, so a subcommand's parser does not overwrite a value given before it; the
# defaults are filled in after parsing.
MODEL_DEFAULTS = {"model": "default", "device": "auto", "compute_type": "auto", "runtime": "auto", "threads": 0, "summary_model": "",
                  "trust_remote_code": False}
COMMON_DEFAULTS = {"offline": False, "verbose": False}
EVERY_COMMAND = ("command", "log_file")  # the other options before a subcommand are the server's alone


class CliError(Exception):
    """A failure the user can act on: one line on stderr, exit status `status`."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--offline", action="store_true", default=argparse.SUPPRESS,
                        help="never use the network (local files and caches only)")
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="debug logging, and the traceback of an error")


def _model_options(parser: argparse.ArgumentParser) -> None:
    default = find_preset("default")
    parser.add_argument("--model", default=argparse.SUPPRESS,
                        help=f"preset name, hub id or local directory (default: {default.name if default else 'default'})")
    parser.add_argument("--device", choices=DEVICES, default=argparse.SUPPRESS, help="auto (the default), cpu or cuda")
    parser.add_argument("--compute-type", choices=COMPUTE_TYPES, default=argparse.SUPPRESS, help="default: auto")
    parser.add_argument("--runtime", choices=RUNTIMES, default=argparse.SUPPRESS,
                        help="auto (the default: ONNX Runtime for the embedded models on CPU, else CTranslate2), "
                             "ctranslate2 or onnxruntime")
    parser.add_argument("--threads", type=int, default=argparse.SUPPRESS,
                        help="CPU threads per generation (0, the default: all cores, at most 8)")
    parser.add_argument("--summary-model", default=argparse.SUPPRESS,
                        help="model for docstring summaries (default: the completion model, if it can)")
    parser.add_argument("--trust-remote-code", action="store_true", default=argparse.SUPPRESS,
                        help="let transformers run code shipped with a checkpoint")
    _common_options(parser)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(
        model=args.model, summary_model=args.summary_model, device=args.device, compute_type=args.compute_type, runtime=args.runtime,
        threads=args.threads,
        local_files_only=args.offline, trust_remote_code=args.trust_remote_code,
        summary_idle_unload_s=args.summary_idle_unload_s, prompt_cache_idle_release_s=args.prompt_cache_idle_release_s,
    )


def _seconds(text: str) -> int:
    """An idle period: whole seconds, 0 (never) or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codet5-lsp", description="Local AI code completion language server (CTranslate2).",
        epilog="The model options, --offline and -v go before or after a subcommand.")
    _model_options(parser)
    parser.add_argument("--stdio", action="store_true", help="serve one editor over stdin/stdout (the default)")
    parser.add_argument("--tcp", action="store_true", help="run a daemon that several editors connect to")
    parser.add_argument("--host", default="127.0.0.1", help="daemon address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"daemon port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--allow-remote", action="store_true", help="allow a daemon address other than loopback")
    parser.add_argument("--token-file", type=Path, help="daemon: serve only clients that send the token in this file as "
                        "initializationOptions.token (default: $CODET5_LSP_TOKEN when set)")
    parser.add_argument("--summary-idle-unload-s", type=_seconds, default=Settings.summary_idle_unload_s,
                        help="unload the summary model after this many seconds without summaries; the next one loads it "
                        f"again (default {Settings.summary_idle_unload_s}; 0: never)")
    parser.add_argument("--prompt-cache-idle-release-s", type=_seconds, default=Settings.prompt_cache_idle_release_s,
                        help="free the completion model's cached prompts after this many seconds without a job "
                        f"(default {Settings.prompt_cache_idle_release_s}; 0: never)")
    parser.add_argument("--log-file", type=Path, help="write the log here instead of stderr (created readable by you alone)")
    add_limit_options(parser)
    sub = parser.add_subparsers(dest="command")

    complete = sub.add_parser("complete", help="print the completion at FILE:LINE:COL (1-based) and exit")
    complete.add_argument("location", help="FILE:LINE:COL, line and column 1-based as compilers print them")
    _model_options(complete)
    complete.add_argument("--mode", choices=("auto", "line", "block"), default="auto")

    demo = sub.add_parser("demo", help="start the server over stdio like an editor and show a few completions")
    _model_options(demo)

    models = sub.add_parser("models", help="list known models, pull one into the cache, or print the cache path")
    models.add_argument("action", nargs="?", choices=("list", "pull", "where"), default="list")
    models.add_argument("name", nargs="?", default="default", help="model to pull (preset, hub id or path)")
    models.add_argument("--runtime", choices=RUNTIMES, default=argparse.SUPPRESS,
                        help="pull the model for this runtime (default: auto, as the server chooses)")
    models.add_argument("--compute-type", choices=COMPUTE_TYPES, default=argparse.SUPPRESS,
                        help="pull the build for this compute type (int4: the embedded models' 4-bit build; default: auto)")
    _common_options(models)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; options that do not apply to the command are an error (status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is not None:
        server_only = {dest: default for dest, default in vars(parser.parse_args([])).items() if dest not in EVERY_COMMAND}
        given = [f"--{dest.replace('_', '-')}" for dest, default in server_only.items() if getattr(args, dest) != default]
        if args.command == "models":
            given += [f"--{dest.replace('_', '-')}" for dest in MODEL_DEFAULTS if hasattr(args, dest) and dest not in ("runtime", "compute_type")]
        if given:
            parser.error(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to `{args.command}`")
    for dest, default in {**MODEL_DEFAULTS, **COMMON_DEFAULTS}.items():
        if not hasattr(args, dest):
            setattr(args, dest, default)
    return args


def _progress(message: str) -> None:
    print(f"codet5-lsp: {message}", file=sys.stderr, flush=True)


def parse_location(location: str) -> tuple[Path, int, int]:
    """FILE:LINE:COL (1-based) -> (path, 0-based line, 0-based column)."""
    try:
        file, line, col = location.rsplit(":", 2)
        line_no, col_no = int(line), int(col)
    except ValueError:
        raise CliError(f"expected FILE:LINE:COL, got {location!r}", 2) from None
    if line_no < 1 or col_no < 1:
        raise CliError("LINE and COL start at 1", 2)
    return Path(file), line_no - 1, col_no - 1


def check_location(location: str, text: str, line: int, col: int) -> None:
    """A CliError (status 2) when 0-based (line, col) is not a cursor position in `text`: a line
    past the last one, or a column past the end of its line, reported alike."""
    lines = [ln.rstrip("\r\n") for ln in split_lines(text)]
    if not lines or split_lines(text)[-1] != lines[-1]:  # a final line break: an empty last line after it
        lines.append("")
    if line >= len(lines):
        raise CliError(f"{location} is outside the file: line {line + 1} is past its end (it has {len(lines)} lines)", 2)
    if col > len(lines[line]):
        raise CliError(f"{location} is outside the file: column {col + 1} is past the end of line {line + 1} "
                       f"(it has {len(lines[line])} characters: COL goes from 1 to {len(lines[line]) + 1})", 2)


def run_complete(args: argparse.Namespace) -> int:
    """Complete at one location through the server's own pipeline and print the suggestion."""
    from inference.completion.pipeline import CompletionPipeline, CompletionRequest
    from inference.syntax import language_for

    from .model_host import HostWorker
    from .requests.rules import PRIORITY_COMPLETION

    path, line, col = parse_location(args.location)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None
    check_location(args.location, text, line, col)
    settings = replace(_settings(args), completion_mode=args.mode)
    host = ModelHost(lambda s, _: load_code_model(s, _progress))
    host.ensure(settings)
    request = CompletionRequest(path.absolute().as_uri(), text, line, col, language_for(None, str(path)), settings.completion_options())
    reasons: list[NoSuggestion] = []
    try:
        suggestion = asyncio.run(CompletionPipeline().suggest(
            request, HostWorker(host, PRIORITY_COMPLETION), on_empty=reasons.append))
    except ModelUnavailable as exc:
        raise CliError(str(exc)) from exc
    finally:
        host.close()
    if suggestion is None:
        print(f"codet5-lsp: no suggestion: {reasons[-1].description} ({reasons[-1].value})", file=sys.stderr)
        return 1
    print(suggestion.text)
    return 0


def run_models(args: argparse.Namespace) -> int:
    from inference.models.cache import models_dir

    if args.action == "where":
        print(models_dir())
    elif args.action == "list":
        from inference.models.catalog import cache_state

        print(f"{'MODEL':26} {'ALIASES':20} {'CACHE':11} {'LICENCE':13} DESCRIPTION")
        for preset in PRESETS.values():
            print(f"{preset.name:26} {', '.join(preset.aliases) or '-':20} {cache_state(preset).value:11} "
                  f"{preset.licence:13} {preset.description}")
    else:
        from inference.engines.loading import model_directory
        from inference.models.resolve import ModelNotFoundError

        try:
            path = model_directory(args.name, compute_type=args.compute_type, runtime=args.runtime, local_files_only=args.offline,
                                   progress=_progress)
        except (ModelNotFoundError, OSError, RuntimeError, ValueError) as exc:
            raise CliError(str(exc), 2) from exc
        print(path)
    return 0


MIN_TOKEN_CHARS = 16


def read_token(path: Path | None, env: str) -> str | None:
    """The daemon's token: the first line of `path`, else `$env` when set; None for no token.

    A file others may read gets a warning; a token shorter than MIN_TOKEN_CHARS is refused.
    The token is kept out of the log from here on.
    """
    if path is None:
        token, source = os.environ.get(env, "").strip(), f"${env}"
        if not token:
            return None
    else:
        try:
            token = next(iter(path.read_text(encoding="utf-8").splitlines()), "").strip()
            mode = path.stat().st_mode
        except (OSError, UnicodeDecodeError) as exc:
            raise SystemExit(f"codet5-lsp: cannot read the token file {path}: {exc}") from None
        if not token:
            raise SystemExit(f"codet5-lsp: the token file {path} is empty (the token is its first line)")
        if mode & 0o077:
            print(f"codet5-lsp: warning: other users can read the token file {path} (mode {mode & 0o777:o}): "
                  f"chmod 600 {path}", file=sys.stderr, flush=True)
        source = f"the first line of {path}"
    if len(token) < MIN_TOKEN_CHARS:
        raise SystemExit(f"codet5-lsp: the token in {source} has {len(token)} characters; use at least {MIN_TOKEN_CHARS}, "
                         "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    redact(token)
    return token


def run_server(args: argparse.Namespace) -> int:
    from inference.engines.memory import map_large_buffers

    from .server import create_server

    map_large_buffers()  # before any model loads: keeps a long-running server's RSS from creeping up
    host = ModelHost()
    if args.tcp:
        from .daemon import TOKEN_ENV, check_bind_address, serve

        check_bind_address(args.host, args.allow_remote)
        token = read_token(args.token_file, TOKEN_ENV)
        if args.allow_remote and token is None:
            print(f"codet5-lsp: warning: listening on {args.host} without a token: anyone who can reach the port can use "
                  f"this server (see --token-file)", file=sys.stderr, flush=True)
        try:
            asyncio.run(serve(args.host, args.port, host, _settings(args), token=token, limits=limits_from(args)))
        except KeyboardInterrupt:
            pass
        except OSError as exc:  # the address is taken or cannot be bound
            reason = ("the port is in use (another daemon? choose another port with --port)"
                      if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc))
            raise CliError(f"cannot listen on {args.host}:{args.port}: {reason}") from exc
        finally:
            host.close()
        return 0
    from .transport import serve_stdio

    try:
        return serve_stdio(create_server(host, base=_settings(args)), args.max_message_bytes)  # 1 after exit without shutdown
    finally:
        host.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet = args.command in ("demo", "complete", "models")  # their output is for a person, not a log
    prepare_logging(args.log_file, args.verbose, quiet)
    allow_api_key_for(args.model)  # a server named on the command line may get the API key, one from settings not
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.CRITICAL if quiet else logging.INFO,
        filename=args.log_file, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _run(args)
    except CliError as exc:
        return _fail(str(exc), exc.status, args.verbose)
    except ModelUnavailable as exc:
        return _fail(str(exc), 1, args.verbose)
    except Exception as exc:  # a bug: still one line, the traceback with -v
        return _fail(f"unexpected {type(exc).__name__}: {exc}" + ("" if args.verbose else " (run with -v for the traceback)"),
                     1, args.verbose)


def _fail(message: str, status: int, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
    print(f"codet5-lsp: {message}", file=sys.stderr, flush=True)
    return status


def _run(args: argparse.Namespace) -> int:
    commands: dict[str | None, Callable[[argparse.Namespace], int]] = {
        "complete": run_complete, "models": run_models, "demo": run_demo, None: run_server,
    }
    return commands[args.command](args)


def run_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo

    return demo(["--model", args.model, "--device", args.device, "--compute-type", args.compute_type,
                 "--threads", str(args.threads), *(["--offline"] if args.offline else []),
                 *(["--summary-model", args.summary_model] if args.summary_model else []),
                 *(["--trust-remote-code"] if args.trust_remote_code else []),
                 *(["-v"] if args.verbose else [])])


if __name__ == "__main__":
    sys.exit(main())
