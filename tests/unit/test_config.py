import json
import re
from pathlib import Path

from lsp_server.config import Settings, parse_settings, settings_to_json


def test_defaults_when_nothing_is_sent():
    settings, errors = parse_settings(None)
    assert settings == Settings() and errors == []


def test_valid_values_are_applied_from_either_shape():
    flat, errors = parse_settings({"model": "codet5p-220m", "maxNewTokens": 16, "disabledLanguages": ["markdown"]})
    wrapped, _ = parse_settings({"codet5": {"model": "codet5p-220m", "maxNewTokens": 16, "disabledLanguages": ["markdown"]}})
    assert errors == [] and flat == wrapped
    assert flat.model == "codet5p-220m" and flat.max_new_tokens == 16 and flat.disabled_languages == ("markdown",)
    assert not flat.language_enabled("markdown") and flat.language_enabled("python")


def test_each_invalid_value_is_reported_and_replaced_by_its_default():
    settings, errors = parse_settings(
        {"maxNewTokens": 0, "device": "tpu", "enabled": "yes", "threads": True, "contextTokens": 1024, "colour": "red"}
    )
    assert settings.max_new_tokens == Settings().max_new_tokens
    assert settings.device == "auto" and settings.enabled is True and settings.threads == 0
    assert settings.context_tokens == 1024
    joined = "\n".join(errors)
    for key in ("maxNewTokens", "device", "enabled", "threads", "colour"):
        assert key in joined
    assert len(errors) == 5


def test_a_non_object_is_rejected_whole():
    settings, errors = parse_settings(["model"])
    assert settings == Settings() and len(errors) == 1


def test_later_changes_apply_on_top_of_earlier_ones():
    first, _ = parse_settings({"model": "x", "threads": 2})
    second, _ = parse_settings({"threads": 1}, first)
    assert second.model == "x" and second.threads == 1
    assert first.model_key() != second.model_key()


def test_json_round_trip():
    settings, _ = parse_settings({"model": "m", "disabledLanguages": ["a"], "completionMode": "block"})
    again, errors = parse_settings(settings_to_json(settings))
    assert errors == [] and again == settings


# -- the editors list exactly the server's settings ------------------------------------------
REPO = Path(__file__).resolve().parents[2]
SERVER_SETTINGS = set(settings_to_json(Settings()))
VSCODE_ONLY = {"server.path", "server.args", "daemon.address", "daemon.tokenFile", "trace.server"}  # the client's own


def _ts_list(source: str, name: str) -> set[str]:
    body = re.search(rf"export const {name}[^=]*= (?:new Set\()?\[(.*?)\]", source, re.DOTALL).group(1)
    return set(re.findall(r'"(\w+)"', body))


def _lua_table(source: str, name: str) -> str:
    return re.search(rf"^M\.{name} = \{{(.*?)^\}}", source, re.DOTALL | re.MULTILINE).group(1)


def test_vscode_contributes_exactly_the_server_settings_with_its_defaults():
    properties = json.loads((REPO / "editors/vscode/package.json").read_text())["contributes"]["configuration"]["properties"]
    contributed = {key.removeprefix("codet5."): spec for key, spec in properties.items()}
    assert set(contributed) - VSCODE_ONLY == SERVER_SETTINGS
    defaults = settings_to_json(Settings())
    assert {key: contributed[key]["default"] for key in SERVER_SETTINGS} == defaults


def test_vscode_forwards_exactly_the_server_settings():
    source = (REPO / "editors/vscode/src/settings.ts").read_text()
    assert _ts_list(source, "SERVER_SETTINGS") == SERVER_SETTINGS
    assert _ts_list(source, "MODEL_SETTINGS") < SERVER_SETTINGS


def test_neovim_lists_exactly_the_server_settings():
    source = (REPO / "editors/nvim/lua/codet5/config.lua").read_text()
    assert set(re.findall(r'"(\w+)"', _lua_table(source, "server_setting_names"))) == SERVER_SETTINGS
    model_settings = set(re.findall(r"(\w+) = true", _lua_table(source, "model_settings")))
    assert model_settings == _ts_list((REPO / "editors/vscode/src/settings.ts").read_text(), "MODEL_SETTINGS")


def test_the_neovim_readme_lists_the_default_filetypes_of_the_code():
    config = (REPO / "editors/nvim/lua/codet5/config.lua").read_text()
    code = re.findall(r'"(\w+)"', re.search(r"filetypes = \{(.*?)\}", config, re.DOTALL).group(1))
    readme = (REPO / "editors/nvim/README.md").read_text()
    documented = re.findall(r'"(\w+)"', re.search(r"filetypes = \{(.*?)\}", readme, re.DOTALL).group(1))
    assert documented == code
    help_text = " ".join((REPO / "editors/nvim/doc/codet5.txt").read_text().split())
    assert f"Default: {', '.join(code)}." in help_text


def test_the_readmes_agree_with_pyproject_and_each_other():
    """The Python version pyproject requires, and the one npm command (scripts off) everywhere."""
    minimum = re.search(r'requires-python = ">=(3\.\d+)"', (REPO / "pyproject.toml").read_text()).group(1)
    readmes = [REPO / "README.md", REPO / "editors/vscode/README.md", REPO / "editors/nvim/README.md"]
    for readme in readmes:
        text = readme.read_text()
        assert set(re.findall(r"Python (3\.\d+)", text)) <= {minimum}, readme
        assert all(line.startswith("npm ci --ignore-scripts") for line in re.findall(r"npm ci.*", text)), readme
