"""Small cache files of the workspace, each a JSON object under a *key*: a digest of what its
value was computed from (the run record's packages hash, its git state).

A cache file is input: one that is not a JSON object of at most ``limit`` bytes holding the
``key`` asked for (damaged, truncated, another key, a symlink, a fifo, too large) reads as
absent, and a folder that refuses the write (read-only, full, a symlink) costs only the cache.
Written atomically without fsync (:mod:`xpmstore.system.atomic`): a crash loses at most the
value, which is computed again.  Safe across threads and processes (the last writer wins).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from . import jsonio
from .atomic import write_atomic

__all__ = ["read_keyed", "write_keyed"]


def read_keyed(path: Path, key: str, limit: int) -> dict[str, Any] | None:
    """The JSON object in ``path`` when it holds ``"key": key`` and at most ``limit`` bytes;
    None otherwise (never raises OSError or ValueError)."""
    data = jsonio.read_small(path, limit)
    try:
        document = jsonio.loads(data, os.fspath(path)) if data is not None else None
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("key") != key:
        return None
    return document


def write_keyed(path: Path, key: str, value: dict[str, Any]) -> None:
    """Write ``value`` with ``"key": key`` at ``path``, creating its folder; nothing when the
    folder cannot hold it (not a real folder, read-only, full)."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not stat.S_ISDIR(os.lstat(folder).st_mode):  # a symlink: never written through
            return
        write_atomic(path, json.dumps({"key": key, **value}).encode(), durable=False)
    except OSError:
        pass
