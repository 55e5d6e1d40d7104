"""Targets against a fake media server that records every request."""

from __future__ import annotations

import asyncio

import pytest

import pps

from .conftest import EMBY_KEY, PLEX_TOKEN, FakeMediaServer


def test_plex_check_and_libraries(media_server: FakeMediaServer) -> None:
    plex = pps.Plex(media_server.url, PLEX_TOKEN, pacing=0)
    info = plex.check()
    assert info.server == 'Plex Media Server "fake"'
    assert info.version == "1.2.3"
    assert [lib.name for lib in info.libraries] == ["TV", "Movies"]
    libs = plex.libraries()
    assert libs[0].id == "1" and libs[0].locations == ["/mnt/media/TV"]
    assert plex.scans_files is False
    assert isinstance(plex, pps.Target)


def test_plex_scan_sends_the_folder_with_the_token_in_a_header(
    media_server: FakeMediaServer,
) -> None:
    plex = pps.Plex(media_server.url, PLEX_TOKEN, pacing=0)
    results = plex.scan(["/mnt/media/TV/Show & Co/S01"])
    assert results == [None]
    (req,) = media_server.refreshes()
    assert req.method == "GET"
    assert req.path == "/library/sections/1/refresh"
    assert req.query == {"path": ["/mnt/media/TV/Show & Co/S01"]}
    assert req.headers["x-plex-token"] == PLEX_TOKEN
    assert "force" not in req.query


def test_plex_scans_a_file_as_its_folder(media_server: FakeMediaServer) -> None:
    plex = pps.Plex(media_server.url, PLEX_TOKEN, pacing=0)
    assert plex.scan(["/mnt/media/TV/Show/e1.mkv"], update="created", is_dir=False) == [
        None
    ]
    (req,) = media_server.refreshes()
    assert req.query["path"] == ["/mnt/media/TV/Show"]


def test_plex_path_in_no_library_is_a_target_error(media_server: FakeMediaServer) -> None:
    plex = pps.Plex(media_server.url, PLEX_TOKEN, pacing=0)
    ok, refused = plex.scan(["/mnt/media/Movies/Film", "/elsewhere/x"])
    assert ok is None
    assert isinstance(refused, pps.TargetError)
    assert refused.temporary is False
    assert refused.context["path"] == "/elsewhere/x"


def test_plex_wrong_token_is_auth_error_without_the_token(
    media_server: FakeMediaServer,
) -> None:
    plex = pps.Plex(media_server.url, "wrong-sekrit-token", pacing=0)
    with pytest.raises(pps.AuthError) as info:
        plex.check()
    assert "wrong-sekrit-token" not in str(info.value)
    assert "wrong-sekrit-token" not in repr(plex)
    (result,) = plex.scan(["/mnt/media/TV/Show"])
    assert isinstance(result, pps.AuthError)


def test_plex_403_is_permission_denied(media_server: FakeMediaServer) -> None:
    media_server.status = 403
    plex = pps.Plex(media_server.url, PLEX_TOKEN, pacing=0)
    with pytest.raises(pps.PermissionDeniedError) as info:
        plex.libraries()
    assert isinstance(info.value, PermissionError)


def test_plex_unreachable_is_unavailable(closed_port: int) -> None:
    plex = pps.Plex(f"http://127.0.0.1:{closed_port}", PLEX_TOKEN, timeout=5)
    with pytest.raises(pps.UnavailableError) as info:
        plex.check()
    assert info.value.temporary is True


def test_plex_async_twins(media_server: FakeMediaServer) -> None:
    plex = pps.Plex(media_server.url, PLEX_TOKEN, pacing=0)

    async def go() -> tuple[pps.TargetInfo, list[pps.Library], list[pps.PpsError | None]]:
        return (
            await plex.check_async(),
            await plex.libraries_async(),
            await plex.scan_async(["/mnt/media/TV/Show"]),
        )

    info, libs, results = asyncio.run(go())
    assert info.version == "1.2.3" and len(libs) == 2 and results == [None]
    assert len(media_server.refreshes()) == 1


def test_plex_bad_settings_are_config_errors() -> None:
    with pytest.raises(pps.ConfigError):
        pps.Plex("not a url", PLEX_TOKEN)
    with pytest.raises(pps.ConfigError):
        pps.Plex("http://127.0.0.1:1", "")
    with pytest.raises(pps.ConfigError):
        pps.Plex("http://127.0.0.1:1", PLEX_TOKEN).scan(["/x"], update="renamed")  # type: ignore[arg-type]


def test_plex_repr_shows_the_url_without_credentials() -> None:
    plex = pps.Plex("http://127.0.0.1:32400", PLEX_TOKEN)
    assert repr(plex) == "Plex(url=\"http://127.0.0.1:32400\")"
    assert PLEX_TOKEN not in repr(plex)


@pytest.mark.parametrize("cls", [pps.Emby, pps.Jellyfin])
def test_emby_and_jellyfin_post_file_updates(
    media_server: FakeMediaServer, cls: type[pps.Emby] | type[pps.Jellyfin]
) -> None:
    # The fake server takes the Emby header; Jellyfin sends its own Authorization
    # header, so it is refused there: that checks which header each one sends.
    target = cls(media_server.url, EMBY_KEY)
    assert target.scans_files is True
    if cls is pps.Emby:
        assert [lib.id for lib in target.libraries()] == ["t1", "m1"]
        results = target.scan(
            ["/mnt/media/TV/Show/e1.mkv", "/nowhere/x.mkv"], update="created", is_dir=False
        )
        assert results[0] is None and isinstance(results[1], pps.TargetError)
        (post,) = [r for r in media_server.requests if r.method == "POST"]
        assert post.path == "/Library/Media/Updated"
        assert post.body == {
            "Updates": [{"Path": "/mnt/media/TV/Show/e1.mkv", "UpdateType": "Created"}]
        }
        assert post.headers["x-emby-token"] == EMBY_KEY
    else:
        with pytest.raises(pps.AuthError):
            target.libraries()
        auth = media_server.requests[-1].headers["authorization"]
        assert auth == f'MediaBrowser Token="{EMBY_KEY}"'
    assert EMBY_KEY not in repr(target)
