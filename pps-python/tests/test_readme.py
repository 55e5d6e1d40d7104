"""The README's Python example runs as written (against the mock cd2 and a local watch)."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

from pps import _testing

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## From Python") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README has a Python example"
    return match.group(1)


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    code = readme_example()
    media = tmp_path / "media"
    (media / "Show").mkdir(parents=True)
    (media / "Show" / "e1.mkv").write_text("x")
    (tmp_path / "pps.toml").write_text(
        f"""
[sources.disk]
kind = "local"

[targets.print]
kind = "stdout"

[[watch]]
source = "disk"
path = "{media}"
"""
    )
    with _testing.MockCloudDrive({"/115/电影/Film (2024)/film.mkv": 7}, api_token="...") as cd2:
        # The one liberty: the example's cd2 address is the mock's.
        code = code.replace("http://127.0.0.1:19798", cd2.url)
        out = io.StringIO()
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, "README.md", "exec"), {})
        finally:
            os.chdir(cwd)
    printed = out.getvalue()
    assert "Film (2024) True 0" in printed, printed


def test_reports_carry_the_changes_and_the_scans_sent(tmp_path: Path) -> None:
    import pps

    media = tmp_path / "media"
    (media / "Show" / "S01").mkdir(parents=True)
    (tmp_path / "pps.toml").write_text(
        f"""
[store]
path = "pps.db"

[sources.disk]
kind = "local"

[targets.print]
kind = "stdout"
path_mapping = [{{ from = "{media}", to = "/mnt/media" }}]

[[watch]]
source = "disk"
path = "{media}"
"""
    )
    scanner = pps.Scanner(pps.Config.load(tmp_path / "pps.toml"))
    scanner.index()
    (media / "Show" / "S01" / "e1.mkv").write_text("x")
    report = scanner.run_once(full=True)
    assert [(c.update, c.kind, c.path) for c in report.changes] == [
        ("created", "file", f"{media}/Show/S01/e1.mkv")
    ]
    (delivery,) = report.deliveries
    assert delivery.target == "print"
    assert [(s.update, s.kind, s.path) for s in delivery.scans] == [
        ("created", "file", "/mnt/media/Show/S01/e1.mkv")
    ]
    assert "changes=[Change(" in repr(report)
