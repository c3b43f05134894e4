"""A backend that counts the requests it sends: the real backend behind it answers every call (the
remote's tests and benchmarks/remote.py count what presence costs with it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO

from xpmstore.remote import Backend
from xpmstore.remote.interrupt import Interrupt

__all__ = ["CountingBackend"]


class CountingBackend(Backend):
    """The real backend, each request it sends counted by kind: a listing counts one request per
    1,000 keys (an S3 page), a HEAD (``exists``, ``mtime``) one."""

    def __init__(self, real: Backend):
        self.real = real
        self.url = real.url
        self.requests: Counter[str] = Counter()

    def total(self) -> int:
        """Every request counted so far."""
        return sum(self.requests.values())

    def exists(self, key: str) -> bool:
        self.requests["HEAD"] += 1
        return self.real.exists(key)

    def mtime(self, key: str) -> float | None:
        self.requests["HEAD"] += 1
        return self.real.mtime(key)

    def list(self, prefix: str) -> list[str]:
        keys = self.real.list(prefix)
        self.requests["LIST"] += max(1, -(-len(keys) // 1000))
        return keys

    def count_upto(self, prefix: str, limit: int) -> int:
        self.requests["COUNT"] += 1
        return self.real.count_upto(prefix, limit)

    def scan(self, prefix: str) -> dict[str, tuple[float, int]]:
        found = self.real.scan(prefix)
        self.requests["LIST"] += max(1, -(-len(found) // 1000))
        return found

    def put_file(self, key: str, path: Path, *, replace: bool = False,
                 interrupt: Interrupt | None = None) -> bool:
        self.requests["PUT"] += 1
        return self.real.put_file(key, path, replace=replace, interrupt=interrupt)

    def put_bytes(self, key: str, data: bytes, *, replace: bool = False) -> bool:
        self.requests["PUT"] += 1
        return self.real.put_bytes(key, data, replace=replace)

    def get_bytes(self, key: str) -> bytes | None:
        self.requests["GET"] += 1
        return self.real.get_bytes(key)

    def open_read(self, key: str) -> IO[bytes]:
        self.requests["GET"] += 1
        return self.real.open_read(key)

    def copy_into(self, key: str, out: IO[bytes], limit: int,
                  written: Callable[[int, int], None] | None = None) -> bool:
        return self.real.copy_into(key, out, limit, written)

    def delete(self, key: str) -> None:
        self.requests["DELETE"] += 1
        self.real.delete(key)

    def refresh(self, key: str, path: Path, interrupt: Interrupt | None = None) -> None:
        self.requests["PUT"] += 1
        self.real.refresh(key, path, interrupt)

    def init(self) -> str:
        return self.real.init()
