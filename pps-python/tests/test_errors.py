"""The exception hierarchy: one root, built-ins where they fit, every kind mapped."""

from __future__ import annotations

import errno

import pytest

import pps
from pps import _testing

HIERARCHY = [
    ("config invalid", pps.ConfigError, ValueError),
    ("unauthenticated", pps.AuthError, None),
    ("permission denied", pps.PermissionDeniedError, PermissionError),
    ("not found", pps.NotFoundError, FileNotFoundError),
    ("throttled", pps.ThrottledError, None),
    ("unavailable", pps.UnavailableError, ConnectionError),
    ("outage", pps.OutageError, None),
    ("rejected", pps.TargetError, None),
    ("corrupt", pps.StoreError, None),
    ("unsupported", pps.UnsupportedError, None),
    ("unexpected", pps.PpsError, None),
]


@pytest.mark.parametrize(("kind", "cls", "builtin"), HIERARCHY)
def test_every_kind_maps_to_its_class(
    kind: str, cls: type[pps.PpsError], builtin: type[BaseException] | None
) -> None:
    err = _testing.error(kind, "boom", path="/115/TV")
    assert type(err) is cls
    assert isinstance(err, pps.PpsError)
    if builtin is not None:
        assert isinstance(err, builtin)
    assert err.kind == kind
    assert err.context == {"path": "/115/TV"}
    assert "boom" in str(err)
    assert "/115/TV" in str(err)
    with pytest.raises(cls):
        raise err


def test_temporary_follows_the_kind_unless_told() -> None:
    assert _testing.error("throttled", "x").temporary is True
    assert _testing.error("not found", "x").temporary is False
    assert _testing.error("not found", "x", temporary=True).temporary is True
    # Permanence is an attribute for code, never noise in the message users read.
    permanent = _testing.error("unavailable", "x", temporary=False)
    assert permanent.temporary is False
    assert "(permanent)" not in str(permanent)


def test_os_errors_carry_an_errno() -> None:
    missing = _testing.error("not found", "x")
    refused = _testing.error("permission denied", "x")
    assert isinstance(missing, OSError) and missing.errno == errno.ENOENT
    assert isinstance(refused, OSError) and refused.errno == errno.EACCES


def test_classes_are_exported_from_pps_with_docs() -> None:
    for _, cls, _ in HIERARCHY:
        assert cls.__module__ == "pps"
        assert getattr(pps, cls.__name__) is cls
        assert cls.__doc__
        assert issubclass(cls, pps.PpsError)


def test_user_raised_errors_have_defaults() -> None:
    err = pps.PpsError("mine")
    assert err.kind == "unexpected"
    assert err.temporary is False
    assert dict(err.context) == {}


def test_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(pps.ConfigError):
        _testing.error("no such kind", "x")
