"""OpenList and rclone sources against small stand-ins of their HTTP APIs on loopback,
answering with the request and reply shapes of ../shared/docs/sources.md."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import pps

OL_TOKEN = "ol-sekrit-token-3456"
OL_USER, OL_PASS = "alice", "ol-sekrit-pass-7890"
RC_USER, RC_PASS = "rc", "rc-sekrit-pass-1357"
WHEN = "2024-05-06T07:08:09Z"


@dataclass
class Seen:
    """One request a stand-in received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class StandIn:
    """State shared by a stand-in's handler and the test: the tree (folder path to its
    children as ``(name, size or None for a folder, modified)``), faults and the
    requests received."""

    folders: dict[str, list[tuple[str, int | None, str]]]
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # OpenList: tokens it accepts (the settings token and every JWT it issued).
    tokens: set[str] = field(default_factory=set)
    logins: int = 0
    refresh_allowed: bool = True
    throttle_next: int = 0
    not_openlist: bool = False
    url: str = ""

    def seen(self, path: str) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


def tree() -> dict[str, list[tuple[str, int | None, str]]]:
    return {
        "/": [("115", None, WHEN)],
        "/115": [("TV", None, WHEN)],
        "/115/TV": [
            ("Show", None, WHEN),
            ("e1.mkv", 1234, WHEN),
            # OpenList's zero time for "unknown": never a real mtime.
            ("nodate.mkv", 5, "0001-01-01T00:00:00Z"),
        ],
        "/115/TV/Show": [],
    }


class _Base(BaseHTTPRequestHandler):
    state: StandIn

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with self.state.lock:
            self.state.requests.append(
                Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
            )
        self.answer(body)

    def do_GET(self) -> None:  # noqa: N802
        self.reply(405, b"POST only", "text/plain")

    def answer(self, body: Any) -> None:
        raise NotImplementedError


class _OpenList(_Base):
    def ok(self, data: Any) -> None:
        self.reply(200, {"code": 200, "message": "success", "data": data})

    def error(self, code: int, message: str) -> None:
        # OpenList sends its errors with HTTP 200; the status is in `code`.
        self.reply(200, {"code": code, "message": message, "data": None})

    def answer(self, body: Any) -> None:
        s = self.state
        if s.not_openlist:
            self.reply(404, b"<html>404 page not found</html>", "text/html")
            return
        if self.path == "/api/auth/login":
            if body == {"username": OL_USER, "password": OL_PASS}:
                with s.lock:
                    s.logins += 1
                    token = f"jwt-{s.logins}"
                    s.tokens.add(token)
                self.ok({"token": token})
            else:
                self.error(400, "password is incorrect")
            return
        if self.headers.get("Authorization") not in s.tokens:
            self.error(401, "token is invalid")
            return
        if s.throttle_next > 0:
            s.throttle_next -= 1
            self.error(500, "failed get objs: 405 Not Allowed")
            return
        path = body.get("path", "")
        if self.path == "/api/fs/list":
            if body.get("refresh") and not s.refresh_allowed:
                self.error(403, "Refresh without permission")
                return
            if path not in s.folders:
                self.error(500, "failed get objs: object not found")
                return
            content = [
                {
                    "name": name,
                    "size": size or 0,
                    "is_dir": size is None,
                    "modified": modified,
                    "created": modified,
                    "sign": "",
                    "thumb": "",
                    "type": 1 if size is None else 2,
                    "hash_info": None,
                }
                for name, size, modified in s.folders[path]
            ]
            self.ok(
                {
                    "content": content or None,
                    "total": len(content),
                    "readme": "",
                    "header": "",
                    "write": True,
                    "provider": "115 Cloud",
                }
            )
        elif self.path == "/api/fs/get":
            parent, _, name = path.rpartition("/")
            for n, size, modified in s.folders.get(parent or "/", []):
                if n == name:
                    self.ok(
                        {"name": n, "size": size or 0, "is_dir": size is None, "modified": modified}
                    )
                    return
            self.error(500, "failed get obj: object not found")
        else:
            self.reply(404, b"404 page not found", "text/plain")


class _Rclone(_Base):
    remote = "115dav:"

    def error(self, status: int, message: str, body: Any) -> None:
        self.reply(
            status,
            {"error": message, "status": status, "input": body, "path": self.path.lstrip("/")},
        )

    def answer(self, body: Any) -> None:
        s = self.state
        expected = "Basic " + base64.b64encode(f"{RC_USER}:{RC_PASS}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.reply(401, b"Unauthorized\n", "text/plain")
            return
        if s.throttle_next > 0:
            s.throttle_next -= 1
            self.error(500, "list failed: 429 Too Many Requests", body)
            return
        if self.path == "/operations/list":
            if body.get("fs") != self.remote:
                self.error(500, "didn't find section in config file", body)
                return
            folder = "/" + body.get("remote", "")
            folder = folder.rstrip("/") or "/"
            if folder not in s.folders:
                self.error(404, "directory not found", body)
                return
            prefix = body.get("remote", "")
            items = [
                {
                    "Path": f"{prefix}/{name}" if prefix else name,
                    "Name": name,
                    "Size": -1 if size is None else size,
                    "MimeType": "inode/directory" if size is None else "video/x-matroska",
                    "ModTime": modified,
                    "IsDir": size is None,
                }
                for name, size, modified in s.folders[folder]
            ]
            self.reply(200, {"list": items})
        elif self.path == "/vfs/refresh":
            self.reply(200, {"result": {body.get("dir", ""): "OK"}})
        else:
            self.error(404, "couldn't find method " + repr(self.path.lstrip("/")), body)


def _serve(handler: type[_Base], state: StandIn) -> Iterator[StandIn]:
    cls = type("Handler", (handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), cls)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    # A short poll interval: shutdown() waits for the loop to notice.
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def openlist() -> Iterator[StandIn]:
    yield from _serve(_OpenList, StandIn(tree(), tokens={OL_TOKEN}))


@pytest.fixture
def rclone() -> Iterator[StandIn]:
    yield from _serve(_Rclone, StandIn(tree()))


def fast_ol(url: str, **kw: Any) -> pps.OpenList:
    return pps.OpenList(url, max_queries_per_second=1000, burst=10, **kw)


def fast_rc(url: str, **kw: Any) -> pps.Rclone:
    return pps.Rclone(url, "115dav:", max_queries_per_second=1000, burst=10, **kw)


def by_name(entries: list[pps.Entry]) -> dict[str, pps.Entry]:
    return {e.name: e for e in entries}


# --- OpenList ---------------------------------------------------------------------


def test_openlist_lists_with_the_raw_token_and_the_documented_body(openlist: StandIn) -> None:
    ol = fast_ol(openlist.url, token=OL_TOKEN)
    got = by_name(ol.list("/115/TV"))
    assert set(got) == {"Show", "e1.mkv", "nodate.mkv"}
    assert got["Show"].is_dir and got["Show"].size == 0
    e = got["e1.mkv"]
    assert (e.kind, e.size) == ("file", 1234)
    assert e.mtime == datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
    assert got["nodate.mkv"].mtime is None
    [req] = openlist.requests
    assert (req.method, req.path) == ("POST", "/api/fs/list")
    # The raw token, no "Bearer".
    assert req.headers["authorization"] == OL_TOKEN
    assert req.body == {
        "path": "/115/TV",
        "password": "",
        "page": 1,
        "per_page": 0,
        "refresh": False,
    }


def test_openlist_empty_folder_with_null_content(openlist: StandIn) -> None:
    ol = fast_ol(openlist.url, token=OL_TOKEN)
    assert ol.list("/115/TV/Show") == []


def test_openlist_refresh_only_when_asked_and_allowed(openlist: StandIn) -> None:
    ol = fast_ol(openlist.url, token=OL_TOKEN)
    ol.list("/115/TV", refresh=True)
    assert openlist.seen("/api/fs/list")[-1].body["refresh"] is True
    never = fast_ol(openlist.url, token=OL_TOKEN, refresh=False)
    never.list("/115/TV", refresh=True)
    assert openlist.seen("/api/fs/list")[-1].body["refresh"] is False


def test_openlist_refused_refresh_falls_back_to_the_cached_listing(openlist: StandIn) -> None:
    openlist.refresh_allowed = False
    ol = fast_ol(openlist.url, token=OL_TOKEN)
    assert {e.name for e in ol.list("/115/TV", refresh=True)} == {"Show", "e1.mkv", "nodate.mkv"}
    sent = [r.body["refresh"] for r in openlist.seen("/api/fs/list")]
    assert sent == [True, False]
    # Said once: later listings no longer ask.
    ol.list("/115/TV", refresh=True)
    assert [r.body["refresh"] for r in openlist.seen("/api/fs/list")] == [True, False, False]


def test_openlist_stat_uses_fs_get(openlist: StandIn) -> None:
    ol = fast_ol(openlist.url, token=OL_TOKEN, folder_password="meta-sekrit")
    e = ol.stat("/115/TV/e1.mkv")
    assert (e.name, e.is_dir, e.size) == ("e1.mkv", False, 1234)
    [req] = openlist.seen("/api/fs/get")
    assert req.body == {"path": "/115/TV/e1.mkv", "password": "meta-sekrit"}
    assert req.headers["authorization"] == OL_TOKEN
    assert "meta-sekrit" not in repr(ol)


def test_openlist_logs_in_and_again_when_the_token_is_refused(openlist: StandIn) -> None:
    ol = fast_ol(openlist.url, username=OL_USER, password=OL_PASS)
    assert {e.name for e in ol.list("/115")} == {"TV"}
    [login] = openlist.seen("/api/auth/login")
    assert login.body == {"username": OL_USER, "password": OL_PASS}
    assert "authorization" not in login.headers
    assert openlist.seen("/api/fs/list")[-1].headers["authorization"] == "jwt-1"
    openlist.tokens.clear()  # every issued token expires
    assert {e.name for e in ol.list("/115")} == {"TV"}
    assert openlist.logins == 2
    assert openlist.seen("/api/fs/list")[-1].headers["authorization"] == "jwt-2"


def test_openlist_wrong_password_is_auth_error_without_it(openlist: StandIn) -> None:
    ol = fast_ol(openlist.url, username=OL_USER, password="wrong-sekrit-pw")
    with pytest.raises(pps.AuthError) as info:
        ol.list("/115")
    text = str(info.value) + repr(info.value.context)
    assert "wrong-sekrit-pw" not in text
    assert OL_USER in text
    assert info.value.temporary is False


def test_openlist_wrong_token_is_auth_error_without_it(openlist: StandIn) -> None:
    ol = fast_ol(openlist.url, token="wrong-sekrit-token")
    with pytest.raises(pps.AuthError) as info:
        ol.list("/115/TV")
    text = str(info.value) + repr(info.value.context)
    assert "wrong-sekrit-token" not in text
    assert "refused the token" in str(info.value)
    assert info.value.context["path"] == "/115/TV"


def test_openlist_missing_path_is_not_found(openlist: StandIn) -> None:
    ol = fast_ol(openlist.url, token=OL_TOKEN)
    with pytest.raises(pps.NotFoundError) as info:
        ol.list("/115/nope")
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.context["path"] == "/115/nope"
    with pytest.raises(pps.NotFoundError):
        ol.stat("/115/TV/nope.mkv")


def test_openlist_not_an_openlist_server_is_unsupported(openlist: StandIn) -> None:
    openlist.not_openlist = True
    ol = fast_ol(openlist.url, token=OL_TOKEN)
    with pytest.raises(pps.UnsupportedError) as info:
        ol.list("/")
    assert "not an OpenList server" in str(info.value)


def test_openlist_throttled_without_retries_then_retried(openlist: StandIn) -> None:
    ol = fast_ol(openlist.url, token=OL_TOKEN, retries=0)
    openlist.throttle_next = 1
    with pytest.raises(pps.ThrottledError) as info:
        ol.list("/115/TV")
    assert info.value.temporary is True
    assert len(ol.list("/115/TV")) == 3


def test_openlist_async_twins(openlist: StandIn) -> None:
    ol = fast_ol(openlist.url, token=OL_TOKEN)

    async def go() -> tuple[list[pps.Entry], pps.Entry]:
        listing, entry = await asyncio.gather(
            ol.list_async("/115/TV"), ol.stat_async("/115/TV/Show")
        )
        return listing, entry

    listing, entry = asyncio.run(go())
    assert len(listing) == 3 and entry.is_dir


def test_openlist_repr_hides_credentials(openlist: StandIn) -> None:
    tok = pps.OpenList(openlist.url, token=OL_TOKEN)
    pw = pps.OpenList(openlist.url, username=OL_USER, password=OL_PASS)
    shown = repr(tok) + repr(pw) + tok.url
    assert OL_TOKEN not in shown and OL_PASS not in shown
    assert repr(tok) == f"OpenList(url={openlist.url!r}, auth='token')".replace("'", '"')


def test_openlist_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(pps.ConfigError) as info:
        pps.OpenList("http://bob:url-sekrit@127.0.0.1:5244")
    assert info.value.context["key"] == "url"
    assert "url-sekrit" not in str(info.value) + repr(info.value.context)


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"token": "t", "username": "u", "password": "p"}, "token"),
        ({"username": "u"}, "password"),
        ({"password": "p"}, "password"),
        ({"token": ""}, "token"),
        ({"username": "", "password": "p"}, "username"),
        ({"max_queries_per_second": 0.0}, "max_queries_per_second"),
        ({"burst": 0}, "burst"),
        ({"timeout": -1.0}, "duration"),
    ],
)
def test_openlist_bad_settings_name_the_key(kw: dict[str, Any], key: str) -> None:
    with pytest.raises(pps.ConfigError) as info:
        pps.OpenList("http://127.0.0.1:5244", **kw)
    assert info.value.context["key"] == key


# --- rclone -----------------------------------------------------------------------


def test_rclone_lists_with_basic_auth_and_the_documented_body(rclone: StandIn) -> None:
    rc = fast_rc(rclone.url, username=RC_USER, password=RC_PASS)
    got = by_name(rc.list("/115/TV"))
    assert set(got) == {"Show", "e1.mkv", "nodate.mkv"}
    assert got["Show"].is_dir and got["Show"].size == 0
    assert got["e1.mkv"].size == 1234
    assert got["e1.mkv"].mtime == datetime.datetime(
        2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc
    )
    assert got["nodate.mkv"].mtime is None
    [req] = rclone.requests
    assert (req.method, req.path) == ("POST", "/operations/list")
    auth = base64.b64encode(f"{RC_USER}:{RC_PASS}".encode()).decode()
    assert req.headers["authorization"] == f"Basic {auth}"
    assert req.body == {"fs": "115dav:", "remote": "115/TV", "opt": {"recurse": False}}
    rc.list("/")
    assert rclone.requests[-1].body["remote"] == ""


def test_rclone_stat_lists_the_parent(rclone: StandIn) -> None:
    rc = fast_rc(rclone.url, username=RC_USER, password=RC_PASS)
    e = rc.stat("/115/TV/e1.mkv")
    assert (e.name, e.is_dir, e.size) == ("e1.mkv", False, 1234)
    [req] = rclone.requests
    assert req.body["remote"] == "115/TV"
    with pytest.raises(pps.NotFoundError) as info:
        rc.stat("/115/TV/gone.mkv")
    assert info.value.context["path"] == "/115/TV/gone.mkv"


def test_rclone_missing_folder_and_unknown_remote_are_not_found(rclone: StandIn) -> None:
    rc = fast_rc(rclone.url, username=RC_USER, password=RC_PASS)
    with pytest.raises(pps.NotFoundError) as info:
        rc.list("/115/nope")
    assert info.value.context["path"] == "/115/nope"
    other = pps.Rclone(rclone.url, "nosuch:", username=RC_USER, password=RC_PASS)
    with pytest.raises(pps.NotFoundError) as info:
        other.list("/")
    assert "check `remote`" in str(info.value)


def test_rclone_wrong_password_is_auth_error_without_it(rclone: StandIn) -> None:
    rc = fast_rc(rclone.url, username=RC_USER, password="wrong-sekrit-pw")
    with pytest.raises(pps.AuthError) as info:
        rc.list("/115")
    assert "wrong-sekrit-pw" not in str(info.value) + repr(info.value.context)
    assert "--rc-user" in str(info.value)
    no_auth = fast_rc(rclone.url)
    with pytest.raises(pps.AuthError):
        no_auth.list("/115")
    assert "authorization" not in rclone.requests[-1].headers


def test_rclone_vfs_refresh_of_a_folder_that_changed(rclone: StandIn) -> None:
    rc = fast_rc(rclone.url, username=RC_USER, password=RC_PASS, vfs_refresh=True)
    rc.list("/115/TV")
    rc.list("/115/TV")
    assert rclone.seen("/vfs/refresh") == []  # unchanged: nothing to refresh
    rclone.folders["/115/TV"].append(("e2.mkv", 9, WHEN))
    assert "e2.mkv" in {e.name for e in rc.list("/115/TV")}
    [refresh] = rclone.seen("/vfs/refresh")
    assert refresh.body == {"dir": "115/TV"}
    assert refresh.headers["authorization"].startswith("Basic ")
    plain = fast_rc(rclone.url, username=RC_USER, password=RC_PASS)
    plain.list("/115/TV")
    rclone.folders["/115/TV"].pop()
    plain.list("/115/TV")
    assert len(rclone.seen("/vfs/refresh")) == 1


def test_rclone_throttled_without_retries(rclone: StandIn) -> None:
    rc = fast_rc(rclone.url, username=RC_USER, password=RC_PASS, retries=0)
    rclone.throttle_next = 1
    with pytest.raises(pps.ThrottledError):
        rc.list("/115/TV")
    assert len(rc.list("/115/TV")) == 3


def test_rclone_async_twins(rclone: StandIn) -> None:
    rc = fast_rc(rclone.url, username=RC_USER, password=RC_PASS)

    async def go() -> tuple[list[pps.Entry], pps.Entry]:
        return await rc.list_async("/115"), await rc.stat_async("/115/TV")

    listing, entry = asyncio.run(go())
    assert [e.name for e in listing] == ["TV"] and entry.is_dir


def test_rclone_unreachable_is_unavailable(closed_port: int) -> None:
    rc = pps.Rclone(f"http://127.0.0.1:{closed_port}", "115dav:", retries=0, timeout=5)
    with pytest.raises(pps.UnavailableError):
        rc.list("/")


def test_rclone_repr_hides_the_password(rclone: StandIn) -> None:
    rc = pps.Rclone(rclone.url, "115dav:", username=RC_USER, password=RC_PASS)
    assert RC_PASS not in repr(rc)
    assert rc.remote == "115dav:" and rc.url == rclone.url
    assert "115dav:" in repr(rc)


@pytest.mark.parametrize(
    ("remote", "kw", "key"),
    [
        ("115dav", {}, "remote"),
        ("115dav:", {"username": "u"}, "password"),
        ("115dav:", {"password": "p"}, "password"),
        ("115dav:", {"username": "", "password": "p"}, "username"),
        ("115dav:", {"retries": -1}, None),
        ("115dav:", {"max_queries_per_second": float("nan")}, "max_queries_per_second"),
    ],
)
def test_rclone_bad_settings(remote: str, kw: dict[str, Any], key: str | None) -> None:
    if key is None:
        with pytest.raises(OverflowError):
            pps.Rclone("http://127.0.0.1:5572", remote, **kw)
        return
    with pytest.raises(pps.ConfigError) as info:
        pps.Rclone("http://127.0.0.1:5572", remote, **kw)
    assert info.value.context["key"] == key
