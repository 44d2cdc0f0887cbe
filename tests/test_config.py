"""config.yaml: validation names the file and key; ${ENV} secrets; defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_the_shipped_config_is_valid() -> None:
    config = load_config(REPO / "config.yaml", environ={})
    assert config.transports.testchat.enabled
    assert config.database.url.startswith("sqlite://")
    assert [g.code for g in config.groups] == ["riverside", "hillcrest"]
    assert (config.logging.level, config.logging.format) == ("info", "auto")


def test_defaults_without_a_file() -> None:
    config = load_config(None)
    assert config.messaging.quiet_hours == "21:00-08:00"
    assert config.database.url == "sqlite://data/groundwork.sqlite3"
    assert config.transports.whatsapp.pacing.rate_per_second == 80
    assert (config.logging.level, config.logging.format) == ("info", "auto")


def test_logging_level_and_format_are_read_in_any_case(tmp_path: Path) -> None:
    path = write(tmp_path, "logging:\n  level: DEBUG\n  format: Json\n")
    config = load_config(path, environ={})
    assert (config.logging.level, config.logging.format) == ("DEBUG", "Json")


@pytest.mark.parametrize(("text", "message"), [
    ("organisation: {name: x}\n", "organisation: unknown key"),
    ("server: {port: eighty}\n", "server.port: must be a whole number"),
    ("server: {port: 70000}\n", "server.port: must be between 1 and 65535"),
    ("messaging: {quiet_hours: '25:00-08:00'}\n", "messaging.quiet_hours"),
    ("timezone: Mars/Olympus\n", "timezone: 'Mars/Olympus' is not a known time zone"),
    ("admins: [olga]\n", "admins[0]"),
    ("groups: [{code: Bad Code, name: X}]\n", "groups[0].code"),
    ("groups: [{name: X}]\n", "groups[0].code: is required"),
    ("transports: {telegram: {enabled: yes}}\n", "transports.telegram.token: is required"),
    ("transports: {whatsapp: {enabled: true, phone_number_id: '1'}}\n",
     "transports.whatsapp.access_token: is required"),
    ("database: {url: mysql://x}\n", "database.url"),
    ("transports: {testchat: {enabled: 'maybe'}}\n", "transports.testchat.enabled"),
    ("- a list\n", "top level must be a mapping"),
    ("server: [1, 2]\n", "server: must be a mapping"),
    ("a: b: c\n", "not valid YAML"),
    ("logging: {level: verbose}\n", "logging.level: must be one of debug, info, warning"),
    ("logging: {format: xml}\n", "logging.format: must be one of auto, json, text, got 'xml'"),
    ("logging: {colour: true}\n", "logging.colour: unknown key"),
    ("logging: json\n", "logging: must be a mapping"),
    ("workers: {processors: -1}\n", "workers.processors: must be from 0 to 16"),
    ("workers: {processors: 2.5}\n", "workers.processors: must be a whole number"),
])
def test_bad_config_names_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "transports:\n  telegram:\n    enabled: true\n"
                           "    token: '${TG_TOKEN}'\n")
    config = load_config(path, environ={"TG_TOKEN": "123:abc"})
    assert config.transports.telegram.token == "123:abc"


def test_a_missing_environment_variable_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "transports:\n  whatsapp:\n    access_token: '${WA_TOKEN}'\n")
    with pytest.raises(ConfigError, match=r"transports.whatsapp.access_token: environment "
                                          r"variable WA_TOKEN is not set"):
        load_config(path, environ={})


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml", environ={})


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         st.text(max_size=30))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.dictionaries(st.sampled_from(
    ["organization", "database", "server", "transports", "admins", "timezone", "messaging",
     "groups", "security", "moderation", "logging", "extra"]), yaml_values, max_size=5))
def test_config_loader_never_crashes_on_hostile_values(tmp_path: Path, data: dict) -> None:
    import yaml

    path = write(tmp_path, yaml.safe_dump(data))
    try:
        load_config(path, environ={})
    except ConfigError as exc:
        assert str(path) in str(exc)


def test_yaml_aliases_are_refused_before_they_can_expand(tmp_path: Path) -> None:
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, "
              f"*{chr(97 + i)}]" for i in range(8)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="anchors and aliases"):
        load_config(path, environ={})
