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
_last_access: dict[str, float] = {}


class _Entry:
    __slots__ = ("directory", "done", "file", "identifier", "leased", "name")

    def __init__(self, workspace: Workspace, config: Config, filename: str):
        self.name = class_spec(type(config)).identity_name
        self.identifier = cache_identifier(config.__identifier__, filename)
        self.directory = workspace.root / "cache" / self.name / self.identifier
        self.done = os.path.join(self.directory, DONE)
        self.file = self.directory / filename
        self.leased = -1  # the leases.generation at which this process leased the entry


def _entry(config: Config, filename: str) -> tuple[Workspace, _Entry]:
    workspace = current_workspace()
    memo = config.__dict__.get("_xpm_cache_entries")
    if memo is None:
        memo = config.__dict__["_xpm_cache_entries"] = {}
    key = (workspace.root, filename)
    entry = memo.get(key)
    if entry is None:
        entry = memo[key] = _Entry(workspace, config, filename)
    return workspace, entry


def _note_access(workspace: Workspace, entry: _Entry) -> None:
    now = time.time()
    last = _last_access.get(entry.identifier)
    if last is not None and now - last < _ACCESS_PERIOD:
        return
    index = Index.for_workspace(workspace)
    if last is None:
        record = index.get(entry.identifier)
        recorded = record.get("last_access", 0.0) if record else 0.0
        if now - recorded < _ACCESS_PERIOD:
            _last_access[entry.identifier] = recorded
            return
    _last_access[entry.identifier] = now
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
                _last_access[entry.identifier] = time.time()
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
        _last_access[entry.identifier] = manifest.created
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

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Config, *args: Any, **kwargs: Any) -> Any:
            workspace, entry = _entry(self, filename)
            if entry.leased != leases.generation:  # once per entry and process: gc keeps it
                leases.lease(workspace, entry.identifier)
                entry.leased = leases.generation
            if os.path.exists(entry.done):
                _note_access(workspace, entry)
                return method(self, entry.file, *args, **kwargs)
            return _miss(workspace, entry, self, method, args, kwargs)

        wrapper.__xpm_cache__ = filename  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate

