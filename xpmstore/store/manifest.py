"""The done manifest: the list of every file of a finished object, written last.

An object (task directory or cache entry) is done exactly when ``.xpm/done`` exists.  The
manifest lists every regular file and symlink under the object's directory but ``.xpm/`` (logs
included) with its relative path, size, executable bit and blake3 (or the link's target).  Globs
of a task's ``__xpm_exclude__`` are neither listed nor shared.

A manifest is input when it is read back (a local one, or one pulled from the remote):
:func:`parse` checks its own blake3 (``checksum``, over its canonical body; a manifest written
before it existed has none and is read as before), every field's type, and every path — relative,
normalised, outside ``.xpm/``, listed once, never beneath another listed entry — so that no
reader ever builds a path outside the object from it.  :func:`escaping_link` says whether a link
leaves the object (what is shared must not), and :func:`verify` never follows a link on the way
to a listed file.

:func:`build`, :func:`parse` and :func:`escaping_link` are pure; :func:`scan` and :func:`verify`
read the disk.
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

from ..core.digests import hash_file
from ..core.identifier import is_full_identifier
from ..errors import CorruptObjectError, FormatVersionError, MalformedFileError
from ..system import jsonio
from ..system.atomic import TEMP_MARK
from .workspace import XPM

__all__ = ["FileEntry", "LinkEntry", "Manifest", "beneath_links", "build", "checksum",
           "entries_problem", "escaping_link", "parse", "path_problem", "scan", "verify"]

_FORMAT = "xpmstore.done"
VERSION = 1
_KINDS = ("task", "cache")
_MAX_HOPS = 40
"""Links followed in a row before a target counts as a loop (the kernel's limit): a loop never
resolves (ELOOP), so it reaches nothing outside."""


class _Loop(Exception):
    """A link target that never resolves."""


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
    sealed: bool = field(default=False, compare=False)
    """Whether the bytes it was parsed from carried their checksum (False: written before
    manifests had one, or built here)."""

    @property
    def dependencies(self) -> list[str]:
        """The identifiers of the tasks it says it was made from (checked 64-hex by
        :func:`parse`)."""
        return list(self.extra.get("dependencies") or [])

    @property
    def size(self) -> int:
        """Total bytes of the listed files."""
        return sum(entry.size for entry in self.files)


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")


def checksum(document: dict[str, Any]) -> str:
    """The blake3 (hex) of a manifest document's canonical body: the document without its
    ``checksum`` key, as :func:`build` writes it (compact JSON, sorted keys). Pure."""
    return blake3(_canonical({k: v for k, v in document.items() if k != "checksum"})).hexdigest()


def build(manifest: Manifest) -> bytes:
    """The manifest's bytes (stable JSON, sealed by its checksum). Pure."""
    document: dict[str, Any] = {
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
    document["checksum"] = checksum(document)
    return _canonical(document)


def parse(data: bytes, where: str = "manifest") -> Manifest:
    """Parse and check manifest bytes read from ``where`` (named in errors; see the module doc).

    Raises CorruptObjectError (not a manifest, a checksum that differs, a malformed field or
    path), FormatVersionError (written by a newer xpmstore). Pure.
    """
    try:
        document = jsonio.loads(data, where)
    except MalformedFileError as exc:  # (its message names the file)
        raise CorruptObjectError(str(exc)) from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise CorruptObjectError(f"{where}: not a done manifest")
    version = document.get("version")
    if type(version) is not int or version < 1:
        raise CorruptObjectError(f"{where}: a done manifest without a valid version")
    if version > VERSION:
        raise FormatVersionError(f"{where}: manifest version {version} is newer than this"
                                 " xpmstore reads; upgrade xpmstore")
    stored = document.get("checksum")
    if stored is not None and stored != checksum(document):
        raise CorruptObjectError(f"{where}: the done manifest does not match its own checksum"
                                 " (damaged)")
    try:
        manifest = _fields(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptObjectError(f"{where}: a done manifest with missing or malformed fields"
                                 f" ({exc})") from None
    manifest.sealed = stored is not None
    problem = entries_problem(manifest)
    if problem:
        raise CorruptObjectError(f"{where}: {problem}", manifest.identifier)
    return manifest


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_hex64 = is_full_identifier


def _fields(document: dict[str, Any]) -> Manifest:
    """The manifest of a document, every field of the type :func:`build` writes (ValueError,
    KeyError or TypeError otherwise)."""
    identifier, kind, name = document["identifier"], document["kind"], document["name"]
    _need(_hex64(identifier), "identifier")
    _need(kind in _KINDS, "kind")
    _need(isinstance(name, str) and bool(name) and "/" not in name and "\0" not in name
          and not name.startswith("."), "name")
    _need(_number(document["created"]), "created")
    files = []
    for path, size, executable, digest in document["files"]:
        _need(isinstance(path, str) and type(size) is int and size >= 0
              and isinstance(executable, bool) and _hex64(digest), f"file {path!r}")
        files.append(FileEntry(path, size, executable, digest))
    links = []
    for path, target in document["links"]:
        _need(isinstance(path, str) and isinstance(target, str), f"link {path!r}")
        links.append(LinkEntry(path, target))
    extra = document.get("extra", {})
    _need(isinstance(extra, dict), "extra")
    dependencies = extra.get("dependencies", [])
    _need(isinstance(dependencies, list) and all(_hex64(d) for d in dependencies),
          "dependencies (64-hex identifiers)")
    _need(isinstance(extra.get("tags", {}), dict), "tags")
    return Manifest(identifier, kind, name, float(document["created"]), files, links,
                    dict(extra))


def path_problem(path: str) -> str:
    """Why ``path`` cannot name an entry of an object ('' when it can): it must be relative,
    normalised (no empty, ``.`` or ``..`` component), free of NUL, and outside ``.xpm/``. Pure."""
    if not path:
        return "empty"
    if path.startswith("/"):
        return "absolute"
    if "\0" in path:
        return "holds a NUL"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "not normalised, or '..' leaving the object"
    if parts[0] == XPM:
        return f"inside {XPM}/"
    return ""


def entries_problem(manifest: Manifest) -> str:
    """Why the entries of ``manifest`` cannot all lie inside its object ('' when they do): a
    path refused by :func:`path_problem`, listed twice, or beneath another listed entry (a file
    or a link: reading it would go through that link). Pure."""
    listed: set[str] = set()
    for path in [f.path for f in manifest.files] + [link.path for link in manifest.links]:
        problem = path_problem(path)
        if problem:
            return f"refused path {path!r} ({problem})"
        if path in listed:
            return f"refused path {path!r} (listed twice)"
        listed.add(path)
    for path in listed:
        parent = path
        while "/" in parent:
            parent = parent.rpartition("/")[0]
            if parent in listed:
                return f"refused path {path!r} (beneath the listed entry {parent!r})"
    return ""


def _resolve(folder: list[str], target: str, links: dict[str, str], hops: int) -> list[str] | None:
    """The components, from the object's top, of ``target`` read from the folder ``folder``,
    following the object's own ``links`` as the kernel would (a missing folder is passed
    through, as if it were there); None when it leaves the object.  Raises _Loop."""
    if hops > _MAX_HOPS:
        raise _Loop
    if not target or target.startswith("/") or "\0" in target:
        return None
    where = list(folder)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not where:
                return None
            where.pop()
            continue
        where.append(part)
        inner = links.get("/".join(where))
        if inner is not None:  # a link of the object: followed, from the folder that holds it
            where.pop()
            found = _resolve(where, inner, links, hops + 1)
            if found is None:
                return None
            where = found
    return where


def escaping_link(manifest: Manifest) -> LinkEntry | None:
    """The first link of ``manifest`` whose target leaves the object — absolute, climbing out
    with ``..``, or through another of its links (``s -> .`` then ``l -> s/..``) — or None.
    A loop of links reaches nothing and does not count.  A local task may link outside (to a
    dataset, say); a shared object may not. Pure."""
    links = {link.path: link.target for link in manifest.links}
    for link in manifest.links:
        folder = link.path.split("/")[:-1]
        try:
            if _resolve(folder, link.target, links, 0) is None:
                return link
        except _Loop:
            continue
    return None


_TEMPORARY = re.compile(r"\..+" + re.escape(TEMP_MARK) + r"[0-9]+-[0-9a-f]+")
"""The name of a temporary file of :func:`xpmstore.system.atomic.write_atomic` (garbage: never
listed)."""


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
                if not rel_dir and name == XPM:
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
    """Scan ``directory`` into a manifest (not written: see
    :func:`xpmstore.store.taskdirs.finish`)."""
    files, links = scan(directory, exclude)
    return Manifest(identifier, kind, name, time.time(), files, links, extra or {})


def beneath_links(directory: Path, path: str, folders: set[str]) -> bool:
    """Whether reaching the entry ``path`` of the object at ``directory`` would go through
    something that is not a real folder of the object (a link, which may lead outside it, or a
    file).  ``folders`` remembers the folders found real (one ``lstat`` each per call site); a
    missing folder is not "beneath a link" (the entry is simply missing)."""
    parts = path.split("/")[:-1]
    for end in range(1, len(parts) + 1):
        folder = "/".join(parts[:end])
        if folder in folders:
            continue
        try:
            mode = os.lstat(directory / folder).st_mode
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(mode):
            return True
        folders.add(folder)
    return False


def verify(directory: Path, manifest: Manifest) -> list[str]:
    """The differences between ``directory`` and its manifest (empty when intact).  No link is
    followed on the way to a listed entry: an entry reached through one is a difference."""
    problems = []
    folders: set[str] = set()
    for entry in manifest.files:
        full = directory / entry.path
        if beneath_links(directory, entry.path, folders):
            problems.append(f"{entry.path}: beneath a link or a file, not a folder (not"
                            " followed)")
            continue
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
        if beneath_links(directory, link.path, folders):
            problems.append(f"{link.path}: beneath a link or a file, not a folder (not"
                            " followed)")
        elif not os.path.islink(full):
            problems.append(f"{link.path}: link missing")
        elif os.readlink(full) != link.target:
            problems.append(f"{link.path}: link target changed")
    return problems
