"""Sources: the local filesystem on a temp tree, CloudDrive against the mock cd2."""

from __future__ import annotations

import _thread
import asyncio
import datetime
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pps
from pps import _testing

from .conftest import CD2_TOKEN


def by_name(entries: list[pps.Entry]) -> dict[str, pps.Entry]:
    return {e.name: e for e in entries}


def test_local_list_gives_kinds_sizes_and_aware_mtimes(media: Path) -> None:
    src = pps.LocalSource()
    got = by_name(src.list(media / "TV" / "Show" / "S01"))
    assert set(got) == {"e1.mkv"}
    e = got["e1.mkv"]
    assert (e.is_dir, e.kind, e.size) == (False, "file", 10)
    st = os.stat(media / "TV" / "Show" / "S01" / "e1.mkv")
    assert e.mtime_ns == st.st_mtime_ns
    assert e.mtime is not None and e.mtime.tzinfo is not None
    assert e.mtime.utcoffset() == datetime.timedelta(0)
    expected = datetime.datetime.fromtimestamp(
        st.st_mtime_ns // 1000 / 1e6, tz=datetime.timezone.utc
    )
    assert abs(e.mtime - expected) < datetime.timedelta(microseconds=2)
    dirs = by_name(src.list(str(media)))
    assert dirs["TV"].is_dir and dirs["TV"].kind == "dir" and dirs["TV"].size == 0


def test_local_stat_and_equality(media: Path) -> None:
    src = pps.LocalSource()
    one = src.stat(media / "Movies" / "Film" / "film.mkv")
    two = src.stat(str(media / "Movies" / "Film" / "film.mkv"))
    assert one == two and hash(one) == hash(two)
    assert one.name == "film.mkv" and one.size == 20
    assert "film.mkv" in repr(one)


def test_local_missing_path_is_not_found(tmp_path: Path) -> None:
    src = pps.LocalSource()
    with pytest.raises(pps.NotFoundError) as info:
        src.list(tmp_path / "missing")
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.context["path"] == str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        src.stat(tmp_path / "missing")


def test_local_async_twins(media: Path) -> None:
    src = pps.LocalSource()

    async def go() -> tuple[list[pps.Entry], pps.Entry]:
        listing, entry = await asyncio.gather(
            src.list_async(media), src.stat_async(media / "TV")
        )
        return listing, entry

    listing, entry = asyncio.run(go())
    assert sorted(e.name for e in listing) == ["Movies", "TV"]
    assert entry.is_dir

    async def missing() -> None:
        await src.list_async(media / "nope")

    with pytest.raises(pps.NotFoundError):
        asyncio.run(missing())


@pytest.fixture
def cd2() -> Iterator[_testing.MockCloudDrive]:
    tree: dict[str, int | None] = {
        "/115/TV/Show/e1.mkv": 1234,
        "/115/TV/Empty": None,
    }
    with _testing.MockCloudDrive(tree, api_token=CD2_TOKEN, page_size=1) as server:
        yield server


def fast(url: str, **kw: object) -> pps.CloudDrive:
    return pps.CloudDrive(url, max_queries_per_second=1000, burst=10, **kw)  # type: ignore[arg-type]


def test_clouddrive_lists_and_stats_over_grpc(cd2: _testing.MockCloudDrive) -> None:
    cd = fast(cd2.url, api_token=CD2_TOKEN)
    got = by_name(cd.list("/115/TV"))
    assert set(got) == {"Show", "Empty"}
    assert got["Show"].is_dir
    e = cd.stat("/115/TV/Show/e1.mkv")
    assert (e.name, e.is_dir, e.size) == ("e1.mkv", False, 1234)
    assert e.mtime is not None and e.mtime.tzinfo is not None
    assert cd2.calls("GetSubFiles") >= 1
    assert cd2.calls("FindFileByPath") >= 1


def test_clouddrive_async_twins(cd2: _testing.MockCloudDrive) -> None:
    cd = fast(cd2.url, api_token=CD2_TOKEN)

    async def go() -> tuple[list[pps.Entry], pps.Entry]:
        listing = await cd.list_async("/115/TV/Show")
        entry = await cd.stat_async("/115/TV")
        return listing, entry

    listing, entry = asyncio.run(go())
    assert [e.name for e in listing] == ["e1.mkv"]
    assert entry.is_dir


def test_clouddrive_sees_changes_made_on_the_server(cd2: _testing.MockCloudDrive) -> None:
    cd = fast(cd2.url, api_token=CD2_TOKEN)
    cd2.write_file("/115/TV/Show/e2.mkv", 5)
    assert {e.name for e in cd.list("/115/TV/Show")} == {"e1.mkv", "e2.mkv"}
    assert cd2.remove("/115/TV/Show/e1.mkv")
    assert {e.name for e in cd.list("/115/TV/Show", refresh=True)} == {"e2.mkv"}


def test_clouddrive_missing_path_is_not_found(cd2: _testing.MockCloudDrive) -> None:
    cd = fast(cd2.url, api_token=CD2_TOKEN)
    with pytest.raises(pps.NotFoundError) as info:
        cd.stat("/115/nope")
    assert isinstance(info.value, FileNotFoundError)


def test_clouddrive_wrong_token_is_auth_error_without_the_token(
    cd2: _testing.MockCloudDrive,
) -> None:
    cd = fast(cd2.url, api_token="wrong-sekrit-token")
    with pytest.raises(pps.AuthError) as info:
        cd.list("/115/TV")
    assert "wrong-sekrit-token" not in str(info.value)
    assert info.value.temporary is False


def test_clouddrive_throttled_without_retries(cd2: _testing.MockCloudDrive) -> None:
    cd = fast(cd2.url, api_token=CD2_TOKEN, retries=0)
    cd2.throttle_next(1)
    with pytest.raises(pps.ThrottledError) as info:
        cd.list("/115/TV")
    assert info.value.temporary is True
    assert {e.name for e in cd.list("/115/TV")} == {"Show", "Empty"}


def test_clouddrive_retries_a_transient_failure(cd2: _testing.MockCloudDrive) -> None:
    cd = fast(cd2.url, api_token=CD2_TOKEN, retries=0)
    cd2.unavailable_next(1)
    with pytest.raises(pps.UnavailableError) as info:
        cd.list("/115/TV")
    assert isinstance(info.value, ConnectionError)
    retrying = fast(cd2.url, api_token=CD2_TOKEN, retries=2)
    cd2.unavailable_next(1)
    assert {e.name for e in retrying.list("/115/TV")} == {"Show", "Empty"}


def test_clouddrive_unreachable_is_unavailable(closed_port: int) -> None:
    cd = fast(f"http://127.0.0.1:{closed_port}", retries=0, timeout=5)
    with pytest.raises(pps.UnavailableError):
        cd.list("/115")


def test_clouddrive_repr_and_url_hide_credentials(cd2: _testing.MockCloudDrive) -> None:
    port = cd2.url.rsplit(":", 1)[1]
    cd = pps.CloudDrive(
        f"http://bob:pw-sekrit@127.0.0.1:{port}/?token=q-sekrit",
        username="bob",
        password="pw-sekrit",
    )
    shown = repr(cd) + cd.url
    assert "sekrit" not in shown
    assert f"127.0.0.1:{port}" in shown
    tok = pps.CloudDrive(cd2.url, api_token=CD2_TOKEN)
    assert CD2_TOKEN not in repr(tok)


@pytest.mark.parametrize(
    "kw",
    [
        {"api_token": "t", "username": "u", "password": "p"},
        {"username": "u"},
        {"password": "p"},
        {"api_token": ""},
        {"max_queries_per_second": 0.0},
        {"timeout": -1.0},
    ],
)
def test_clouddrive_bad_settings_are_config_errors(kw: dict[str, object]) -> None:
    with pytest.raises(pps.ConfigError):
        pps.CloudDrive("http://127.0.0.1:1", **kw)  # type: ignore[arg-type]


def test_clouddrive_url_must_be_http() -> None:
    with pytest.raises(pps.ConfigError) as info:
        pps.CloudDrive("ftp://x")
    assert info.value.context["key"] == "url"


def test_ctrl_c_interrupts_a_long_call(cd2: _testing.MockCloudDrive) -> None:
    # A throttled answer makes the source back off for seconds before retrying; Ctrl-C
    # must not wait for that.
    cd = fast(cd2.url, api_token=CD2_TOKEN, retries=4)
    cd2.throttle_next(1)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            cd.list("/115/TV")
    finally:
        timer.cancel()
    assert time.monotonic() - started < 3


def test_async_methods_are_coroutines_started_when_awaited(media: Path) -> None:
    src = pps.LocalSource()
    # Made outside any loop, run by asyncio.run: the work starts only when awaited.
    listing = asyncio.run(src.list_async(media))
    assert sorted(e.name for e in listing) == ["Movies", "TV"]

    async def cancelled() -> None:
        task = asyncio.create_task(src.stat_async(media))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
