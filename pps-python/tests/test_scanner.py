"""pps.Scanner over a local tree, a SQLite store in a temp file and a fake Plex."""

from __future__ import annotations

import _thread
import asyncio
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import pps

from .conftest import PLEX_TOKEN, FakeMediaServer, Request, scanner_toml


def make(media: Path, tmp_path: Path, server: FakeMediaServer) -> pps.Scanner:
    text = scanner_toml(media, tmp_path / "state.db", server.url)
    return pps.Scanner(pps.Config.from_toml(text))


def refreshed(path: str) -> Callable[[list[Request]], bool]:
    def check(requests: list[Request]) -> bool:
        return any(
            r.path.endswith("/refresh") and r.query.get("path") == [path] for r in requests
        )

    return check


def test_index_records_a_baseline_and_scans_nothing(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    scanner = make(media, tmp_path, media_server)
    assert scanner.watches == [f"disk:{media}"]
    seen: list[tuple[str, int, int]] = []
    (report,) = scanner.index(progress=lambda w, listed, waiting: seen.append((w, listed, waiting)))
    assert report.baseline is True
    assert report.watch == f"disk:{media}"
    assert report.folders_listed == 6  # media, TV, Show, S01, Movies, Film
    assert report.changes == [] and report.errors == []
    assert seen and seen[-1][0] == f"disk:{media}"
    assert (tmp_path / "state.db").exists()
    assert media_server.refreshes() == []


def test_run_once_reports_changes_and_delivers_mapped_folder_scans(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    scanner = make(media, tmp_path, media_server)
    scanner.index()
    (media / "TV" / "Show" / "S01" / "e2.mkv").write_bytes(b"z")
    (media / "Movies" / "New Film").mkdir()
    (media / "Movies" / "Film" / "film.mkv").unlink()

    report = scanner.run_once(full=True)
    assert report.ok is True
    assert report.errors == []
    got = {(c.path, c.update, c.kind) for c in report.changes}
    assert got == {
        (f"{media}/TV/Show/S01/e2.mkv", "created", "file"),
        (f"{media}/Movies/New Film", "created", "dir"),
        (f"{media}/Movies/Film/film.mkv", "deleted", "file"),
    }
    (pass_,) = report.passes
    assert pass_.baseline is False and pass_.scans_queued == 3
    (delivery,) = report.deliveries
    assert delivery.target == "plex" and delivery.parked == 0 and not delivery.remaining
    paths = sorted(r.query["path"][0] for r in media_server.refreshes())
    # Plex scans folders: a new or deleted file's folder, a new folder itself.
    assert paths == [
        "/mnt/media/Movies/Film",
        "/mnt/media/Movies/New Film",
        "/mnt/media/TV/Show/S01",
    ]
    assert all(r.headers["x-plex-token"] == PLEX_TOKEN for r in media_server.refreshes())

    again = scanner.run_once(full=True)
    assert again.changes == [] and again.ok


def test_run_once_async(media: Path, tmp_path: Path, media_server: FakeMediaServer) -> None:
    scanner = make(media, tmp_path, media_server)

    async def go() -> pps.OnceReport:
        await scanner.index_async()
        (media / "TV" / "Show" / "S02").mkdir()
        return await scanner.run_once_async(full=True)

    report = asyncio.run(go())
    assert [(c.path, c.update, c.is_dir) for c in report.changes] == [
        (f"{media}/TV/Show/S02", "created", True)
    ]
    media_server.wait_for(refreshed("/mnt/media/TV/Show/S02"), timeout=1)


def test_status_and_forget(media: Path, tmp_path: Path, media_server: FakeMediaServer) -> None:
    scanner = make(media, tmp_path, media_server)
    (before,) = scanner.status()["watches"]
    assert before["watch"] == f"disk:{media}" and before["path"] == str(media)
    assert (before["folders"], before["baseline"]) == (0, False)
    scanner.index()
    status = scanner.status()
    assert status["watches"][0]["folders"] == 6
    assert status["targets"] == [
        {
            "target": "plex",
            "pending": 0,
            "parked": 0,
            "failing_scans": [],
            "parked_scans": [],
            "confirming": 0,
            "stuck": 0,
            "stuck_scans": [],
            "indexed_last_day": None,
        }
    ]
    assert scanner.forget(f"disk:{media}/TV") == 3
    assert asyncio.run(scanner.status_async())["watches"][0]["folders"] == 3
    assert asyncio.run(scanner.forget_async(str(media / "Movies"))) == 2
    with pytest.raises(pps.ConfigError):
        scanner.forget("/not/in/any/watch")


def test_a_path_in_no_library_is_parked_with_its_reason(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    scanner = make(media, tmp_path, media_server)
    scanner.index()
    (media / "Music").mkdir()  # mapped to /mnt/media/Music: in no Plex section
    report = scanner.run_once(full=True)
    assert report.ok is False
    (delivery,) = report.deliveries
    assert delivery.parked == 1
    (target,) = scanner.status()["targets"]
    assert target["parked"] == 1
    assert target["parked_scans"][0]["path"] == f"{media}/Music"


def test_history_tells_changes_and_deliveries_newest_first(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    scanner = make(media, tmp_path, media_server)
    assert scanner.history() == []
    scanner.index()
    assert scanner.history() == [], "a baseline is no change"
    (media / "TV" / "Show" / "S01" / "e2.mkv").write_bytes(b"z")
    (media / "Music").mkdir()  # in no Plex section: parked
    scanner.run_once(full=True)
    lines = scanner.history()
    events = sorted((h["event"], h["path"], h["target"]) for h in lines)
    assert events == [
        ("change", f"{media}/Music", None),
        ("change", f"{media}/TV/Show/S01/e2.mkv", None),
        ("parked", f"{media}/Music", "plex"),
        ("sent", f"{media}/TV/Show/S01/e2.mkv", "plex"),
    ]
    assert lines == sorted(lines, key=lambda h: -h["id"]), "newest first"
    sent = next(h for h in lines if h["event"] == "sent")
    assert sent["detail"] == "/mnt/media/TV/Show/S01", "the path as Plex was sent it"
    assert sent["source"] == "disk" and sent["watch"] == str(media)
    # A full pass found them; only a change line has an origin.
    assert {h["origin"] for h in lines if h["event"] == "change"} == {"walk"}
    assert sent["origin"] is None
    parked = next(h for h in lines if h["event"] == "parked")
    assert "no library" in parked["detail"]
    assert [h["event"] for h in scanner.history(events=["sent"])] == ["sent"]
    assert [h["event"] for h in scanner.history(target="plex", path="Music")] == ["parked"]
    assert len(scanner.history(limit=1)) == 1
    page = scanner.history(before=lines[1]["id"])
    assert [h["id"] for h in page] == [h["id"] for h in lines[2:]]
    assert len(scanner.history(since=3600)) == 4
    with pytest.raises(pps.ConfigError, match="no event"):
        scanner.history(events=["nope"])
    with pytest.raises(pps.ConfigError, match="since"):
        scanner.history(since=-1)


def test_an_emptied_root_is_an_outage_not_a_mass_deletion(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    scanner = make(media, tmp_path, media_server)
    scanner.index()
    shutil.rmtree(media / "TV")
    shutil.rmtree(media / "Movies")
    report = scanner.run_once(full=True)
    assert report.ok is False and report.changes == [] and report.passes == []
    (err,) = report.errors
    assert isinstance(err, pps.OutageError)
    assert err.context["watch"] == f"disk:{media}"
    assert media_server.refreshes() == []


def test_a_store_that_is_not_sqlite_is_a_store_error(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(pps.StoreError) as info:
        make(media, tmp_path, media_server)
    assert "state.db" in str(info.value)


def test_scanner_takes_a_config_path(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    f = tmp_path / "pps.toml"
    f.write_text(scanner_toml(media, tmp_path / "state.db", media_server.url))
    scanner = pps.Scanner(f)
    assert scanner.config.file == f
    assert PLEX_TOKEN not in repr(scanner) and PLEX_TOKEN not in repr(scanner.config)
    with pytest.raises(pps.ConfigError):
        scanner.index("disk:/no/such/watch")


def test_serve_async_scans_changes_until_cancelled(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    scanner = make(media, tmp_path, media_server)
    scanner.index()

    async def go() -> None:
        service = asyncio.create_task(scanner.serve_async())
        (media / "TV" / "Show" / "S03").mkdir()
        await asyncio.to_thread(media_server.wait_for, refreshed("/mnt/media/TV/Show/S03"))
        assert not service.done()
        service.cancel()
        with pytest.raises(asyncio.CancelledError):
            await service

    asyncio.run(go())
    # The store stayed consistent: the change is recorded, nothing is pending.
    assert scanner.run_once(full=True).changes == []


def test_serve_returns_after_its_duration(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    scanner = make(media, tmp_path, media_server)
    scanner.serve(duration=0.2)
    # Its first pass recorded the baseline.
    assert scanner.status()["watches"][0]["baseline"] is True
    with pytest.raises(pps.ConfigError):
        scanner.serve(duration=-1)


def test_ctrl_c_stops_serve_cleanly_and_raises_keyboard_interrupt(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    scanner = make(media, tmp_path, media_server)
    scanner.index()

    def change_then_interrupt() -> None:
        (media / "Movies" / "Late").mkdir()
        media_server.wait_for(refreshed("/mnt/media/Movies/Late"))
        _thread.interrupt_main()

    helper = threading.Thread(target=change_then_interrupt)
    helper.start()
    with pytest.raises(KeyboardInterrupt):
        scanner.serve()
    helper.join(timeout=10)
    assert not helper.is_alive()


def test_confirm_tells_what_plex_indexed_in_history_and_status(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    scanner = make(media, tmp_path, media_server)
    scanner.index()
    (media / "TV" / "Show" / "S01" / "e2.mkv").write_bytes(b"z")
    (media / "TV" / "Show" / "S01" / "e2.srt").write_bytes(b"s")
    report = scanner.run_once(full=True)
    (delivery,) = report.deliveries
    assert delivery.confirming == 1, "the episode is checked; a subtitle never is"
    (target,) = scanner.status()["targets"]
    assert target["confirming"] == 1

    # Not indexed yet: nothing settles.
    (r,) = scanner.confirm(all=True)
    assert r["target"] == "plex"
    assert (r["checked"], r["indexed"], r["stuck"]) == (1, 0, 0)
    lookups = [q for q in media_server.requests if q.path == "/library/sections/1/all"]
    assert lookups and lookups[-1].headers["x-plex-token"] == PLEX_TOKEN
    assert lookups[-1].query["type"] == ["4"], "episodes of a show section"

    media_server.indexed.append("/mnt/media/TV/Show/S01/e2.mkv")
    (r,) = asyncio.run(scanner.confirm_async(all=True))
    assert (r["checked"], r["indexed"]) == (1, 1)
    (line,) = scanner.history(events=["indexed"])
    assert line["path"] == f"{media}/TV/Show/S01/e2.mkv"
    assert line["detail"] == "Show S01E01 (id 100)"
    assert isinstance(line["took_s"], int) and line["took_s"] >= 0
    (target,) = scanner.status()["targets"]
    assert target["confirming"] == 0 and target["stuck"] == 0
    assert target["indexed_last_day"]["count"] == 1
    assert scanner.confirm() == [
        {"target": "plex", "checked": 0, "indexed": 0, "removed": 0, "stuck": 0,
         "remedied": 0, "failure": None}
    ]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_on_event_hands_serve_what_happens(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    scanner = make(media, tmp_path, media_server)
    scanner.index()
    seen: list[dict[str, object]] = []
    failing_calls: list[int] = []

    def broken(event: dict[str, object]) -> None:
        failing_calls.append(1)
        raise ValueError("a bug in the user's callback")

    scanner.on_event(seen.append)
    scanner.on_event(broken)
    done = threading.Event()

    def write_later() -> None:
        time.sleep(1.0)
        (media / "TV" / "Show" / "e9.mkv").write_bytes(b"z")
        done.set()

    threading.Thread(target=write_later, daemon=True).start()
    scanner.serve(duration=8)
    assert done.is_set()
    events = [(e["event"], e["path"]) for e in seen]
    assert ("change", f"{media}/TV/Show/e9.mkv") in events, events
    assert ("sent", f"{media}/TV/Show/e9.mkv") in events, events
    assert failing_calls, "a failing callback is called and does not stop the service"


def test_ls_shows_live_entries_beside_the_stored_state(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    scanner = make(media, tmp_path, media_server)
    scanner.index()
    (media / "TV" / "Show" / "S01" / "e2.mkv").write_bytes(b"z")
    report = scanner.ls(f"disk:{media}/TV/Show/S01")
    assert report["stored"] is True and report["changes"] == 1
    states = {r["entry"]["name"]: r["state"] for r in report["rows"]}
    assert states == {"e1.mkv": "same", "e2.mkv": "new"}
    again = asyncio.run(scanner.ls_async(str(media / "TV" / "Show" / "S01")))
    assert again["changes"] == 1
    # ls changes nothing: a pass still finds the new file.
    assert [c.path for c in scanner.run_once(full=True).changes] == [
        f"{media}/TV/Show/S01/e2.mkv"
    ]
    with pytest.raises(pps.ConfigError):
        scanner.ls("/not/in/any/watch")


def test_check_reaches_sources_and_targets_and_says_where_scans_land(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    scanner = make(media, tmp_path, media_server)
    report = scanner.check()
    assert report["ok"] is True, report
    assert report["sources"] == [{"name": "disk", "what": "local", "state": "local"}]
    (target,) = report["targets"]
    assert target["name"] == "plex" and "TV" in [lib["name"] for lib in target["libraries"]]
    (watch,) = report["watches"]
    assert watch["root"] == "listed" and watch["entries"] == 2
    (landing,) = watch["targets"]
    assert landing["mapped"] == "/mnt/media" and landing["landing"] == "libraries"
    media_server.status = 401
    report = asyncio.run(scanner.check_async())
    assert report["ok"] is False
    assert "error" in report["targets"][0]
    assert PLEX_TOKEN not in str(report)


def test_walk_measures_a_tree_and_stores_nothing(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    scanner = make(media, tmp_path, media_server)
    report = scanner.walk(f"local:{media}")
    assert (report["folders"], report["files"], report["bytes"]) == (6, 2, 30)
    assert asyncio.run(scanner.walk_async(f"local:{media}", max_depth=1))["folders"] == 3
    assert scanner.status()["watches"][0]["folders"] == 0
    with pytest.raises(pps.ConfigError):
        scanner.walk("no-colon")


def test_a_second_writer_of_the_store_is_refused_naming_the_first(
    media: Path, tmp_path: Path, media_server: FakeMediaServer
) -> None:
    first = make(media, tmp_path, media_server)
    with pytest.raises(pps.UnavailableError) as refused:
        make(media, tmp_path, media_server)
    assert "is in use by" in str(refused.value) and "a Python pps.Scanner" in str(refused.value)
    del first
    import gc

    gc.collect()
    make(media, tmp_path, media_server)  # the lock went with the first scanner
