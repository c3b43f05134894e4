"""``@cache``: lightweight results of a config method, kept in the workspace (docs/store.md).

```python
class Terms(Config):
    @cache("terms.npy")
    def load(self, path: Path):
        if path.is_file():
            return np.load(path)
        terms = self.compute()
        np.save(path, terms)
        return terms
```

An entry is (config, file name): its identifier is blake3 over (scheme, "cache", the config's
identifier, the name); its directory is ``cache/<name>/<entry-id>/``.  The first use of an entry
in a process leases it (:mod:`xpmstore.store.leases`): gc deletes no entry a live process uses.  A
**hit** (``.xpm/done`` exists) takes no lock, writes nothing but, at most once a minute, the
entry's last access in the index, and calls the method with the path.  A **miss** takes the
entry's lock, re-checks, clears the leftovers of a killed attempt, pulls the entry from the
workspace's remote when one is configured (``pull_cache``; :mod:`xpmstore.remote.cachepull`) and,
failing that, calls the method, and only on a normal return writes the done manifest and records
the entry; with ``push = "auto"``, the new entry is then pushed in the background
(:mod:`xpmstore.remote.cachepush`).  The remote's modules are imported on a miss only, and only
when a remote is configured.  Safe across threads and processes: a miss is computed once.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from collections.abc import Callable
from os import F_OK
from os import access as _exists
from pathlib import Path
from time import time as _time
from typing import Any, TypeVar

from ..core.config import Config, class_spec
from ..core.identifier import cache_identifier
from ..errors import ConfigValueError, XpmstoreError
from ..store import leases, taskdirs
from ..store.index import Index
from ..store.workspace import DONE, XPM, Workspace, current_workspace, user_settings
from ..system.locks import object_lock

__all__ = ["cache"]

F = TypeVar("F", bound=Callable[..., Any])

_ACCESS_PERIOD = 60.0
_ENTRIES_MAX = 1 << 16
"""Entries this process remembers across config objects (forgotten all at once past this)."""

_entries: dict[tuple[Path, str, str], _Entry] = {}
"""(workspace root, config identifier, file name) → entry: a new config object of an identity
already used finds its entry here, paths built."""


class _Entry:
    """One entry's paths, built once per process (strings where only the OS reads them)."""

    __slots__ = ("accessed", "config", "directory", "done", "file", "identifier", "leased",
                 "name", "workspace")

    def __init__(self, workspace: Workspace, config_identifier: str, name: str, filename: str):
        self.workspace = workspace
        self.config = config_identifier
        self.name = name
        self.identifier = cache_identifier(config_identifier, filename)
        directory = f"{workspace.root}/cache/{name}/{self.identifier}"
        self.directory = Path(directory)
        self.done = f"{directory}/{DONE}"
        self.file = Path(f"{directory}/{filename}")
        self.leased = -1  # the leases.generation at which this process leased the entry
        self.accessed = 0.0  # the last access this process recorded or read; 0: not known


def _entry(workspace: Workspace, config: Config, filename: str, slot: str) -> _Entry:
    """The entry of ``config`` for ``filename`` in ``workspace``, remembered on the config
    object (under ``slot``) and in :data:`_entries`."""
    identifier = config.__identifier__
    key = (workspace.root, identifier, filename)
    entry = _entries.get(key)
    if entry is None:
        if len(_entries) >= _ENTRIES_MAX:
            _entries.clear()
        entry = _entries[key] = _Entry(workspace, identifier,
                                       class_spec(type(config)).identity_name, filename)
    entry.workspace = workspace
    config.__dict__[slot] = entry
    return entry


def _note_access(entry: _Entry, now: float) -> None:
    """Record in the index that the entry was used at ``now``, unless it was within the period
    (the first time in this process, the index's own record says)."""
    index = Index.for_workspace(entry.workspace)
    if entry.accessed == 0.0:
        record = index.get(entry.identifier)
        recorded = record.get("last_access", 0.0) if record else 0.0
        if now - recorded < _ACCESS_PERIOD:
            entry.accessed = recorded
            return
    entry.accessed = now
    index.touch(entry.identifier, now)


def _has_remote(workspace: Workspace) -> bool:
    """Whether a remote may be configured for ``workspace`` (read without importing it)."""
    if os.environ.get("XPMSTORE_REMOTE") or "remote" in workspace.settings:
        return True
    try:
        return "remote" in user_settings()
    except XpmstoreError:
        return True  # let the remote's own reading report it


def _miss(workspace: Workspace, entry: _Entry, config: Config, method: Callable[..., Any],
          args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    with object_lock(workspace.lock_path(entry.identifier)):
        if os.path.exists(entry.done):  # another process computed it while we waited
            return method(config, entry.file, *args, **kwargs)
        if entry.directory.exists():  # leftovers of a killed or failed attempt
            shutil.rmtree(entry.directory)
        remote = _has_remote(workspace)
        if remote:
            from ..remote.cachepull import pull_entry  # lazy: only a miss needs the remote

            if pull_entry(workspace, entry.identifier):  # a colleague computed it: verified
                entry.accessed = time.time()
                return method(config, entry.file, *args, **kwargs)
        (entry.directory / XPM).mkdir(parents=True)
        try:
            result = method(config, entry.file, *args, **kwargs)
        except BaseException:
            shutil.rmtree(entry.directory, ignore_errors=True)
            raise
        manifest = taskdirs.finish(
            entry.directory, entry.identifier, "cache", entry.name,
            extra={"config": config.__identifier__, "method": method.__qualname__,
                   "file": entry.file.name},
        )
        record = taskdirs.index_record(workspace, entry.directory, manifest, None)
        Index.for_workspace(workspace).put(entry.identifier, record)
        entry.accessed = manifest.created
        if remote:
            from ..remote.cachepush import entry_created

            entry_created(workspace, entry.directory)  # push = "auto": in the background
        return result


def cache(filename: str) -> Callable[[F], F]:
    """Cache a config method's result in the file ``filename`` of its own entry.

    The method is called as ``method(self, path, *args, **kwargs)``; ``path`` is where it reads
    (on a hit) or writes (on a miss) its result.  Extra arguments are passed through but are NOT
    part of the entry's identity.  Raises ConfigValueError (a ValueError) for a file name with a
    slash or ``..``.
    """
    if not filename or "/" in filename or filename in (".", "..") or filename.startswith(XPM):
        raise ConfigValueError(f"@cache({filename!r}): expected a plain file name")

    slot = f"_xpm_cache:{filename}"  # the config object's memo of its entry

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Config, *args: Any, **kwargs: Any) -> Any:
            workspace = current_workspace()
            values = self.__dict__
            entry = values.get(slot)
            # the memo holds while the workspace is the same and the identity too (a copy of the
            # object marked as a task's output carries the memo but has an identity of its own)
            if (entry is None or entry.workspace is not workspace
                    or entry.config != values.get("_xpm_id")):
                entry = _entry(workspace, self, filename, slot)
            if entry.leased != leases.generation:  # once per entry and process: gc keeps it
                leases.lease(workspace, entry.identifier)
                entry.leased = leases.generation
            if _exists(entry.done, F_OK):  # the one system call of a hit
                now = _time()
                if now - entry.accessed >= _ACCESS_PERIOD:
                    _note_access(entry, now)
                return method(self, entry.file, *args, **kwargs)
            return _miss(workspace, entry, self, method, args, kwargs)

        wrapper.__xpm_cache__ = filename  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate

