"""Garbage collection of the remote (docs/remote.md): ``xpmstore gc --remote``.

Two steps, each safe while colleagues push and pull:

1. **Manifests.**  The team's roots are the remote's pins (``pins/<identifier>``, written by
   ``xpmstore pin --remote``) and, with ``older_than``, every manifest written within that age;
   what a root depends on (for a task, the dependencies its params.json references:
   :mod:`xpmstore.store.edges`; else its manifest's) is protected too.  Every other
   remote object (``objects/<ab>/<identifier>``) is deleted.  Pulling a deleted object later
   simply misses: the task runs.
2. **Blobs.**  The manifests are listed again (a push may have added some), and a blob
   (``cas/<ab>/<blake3>``) that none of them lists is deleted when it is older than the grace
   period (24 h).  A push writes its blobs before its manifest, and refreshes a blob it
   deduplicates against when that blob is older than half the grace
   (:data:`xpmstore.remote.upload.REFRESH_AGE`), so a push in progress has at least 12 h to
   publish its manifest before its blobs could be taken.  Each blob's age is read again just
   before it is deleted.

A manifest that does not parse protects nothing and lists no blob; it goes like any unprotected
one.  Every function may raise RemoteError (RemoteUnavailableError when unreachable).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..core.identifier import is_full_identifier
from ..errors import XpmstoreError
from ..store import manifest as manifest_module
from ..store.edges import params_dependencies
from ..system import jsonio
from .layout import Remote
from .upload import GRACE

__all__ = ["GRACE", "RemoteGcPlan", "collect_remote", "pin_remote", "plan_remote",
           "remote_pins", "unpin_remote"]

_THREADS = 16


def _pin_key(identifier: str) -> str:
    return f"pins/{identifier}"


def remote_pins(remote: Remote) -> set[str]:
    """The identifiers pinned in the remote (one listing)."""
    return {key.rsplit("/", 1)[1] for key in remote.backend.list("pins/")}


def pin_remote(remote: Remote, text: str) -> tuple[str, bool]:
    """Pin the remote object ``text`` (an identifier or unique prefix) in the remote: a root of
    remote gc for the whole team.  Returns (identifier, whether it was newly pinned).  Raises
    NotFound, AmbiguousPrefixError, InvalidIdentifierError."""
    identifier = remote.resolve(text)
    return identifier, remote.backend.put_bytes(_pin_key(identifier), b"")


def unpin_remote(remote: Remote, text: str) -> str:
    """Remove the remote pin that ``text`` (an identifier or unique prefix of one) names;
    returns its identifier.  Raises NotFound, AmbiguousPrefixError, InvalidIdentifierError."""
    from ..store.pins import pinned_match

    identifier = pinned_match(text, set(remote_pins(remote)), "remote pin", f" in {remote.url}")
    remote.backend.delete(_pin_key(identifier))
    return identifier


@dataclass
class _Object:
    """What gc needs of one remote manifest: its blobs and dependencies (empty when it does not
    parse) and its size in bytes."""

    blobs: dict[str, int] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    size: int = 0


def _read(remote: Remote, identifier: str) -> _Object:
    data = remote.get_object(identifier)
    if data is None:
        return _Object()
    where = f"remote object {identifier}"
    try:
        document = jsonio.loads(data, where)
        done = manifest_module.parse(str(document["done"]).encode("utf-8"), where)
    except (ValueError, KeyError, TypeError, XpmstoreError):
        return _Object(size=len(data))
    deps = done.dependencies
    if done.kind == "task" and isinstance(document.get("params"), str):
        try:
            deps = params_dependencies(jsonio.loads(document["params"], where))
        except ValueError:
            pass  # params.json unreadable: the manifest's list, the best there is
    return _Object({f.blake3: f.size for f in done.files}, deps, len(data))


def _read_all(remote: Remote, identifiers: Iterable[str]) -> dict[str, _Object]:
    chosen = sorted(identifiers)
    if not chosen:
        return {}
    with ThreadPoolExecutor(min(_THREADS, len(chosen))) as pool:
        return dict(zip(chosen, pool.map(lambda i: _read(remote, i), chosen), strict=True))


@dataclass
class RemoteGcPlan:
    """What remote gc deletes (or would): manifests (identifier → bytes) and blobs
    (blake3 → bytes), with the counts it kept."""

    manifests: dict[str, int] = field(default_factory=dict)
    blobs: dict[str, int] = field(default_factory=dict)
    kept_manifests: int = 0
    kept_blobs: int = 0
    roots: int = 0
    young_blobs: int = 0  # unreferenced but within the grace period

    @property
    def size(self) -> int:
        """The bytes freed."""
        return sum(self.manifests.values()) + sum(self.blobs.values())


def _identifier_of(key: str) -> str | None:
    name = key.rsplit("/", 1)[-1]
    return name if is_full_identifier(name) else None


def _doomed_manifests(remote: Remote, older_than: float | None, now: float,
                      read: dict[str, _Object]) -> tuple[dict[str, int], set[str], int]:
    """(doomed identifier → size, protected identifiers, root count); fills ``read``."""
    listed = remote.backend.scan("objects/")
    times = {i: (mtime, size) for key, (mtime, size) in listed.items()
             if (i := _identifier_of(key)) is not None}
    roots = remote_pins(remote) & set(times)
    if older_than is not None:
        roots |= {i for i, (mtime, _size) in times.items() if now - mtime < older_than}
    protected: set[str] = set()
    frontier = set(roots)
    while frontier:  # the roots, then what they depend on, level by level
        protected |= frontier
        read.update(_read_all(remote, frontier - set(read)))
        frontier = {d for i in frontier for d in read[i].dependencies
                    if d in times and d not in protected}
    doomed = {i: size for i, (_mtime, size) in times.items() if i not in protected}
    return doomed, protected, len(roots)


def plan_remote(remote: Remote, older_than: float | None = None, grace: float = GRACE,
                now: float | None = None) -> RemoteGcPlan:
    """What :func:`collect_remote` would delete, deleting nothing (``--dry-run``)."""
    return _run(remote, older_than, grace, now, delete=False)


def collect_remote(remote: Remote, older_than: float | None = None, grace: float = GRACE,
                   now: float | None = None) -> RemoteGcPlan:
    """Delete the remote manifests no root protects, then the blobs no manifest lists that are
    older than ``grace`` seconds (see the module doc); returns what was deleted.  ``now`` (the
    time ages are measured from) defaults to the clock."""
    return _run(remote, older_than, grace, now, delete=True)


def _run(remote: Remote, older_than: float | None, grace: float, now: float | None,
         delete: bool) -> RemoteGcPlan:
    clock = time.time() if now is None else now
    read: dict[str, _Object] = {}
    doomed, protected, roots = _doomed_manifests(remote, older_than, clock, read)
    plan = RemoteGcPlan(manifests=doomed, kept_manifests=len(protected), roots=roots)
    if delete:
        with ThreadPoolExecutor(_THREADS) as pool:
            list(pool.map(remote.delete_object, sorted(doomed)))
    # the manifests now (pushes may have added some): every blob they list stays
    current = remote.identifiers() - set(doomed)
    read.update(_read_all(remote, current - set(read)))
    referenced = {digest for i in current for digest in read[i].blobs}
    blobs = remote.backend.scan("cas/")
    horizon = clock - grace
    for key, (mtime, size) in blobs.items():
        digest = key.rsplit("/", 1)[-1]
        if digest in referenced:
            plan.kept_blobs += 1
        elif mtime >= horizon:
            plan.young_blobs += 1
        else:
            plan.blobs[digest] = size
    if delete:
        def drop(digest: str) -> bool:
            key = remote.blob_key(digest)
            written = remote.backend.mtime(key)  # refreshed by a push meanwhile: kept
            if written is None or written >= horizon:
                return False
            remote.backend.delete(key)
            return True

        with ThreadPoolExecutor(_THREADS) as pool:
            kept = [d for d, gone in zip(sorted(plan.blobs), pool.map(drop, sorted(plan.blobs)),
                                         strict=True) if not gone]
        for digest in kept:
            del plan.blobs[digest]
            plan.young_blobs += 1
    return plan
