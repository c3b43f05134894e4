"""The run record header's hash of the installed packages, computed once per environment
(docs/scheduler.md, "Run records").

The hash names every installed distribution and its version; reading their metadata costs tens
of milliseconds (the ``email`` parser, once per distribution), more than the rest of an
experiment that finds its tasks done.  It is kept in a small file of the workspace,
``.xpmstore/environments/<environment>.json`` (one per host, interpreter and ``sys.path``: a
script's folder is on it), under a *key*: a
digest of what ``importlib.metadata`` reads from — the interpreter, each entry of ``sys.path``
(its inode and modification time) and, in each folder of it, each ``*.dist-info`` and
``*.egg-info`` with its metadata file.  Installing, removing, upgrading or reinstalling a package
changes the key (the folder's entries and their times change), and the hash is computed again.
Computing the key costs a listing of each ``sys.path`` folder and a ``stat`` per distribution.

The file is input: one that is not what this module writes (damaged, truncated, another key, a
hash of the wrong shape, a symlink, a fifo, too large) is ignored and written anew; a workspace
that refuses the write (read-only, full) costs nothing but the next run's computing again.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

from blake3 import blake3

from ..system.keyedcache import read_keyed, write_keyed

__all__ = ["cache_path", "compute_packages_hash", "environment_key", "packages_hash"]

_MAX_BYTES = 4096
"""A cache file this module writes is about 150 bytes; a larger one is not one of them."""
_HASH = re.compile(r"[0-9a-f]{16}")
_METADATA_SUFFIXES = (".dist-info", ".egg-info")


def compute_packages_hash() -> str:
    """The hash of the installed distributions' names and versions, read from their metadata
    (the slow way: what the cache saves)."""
    from importlib import metadata  # slow to import: only when it must be computed

    names = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
    return blake3("\n".join(names).encode()).hexdigest()[:16]


def _stamp(path: str) -> str:
    """``path``'s device, inode, size and modification time ("-" when it cannot be read)."""
    try:
        info = os.stat(path)
    except OSError:
        return "-"
    return f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"


def environment_key() -> str:
    """The digest of what the packages' metadata is read from (see the module doc): it changes
    when a distribution is installed, removed or upgraded in a folder of ``sys.path``."""
    parts = [sys.executable, sys.version]
    for entry in sys.path:
        folder = entry or "."
        parts.append(f"{entry}\0{_stamp(folder)}")
        try:
            names = sorted(os.listdir(folder))
        except OSError:  # not a folder (a zip, a path hook's name) or gone
            continue
        for name in names:
            if name.endswith(_METADATA_SUFFIXES):
                inner = "METADATA" if name.endswith(".dist-info") else "PKG-INFO"
                distribution = os.path.join(folder, name)
                parts.append(f"{name}\0{_stamp(distribution)}\0"
                             f"{_stamp(os.path.join(distribution, inner))}")
    return blake3("\n".join(parts).encode()).hexdigest()


def cache_path(folder: Path) -> Path:
    """The cache file of this host, interpreter and ``sys.path`` in ``folder`` (scripts in two
    folders, whose ``sys.path`` differ, never overwrite each other's)."""
    who = "\0".join([socket.gethostname(), sys.executable, sys.prefix, *sys.path])
    return folder / f"{blake3(who.encode()).hexdigest()[:16]}.json"


def packages_hash(folder: Path | None) -> str:
    """The installed packages' hash: from the cache file in ``folder`` when its key is the
    environment's, else computed and written there (None: computed, no cache)."""
    if folder is None:
        return compute_packages_hash()
    key = environment_key()
    path = cache_path(folder)
    cached = _read(path, key)
    if cached is not None:
        return cached
    value = compute_packages_hash()
    write_keyed(path, key, {"packages": value})  # atomically, without fsync
    return value


def _read(path: Path, key: str) -> str | None:
    """The hash cached at ``path`` under ``key``; None when there is none, or the file is not a
    cache file of this module (never raises)."""
    document = read_keyed(path, key, _MAX_BYTES)
    value = document.get("packages") if document is not None else None
    return value if isinstance(value, str) and _HASH.fullmatch(value) else None

