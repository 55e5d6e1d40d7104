"""pps.Config: loading, validation errors with key and line, secrets kept out."""

from __future__ import annotations

from pathlib import Path

import pytest

import pps

from .conftest import PLEX_TOKEN

GOOD = """
[store]
path = "state.db"

[sources.cd2]
kind = "clouddrive2"
url = "http://127.0.0.1:19798"
api_token = "cd2-sekrit"

[targets.plex]
kind = "plex"
url = "http://127.0.0.1:32400"
path_mapping = [{ from = "/115", to = "/mnt/115" }]

[[watch]]
source = "cd2"
path = "/115/TV"
"""


def test_from_toml_reads_sources_targets_and_watches(tmp_path: Path) -> None:
    cfg = pps.Config.from_toml(
        GOOD,
        path=tmp_path / "pps.toml",
        env={"PPS_TARGETS_PLEX_TOKEN": PLEX_TOKEN},
    )
    assert cfg.sources == ["cd2"]
    assert cfg.targets == ["plex"]
    assert cfg.watches == ["cd2:/115/TV"]
    assert cfg.store == tmp_path / "state.db"
    assert cfg.file == tmp_path / "pps.toml"
    shown = repr(cfg)
    assert "cd2:/115/TV" in shown
    assert "sekrit" not in shown and PLEX_TOKEN not in shown


def test_a_missing_secret_names_the_key_and_its_env_variable() -> None:
    with pytest.raises(pps.ConfigError) as info:
        pps.Config.from_toml(GOOD, env={})
    err = info.value
    assert err.context["key"] == "targets.plex.token"
    assert err.context["line"] == "10"
    assert "PPS_TARGETS_PLEX_TOKEN" in str(err)
    assert isinstance(err, ValueError)


def test_a_syntax_error_names_the_line() -> None:
    with pytest.raises(pps.ConfigError) as info:
        pps.Config.from_toml("[store]\npath = \n")
    assert info.value.context["line"] == "2"


def test_an_invalid_value_names_key_and_line_and_hides_the_token() -> None:
    text = GOOD.replace('url = "http://127.0.0.1:32400"', 'url = "ftp://nas"')
    with pytest.raises(pps.ConfigError) as info:
        pps.Config.from_toml(text, env={"PPS_TARGETS_PLEX_TOKEN": PLEX_TOKEN})
    assert info.value.context["key"] == "targets.plex.url"
    assert PLEX_TOKEN not in str(info.value)
    assert "cd2-sekrit" not in str(info.value)


def test_load_reads_the_file_and_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "pps.toml"
    f.write_text(GOOD)
    monkeypatch.setenv("PPS_TARGETS_PLEX_TOKEN", PLEX_TOKEN)
    cfg = pps.Config.load(f)
    assert cfg.file == f
    assert Path(cfg.store) == tmp_path / "state.db"


def test_load_of_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(pps.ConfigError) as info:
        pps.Config.load(tmp_path / "nope.toml")
    assert info.value.context["file"] == str(tmp_path / "nope.toml")
