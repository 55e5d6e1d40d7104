"""pps.PathMapping on its own: the same rules as a target's path_mapping."""

from __future__ import annotations

import pytest

import pps


def test_maps_under_a_rule_and_returns_none_outside() -> None:
    m = pps.PathMapping([{"from": "/115", "to": "/mnt/115"}])
    assert m.map("/115") == "/mnt/115"
    assert m.map("/115/TV/Show") == "/mnt/115/TV/Show"
    assert m.map("/other/TV") is None


def test_matches_whole_components_only() -> None:
    m = pps.PathMapping([{"from": "/115/Public", "to": "/p"}])
    assert m.map("/115/PublicX/a") is None
    assert m.map("/115/Public/a") == "/p/a"


def test_longest_from_wins_whatever_the_order() -> None:
    m = pps.PathMapping(
        [{"from": "/115", "to": "/a"}, {"from": "/115/TV", "to": "/b"}]
    )
    assert m.map("/115/TV/Show") == "/b/Show"
    assert m.map("/115/Movies") == "/a/Movies"


def test_windows_targets_get_backslashes() -> None:
    m = pps.PathMapping([("/115/TV", "D:\\Media\\TV")])
    assert m.map("/115/TV/Show/S01") == "D:\\Media\\TV\\Show\\S01"


def test_no_rules_maps_every_path_to_itself() -> None:
    m = pps.PathMapping()
    assert len(m) == 0
    assert m.map("/x/y") == "/x/y"


@pytest.mark.parametrize(
    "rules",
    [
        [{"from": "relative", "to": "/x"}],
        [{"from": "/a", "to": ""}],
        [{"from": "/a"}],
        [{"from": "/a", "to": "/b", "extra": "/c"}],
        [{"frm": "/a", "to": "/b"}],
        ["not a rule"],
    ],
)
def test_bad_rules_raise_config_error(rules: list[object]) -> None:
    with pytest.raises(pps.ConfigError) as info:
        pps.PathMapping(rules)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert info.value.kind == "config invalid"


def test_rules_and_repr_round_trip() -> None:
    rules = [{"from": "/115", "to": "/mnt/115"}]
    m = pps.PathMapping(rules)
    assert m.rules == rules
    assert repr(m) == "PathMapping([{'from': '/115', 'to': '/mnt/115'}])"
