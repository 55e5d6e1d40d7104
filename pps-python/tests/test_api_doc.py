"""docs/python-api.md is the stubs' reference, up to date, and names every public
class, member and exception of the built module."""

from __future__ import annotations

import inspect
from pathlib import Path

import pps

from .api_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def test_the_reference_is_what_the_stubs_render() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/python-api.md is out of date: from pps-python/, run "
        "python3 -m tests.api_doc > ../docs/python-api.md"
    )


def test_the_reference_names_every_public_name_and_member() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = []
    for name in pps.__all__:
        if name == "__version__":
            continue
        if f"### `{name}`" not in text:
            missing.append(name)
        obj = getattr(pps, name)
        if not inspect.isclass(obj) or issubclass(obj, BaseException):
            continue
        for member in vars(obj):
            if not member.startswith("_") and f"{name}.{member}" not in text:
                missing.append(f"{name}.{member}")
    assert missing == []
