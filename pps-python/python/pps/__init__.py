"""pps (partial path scanner): keep Plex, Emby and Jellyfin current by rescanning only
the folders that changed on a cloud drive.

pps remembers what every watched folder looked like, re-lists folders within a strict
call budget (through CloudDrive2, OpenList, rclone or a local mount), and turns each
difference into the smallest scan a media server needs. This package is the whole pps
library, sync and asyncio::

    import pps

    scanner = pps.Scanner(pps.Config.load("pps.toml"))
    scanner.index()                 # first time only: record a baseline, scan nothing
    report = scanner.run_once()     # one pass over every watch, then delivery
    for change in report.changes:
        print(change.update, change.kind, change.path)

    # or, in asyncio code
    report = await scanner.run_once_async()

The parts are usable on their own: sources (``LocalSource``, ``CloudDrive``,
``OpenList``, ``Rclone``) list folders, targets (``Plex``, ``Emby``, ``Jellyfin``) take
scans, ``PathMapping`` maps source paths to server paths. Every blocking call releases the interpreter and can be
interrupted with Ctrl-C; every ``*_async`` twin returns a coroutine. Every
failure raises a subclass of ``PpsError``, whose message never holds a secret.
"""

from pps._pps import (
    AuthError,
    Change,
    CloudDrive,
    Config,
    ConfigError,
    DeliveryReport,
    Emby,
    Entry,
    Jellyfin,
    Library,
    LocalSource,
    NotFoundError,
    OnceReport,
    OpenList,
    OutageError,
    PassReport,
    PathMapping,
    PermissionDeniedError,
    Plex,
    PpsError,
    Rclone,
    Scanner,
    StoreError,
    Target,
    TargetError,
    TargetInfo,
    ThrottledError,
    UnavailableError,
    UnsupportedError,
    __version__,
)

__all__ = [
    "AuthError",
    "Change",
    "CloudDrive",
    "Config",
    "ConfigError",
    "DeliveryReport",
    "Emby",
    "Entry",
    "Jellyfin",
    "Library",
    "LocalSource",
    "NotFoundError",
    "OnceReport",
    "OpenList",
    "OutageError",
    "PassReport",
    "PathMapping",
    "PermissionDeniedError",
    "Plex",
    "PpsError",
    "Rclone",
    "Scanner",
    "StoreError",
    "Target",
    "TargetError",
    "TargetInfo",
    "ThrottledError",
    "UnavailableError",
    "UnsupportedError",
    "__version__",
]
