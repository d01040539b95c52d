"""Server settings: one typed object with defaults, validated field by field.

Invalid values never stop the server: each one is reported and replaced by its default.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from inference.completion.options import COMPLETION_MODES, CompletionOptions
from inference.engines.openai_backend import RemoteSpecError, is_remote_spec, parse_remote_spec
from inference.models.resolve import RUNTIMES

DEVICES = ("auto", "cpu", "cuda")
COMPUTE_TYPES = ("auto", "int8", "int4", "int8_float16", "int8_bfloat16", "int8_float32", "float16", "bfloat16", "float32")


@dataclass(frozen=True)
class Settings:
    """Everything a user can set, with the defaults a fresh install uses."""

    model: str = "default"
    device: str = "auto"
    compute_type: str = "auto"
    runtime: str = "auto"  # auto: ONNX Runtime for the embedded models on CPU, else CTranslate2
    threads: int = 0
    context_tokens: int = 1024
    max_new_tokens: int = 48
    completion_mode: str = "auto"
    enabled: bool = True
    disabled_languages: tuple[str, ...] = ()
    local_files_only: bool = False
    trust_remote_code: bool = False
    max_cached_prompts: int = 2
    draft_tokens: int = 2  # ONNX Runtime: ids guessed ahead by prompt lookup and checked in the same pass (0: none)
    summary_model: str = ""  # empty: summarize with the completion model if it can
    debounce_ms: int = 50  # an automatic inline request waits this long for a newer one before it generates (bench/RESULTS.md)
    # A completion's generation stops this long after its job starts (0: no budget). Off by default: at 800 ms the
    # HumanEval server path fell from 52.5% to 35.7% pass@1 on this 2-core machine (bench/RESULTS.md).
    time_budget_ms: int = 0
    speculative: bool = True  # after a suggestion, compute the next one (as if accepted) while idle
    prewarm: bool = True  # while the editor is idle, compute the prompt at the user's cursor into the prompt cache
    other_files: bool = True  # completions take context from the chunks of other open documents that match
    summary_idle_unload_s: int = 300  # a summary model unused this long is unloaded until the next summary (0: never)
    prompt_cache_idle_release_s: int = 300  # the completion model's cached prompts are freed after this long without jobs (0: never)

    def model_key(self) -> tuple:
        """The settings that require reloading the model when they change."""
        return (self.model, self.device, self.compute_type, self.runtime, self.threads, self.local_files_only,
                self.trust_remote_code, self.max_cached_prompts, self.draft_tokens)

    def host_key(self) -> tuple:
        """The settings of the model host, which every session of a daemon shares (so a daemon
        takes them from its command line)."""
        return (self.model_key(), self.summary_model, self.summary_idle_unload_s, self.prompt_cache_idle_release_s)

    def language_enabled(self, language_id: str | None) -> bool:
        return self.enabled and (language_id or "") not in self.disabled_languages

    def completion_options(self) -> CompletionOptions:
        """The settings the completion pipeline reads."""
        return CompletionOptions(self.context_tokens, self.max_new_tokens, self.completion_mode,
                                 self.debounce_ms, self.time_budget_ms)


@dataclass(frozen=True)
class SessionLimits:
    """What one editor of a shared daemon may ask for, so that no session starves the others.

    A larger value a client sets is lowered to the limit (and the client is told); a time budget
    of 0 (none, the default) becomes the limit without a message.
    """

    max_new_tokens: int = 128
    context_tokens: int = 2048
    time_budget_ms: int = 3000

    def clamp(self, settings: Settings) -> tuple[Settings, list[str]]:
        """`settings` within the limits, and one message per value lowered."""
        changes: dict[str, int] = {}
        for name in ("max_new_tokens", "context_tokens", "time_budget_ms"):
            value, limit = getattr(settings, name), getattr(self, name)
            if value > limit or (name == "time_budget_ms" and value == 0):
                changes[name] = limit
        by_field = {field: key for key, (field, _) in _FIELDS.items()}
        default_budget = settings.time_budget_ms == Settings.time_budget_ms
        messages = [f"codet5.{by_field[name]} is at most {limit} on this shared daemon; using {limit}"
                    for name, limit in changes.items() if not (name == "time_budget_ms" and default_budget)]
        return replace(settings, **changes), messages


# JSON (camelCase) key -> (field name, check returning an error message or None)
def _int_range(lo: int, hi: int):
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"must be an integer from {lo} to {hi}"
        return None
    return check


def _choice(options: tuple[str, ...]):
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {', '.join(options)}"
    return check


def _is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _is_str(v: Any) -> str | None:
    return None if isinstance(v, str) else "must be a string"


def _is_model_spec(v: Any) -> str | None:
    """A string; one naming a server (`openai:...`) must be a well-formed spec."""
    if not isinstance(v, str):
        return "must be a string"
    if is_remote_spec(v):
        try:
            parse_remote_spec(v)
        except RemoteSpecError as exc:
            return f"is not a valid server: {exc}"
    return None


def _is_str_list(v: Any) -> str | None:
    return None if isinstance(v, list) and all(isinstance(x, str) for x in v) else "must be a list of strings"


_FIELDS: dict[str, tuple[str, Any]] = {
    "model": ("model", _is_model_spec),
    "device": ("device", _choice(DEVICES)),
    "computeType": ("compute_type", _choice(COMPUTE_TYPES)),
    "runtime": ("runtime", _choice(RUNTIMES)),
    "threads": ("threads", _int_range(0, 64)),
    "contextTokens": ("context_tokens", _int_range(64, 16384)),
    "maxNewTokens": ("max_new_tokens", _int_range(1, 512)),
    "completionMode": ("completion_mode", _choice(COMPLETION_MODES)),
    "enabled": ("enabled", _is_bool),
    "disabledLanguages": ("disabled_languages", _is_str_list),
    "localFilesOnly": ("local_files_only", _is_bool),
    "trustRemoteCode": ("trust_remote_code", _is_bool),
    "maxCachedPrompts": ("max_cached_prompts", _int_range(1, 16)),
    "draftTokens": ("draft_tokens", _int_range(0, 8)),
    "summaryModel": ("summary_model", _is_str),
    "debounceMs": ("debounce_ms", _int_range(0, 2000)),
    "timeBudgetMs": ("time_budget_ms", _int_range(0, 60000)),
    "speculative": ("speculative", _is_bool),
    "prewarm": ("prewarm", _is_bool),
    "otherFiles": ("other_files", _is_bool),
    "summaryIdleUnloadS": ("summary_idle_unload_s", _int_range(0, 86400)),
    "promptCacheIdleReleaseS": ("prompt_cache_idle_release_s", _int_range(0, 86400)),
}


def parse_settings(raw: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Settings from a client's JSON object (initializationOptions or the `codet5` section).

    Accepts the object itself or one wrapped as {"codet5": {...}}. Returns the settings and one
    message per rejected value; rejected and missing values keep `base`'s (default: Settings()).
    """
    settings = base or Settings()
    if raw is None:
        return settings, []
    if isinstance(raw, dict) and isinstance(raw.get("codet5"), dict):
        raw = raw["codet5"]
    if not isinstance(raw, dict):
        return settings, [f"codet5 settings must be a JSON object, not {type(raw).__name__}; using defaults"]
    errors: list[str] = []
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _FIELDS:
            errors.append(f"unknown setting codet5.{key} (ignored)")
            continue
        name, check = _FIELDS[key]
        problem = check(value)
        if problem:
            default = getattr(Settings(), name)
            errors.append(f"codet5.{key} {problem}; got {value!r}, using {default!r}")
            continue
        changes[name] = tuple(value) if isinstance(value, list) else value
    return replace(settings, **changes), errors


def settings_to_json(settings: Settings) -> dict[str, Any]:
    """The JSON (camelCase) form of `settings`, e.g. for `codet5/status` or an editor's defaults."""
    by_field = {name: key for key, (name, _) in _FIELDS.items()}
    return {by_field[f.name]: (list(v) if isinstance(v := getattr(settings, f.name), tuple) else v)
            for f in fields(settings) if f.name in by_field}
