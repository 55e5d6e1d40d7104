"""Turns the native module's deferred futures into coroutines.

Every ``*_async`` method returns ``drive(start)``: a real coroutine, so it works with
``asyncio.run``, ``asyncio.create_task`` and task groups, and its Rust work starts only
when it is awaited (inside the running loop), never at call time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

_T = TypeVar("_T")


async def drive(start: Callable[[], Awaitable[_T]]) -> _T:
    """Awaits the future ``start()`` makes; cancelling this coroutine cancels the Rust
    work behind it."""
    return await start()
