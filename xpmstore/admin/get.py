"""Getting a done object: ``xpmstore get ID [--to DIR] [--json]`` (docs/cli.md).

:func:`get` finds the object by the index alone when it can (one read transaction and one
``stat``), else through :meth:`~xpmstore.store.lookup.Store.get`, which reconciles the index with
the disk and says why an object is missing; an object absent here is pulled (verified) from the
workspace's remote when one is configured.  Imports are lazy: ``xpmstore get ID`` loads neither
the configuration machinery nor the scheduler.

:func:`copy_out` copies an object out of the store: its files and links, without its ``.xpm/``
bookkeeping, checked against the done manifest (sizes and blake3) once written, so what lands
in ``DIR`` is exactly what the object holds.  Like ``cp -r``: when ``DIR`` exists (a
directory), the copy goes to ``DIR/<identifier>``; otherwise ``DIR`` itself becomes the copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFound
from ..store.locate import find_done

if TYPE_CHECKING:
    from ..store.lookup import Record
    from ..store.workspace import Workspace

__all__ = ["GetResult", "copy_out", "get"]


@dataclass(frozen=True)
class GetResult:
    """What :func:`get` found: the object's identifier and ``path`` (its directory, or its copy
    when one was made: then ``copied_to`` is that path too), and its ``record`` when it was read
    (``with_record``, or a copy, or an object that was not settled by the index alone)."""

    identifier: str
    path: Path
    record: Record | None = None
    copied_to: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """Every field of the record (the identifier and path alone when it was not read) and
        ``copied_to``, JSON-ready."""
        known = self.record.to_json() if self.record is not None else \
            {"identifier": self.identifier, "path": str(self.path)}
        return {**known, "copied_to": str(self.copied_to) if self.copied_to is not None else None}


def get(workspace: Workspace, text: str, *, to: Path | None = None,
        with_record: bool = False) -> GetResult:
    """The done object that ``text`` (an identifier or a unique prefix) names, pulled from the
    remote when absent here; with ``to``, copied out there (:func:`copy_out`).

    Raises InvalidIdentifierError, AmbiguousPrefixError, NotFound (no done object, here or in
    the remote), CorruptObjectError (a pull or a copy that does not verify), RemoteError,
    FileExistsError (``to`` exists).  Reads only, but for a pull or a copy; safe across
    processes.
    """
    if not with_record and to is None:
        found = find_done(workspace, text)  # the index settles most lookups alone
        if found is not None:
            return GetResult(found[0], found[1])
    from ..store.lookup import Store

    try:
        record = Store(workspace).get(text)
        if record.status != "done":
            raise NotFound(f"{record.identifier} ({record.name}) is {record.status}, not done")
    except NotFound:
        from ..remote import fetch

        if fetch(workspace, text) is None:  # absent here: pulled when a remote has it
            raise
        record = Store(workspace).get(text)
    if to is None:
        return GetResult(record.identifier, record.path, record)
    copy = copy_out(record.path, to)
    return GetResult(record.identifier, copy, record, copy)


def copy_out(directory: Path, to: Path) -> Path:
    """Copy the done object at ``directory`` to ``to`` (see the module doc); returns the copy.

    Raises NotFound (not done), FileExistsError (the destination exists), CorruptObjectError
    (the copy does not match the manifest: it is removed).
    """
    import shutil

    from ..errors import CorruptObjectError
    from ..store.manifest import verify
    from ..store.taskdirs import read_manifest
    from ..store.workspace import XPM

    manifest = read_manifest(directory)
    if manifest is None:
        raise NotFound(f"{directory} is not done")
    destination = to / directory.name if to.is_dir() else to
    if destination.exists() or destination.is_symlink():
        raise FileExistsError(f"{destination} exists already")

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [XPM] if Path(folder) == directory else []

    shutil.copytree(directory, destination, symlinks=True, ignore=ignore)
    problems = verify(destination, manifest)
    if problems:
        shutil.rmtree(destination, ignore_errors=True)
        raise CorruptObjectError(f"{directory}: {problems[0]} (run xpmstore fsck)",
                                 identifier=directory.name)
    return destination
