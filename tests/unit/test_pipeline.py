"""The completion pipeline: its named stages in order, one token budget, the same result as the server's."""

from __future__ import annotations

import pytest

from inference.completion.options import CompletionOptions
from inference.completion.pipeline import CompletionPipeline, CompletionRequest, DirectWorker
from inference.completion.trace import StageEvent
from inference.completion.typeahead import TypeaheadCache
from inference.engines.model import CodeModel
from inference.engines.stream import JobStopped

ADD = "def add(a, b):\n    return"  # the tiny Llama writes " a + b" here


def _run(model: CodeModel, options: CompletionOptions = CompletionOptions()) -> tuple[str | None, list[StageEvent]]:
    events: list[StageEvent] = []
    request = CompletionRequest("file:///add.py", ADD, 1, len("    return"), "python", options)
    suggestion = CompletionPipeline().complete(request, model, trace=events.append)
    return (suggestion.text if suggestion else None), events


def test_the_stages_run_in_order_and_report_their_outputs(tiny_models):
    model = CodeModel(str(tiny_models.llama_int8), cpu_threads=1)
    text, events = _run(model)
    stages = [e.stage for e in events if not e.stage.startswith("postprocess.")]
    assert stages == ["syntax", "context", "prompt", "generate", "postprocess"]
    assert text == " a + b" == events[-1].output
    steps = [e.stage for e in events if e.stage.startswith("postprocess.")]
    assert steps[:7] == ["postprocess.stop", "postprocess.skip_leading_blank_lines", "postprocess.trim_suffix_overlap",
                         "postprocess.balance_brackets", "postprocess.drop_repetition", "postprocess.fix_indentation",
                         "postprocess.drop_blank"]
    assert all(e.ms >= 0 for e in events)


def test_one_budget_the_context_tokens_reach_the_model(tiny_models):
    model = CodeModel(str(tiny_models.llama_int8), cpu_threads=1)
    _, events = _run(model, CompletionOptions(context_tokens=100))
    prompt = next(e.output for e in events if e.stage == "prompt")
    assert prompt.context_tokens == 100
    _, events = _run(model, CompletionOptions(context_tokens=16384))
    prompt = next(e.output for e in events if e.stage == "prompt")
    assert prompt.context_tokens == model.preset.max_context_tokens  # the model's window, if smaller, wins


async def test_the_typed_ahead_cache_is_the_first_stage(tiny_models):
    model = CodeModel(str(tiny_models.llama_int8), cpu_threads=1)
    pipeline = CompletionPipeline(TypeaheadCache())
    request = CompletionRequest("file:///add.py", ADD, 1, len("    return"), "python")
    first = await pipeline.suggest(request, DirectWorker(model))
    assert first is not None and not first.from_cache
    events: list[StageEvent] = []
    typed = CompletionRequest("file:///add.py", ADD + " a", 1, len("    return a"), "python")
    again = await pipeline.suggest(typed, DirectWorker(model), trace=events.append)
    assert again is not None and again.from_cache and again.text == first.text[2:]
    assert [e.stage for e in events] == ["cache"]


def test_other_open_files_go_in_front_of_the_prompt_when_the_model_separates_files(tiny_models):
    from dataclasses import replace

    from inference.completion.other_files import OtherFile

    model = CodeModel(str(tiny_models.llama_int8), cpu_threads=1)
    maths = OtherFile("file:///lib/maths.py", "def add(a, b):\n    return a + b\n\n\ndef greet(name):\n    return name\n")
    text = "import maths\nresult = maths."
    request = CompletionRequest("file:///app/main.py", text, 1, len("result = maths."), "python", other_files=(maths,))

    def prompt_text() -> str:
        events: list[StageEvent] = []
        CompletionPipeline().complete(request, model, trace=events.append)
        prompt = next(e.output for e in events if e.stage == "prompt")
        return model.tokenizer.decode(prompt.model_input.ids)

    assert "def add" not in prompt_text()  # the tiny Llama's preset has no file separator
    model.preset = replace(model.preset, file_separator="#file ")
    laid_out = "#file lib/maths.py\ndef add(a, b):\ndef greet(name):\n#file app/main.py\nimport maths\nresult = maths"
    assert prompt_text() == laid_out  # the outline of the imported module, then this file (its "." healed off)


async def test_a_prewarm_runs_the_request_s_context_and_prompt_stages_then_asks_the_model_to_prefill(tiny_models):
    model = CodeModel(str(tiny_models.llama_int8), cpu_threads=1)
    request = CompletionRequest("file:///add.py", ADD, 1, len("    return"), "python")
    events: list[StageEvent] = []
    assert await CompletionPipeline().prewarm(request, DirectWorker(model), trace=events.append) is None  # CTranslate2: no prefix cache to fill
    assert [e.stage for e in events] == ["syntax", "context", "prompt", "prefill"]
    with pytest.raises(JobStopped):
        await CompletionPipeline().prewarm(request, DirectWorker(model), stale=lambda: True)
