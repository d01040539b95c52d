"""`codet5-lsp` as a person types it: options before or after the subcommand, one error path
(a one-line message and a non-zero status; the traceback only with -v), cursor locations checked,
and `models list` showing each model's exact cache state. Each case runs the real entry point in
a subprocess, on the tiny models."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from inference.models.presets import PRESETS, find_preset

SOURCE = "def add(a, b):\n    return\n"  # the tiny Llama completes line 2 with " a + b"
TIMEOUT_S = 120


def run_cli(tmp_path: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update({"CODET5_LSP_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    return subprocess.run([sys.executable, "-m", "lsp_server", *args], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, cwd=cwd)


def one_line_failure(result: subprocess.CompletedProcess[str], status: int, *fragments: str) -> str:
    """The last stderr line is the message; no traceback; the exit status is `status`."""
    message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr and message.startswith("codet5-lsp: "), result.stderr
    assert all(fragment in message for fragment in fragments), message
    return message


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "add.py"
    path.write_text(SOURCE, encoding="utf-8")
    return path


@pytest.mark.parametrize("where", ["before", "after"])
def test_model_options_work_before_and_after_the_subcommand(tmp_path, tiny_models, source, where):
    options = ["--model", str(tiny_models.llama_int8), "--threads", "1", "--compute-type", "int8"]
    command = ["complete", f"{source}:2:11"]
    result = run_cli(tmp_path, *(options + command if where == "before" else command + options))
    assert result.returncode == 0, result.stderr
    assert result.stdout == " a + b\n"


@pytest.mark.parametrize("where", ["before", "after"])
def test_an_unknown_model_is_an_error_wherever_it_is_given(tmp_path, source, where):
    option, command = ["--model", "nonexistent-model"], ["complete", f"{source}:2:11"]
    result = run_cli(tmp_path, *(option + command if where == "before" else command + option))
    one_line_failure(result, 1, "unknown model 'nonexistent-model'")
    assert result.stdout == ""


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_before_or_after_the_subcommand_adds_the_traceback(tmp_path, source, where):
    option, command = ["-v"], ["complete", f"{source}:2:11", "--model", "nonexistent-model"]
    result = run_cli(tmp_path, *(option + command if where == "before" else command + option))
    assert result.returncode == 1 and "Traceback" in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("codet5-lsp: Cannot load model 'nonexistent-model'")


def test_an_uncached_hub_model_offline_is_one_line_with_the_hint(tmp_path, source):
    result = run_cli(tmp_path, "--offline", "complete", f"{source}:2:11", "--model", "codet5p-220m")
    one_line_failure(result, 1, "network access is off", "codet5-quantize Salesforce/codet5p-220m")


def test_cuda_without_a_gpu_says_no_cuda_device_found(tmp_path, tiny_models, source):
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this machine has a GPU")
    result = run_cli(tmp_path, "--device", "cuda", "complete", f"{source}:2:11", "--model", str(tiny_models.llama_int8))
    one_line_failure(result, 1, "no CUDA device found")


def test_server_options_with_a_subcommand_are_rejected(tmp_path, source):
    result = run_cli(tmp_path, "--tcp", "--port", "1234", "complete", f"{source}:2:11")
    assert result.returncode == 2 and "--tcp, --port do not apply to `complete`" in result.stderr, result.stderr


def test_model_options_do_not_apply_to_models(tmp_path):
    before = run_cli(tmp_path, "--model", "x", "models", "list")
    after = run_cli(tmp_path, "models", "list", "--model", "x")
    assert before.returncode == after.returncode == 2
    assert "--model does not apply to `models`" in before.stderr and "unrecognized arguments: --model x" in after.stderr


@pytest.mark.parametrize(("location", "expected"), [
    ("2:12", "column 12 is past the end of line 2 (it has 10 characters: COL goes from 1 to 11)"),
    ("4:1", "line 4 is past its end (it has 3 lines)"),
])
def test_a_location_past_the_end_is_reported_alike_for_lines_and_columns(tmp_path, source, location, expected):
    result = run_cli(tmp_path, "complete", f"{source}:{location}", "--model", "nonexistent-model")
    one_line_failure(result, 2, f"{source}:{location} is outside the file: {expected}")


def test_a_relative_file_path_completes(tmp_path, tiny_models, source):
    result = run_cli(tmp_path, "complete", f"{source.name}:2:11", "--model", str(tiny_models.llama_int8),
                     "--threads", "1", cwd=source.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == " a + b\n"


def test_the_empty_line_after_the_final_newline_is_a_location(tmp_path, tiny_models, source):
    result = run_cli(tmp_path, "complete", f"{source}:3:1", "--model", str(tiny_models.llama_int8), "--threads", "1")
    assert "outside the file" not in result.stderr, result.stderr


def test_demo_with_an_unknown_model_is_one_line(tmp_path):
    result = run_cli(tmp_path, "demo", "--model", "nonexistent-model")
    message = one_line_failure(result, 1, "unknown model 'nonexistent-model'")
    assert "JsonRpcException" not in result.stderr and result.stderr.count("unknown model") == 1, result.stderr
    assert message.startswith("codet5-lsp: Cannot load model")


def test_a_daemon_on_a_busy_port_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(tmp_path, "--tcp", "--port", str(port))
    one_line_failure(result, 1, f"cannot listen on 127.0.0.1:{port}: the port is in use")


def _row(listing: str, name: str) -> list[str]:
    return next(line.split() for line in listing.splitlines() if line.split()[:1] == [name])


def test_models_list_shows_the_exact_cache_state_and_the_aliases(tmp_path, tiny_models):
    models = tmp_path / "cache" / "models"
    summarizer = next(p for p in PRESETS.values() if "default-summarizer" in p.aliases)
    completer = find_preset("default")
    prefixed = [p for p in PRESETS.values() if p is not summarizer and summarizer.name.startswith(p.name)]
    (models / f"{summarizer.name}-int8").mkdir(parents=True)  # empty: not a model
    shutil.copytree(tiny_models.llama_int8, models / f"{completer.name}-int8")

    result = run_cli(tmp_path, "models", "list")
    assert result.returncode == 0, result.stderr
    assert _row(result.stdout, completer.name)[1:3] == ["default", "cached"]
    assert _row(result.stdout, summarizer.name)[1:3] == ["default-summarizer", "incomplete"]
    assert all(_row(result.stdout, p.name)[2] == "-" for p in prefixed if p is not completer)  # no name-prefix match
    assert {line.split()[0] for line in result.stdout.splitlines()[1:]} == set(PRESETS)


def test_models_pull_of_an_unknown_model_is_one_line(tmp_path):
    result = run_cli(tmp_path, "models", "pull", "nonexistent-model", "--offline")
    one_line_failure(result, 2, "unknown model 'nonexistent-model'")


def test_the_demo_says_what_its_output_shows(tmp_path, tiny_models):
    result = run_cli(tmp_path, "demo", "--model", str(tiny_models.llama_int8), "--threads", "1")
    assert result.returncode == 0, result.stderr
    legend = result.stdout.splitlines()[0]
    assert "demo.py" in legend and "\u2502 marks the cursor" in legend
    assert result.stdout.count("\u2502") > 1  # then one line per completion, the cursor marked


def test_models_pull_builds_for_the_runtime_the_server_would_use(tmp_path, tiny_models):
    """`models pull default` names the ONNX Runtime directory on a CPU (the server's `runtime: auto`),
    the CTranslate2 one with `--runtime ctranslate2` and the 4-bit one with `--compute-type int4`;
    either counts as cached in `models list`."""
    from inference.models.convert import convert_gguf_to_onnx
    from tests.tiny_gguf import train_bpe_tokenizer, write_random_gguf

    models = tmp_path / "cache" / "models"
    completer = find_preset("default")
    onnx_dir = convert_gguf_to_onnx(write_random_gguf(tmp_path / "tiny.gguf", train_bpe_tokenizer()),
                                    models / f"{completer.name}-onnx-int8")
    result = run_cli(tmp_path, "models", "list")
    assert _row(result.stdout, completer.name)[2] == "cached", result.stdout
    result = run_cli(tmp_path, "models", "pull", "default", "--offline")
    assert result.returncode == 0 and result.stdout.strip() == str(onnx_dir), result.stderr
    shutil.copytree(tiny_models.llama_int8, models / f"{completer.name}-int8")
    result = run_cli(tmp_path, "models", "pull", "default", "--runtime", "ctranslate2", "--offline")
    assert result.returncode == 0 and result.stdout.strip() == str(models / f"{completer.name}-int8"), result.stderr
    int4_dir = convert_gguf_to_onnx(tmp_path / "tiny.gguf", models / f"{completer.name}-onnx-int4", "int4")
    result = run_cli(tmp_path, "models", "pull", "default", "--compute-type", "int4", "--offline")
    assert result.returncode == 0 and result.stdout.strip() == str(int4_dir), result.stderr
    result = run_cli(tmp_path, "models", "pull", "default", "--compute-type", "int4", "--runtime", "ctranslate2", "--offline")
    assert result.returncode == 2 and "int4 runs on the onnxruntime runtime" in result.stderr
