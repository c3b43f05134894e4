"""The done manifest: the list of every file of a finished object, written last.

An object (task directory or cache entry) is done exactly when ``.xpm/done`` exists.  The
manifest lists every regular file and symlink under the object's directory but ``.xpm/`` (logs
included) with its relative path, size, executable bit and blake3 (or the link's target).  Globs
of a task's ``__xpm_exclude__`` are neither listed nor shared.

:func:`build` and :func:`parse` are pure; :func:`scan` and :func:`verify` read the disk.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blake3 import blake3

from .atomic import TEMP_MARK
from .errors import CorruptObjectError, FormatVersionError
from .inputs import hash_file

__all__ = ["FileEntry", "LinkEntry", "Manifest", "build", "parse", "scan", "verify"]

_FORMAT = "xpmstore.done"
VERSION = 1


@dataclass(frozen=True)
class FileEntry:
    """A regular file of an object."""

    path: str
    size: int
    executable: bool
    blake3: str


@dataclass(frozen=True)
class LinkEntry:
    """A symbolic link of an object (its target as written)."""

    path: str
    target: str


@dataclass
class Manifest:
    """A parsed done manifest."""

    identifier: str
    kind: str
    name: str
    created: float
    files: list[FileEntry] = field(default_factory=list)
    links: list[LinkEntry] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Total bytes of the listed files."""
        return sum(entry.size for entry in self.files)


def build(manifest: Manifest) -> bytes:
    """The manifest's bytes (stable JSON). Pure."""
    document = {
        "format": _FORMAT,
        "version": VERSION,
        "identifier": manifest.identifier,
        "kind": manifest.kind,
        "name": manifest.name,
        "created": manifest.created,
        "size": manifest.size,
        "files": [[f.path, f.size, f.executable, f.blake3] for f in manifest.files],
        "links": [[link.path, link.target] for link in manifest.links],
        **({"extra": manifest.extra} if manifest.extra else {}),
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")


def parse(data: bytes, where: str = "manifest") -> Manifest:
    """Parse manifest bytes; raises FormatVersionError or CorruptObjectError. Pure."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise CorruptObjectError(f"{where}: not a valid done manifest") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise CorruptObjectError(f"{where}: not a done manifest")
    if not isinstance(document.get("version"), int) or document["version"] > VERSION:
        raise FormatVersionError(f"{where}: manifest version {document.get('version')!r} is newer"
                                 " than this xpmstore reads; upgrade xpmstore")
    try:
        return Manifest(
            identifier=str(document["identifier"]),
            kind=str(document["kind"]),
            name=str(document["name"]),
            created=float(document["created"]),
            files=[FileEntry(str(p), int(s), bool(x), str(h)) for p, s, x, h in document["files"]],
            links=[LinkEntry(str(p), str(t)) for p, t in document["links"]],
            extra=dict(document.get("extra", {})),
        )
    except (KeyError, TypeError, ValueError):
        raise CorruptObjectError(f"{where}: a done manifest with missing fields") from None


_TEMPORARY = re.compile(r"\..+" + re.escape(TEMP_MARK) + r"[0-9]+-[0-9a-f]+")
"""The name of a temporary file of :func:`xpmstore.atomic.write_atomic` (garbage: never listed)."""


def _excluded(rel: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(rel, pattern) for pattern in patterns)


def scan(directory: Path, exclude: Iterable[str] = ()) -> tuple[list[FileEntry], list[LinkEntry]]:
    """Hash every regular file and read every link under ``directory`` but ``.xpm/``.

    Temporary files of atomic writes in progress are skipped; so are folders that cannot be
    read.  Raises CorruptObjectError for a special file (fifo, socket, device).  One ``lstat``
    per entry, and a small file is read with one ``open``/``read``/``close`` (none for an empty
    one).
    """
    patterns = tuple(exclude)
    files: list[FileEntry] = []
    links: list[LinkEntry] = []
    folders = [(str(directory), "")]
    while folders:
        current, rel_dir = folders.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            rel = f"{rel_dir}{name}"
            try:
                is_dir = entry.is_dir()  # a link to a folder counts (listed as a link below)
            except OSError:
                is_dir = False
            if is_dir:
                if not rel_dir and name == ".xpm":
                    continue
                if not entry.is_symlink():
                    folders.append((entry.path, f"{rel}/"))
                elif not _excluded(rel, patterns):  # the globs apply to it as to files
                    links.append(LinkEntry(rel, os.readlink(entry.path)))
                continue
            if _excluded(rel, patterns) or _TEMPORARY.fullmatch(name):
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links.append(LinkEntry(rel, os.readlink(entry.path)))
            elif stat.S_ISREG(st.st_mode):
                files.append(FileEntry(rel, st.st_size, bool(st.st_mode & 0o111),
                                       _hash(entry.path, st.st_size)))
            else:
                raise CorruptObjectError(
                    f"{entry.path}: special files cannot be part of an object")
    files.sort(key=lambda f: f.path)
    links.sort(key=lambda link: link.path)
    return files, links


_EMPTY = blake3(b"").hexdigest()
_SMALL = 1 << 20  # below, one read (hash_file maps larger files and hashes them on all cores)


def _hash(path: str, size: int) -> str:
    """The blake3 (hex) of the regular file ``path`` of ``size`` bytes (as ``lstat`` said)."""
    if size == 0:
        return _EMPTY
    if size >= _SMALL:
        return hash_file(path, size).hex()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        data = os.read(fd, size + 1)
        if len(data) != size:  # it changed since: read what it holds now, to its end
            rest = [data]
            while chunk := os.read(fd, 1 << 16):
                rest.append(chunk)
            data = b"".join(rest)
    finally:
        os.close(fd)
    return blake3(data).hexdigest()


def make(directory: Path, identifier: str, kind: str, name: str,
         exclude: Iterable[str] = (), extra: dict[str, Any] | None = None) -> Manifest:
    """Scan ``directory`` into a manifest (not written: see :func:`xpmstore.objects.finish`)."""
    files, links = scan(directory, exclude)
    return Manifest(identifier, kind, name, time.time(), files, links, extra or {})


def verify(directory: Path, manifest: Manifest) -> list[str]:
    """The differences between ``directory`` and its manifest (empty when intact)."""
    problems = []
    for entry in manifest.files:
        full = directory / entry.path
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            problems.append(f"{entry.path}: missing")
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{entry.path}: not a regular file")
        elif st.st_size != entry.size:
            problems.append(f"{entry.path}: size {st.st_size}, expected {entry.size}")
        elif hash_file(full, st.st_size).hex() != entry.blake3:
            problems.append(f"{entry.path}: content differs from the manifest")
    for link in manifest.links:
        full = directory / link.path
        if not os.path.islink(full):
            problems.append(f"{link.path}: link missing")
        elif os.readlink(full) != link.target:
            problems.append(f"{link.path}: link target changed")
    return problems
