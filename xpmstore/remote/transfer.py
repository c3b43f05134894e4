"""Pull done objects from a remote, verified (docs/remote.md); :mod:`.upload` pushes them.

**Pull** fetches and checks the remote object (:func:`xpmstore.remote.verify.check_object`),
downloads every blob into a temporary directory beside the final one while checking its size
and blake3 (for a directory remote, the kernel copies while a thread hashes the local copy just
behind it: :mod:`.trailing`), creates the links, and only then publishes: under the object's
claim lock, one ``rename`` of the directory to ``jobs/<name>/<id>`` (or ``cache/<name>/<id>``)
and, last, the done manifest, written atomically; then the index records it.  Anything wrong raises
CorruptObjectError naming the object and saying how to repair the remote (``xpmstore push
--verify``, from a machine that has a good copy), and nothing of it is published.  The downloads
check an :class:`~xpmstore.remote.interrupt.Interrupt` between chunks: a Ctrl-C stops them
within a chunk, and the temporary directory goes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from blake3 import blake3

from ..errors import (
    CorruptObjectError,
    FormatVersionError,
    NotFound,
    ObjectInUseError,
    RemoteError,
    RemoteUnavailableError,
    TransferInterrupted,
    XpmstoreError,
)
from ..store import taskdirs
from ..store.index import Index
from ..store.taskstate import launch_is_live, read_launch
from ..store.workspace import DONE, XPM, Workspace
from ..system.atomic import fsync_dir, write_atomic
from ..system.locks import object_lock, try_object_lock
from .interrupt import Interrupt, check, run_all
from .layout import Remote
from .reach import note_damaged, warn
from .trailing import TrailingHash
from .transferprogress import TransferProgress
from .verify import RemoteObject, check_object

__all__ = ["REPAIR", "fetch", "pull", "pull_instead", "remote_entries", "stream_blob"]

_CHUNK = 1 << 20
_THREADS = 8
REPAIR = "to repair the remote, run `xpmstore push --verify {}` on a machine that has a good copy"
"""What a refused pull says to do (formatted with the object's short identifier)."""


def _download(remote: Remote, identifier: str, digest: str, size: int, target: Path,
              executable: bool, progress: TransferProgress | None = None,
              interrupt: Interrupt | None = None) -> None:
    """Copy blob ``digest`` to ``target`` and check the copy's size and blake3: by the
    backend's fast path, the copy hashed by a thread that trails it (what is published is what
    was checked: :mod:`.trailing`), else streamed and hashed as it comes."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        got, actual = 0, ""
        with TrailingHash(target) as trailing:
            def written(offset: int, nbytes: int) -> None:
                check(interrupt)  # a Ctrl-C stops the copy after this piece
                trailing.written(offset, nbytes)

            copied = remote.backend.copy_into(remote.blob_key(digest), out, size + 1, written)
            if copied:
                got = os.fstat(out.fileno()).st_size
                actual = trailing.hexdigest(got) if got == size else ""
        if copied:  # (the trailing hash is closed: only now may the file be emptied)
            if progress is not None:
                progress.advance(got)
        else:
            if os.fstat(out.fileno()).st_size:  # (not when empty: ext4 then flushes the file
                out.seek(0)                     # it rewrites at its close, a stall of seconds)
                out.truncate()
            got, actual = stream_blob(remote, digest, size, out, progress, interrupt)
        os.fchmod(out.fileno(), 0o755 if executable else 0o644)
    if got != size or actual != digest:
        raise CorruptObjectError(
            f"remote object {identifier}: blob {digest[:16]} ({target.name}) is corrupt"
            f" ({'size ' + str(got) + ' != ' + str(size) if got != size else 'blake3 differs'})",
            identifier, digest, actual)


def stream_blob(remote: Remote, digest: str, size: int, out: IO[bytes] | None,
                progress: TransferProgress | None,
                interrupt: Interrupt | None = None) -> tuple[int, str]:
    """Stream blob ``digest`` into ``out`` (None: nowhere, only hashed), reading at most
    ``size`` + 1 bytes; returns (bytes read, hex blake3).  Raises RemoteError when the blob is
    missing, TransferInterrupted once ``interrupt`` is set (checked between chunks)."""
    hasher = blake3()
    got = 0
    with remote.open_blob(digest) as stream:
        while True:
            check(interrupt)
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            got += len(chunk)
            if got > size:
                break
            hasher.update(chunk)
            if out is not None:
                out.write(chunk)
            if progress is not None:
                progress.advance(len(chunk))
    return got, hasher.hexdigest()


def _fill(remote: Remote, checked: RemoteObject, temp: Path,
          progress: TransferProgress | None = None, interrupt: Interrupt | None = None) -> None:
    """Download every file of the object into ``temp`` (verified), then create its links.  A
    Ctrl-C, or a blob found corrupt, stops the other downloads within a chunk."""
    manifest = checked.manifest
    identifier = manifest.identifier
    interrupt = Interrupt(interrupt)  # a file that fails stops its siblings, not the caller's
    for entry in manifest.files:
        (temp / entry.path).parent.mkdir(parents=True, exist_ok=True)

    def fetch(index: int) -> None:
        entry = manifest.files[index]
        if entry.path == "params.json" and checked.params is not None:  # checked, inline
            (temp / entry.path).write_bytes(checked.params)
            return
        _download(remote, identifier, entry.blake3, entry.size, temp / entry.path,
                  entry.executable, progress, interrupt)

    run_all(fetch, range(len(manifest.files)), min(_THREADS, max(1, len(manifest.files))),
            interrupt)
    for link in manifest.links:
        where = temp / link.path
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link.target, where)
        except OSError as exc:
            raise CorruptObjectError(f"remote object {identifier}: link {link.path!r} cannot"
                                     f" be created ({exc.strerror})", identifier) from None
    (temp / XPM).mkdir()


def _publish(workspace: Workspace, checked: RemoteObject, temp: Path, final: Path,
             locked: bool = False) -> bool:
    """Move ``temp`` to ``final`` and write the done manifest last, under the claim lock (held
    by the caller when ``locked``); False when the object turned out done already.  Raises
    ObjectInUseError when it is running."""
    identifier = checked.manifest.identifier
    held = contextlib.nullcontext() if locked else object_lock(workspace.lock_path(identifier))
    with held:
        if taskdirs.is_done(final):
            return False
        if checked.manifest.kind == "task":
            with try_object_lock(workspace.run_lock_path(identifier)) as free:
                launch = read_launch(final) if final.exists() else None
                if not free or (launch is not None and launch_is_live(final, launch)):
                    raise ObjectInUseError(f"{identifier}: being computed here; not pulled",
                                           identifier)
        if final.exists():  # the leftovers of a failed or killed attempt
            trash = workspace.private / "trash" / f"pull-{os.getpid()}-{time.time_ns()}"
            trash.mkdir(parents=True)
            os.rename(final, trash / identifier)
        os.rename(temp, final)  # every file at once...
        fsync_dir(final.parent)
        write_atomic(final / DONE, checked.done)  # ...and, last, the done manifest
    return True


def _repair_hint(exc: CorruptObjectError, identifier: str) -> CorruptObjectError:
    """``exc`` saying how to repair the remote (:data:`REPAIR`)."""
    return CorruptObjectError(f"{exc}; {REPAIR.format(identifier[:12])}", exc.identifier,
                              exc.expected, exc.got)


def pull(workspace: Workspace, identifier: str, remote: Remote, locked: bool = False,
         progress: TransferProgress | None = None, interrupt: Interrupt | None = None) -> Path:
    """Pull the object ``identifier`` (a full identifier) from ``remote``, verified (see the
    module doc), and index it; returns its local directory (at once when done locally).

    Raises NotFound when the remote lacks it, CorruptObjectError when it fails verification
    (nothing published; the message says how to repair the remote), ObjectInUseError when it
    is being computed here, RemoteError, TransferInterrupted once ``interrupt`` is set (nothing
    published).  Safe across threads and processes.  ``locked``: the caller already holds the
    object's claim lock (``@cache`` on a miss).  ``progress`` counts the bytes downloaded.
    """
    data = remote.get_object(identifier)
    if data is None:
        raise NotFound(f"{identifier}: not in the remote {remote.url}")
    try:
        checked = check_object(identifier, data)
    except CorruptObjectError as exc:
        raise _repair_hint(exc, identifier) from None
    manifest = checked.manifest
    final = workspace.object_dir(manifest.kind, manifest.name, identifier)
    if taskdirs.is_done(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.parent / f".pull-{identifier[:16]}-{os.getpid()}-{os.urandom(4).hex()}"
    temp.mkdir()
    if progress is not None:
        progress.expect(nbytes=manifest.size)
    try:
        try:
            _fill(remote, checked, temp, progress, interrupt)
        except CorruptObjectError as exc:
            raise _repair_hint(exc, identifier) from None
        if _publish(workspace, checked, temp, final, locked):
            Index.for_workspace(workspace).put(
                identifier, taskdirs.index_record(workspace, final, manifest, checked.identity,
                                                  checked.dependencies))
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return final


def pull_instead(workspace: Workspace, identifier: str, remote: Remote, what: str, verb: str,
                 on_unreachable: Callable[[Exception], None], locked: bool = False,
                 interrupt: Interrupt | None = None) -> bool:
    """:func:`pull` for a caller that otherwise makes the object itself (``verb``: "running",
    "computing"); True when it is now here.  Never raises for the remote's sake: an absent
    object is False, an unreachable remote goes to ``on_unreachable``, a rejected or failed
    pull is one warning line naming ``what`` was pulled.  A copy rejected as damaged is noted
    (:func:`.reach.note_damaged`): pushed from this process once made here, the object
    repairs the remote's copy (:func:`.upload.push_auto`).  Interrupted (``interrupt`` set),
    it is False without a word."""
    try:
        pull(workspace, identifier, remote, locked=locked, interrupt=interrupt)
        return True
    except (NotFound, TransferInterrupted):
        return False
    except RemoteUnavailableError as exc:
        on_unreachable(exc)
    except CorruptObjectError as exc:
        note_damaged(identifier)  # this process's push of it repairs the remote's copy
        warn(f"{exc}; rejected, {verb} {identifier[:12]} locally")
    except FormatVersionError as exc:
        warn(f"{exc}; rejected, {verb} {identifier[:12]} locally")
    except (RemoteError, OSError) as exc:
        warn(f"pull of {what}{identifier[:12]} failed ({exc}); {verb} it locally")
    return False


def fetch(workspace: Workspace, text: str) -> tuple[str, Path] | None:
    """(identifier, directory) of the object ``text`` (an identifier or unique prefix) pulled
    from the workspace's remote, or None when no remote is configured or it lacks the object.

    What ``xpmstore get`` does for an object absent locally.  Raises CorruptObjectError (nothing
    published), AmbiguousPrefixError, RemoteError.
    """
    from .layout import open_remote

    remote = open_remote(workspace)
    if remote is None:
        return None
    try:
        identifier = remote.resolve(text)
        return identifier, pull(workspace, identifier, remote)
    except NotFound:
        return None


def remote_entries(remote: Remote, kind: str | None = None,
                   name: str | None = None) -> list[dict[str, Any]]:
    """One dict per remote object (identifier, kind, name, size, created, tags), newest
    first; objects that do not parse are listed with kind ``"corrupt"``.  One listing, then the
    manifests fetched on a thread pool."""
    identifiers = sorted(remote.identifiers())

    def entry(identifier: str) -> dict[str, Any]:
        try:
            data = remote.get_object(identifier)
            checked = check_object(identifier, data or b"")
        except XpmstoreError:
            return {"identifier": identifier, "kind": "corrupt", "name": "", "size": 0,
                    "created": 0.0, "tags": {}}
        m = checked.manifest
        return {"identifier": identifier, "kind": m.kind, "name": m.name, "size": m.size,
                "created": m.created, "tags": m.extra.get("tags", {})}

    with ThreadPoolExecutor(_THREADS) as pool:
        found = list(pool.map(entry, identifiers))
    found = [e for e in found if (kind is None or e["kind"] == kind)
             and (name is None or e["name"] == name)]
    found.sort(key=lambda e: e["created"], reverse=True)
    return found
