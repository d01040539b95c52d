"""Shared fixtures (the tiny trained models) and the test lanes.

Every test gets its lanes (pytest markers, registered in pyproject.toml) here at collection, from
facts that cannot drift:
- the fixtures it uses, directly or through other fixtures (`FIXTURE_LANES`: `tiny_models` means
  `model`);
- its module (`MODULE_LANES` lists every test module; tests/test_lanes.py fails on a missing one,
  whose tests are then in no lane, not even `fast`), or the test itself where a module mixes
  lanes (`TEST_LANES`);
- its measured duration (`slow`: tests/durations.txt).
A test in no other lane is in `fast` (`pytest -m fast`). A fast test that starts the server as a
process fails, naming the tables to fix; a test in another lane that starts one is in `server`
by the tables alone.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.tiny_models import TinyModels

# The lanes besides `fast`; pyproject.toml registers them with what a test in each needs or does.
LANES = ("slow", "model", "server", "npm", "nvim", "browser", "cuda", "embedded")
FAST = "fast"

FIXTURE_LANES: dict[str, tuple[str, ...]] = {
    "tiny_models": ("model",),
    "llama_server": ("model", "server"),  # asks for tiny_models through request.getfixturevalue
}

# Every test module, by its path under tests/ (the folder says what it tests: unit, engine, server,
# reliability, editors, benchmarks): the lanes of its tests (besides what their fixtures and durations say).
MODULE_LANES: dict[str, tuple[str, ...]] = {
    "benchmarks/test_bench.py": (),
    "benchmarks/test_bench_speed.py": (),
    "benchmarks/test_codexglue_line.py": (),
    "benchmarks/test_repo_check.py": (),
    "benchmarks/test_decode_profile.py": (),
    "benchmarks/test_peer_replay.py": (),
    "benchmarks/test_summary_bench.py": (),
    "editors/test_nvim_plugin.py": ("nvim",),
    "editors/test_vscode_browser.py": ("browser", "npm", "server"),
    "editors/test_vscode_extension.py": ("npm",),
    "engine/test_convert.py": (),
    "engine/test_cuda.py": ("cuda",),
    "engine/test_embedded.py": (),
    "engine/test_engine.py": (),
    "engine/test_gguf_ct2.py": ("model",),  # random GGUF decoders, converted and run
    "engine/test_huge_pages.py": (),
    "engine/test_instruct_summaries.py": (),
    "engine/test_memory.py": (),
    "engine/test_onnx_engine.py": ("model",),  # random GGUF decoders, built for ONNX Runtime and run
    "engine/test_openai_backend.py": (),
    "engine/test_quantize.py": (),
    "engine/test_resolve.py": (),
    "engine/test_smol_summarizer.py": (),
    "engine/test_summarizer_qwen.py": (),
    "engine/test_summarizer_recipe.py": (),
    "engine/test_tiny_models.py": (),
    "engine/test_tokenizer.py": (),
    "reliability/test_daemon_load.py": (),
    "reliability/test_document_sync.py": (),
    "reliability/test_faults.py": (),
    "reliability/test_fuzz_protocol.py": ("server",),
    "reliability/test_hostile_docstrings.py": ("server",),
    "reliability/test_hostile_documents.py": (),
    "reliability/test_hostile_transport.py": ("server",),
    "reliability/test_security.py": ("server",),
    "server/test_cli.py": ("server",),
    "server/test_default_model_e2e.py": ("embedded",),
    "server/test_onnx_runtime_e2e.py": ("model", "server"),
    "server/test_docstrings_e2e.py": ("server",),
    "server/test_hover_docstrings.py": (),
    "server/test_no_suggestion.py": (),
    "server/test_other_files_session.py": (),
    "server/test_server_e2e.py": ("server",),
    "test_lanes.py": (),
    "test_structure.py": (),
    "unit/test_bleu.py": (),
    "unit/test_config.py": (),
    "unit/test_context.py": (),
    "unit/test_conventions.py": (),
    "unit/test_other_files.py": (),
    "unit/test_healing.py": (),
    "unit/test_idle_release.py": (),
    "unit/test_job_queue.py": (),
    "unit/test_pipeline.py": (),
    "unit/test_postprocess.py": (),
    "unit/test_prompts.py": (),
    "unit/test_speed_mechanisms.py": (),
    "unit/test_polyglot_data.py": (),
    "unit/test_summaries.py": (),
    "unit/test_summary_cache.py": (),
    "unit/test_syntax.py": (),
    "unit/test_typeahead.py": (),
}

# Tests whose lanes differ from their module's: "module::test function" -> lanes (instead of the module's).
TEST_LANES: dict[str, tuple[str, ...]] = {
    "reliability/test_daemon_load.py::test_editors_typing_into_one_daemon_get_every_request_answered": ("server",),
    "server/test_default_model_e2e.py::test_default_model_completes_a_real_line_over_lsp": ("embedded", "server"),
    "server/test_default_model_e2e.py::test_default_model_hover_uses_the_embedded_summarizer": ("embedded", "server"),
    "reliability/test_document_sync.py::test_completion_position_is_right_after_edits_in_a_document_with_form_feeds": ("server",),
    "reliability/test_document_sync.py::test_percent_encoded_uris_name_the_open_document": ("server",),
    "reliability/test_document_sync.py::test_a_request_sees_its_document_as_it_was_sent_even_when_a_change_or_close_follows_at_once": (
        "server",),
    "engine/test_embedded.py::test_default_model_builds_from_the_real_wheels": ("embedded", "model"),
    "benchmarks/test_bench.py::test_runtime_decode_measures_both_runtimes_of_one_model": ("model",),
    "benchmarks/test_bench.py::test_draft_tokens_pairs_the_same_points_across_draft_sizes": ("model",),
    "benchmarks/test_bench.py::test_onnx_profile_counts_each_operator_of_a_decode_pass": ("model",),
    "benchmarks/test_bench.py::test_huge_pages_bench_runs_both_variants_in_their_own_processes_against_the_bound": ("model",),
    "benchmarks/test_bench.py::test_first_pass_chunks_times_each_chunk_size_against_one_pass_and_restores_the_setting": ("model",),
    "benchmarks/test_bench.py::test_switch_visits_files_with_both_servers_and_pairs_them": ("model", "server"),
    "benchmarks/test_bench.py::test_switch_beside_typists_runs_each_variant_on_its_own_daemon_with_editors_typing": ("model", "server"),
    "reliability/test_faults.py::test_missing_model_directory_is_reported_and_recovers_once_it_exists": ("server",),
    "reliability/test_faults.py::test_corrupt_model_bin_is_reported_and_recovers_when_restored": ("server",),
    "reliability/test_faults.py::test_model_load_failure_mid_session_then_back": ("server",),
    "reliability/test_faults.py::test_stdio_client_vanishing_mid_request_ends_the_server_cleanly": ("server",),
    "reliability/test_faults.py::test_tcp_clients_that_vanish_or_send_garbage_leave_the_daemon_serving_others": ("server",),
    "reliability/test_hostile_documents.py::test_completion_after_a_megabyte_line_still_works": ("server",),
    "reliability/test_hostile_transport.py::test_framer_reads_header_variants_in_any_chunking": (),
    "reliability/test_hostile_transport.py::test_framer_survives_framing_errors_and_finds_the_next_message": (),
    "reliability/test_hostile_transport.py::test_framer_skips_an_oversized_body_without_keeping_it": (),
    "reliability/test_hostile_transport.py::test_python_subprocesses_in_the_server_and_tools_run_isolated": (),
    "server/test_no_suggestion.py::test_complete_prints_the_reason": ("server",),
    "editors/test_nvim_plugin.py::test_plugin": ("nvim", "server"),
    "engine/test_openai_backend.py::test_an_unreachable_server_is_a_load_error_shown_to_the_user": ("server",),
    "engine/test_openai_backend.py::test_a_server_failing_mid_session_is_an_error_response_naming_the_url": ("server",),
    "engine/test_openai_backend.py::test_a_server_chosen_by_settings_gets_no_key_and_one_from_the_command_line_does": ("server",),
    "engine/test_openai_backend.py::test_a_malformed_server_url_is_a_settings_warning_and_the_model_is_kept": ("server",),
    "reliability/test_security.py::test_loopback_addresses_are_allowed": (),
    "reliability/test_security.py::test_other_addresses_are_refused_unless_allowed": (),
    "reliability/test_security.py::test_trust_remote_code_is_off_by_default": (),
    "reliability/test_security.py::test_a_checkpoint_with_custom_code_does_not_run_it_by_default": (),
    "reliability/test_security.py::test_no_shell_commands_in_the_server_or_the_models": (),
    "reliability/test_security.py::test_the_shell_check_finds_what_it_looks_for": (),
    "unit/test_speed_mechanisms.py::test_through_the_server_the_next_suggestion_is_served_after_an_accept_and_dropped_after_another_edit": (
        "server",),
    "unit/test_speed_mechanisms.py::test_a_daemon_clamps_a_greedy_session_and_keeps_one_completion_per_session": ("server",),
    "editors/test_vscode_extension.py::test_node_tests_against_the_real_server": ("npm", "server"),
}

# Lines of `pytest -m "not model and not server and not npm and not nvim and not browser and not
# cuda and not embedded" --durations=0 --durations-min=2 -q`: the fast lane and its slow tests,
# measured on the shared 2-core machine (load about 5: figures below one second there scatter
# across runs). Lines from a run of any lanes work alike.
TESTS = Path(__file__).resolve().parent
DURATIONS = TESTS / "durations.txt"
DURATION_LINE = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s+call\s+(\S+)\s*$")
SLOW_S = 2.0
COLLECTED = pytest.StashKey[list[dict[str, Any]]]()


def slow_tests(durations: Iterable[str]) -> set[str]:
    """Node ids whose measured call took at least SLOW_S seconds."""
    slow = set()
    for line in durations:
        match = DURATION_LINE.match(line)
        if match and float(match[1]) >= SLOW_S:
            slow.add(match[2])
    return slow


def lanes_of(module: str, function: str, nodeid: str, fixtures: Iterable[str], slow: set[str]) -> set[str]:
    """The lanes of one test: `fast` alone when it is in no other and its module is listed."""
    lanes = set(TEST_LANES.get(f"{module}::{function}", MODULE_LANES.get(module, ())))
    lanes.update(lane for fixture in fixtures for lane in FIXTURE_LANES.get(fixture, ()))
    if nodeid in slow:
        lanes.add("slow")
    return lanes or ({FAST} if module in MODULE_LANES else set())


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--lanes-report", metavar="FILE", help="write every collected test's lanes and fixtures as JSON")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = slow_tests(DURATIONS.read_text(encoding="utf-8").splitlines()) if DURATIONS.is_file() else set()
    collected = []
    for item in items:
        fixtures = list(getattr(item, "fixturenames", ()))
        module = item.path.relative_to(TESTS).as_posix()
        lanes = sorted(lanes_of(module, getattr(item, "originalname", item.name), item.nodeid, fixtures, slow))
        for lane in lanes:
            item.add_marker(lane)
        collected.append({"nodeid": item.nodeid, "lanes": lanes, "fixtures": fixtures})
    config.stash[COLLECTED] = collected
    if report := config.getoption("--lanes-report"):
        Path(report).write_text(json.dumps(collected), encoding="utf-8")


def starts_server(args: Any) -> bool:
    """Whether a process's arguments start the server (or its CLI) or llama.cpp's server."""
    argv = [str(arg) for arg in args] if isinstance(args, Sequence) and not isinstance(args, str | bytes) else []
    modules = {argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "-m"}
    return bool(modules & {"lsp_server", "llama_cpp.server"}) or (bool(argv) and Path(argv[0]).name == "codet5-lsp")


@pytest.fixture(autouse=True)
def _fast_tests_start_no_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test in the fast lane fails if it starts the server as a process."""
    if request.node.get_closest_marker(FAST) is not None:
        popen_init = subprocess.Popen.__init__

        def guarded(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
            if starts_server(args):
                pytest.fail(f"{request.node.nodeid} is in the fast lane but starts {args!r}: "
                            "give it the server lane in tests/conftest.py (MODULE_LANES or TEST_LANES)")
            popen_init(self, args, *rest, **kwargs)

        monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


@pytest.fixture(scope="session")
def tiny_models() -> TinyModels:
    """Tiny Llama, CodeGen and T5 models (HF + CTranslate2), built once and cached on disk.

    Imported lazily so that test sessions that never use a model do not pay for torch.
    """
    from tests.tiny_models import get_tiny_models

    return get_tiny_models()
