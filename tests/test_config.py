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
