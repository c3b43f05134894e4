"""Push done objects to a remote and pull them back, verified (DESIGN §11).

**Push** uploads the blobs an object's done manifest lists that the remote lacks (each file's
blake3 checked against the manifest first: a locally damaged object is never pushed), then —
only then — the remote object.  A push killed at any moment leaves at most unlisted blobs.

**Pull** fetches and checks the remote object (:func:`xpmstore.remote.verify.check_object`),
downloads every blob into a temporary directory beside the final one while checking its size
and blake3, creates the links, and only then publishes: under the object's claim lock, one
``rename`` of the directory to ``jobs/<name>/<id>`` (or ``cache/<name>/<id>``) and, last, the
done manifest, written atomically; then the index records it.  Anything wrong raises
CorruptObjectError naming the object, and nothing of it is published.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blake3 import blake3

from .. import objects
from ..atomic import fsync_dir, write_atomic
from ..claim import run_lock_path
from ..errors import CorruptObjectError, NotFound, ObjectInUseError, XpmstoreError
from ..index import Index
from ..inputs import hash_file
from ..liveness import launch_is_live, read_launch
from ..locate import locate
from ..locks import object_lock, try_object_lock
from ..workspace import DONE, Workspace
from .store import Remote
from .verify import RemoteObject, check_object, encode_object

__all__ = ["PushReport", "fetch", "pull", "push", "push_one", "remote_entries"]

_CHUNK = 1 << 20
_THREADS = 8


@dataclass
class PushReport:
    """What a push did: identifiers pushed, already present, and failed (with why)."""

    pushed: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def push_one(remote: Remote, directory: Path) -> bool:
    """Push the done object at ``directory``; True when its remote object was written, False
    when the remote already held it.

    Raises NotFound when the object is not done, CorruptObjectError when a file no longer
    matches its manifest, RemoteError (RemoteUnavailableError) from the remote.
    """
    try:
        done = (directory / DONE).read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{directory}: not done; only done objects are pushed") from None
    manifest = objects.read_manifest(directory)
    assert manifest is not None
    identifier = manifest.identifier
    if remote.backend.exists(remote.object_key(identifier)):
        return False
    params = (directory / "params.json").read_bytes() if manifest.kind == "task" else None
    unique = {entry.blake3: entry for entry in manifest.files}

    def upload(digest: str) -> None:
        if remote.has_blob(digest):
            return
        entry = unique[digest]
        path = directory / entry.path
        if os.path.getsize(path) != entry.size or hash_file(path).hex() != digest:
            raise CorruptObjectError(
                f"{directory}: {entry.path} differs from its done manifest; not pushed"
                " (xpmstore fsck)", identifier, digest)
        remote.put_blob(digest, path)

    with ThreadPoolExecutor(min(_THREADS, max(1, len(unique)))) as pool:
        for _ in pool.map(upload, sorted(unique)):  # re-raises the first error
            pass
    # every blob is in: only now may the manifest that lists them appear
    return remote.put_object(identifier, encode_object(done, manifest, params))


def push(workspace: Workspace, identifiers: list[str], remote: Remote) -> PushReport:
    """Push the done objects named by ``identifiers`` (full identifiers or unique prefixes).

    Failures of single objects are collected in the report; RemoteUnavailableError propagates.
    """
    from ..errors import RemoteUnavailableError

    report = PushReport()
    for text in identifiers:
        try:
            identifier, directory = locate(workspace, text)
            if push_one(remote, directory):
                report.pushed.append(identifier)
            else:
                report.present.append(identifier)
        except RemoteUnavailableError:
            raise
        except (XpmstoreError, OSError) as exc:
            report.failed.append((text, str(exc)))
    return report


def _download(remote: Remote, identifier: str, digest: str, size: int, target: Path,
              executable: bool) -> None:
    hasher = blake3()
    got = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out, remote.open_blob(digest) as stream:
        while True:
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            got += len(chunk)
            if got > size:
                break
            hasher.update(chunk)
            out.write(chunk)
        os.fchmod(out.fileno(), 0o755 if executable else 0o644)
    if got != size or hasher.hexdigest() != digest:
        raise CorruptObjectError(
            f"remote object {identifier}: blob {digest[:16]} ({target.name}) is corrupt"
            f" ({'size ' + str(got) + ' != ' + str(size) if got != size else 'blake3 differs'})",
            identifier, digest, hasher.hexdigest())


def _fill(remote: Remote, checked: RemoteObject, temp: Path) -> None:
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
                  entry.executable)

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
    (temp / ".xpm").mkdir()


def _publish(workspace: Workspace, checked: RemoteObject, temp: Path, final: Path) -> bool:
    """Move ``temp`` to ``final`` and write the done manifest last, under the claim lock; False
    when the object turned out done already.  Raises ObjectInUseError when it is running."""
    identifier = checked.manifest.identifier
    with object_lock(workspace.lock_path(identifier)):
        if objects.is_done(final):
            return False
        if checked.manifest.kind == "task":
            with try_object_lock(run_lock_path(workspace, identifier)) as free:
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


def pull(workspace: Workspace, identifier: str, remote: Remote) -> Path:
    """Pull the object ``identifier`` (a full identifier) from ``remote``, verified (see the
    module doc), and index it; returns its local directory (at once when done locally).

    Raises NotFound when the remote lacks it, CorruptObjectError when it fails verification
    (nothing published), ObjectInUseError when it is being computed here, RemoteError.
    Safe across threads and processes.
    """
    data = remote.get_object(identifier)
    if data is None:
        raise NotFound(f"{identifier}: not in the remote {remote.url}")
    checked = check_object(identifier, data)
    manifest = checked.manifest
    final = workspace.object_dir(manifest.kind, manifest.name, identifier)
    if objects.is_done(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.parent / f".pull-{identifier[:16]}-{os.getpid()}-{os.urandom(4).hex()}"
    temp.mkdir()
    try:
        _fill(remote, checked, temp)
        if _publish(workspace, checked, temp, final):
            Index.for_workspace(workspace).put(
                identifier, objects.index_record(workspace, final, manifest, checked.identity))
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return final


def fetch(workspace: Workspace, text: str) -> tuple[str, Path] | None:
    """(identifier, directory) of the object ``text`` (an identifier or unique prefix) pulled
    from the workspace's remote, or None when no remote is configured or it lacks the object.

    What ``xpmstore get`` does for an object absent locally.  Raises CorruptObjectError (nothing
    published), AmbiguousPrefixError, RemoteError.
    """
    from .store import open_remote

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
