"""Every public name is documented, and help() reads well."""

from __future__ import annotations

import inspect
import pydoc

import pps


def test_every_public_name_and_member_has_a_docstring() -> None:
    missing = []
    assert pps.__doc__
    for name in pps.__all__:
        obj = getattr(pps, name)
        if name == "__version__":
            continue
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if not inspect.isclass(obj) or issubclass(obj, BaseException):
            continue
        for member, value in vars(obj).items():
            if member.startswith("_"):
                continue
            if not (getattr(value, "__doc__", None) or "").strip():
                missing.append(f"{name}.{member}")
    assert missing == []


def test_help_of_scanner_reads_well() -> None:
    text = pydoc.plain(pydoc.render_doc(pps.Scanner))
    assert "Watches folders, finds what changed" in text
    for method in ("index", "run_once", "run_once_async", "serve", "status", "forget"):
        assert f"{method}(" in text
    assert "KeyboardInterrupt" in text


def test_signatures_are_visible() -> None:
    sig = inspect.signature(pps.CloudDrive)
    assert list(sig.parameters)[:2] == ["url", "api_token"]
    assert str(inspect.signature(pps.Scanner.index)) == "(self, /, watch=None, *, progress=None)"


def test_version() -> None:
    assert pps.__version__.count(".") == 2
