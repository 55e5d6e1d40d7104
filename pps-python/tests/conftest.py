"""Fixtures: a temp media tree, a fake media server that records requests, configs."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

PLEX_TOKEN = "plex-sekrit-token-1234"
EMBY_KEY = "emby-sekrit-key-5678"
CD2_TOKEN = "cd2-sekrit-token-9012"


@dataclass
class Request:
    """One request the fake server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeMediaServer:
    """A tiny HTTP server standing in for Plex and Emby: it serves libraries whose
    locations are under ``root`` and records every request."""

    root: str
    status: int = 200
    requests: list[Request] = field(default_factory=list)
    # Files Plex "indexed": listed by /library/sections/N/all as episodes.
    indexed: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""

    def record(self, req: Request) -> None:
        with self.cond:
            self.requests.append(req)
            self.cond.notify_all()

    def wait_for(
        self, predicate: Callable[[list[Request]], bool], timeout: float = 20.0
    ) -> list[Request]:
        """Waits until ``predicate(requests)`` holds; fails the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"condition not met; requests: {self.requests}")
                self.cond.wait(left)
            return list(self.requests)

    def refreshes(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/refresh")]


def _handler(server: FakeMediaServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _reply(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            server.record(
                Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
            )
            if server.status != 200:
                self._reply(server.status, {"error": "no"})
                return
            plex_ok = self.headers.get("X-Plex-Token") == PLEX_TOKEN
            emby_ok = self.headers.get("X-Emby-Token") == EMBY_KEY
            if not (plex_ok or emby_ok):
                self._reply(401, {"error": "unauthorized"})
                return
            tv = f"{server.root}/TV"
            movies = f"{server.root}/Movies"
            if parts.path == "/":
                self._reply(
                    200, {"MediaContainer": {"friendlyName": "fake", "version": "1.2.3"}}
                )
            elif parts.path == "/library/sections":
                dirs = [
                    {"key": "1", "title": "TV", "type": "show", "Location": [{"path": tv}]},
                    {"key": "2", "title": "Movies", "type": "movie", "Location": [{"path": movies}]},
                ]
                self._reply(200, {"MediaContainer": {"Directory": dirs}})
            elif parts.path.startswith("/library/sections/") and parts.path.endswith(
                "/refresh"
            ):
                self._reply(200)
            elif parts.path.startswith("/library/sections/") and parts.path.endswith("/all"):
                items = [
                    {
                        "ratingKey": str(100 + i),
                        "type": "episode",
                        "title": "Ep",
                        "grandparentTitle": "Show",
                        "parentIndex": 1,
                        "index": i + 1,
                        "Media": [{"Part": [{"file": f}]}],
                    }
                    for i, f in enumerate(server.indexed)
                ]
                self._reply(200, {"MediaContainer": {"Metadata": items}})
            elif parts.path == "/Library/VirtualFolders":
                self._reply(
                    200,
                    [
                        {"Name": "TV", "ItemId": "t1", "Locations": [tv]},
                        {"Name": "Movies", "ItemId": "m1", "Locations": [movies]},
                    ],
                )
            elif parts.path in ("/System/Info", "/System/Info/Public"):
                self._reply(
                    200,
                    {"ServerName": "fake", "Version": "4.8", "ProductName": "Emby Server"},
                )
            elif parts.path == "/Library/Media/Updated":
                self._reply(204)
            else:
                self._reply(404, {"error": "no such path"})

        do_GET = _handle
        do_POST = _handle

    return Handler


@pytest.fixture
def media_server() -> Iterator[FakeMediaServer]:
    """A fake Plex/Emby server on loopback whose libraries live under /mnt/media."""
    fake = FakeMediaServer(root="/mnt/media")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    httpd.daemon_threads = True
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A small media tree: media/TV/Show/S01/e1.mkv, media/Movies/Film/film.mkv."""
    root = tmp_path / "media"
    (root / "TV" / "Show" / "S01").mkdir(parents=True)
    (root / "TV" / "Show" / "S01" / "e1.mkv").write_bytes(b"x" * 10)
    (root / "Movies" / "Film").mkdir(parents=True)
    (root / "Movies" / "Film" / "film.mkv").write_bytes(b"y" * 20)
    return root


def scanner_toml(media: Path, store: Path, plex_url: str, *, pacing: str = "0s") -> str:
    """A config: the local source watching ``media``, one Plex target mapping it to
    /mnt/media, the store at ``store``."""
    return f"""
[store]
path = "{store}"

[sources.disk]
kind = "local"

[targets.plex]
kind = "plex"
url = "{plex_url}"
token = "{PLEX_TOKEN}"
pacing = "{pacing}"
path_mapping = [{{ from = "{media}", to = "/mnt/media" }}]

[[watch]]
source = "disk"
path = "{media}"
interval = "1s"
"""
