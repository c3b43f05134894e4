"""Push done objects to a remote, and repair the remote's damaged copies (docs/remote.md).

**Push** uploads the blobs an object's done manifest lists that the remote lacks (each file's
blake3 checked against the manifest first, each reached through real folders of the object and
itself a regular file, never a link: a locally damaged or hostile object is never pushed, nor a
file outside it), then — only then — the remote object, its manifest sealed by its checksum.  An
object whose manifest fails its checks (:func:`xpmstore.store.manifest.parse`), lists other
dependencies than its params.json, or holds a link leaving it is refused.  A blob already in
the remote but older than half remote gc's grace period is refreshed (made new) rather than
trusted to stay.  A push killed at any moment leaves at most unlisted blobs.

**Verify** (``xpmstore push --verify``) is the repair: a push deduplicates by key, so a remote
blob damaged after its upload is never replaced by pushing again.  :func:`verify_one` reads the
remote copy of an object back — its manifest checked as a pull checks it, every blob it lists
hashed — and replaces what is damaged from the local copy, itself checked against its manifest
first (a damaged local copy is refused, never uploaded).  Replacing is atomic for readers (a
rename over the old file, a PUT over the old key): a concurrent pull reads the old bytes or the
new ones.

An upload checks an :class:`~xpmstore.remote.interrupt.Interrupt` between chunks (:func:`push`
sets it on Ctrl-C): an interrupted object publishes nothing more, its manifest least of all.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core.digests import hash_file
from ..errors import (
    CorruptObjectError,
    NotFound,
    RemoteUnavailableError,
    TransferInterrupted,
    XpmstoreError,
)
from ..store import manifest as manifest_module
from ..store import taskdirs
from ..store.edges import dependencies_problem, params_dependencies
from ..store.locate import locate
from ..store.manifest import FileEntry, Manifest
from ..store.workspace import Workspace
from ..system import jsonio
from . import reach
from .interrupt import Interrupt, run_all
from .layout import Remote
from .transfer import stream_blob
from .transferprogress import TransferProgress
from .verify import check_object, encode_object, sharing_problem

__all__ = ["GRACE", "REFRESH_AGE", "PushReport", "blob_intact", "push", "push_auto", "push_one",
           "verify_one"]

_THREADS = 8
_OBJECT_THREADS = 4
GRACE = 24 * 3600.0
"""Remote gc deletes an unreferenced blob only when it is older than this (:mod:`.collect`)."""
REFRESH_AGE = GRACE / 2
"""A push that deduplicates against a blob older than this refreshes it first."""


@dataclass
class PushReport:
    """What a push did, filled as each object ends (so that a caller interrupted by Ctrl-C
    still knows): the identifiers pushed, already present, verified intact and repaired
    (``--verify``), stopped by the interrupt, and failed (with why); ``expected``: how many
    objects it was asked to push."""

    pushed: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    expected: int = 0

    def in_remote(self) -> int:
        """How many of the objects are now in the remote, whole (pushed, present, verified or
        repaired)."""
        return len(self.pushed) + len(self.present) + len(self.verified) + len(self.repaired)


def _refused(directory: Path, why: str, identifier: str = "",
             digest: str = "") -> CorruptObjectError:
    return CorruptObjectError(f"{directory}: {why}; not pushed (xpmstore fsck)",
                              identifier or directory.name, digest)


def _listed_file(directory: Path, entry: FileEntry, folders: set[str]) -> Path:
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


@dataclass
class _Local:
    """A done object of the workspace whose manifest and params.json were checked for sharing;
    its files are checked one by one as they are uploaded (:meth:`file`)."""

    directory: Path
    manifest: Manifest
    params: bytes | None
    folders: set[str] = field(default_factory=set)  # folders found real (shared by threads)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def file(self, entry: FileEntry) -> Path:
        """The local file of ``entry``, checked against the manifest (CorruptObjectError)."""
        with self.lock:
            return _listed_file(self.directory, entry, self.folders)

    def document(self) -> bytes:
        """The remote object to publish: the manifest sealed by its checksum, whatever its
        age, with params.json."""
        done = manifest_module.build(self.manifest)
        return encode_object(done, self.manifest, self.params)


def _local(directory: Path) -> _Local:
    """The done object at ``directory``, checked for sharing (see the module doc).  Raises
    NotFound when it is not done, CorruptObjectError when it cannot be shared."""
    manifest = taskdirs.read_manifest(directory)
    if manifest is None:
        raise NotFound(f"{directory}: not done; only done objects are pushed")
    identifier = manifest.identifier
    if identifier != directory.name:
        raise _refused(directory, f"its done manifest names another object ({identifier[:16]})")
    problem = sharing_problem(manifest)
    if problem:
        raise _refused(directory, problem)
    local = _Local(directory, manifest, None)
    if manifest.kind == "task":
        listed = next((f for f in manifest.files if f.path == "params.json"), None)
        if listed is None:
            raise _refused(directory, "its done manifest lists no params.json")
        local.params = local.file(listed).read_bytes()
        try:
            document = jsonio.loads(local.params, str(directory / "params.json"))
        except XpmstoreError as exc:
            raise _refused(directory, str(exc)) from None
        differs = dependencies_problem(manifest.dependencies, params_dependencies(document))
        if differs:
            raise _refused(directory, differs)
    return local


def _each(call: Callable[[str], object], items: Sequence[str], interrupt: Interrupt) -> None:
    """``call`` on each item: inline for one (a typical ``@cache`` entry: no pool to start),
    else on a pool (:func:`~xpmstore.remote.interrupt.run_all`: a failure, or a Ctrl-C, sets
    ``interrupt``, which the calls check)."""
    if len(items) <= 1:
        for item in items:
            call(item)
    else:
        run_all(call, items, min(_THREADS, len(items)), interrupt)


def push_one(remote: Remote, directory: Path, progress: TransferProgress | None = None,
             interrupt: Interrupt | None = None) -> bool:
    """Push the done object at ``directory``; True when its remote object was written, False
    when the remote already held it.

    Raises NotFound when the object is not done, CorruptObjectError when its manifest fails its
    checks or a file no longer matches it (see the module doc), RemoteError
    (RemoteUnavailableError) from the remote, TransferInterrupted once ``interrupt`` is set
    (its manifest not published).  ``progress`` counts the bytes uploaded.
    """
    local = _local(directory)
    identifier = local.manifest.identifier
    interrupt = Interrupt(interrupt)  # a file that fails stops its siblings, not the caller's
    interrupt.check()
    if remote.backend.exists(remote.object_key(identifier)):
        return False
    unique = {entry.blake3: entry for entry in local.manifest.files}

    def upload(digest: str) -> None:
        interrupt.check()
        written = remote.backend.mtime(remote.blob_key(digest))
        if written is not None and time.time() - written < REFRESH_AGE:
            return  # deduplicated against a recent blob
        entry = unique[digest]
        path = local.file(entry)
        if written is None:
            remote.put_blob(digest, path, interrupt=interrupt)
            if progress is not None:
                progress.advance(entry.size)
        else:  # an old blob remote gc might be about to take: made new before it is listed
            remote.backend.refresh(remote.blob_key(digest), path, interrupt)

    _each(upload, sorted(unique), interrupt)
    interrupt.check()  # every blob is in, but the user asked to stop: no manifest
    return remote.put_object(identifier, local.document())


def blob_intact(remote: Remote, digest: str, size: int,
                interrupt: Interrupt | None = None) -> bool:
    """Whether the remote holds the blob ``digest`` with ``size`` bytes whose blake3 is
    ``digest`` (read back in full); a missing blob is not.  Raises RemoteError when it cannot
    be read (a connection dropped is not a damaged blob), TransferInterrupted."""
    if not remote.has_blob(digest):
        return False
    got, actual = stream_blob(remote, digest, size, None, None, interrupt)
    return got == size and actual == digest


def _damaged_blobs(remote: Remote, sizes: dict[str, int], interrupt: Interrupt) -> set[str]:
    """Which of the blobs ``sizes`` (digest → size) the remote lacks or holds damaged."""
    damaged: set[str] = set()
    lock = threading.Lock()

    def one(digest: str) -> None:
        if not blob_intact(remote, digest, sizes[digest], interrupt):
            with lock:
                damaged.add(digest)

    _each(one, sorted(sizes), interrupt)
    return damaged


def _replace_blobs(remote: Remote, local: _Local, digests: set[str],
                   progress: TransferProgress | None, interrupt: Interrupt) -> None:
    """Upload the blobs ``digests`` from ``local`` (each file checked against the manifest
    first), over whatever the remote holds under their keys."""
    entries = {entry.blake3: entry for entry in local.manifest.files}

    def upload(digest: str) -> None:
        entry = entries[digest]
        remote.put_blob(digest, local.file(entry), replace=True, interrupt=interrupt)
        if progress is not None:
            progress.advance(entry.size)

    _each(upload, sorted(digests), interrupt)


def verify_one(remote: Remote, directory: Path, progress: TransferProgress | None = None,
               interrupt: Interrupt | None = None) -> str:
    """Check the remote's copy of the done object at ``directory`` and repair it from this one
    (see the module doc); returns ``"verified"`` (intact), ``"repaired"`` (blobs, or the
    manifest, replaced) or ``"pushed"`` (the remote lacked it).

    The remote's manifest is kept when every blob it lists is intact, or can be replaced from
    this copy; it is replaced by this copy's — after this copy's blobs are in, intact — when it
    is damaged, unsealed (pushed before manifests had a checksum), or lists a damaged blob this
    copy does not hold (a task whose outputs differ from run to run).

    Raises what :func:`push_one` raises (CorruptObjectError for a damaged local copy: nothing
    is uploaded from it), and FormatVersionError when the remote's copy was written by a newer
    xpmstore (left as it is).
    """
    local = _local(directory)
    identifier = local.manifest.identifier
    interrupt = Interrupt(interrupt)  # a file that fails stops its siblings, not the caller's
    ours = {entry.blake3: entry.size for entry in local.manifest.files}
    data = remote.get_object(identifier)
    theirs = None
    if data is not None:
        try:
            theirs = check_object(identifier, data).manifest
        except CorruptObjectError:
            theirs = None  # damaged: replaced by this copy's below
    if theirs is not None and theirs.sealed:
        damaged = _damaged_blobs(remote, {e.blake3: e.size for e in theirs.files}, interrupt)
        if not damaged:
            return "verified"
        if damaged <= ours.keys():
            _replace_blobs(remote, local, damaged, progress, interrupt)
            return "repaired"
    _replace_blobs(remote, local, _damaged_blobs(remote, ours, interrupt), progress, interrupt)
    interrupt.check()  # every blob is in, intact, but the user asked to stop: no manifest
    remote.put_object(identifier, local.document(), replace=data is not None)
    return "pushed" if data is None else "repaired"


def push_auto(remote: Remote, directory: Path, verify: bool = False,
              interrupt: Interrupt | None = None) -> str:
    """What ``push = "auto"`` does with the done object at ``directory``: :func:`push_one`, or
    :func:`verify_one` when ``verify`` or when a pull of this process refused the remote's
    copy as damaged (:func:`.reach.is_damaged`) — so that the object computed instead repairs
    the remote's copy rather than finding it present.  Returns the outcome (``"pushed"``,
    ``"present"``, ``"verified"``, ``"repaired"``); raises as they do."""
    if verify or reach.is_damaged(directory.name):
        return verify_one(remote, directory, interrupt=interrupt)
    return "pushed" if push_one(remote, directory, interrupt=interrupt) else "present"


def push(workspace: Workspace, identifiers: list[str], remote: Remote,
         progress: TransferProgress | None = None,
         on_result: Callable[[str, str, str], None] | None = None, *, verify: bool = False,
         report: PushReport | None = None) -> PushReport:
    """Push the done objects named by ``identifiers`` (full identifiers or unique prefixes), a
    few at a time (``verify``: :func:`verify_one` each instead).  ``on_result(outcome,
    identifier, why)`` is called (from a worker thread) as each one ends: ``"pushed"``,
    ``"present"``, ``"verified"``, ``"repaired"``, ``"interrupted"`` or ``"failed"``.

    Failures of single objects are collected in the report (``report``, when given, is the one
    filled: as objects end); RemoteUnavailableError propagates.  On Ctrl-C (KeyboardInterrupt in
    the calling thread) the uploads in flight stop within a chunk, publishing nothing, the
    objects not started are dropped, and KeyboardInterrupt propagates once they stopped.
    """
    report = report if report is not None else PushReport()
    report.expected += len(identifiers)
    lock = threading.Lock()
    interrupt = Interrupt()
    if progress is not None:
        progress.expect(objects=len(identifiers))

    def one(text: str) -> None:
        name, why = text, ""
        try:
            name, directory = locate(workspace, text)
            if verify:
                outcome = verify_one(remote, directory, progress, interrupt)
            else:
                outcome = "pushed" if push_one(remote, directory, progress, interrupt) \
                    else "present"
        except RemoteUnavailableError:
            raise
        except TransferInterrupted:
            outcome = "interrupted"
        except (XpmstoreError, OSError) as exc:
            outcome, why = "failed", str(exc)
        with lock:
            if outcome == "failed":
                report.failed.append((name, why))
            else:
                getattr(report, outcome).append(name)
        if progress is not None:
            progress.finished()
        if on_result is not None:
            on_result(outcome, name, why)

    run_all(one, identifiers, min(_OBJECT_THREADS, max(1, len(identifiers))), interrupt)
    return report
