"""Push done objects to a remote and pull them back, verified (docs/remote.md).

**Push** uploads the blobs an object's done manifest lists that the remote lacks (each file's
blake3 checked against the manifest first, each reached through real folders of the object and
itself a regular file, never a link: a locally damaged or hostile object is never pushed, nor a
file outside it), then — only then — the remote object, its manifest sealed by its checksum.  An
object whose manifest fails its checks (:func:`xpmstore.store.manifest.parse`), lists other
dependencies than its params.json, or holds a link leaving it is refused.  A blob already in
the remote but older than half remote gc's grace period is refreshed (made new) rather than
trusted to stay.  A push killed at any moment leaves at most unlisted blobs.

**Pull** fetches and checks the remote object (:func:`xpmstore.remote.verify.check_object`),
downloads every blob into a temporary directory beside the final one while checking its size
and blake3 (for a directory remote, the kernel copies while a thread hashes the local copy just
behind it: :mod:`.trailing`), creates the links, and only then publishes: under the object's
claim lock, one ``rename`` of the directory to ``jobs/<name>/<id>`` (or ``cache/<name>/<id>``)
and, last, the done manifest, written atomically; then the index records it.  Anything wrong raises
CorruptObjectError naming the object, and nothing of it is published.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from blake3 import blake3

from ..core.digests import hash_file
from ..errors import (
    CorruptObjectError,
    FormatVersionError,
    NotFound,
    ObjectInUseError,
    RemoteError,
    RemoteUnavailableError,
    XpmstoreError,
)
from ..store import manifest as manifest_module
from ..store import taskdirs
from ..store.edges import dependencies_problem, params_dependencies
from ..store.index import Index
from ..store.locate import locate
from ..store.taskstate import launch_is_live, read_launch
from ..store.workspace import DONE, XPM, Workspace
from ..system import jsonio
from ..system.atomic import fsync_dir, write_atomic
from ..system.locks import object_lock, try_object_lock
from .layout import Remote
from .reach import warn
from .trailing import TrailingHash
from .transferprogress import TransferProgress
from .verify import RemoteObject, check_object, encode_object, sharing_problem

__all__ = ["PushReport", "fetch", "pull", "pull_instead", "push", "push_one", "remote_entries"]

_CHUNK = 1 << 20
_THREADS = 8
_OBJECT_THREADS = 4
GRACE = 24 * 3600.0
"""Remote gc deletes an unreferenced blob only when it is older than this (:mod:`.collect`)."""
REFRESH_AGE = GRACE / 2
"""A push that deduplicates against a blob older than this refreshes it first."""


@dataclass
class PushReport:
    """What a push did: identifiers pushed, already present, and failed (with why)."""

    pushed: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _refused(directory: Path, why: str, identifier: str = "",
             digest: str = "") -> CorruptObjectError:
    return CorruptObjectError(f"{directory}: {why}; not pushed (xpmstore fsck)",
                              identifier or directory.name, digest)


def _listed_file(directory: Path, entry: manifest_module.FileEntry, folders: set[str]) -> Path:
    """The path of the file ``entry`` of the object at ``directory``, checked: reached through
    real folders of the object, itself a regular file (not a link), of the size and blake3 its
    manifest lists.  Raises CorruptObjectError otherwise."""
    path = directory / entry.path
    try:
        st = None if manifest_module.beneath_links(directory, entry.path, folders) \
            else os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != entry.size \
            or hash_file(path, st.st_size).hex() != entry.blake3:
        raise _refused(directory, f"{entry.path} differs from its done manifest",
                       digest=entry.blake3)
    return path


def push_one(remote: Remote, directory: Path, progress: TransferProgress | None = None) -> bool:
    """Push the done object at ``directory``; True when its remote object was written, False
    when the remote already held it.

    Raises NotFound when the object is not done, CorruptObjectError when its manifest fails its
    checks or a file no longer matches it (see the module doc), RemoteError
    (RemoteUnavailableError) from the remote.  ``progress`` counts the bytes uploaded.
    """
    manifest = taskdirs.read_manifest(directory)
    if manifest is None:
        raise NotFound(f"{directory}: not done; only done objects are pushed")
    identifier = manifest.identifier
    if identifier != directory.name:
        raise _refused(directory, f"its done manifest names another object ({identifier[:16]})")
    problem = sharing_problem(manifest)
    if problem:
        raise _refused(directory, problem)
    folders: set[str] = set()
    params = None
    if manifest.kind == "task":
        listed = next((f for f in manifest.files if f.path == "params.json"), None)
        if listed is None:
            raise _refused(directory, "its done manifest lists no params.json")
        params = _listed_file(directory, listed, folders).read_bytes()
        try:
            document = jsonio.loads(params, str(directory / "params.json"))
        except XpmstoreError as exc:
            raise _refused(directory, str(exc)) from None
        differs = dependencies_problem(manifest.dependencies, params_dependencies(document))
        if differs:
            raise _refused(directory, differs)
    if remote.backend.exists(remote.object_key(identifier)):
        return False
    unique = {entry.blake3: entry for entry in manifest.files}
    lock = threading.Lock()

    def upload(digest: str) -> None:
        written = remote.backend.mtime(remote.blob_key(digest))
        if written is not None and time.time() - written < REFRESH_AGE:
            return  # deduplicated against a recent blob
        entry = unique[digest]
        with lock:  # (the folders found real, shared by the threads)
            path = _listed_file(directory, entry, folders)
        if written is None:
            remote.put_blob(digest, path)
            if progress is not None:
                progress.advance(entry.size)
        else:  # an old blob remote gc might be about to take: made new before it is listed
            remote.backend.refresh(remote.blob_key(digest), path)

    if len(unique) <= 1:  # one file (a typical @cache entry): no pool to start
        for digest in unique:
            upload(digest)
    else:
        with ThreadPoolExecutor(min(_THREADS, len(unique))) as pool:
            for _ in pool.map(upload, sorted(unique)):  # re-raises the first error
                pass
    # every blob is in: only now may the manifest that lists them appear
    done = manifest_module.build(manifest)  # sealed by its checksum, whatever its age
    return remote.put_object(identifier, encode_object(done, manifest, params))


def push(workspace: Workspace, identifiers: list[str], remote: Remote,
         progress: TransferProgress | None = None,
         on_result: Callable[[str, str, str], None] | None = None) -> PushReport:
    """Push the done objects named by ``identifiers`` (full identifiers or unique prefixes), a
    few at a time.  ``on_result(outcome, identifier, why)`` is called (from a worker thread) as
    each one finishes: ``"pushed"``, ``"present"`` or ``"failed"``.

    Failures of single objects are collected in the report; RemoteUnavailableError propagates.
    """
    from ..errors import RemoteUnavailableError

    report = PushReport()
    lock = threading.Lock()
    if progress is not None:
        progress.expect(objects=len(identifiers))

    def one(text: str) -> None:
        try:
            identifier, directory = locate(workspace, text)
            outcome, name, why = ("pushed" if push_one(remote, directory, progress)
                                  else "present"), identifier, ""
        except RemoteUnavailableError:
            raise
        except (XpmstoreError, OSError) as exc:
            outcome, name, why = "failed", text, str(exc)
        with lock:
            if outcome == "failed":
                report.failed.append((name, why))
            else:
                getattr(report, outcome).append(name)
        if progress is not None:
            progress.finished()
        if on_result is not None:
            on_result(outcome, name, why)

    with ThreadPoolExecutor(min(_OBJECT_THREADS, max(1, len(identifiers)))) as pool:
        for _ in pool.map(one, identifiers):  # re-raises RemoteUnavailableError
            pass
    return report


def _download(remote: Remote, identifier: str, digest: str, size: int, target: Path,
              executable: bool, progress: TransferProgress | None = None) -> None:
    """Copy blob ``digest`` to ``target`` and check the copy's size and blake3: by the
    backend's fast path, the copy hashed by a thread that trails it (what is published is what
    was checked: :mod:`.trailing`), else streamed and hashed as it comes."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        got, actual = 0, ""
        with TrailingHash(target) as trailing:
            copied = remote.backend.copy_into(remote.blob_key(digest), out, size + 1,
                                              trailing.written)
            if copied:
                got = os.fstat(out.fileno()).st_size
                actual = trailing.hexdigest(got) if got == size else ""
        if copied:  # (the trailing hash is closed: only now may the file be emptied)
            if progress is not None:
                progress.advance(got)
        else:
            out.seek(0)
            out.truncate()
            got, actual = _stream(remote, digest, size, out, progress)
        os.fchmod(out.fileno(), 0o755 if executable else 0o644)
    if got != size or actual != digest:
        raise CorruptObjectError(
            f"remote object {identifier}: blob {digest[:16]} ({target.name}) is corrupt"
            f" ({'size ' + str(got) + ' != ' + str(size) if got != size else 'blake3 differs'})",
            identifier, digest, actual)


def _stream(remote: Remote, digest: str, size: int, out: IO[bytes],
            progress: TransferProgress | None) -> tuple[int, str]:
    """Stream blob ``digest`` into ``out`` (at most ``size`` + 1 bytes), hashing it; returns
    (bytes read, hex blake3)."""
    hasher = blake3()
    got = 0
    with remote.open_blob(digest) as stream:
        while True:
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            got += len(chunk)
            if got > size:
                break
            hasher.update(chunk)
            out.write(chunk)
            if progress is not None:
                progress.advance(len(chunk))
    return got, hasher.hexdigest()


def _fill(remote: Remote, checked: RemoteObject, temp: Path,
          progress: TransferProgress | None = None) -> None:
    """Download every file of the object into ``temp`` (verified), then create its links."""
    manifest = checked.manifest
    identifier = manifest.identifier
    for entry in manifest.files:
        (temp / entry.path).parent.mkdir(parents=True, exist_ok=True)

    def fetch(index: int) -> None:
        entry = manifest.files[index]
        if entry.path == "params.json" and checked.params is not None:  # checked, inline
            (temp / entry.path).write_bytes(checked.params)
            return
        _download(remote, identifier, entry.blake3, entry.size, temp / entry.path,
                  entry.executable, progress)

    with ThreadPoolExecutor(min(_THREADS, max(1, len(manifest.files)))) as pool:
        for _ in pool.map(fetch, range(len(manifest.files))):
            pass
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


def pull(workspace: Workspace, identifier: str, remote: Remote, locked: bool = False,
         progress: TransferProgress | None = None) -> Path:
    """Pull the object ``identifier`` (a full identifier) from ``remote``, verified (see the
    module doc), and index it; returns its local directory (at once when done locally).

    Raises NotFound when the remote lacks it, CorruptObjectError when it fails verification
    (nothing published), ObjectInUseError when it is being computed here, RemoteError.
    Safe across threads and processes.  ``locked``: the caller already holds the object's
    claim lock (``@cache`` on a miss).  ``progress`` counts the bytes downloaded.
    """
    data = remote.get_object(identifier)
    if data is None:
        raise NotFound(f"{identifier}: not in the remote {remote.url}")
    checked = check_object(identifier, data)
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
        _fill(remote, checked, temp, progress)
        if _publish(workspace, checked, temp, final, locked):
            Index.for_workspace(workspace).put(
                identifier, taskdirs.index_record(workspace, final, manifest, checked.identity,
                                                  checked.dependencies))
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return final


def pull_instead(workspace: Workspace, identifier: str, remote: Remote, what: str, verb: str,
                 on_unreachable: Callable[[Exception], None], locked: bool = False) -> bool:
    """:func:`pull` for a caller that otherwise makes the object itself (``verb``: "running",
    "computing"); True when it is now here.  Never raises for the remote's sake: an absent
    object is False, an unreachable remote goes to ``on_unreachable``, a rejected or failed
    pull is one warning line naming ``what`` was pulled."""
    try:
        pull(workspace, identifier, remote, locked=locked)
        return True
    except NotFound:
        return False
    except RemoteUnavailableError as exc:
        on_unreachable(exc)
    except (CorruptObjectError, FormatVersionError) as exc:
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
