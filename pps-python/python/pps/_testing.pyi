# Types of pps._testing, a module of the native extension built only with the cargo
# feature `testing` (the Python tests use it; a plain `pip install .` lacks it).

from collections.abc import Mapping
from types import TracebackType
from typing import final

from pps._pps import PpsError

__all__ = ["MockCloudDrive", "error"]

@final
class MockCloudDrive:
    def __new__(
        cls,
        tree: Mapping[str, int | None] | None = None,
        *,
        api_token: str | None = None,
        page_size: int = 500,
    ) -> MockCloudDrive: ...
    @property
    def url(self) -> str: ...
    def write_file(self, path: str, size: int) -> None: ...
    def create_dir(self, path: str) -> None: ...
    def remove(self, path: str) -> bool: ...
    def calls(self, name: str) -> int: ...
    def throttle_next(self, n: int) -> None: ...
    def unavailable_next(self, n: int) -> None: ...
    def stop(self) -> None: ...
    def __enter__(self) -> MockCloudDrive: ...
    def __exit__(
        self,
        t: type[BaseException] | None,
        v: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

def error(
    kind: str, message: str, *, temporary: bool | None = None, path: str | None = None
) -> PpsError: ...
