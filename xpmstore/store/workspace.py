"""The workspace: where objects live on disk (docs/store.md), and which workspace is the default.

```
WORKSPACE/
  xpmstore.toml                   settings (launchers, remote, gc); optional
  jobs/<name>/<id>/               a task directory: params.json, stdout, stderr, outputs, .xpm/
  cache/<name>/<entry-id>/        a @cache entry: its file(s), .xpm/
  experiments/<name>/<run>.jsonl  one run of an experiment
  .xpmstore/                      index (when local), gc.lock, locks/, trash/, environments/,
                                  gitstate/
```

Pure path arithmetic apart from :func:`default_workspace` (environment and settings) and
:func:`is_network_fs` (the mount table, :mod:`xpmstore.system.mounts`).  Identifiers are checked
before any path is built from them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.identifier import check_full_identifier, check_identifier
from ..errors import ArgumentValueError, XpmstoreError
from ..system.mounts import mount_of

__all__ = [
    "DONE",
    "KINDS",
    "MARKERS",
    "NETWORK_FILESYSTEMS",
    "XPM",
    "Workspace",
    "current_workspace",
    "default_workspace",
    "is_network_fs",
    "set_active_workspace",
    "user_settings",
]

XPM = ".xpm"
"""An object directory's own folder: its done manifest and the files of the job's protocol
(:mod:`xpmstore.store.taskstate`), never part of its results."""

DONE = f"{XPM}/done"
"""The done manifest, relative to an object directory: the object is done iff it exists."""

KINDS = {"task": "jobs", "cache": "cache"}
"""Object kind → top-level folder."""

MARKERS = ("xpmstore.toml", ".xpmstore", "jobs", "cache", "experiments")
"""What a workspace holds at least one of (an experiment, a ``@cache`` call, a pull or the
settings file creates it)."""

NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "ceph", "fuse.sshfs", "beegfs",
    "fuse.beegfs", "glusterfs", "fuse.glusterfs", "afs", "9p", "fuse.cephfs", "panfs", "wekafs",
})


def user_settings() -> dict[str, Any]:
    """``~/.config/xpmstore/settings.toml`` (``$XDG_CONFIG_HOME`` honoured), or {} if absent."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return _read_toml(base / "xpmstore" / "settings.toml")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return {}
    import tomllib  # only when there is a settings file

    try:
        with handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise XpmstoreError(f"{path}: invalid TOML ({exc}); fix or remove it") from None


def default_workspace() -> Path:
    """``$XPMSTORE_WORKSPACE``, else the ``workspace`` user setting, else
    ``~/.local/share/xpmstore``."""
    env = os.environ.get("XPMSTORE_WORKSPACE")
    if env:
        return Path(env).expanduser()
    configured = user_settings().get("workspace")
    if configured:
        return Path(str(configured)).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "xpmstore"


def is_network_fs(path: str | os.PathLike[str]) -> tuple[bool, str]:
    """Whether ``path`` lies on a network file system (its mount's type), and that type."""
    _, fstype = mount_of(path)
    return fstype in NETWORK_FILESYSTEMS, fstype


@dataclass
class Workspace:
    """A workspace directory and its settings.  Cheap to build; safe to share."""

    root: Path
    settings: dict[str, Any] = field(default_factory=dict)
    _folders: dict[tuple[str, str], tuple[Path, Path, str]] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    """(kind, identity name) → (the root it was made for, its class folder, as a Path and as a
    str): an object's directory is its folder joined with one checked part (a re-submission of
    10,000 done tasks names 10,000 of them)."""

    @classmethod
    def at(cls, where: str | os.PathLike[str] | Workspace | None = None) -> Workspace:
        """The workspace at ``where`` (the default workspace for None); reads xpmstore.toml."""
        if isinstance(where, Workspace):
            return where
        root = Path(where).expanduser() if where is not None else default_workspace()
        root = Path(os.path.abspath(root))
        return cls(root, _read_toml(root / "xpmstore.toml"))

    def exists(self) -> bool:
        """Whether the root is a workspace already: a folder holding one of :data:`MARKERS`
        (a bare folder is not; reading one must create nothing in it)."""
        return any(os.path.lexists(self.root / marker) for marker in MARKERS)

    @property
    def jobs(self) -> Path:
        """Folder of task directories."""
        return self.root / "jobs"

    @property
    def cache(self) -> Path:
        """Folder of ``@cache`` entries."""
        return self.root / "cache"

    @property
    def experiments(self) -> Path:
        """Folder of experiment run records."""
        return self.root / "experiments"

    @property
    def private(self) -> Path:
        """``.xpmstore/``: index (when local), locks, trash."""
        return self.root / ".xpmstore"

    def object_dir(self, kind: str, name: str, identifier: str) -> Path:
        """The directory of an object (``kind`` is "task" or "cache")."""
        return self._class_folder(kind, name, identifier)[0].joinpath(identifier)

    def object_path(self, kind: str, name: str, identifier: str) -> str:
        """:meth:`object_dir` as a str, no Path built (what the scheduler's planning uses)."""
        return f"{self._class_folder(kind, name, identifier)[1]}/{identifier}"

    def _class_folder(self, kind: str, name: str, identifier: str) -> tuple[Path, str]:
        """The folder of ``name``'s objects of ``kind`` (as a Path and a str), once
        ``identifier`` is checked: 64 hex digits, one part joined as it is."""
        check_full_identifier(identifier)
        cached = self._folders.get((kind, name))
        if cached is None or cached[0] is not self.root:
            if not name or "/" in name or name.startswith("."):
                raise ArgumentValueError(f"{name!r} is not an identity name")
            folder = f"{self.root}/{KINDS[kind]}/{name}"
            cached = self._folders[kind, name] = (self.root, Path(folder), folder)
        return cached[1], cached[2]

    def task_dir(self, name: str, identifier: str) -> Path:
        """The task directory ``jobs/<name>/<id>``."""
        return self.object_dir("task", name, identifier)

    def lock_path(self, identifier: str) -> Path:
        """The lock file of an object (outside its directory, so clearing it keeps the lock)."""
        check_identifier(identifier)
        return self.private / "locks" / identifier[:2] / identifier

    def run_lock_path(self, identifier: str) -> Path:
        """The run lock of a job, held by its process while it runs (beside the job's lock)."""
        return self.lock_path(identifier).with_suffix(".run")

    @property
    def environments(self) -> Path:
        """``.xpmstore/environments/``: per host, interpreter and ``sys.path``, the cached hash
        of the installed packages that run records name (``xpmstore.scheduler.envfacts``)."""
        return self.private / "environments"

    @property
    def gitstate(self) -> Path:
        """``.xpmstore/gitstate/``: per host and git work tree, the git state a run record last
        asked git for, under a digest of what it depends on (xpmstore.scheduler.gitcache)."""
        return self.private / "gitstate"

    @property
    def gc_lock_path(self) -> Path:
        """The shared/exclusive gc lock file."""
        return self.private / "gc.lock"

    def ensure(self) -> None:
        """Create the workspace's folders (idempotent)."""
        for folder in (self.jobs, self.cache, self.experiments, self.private):
            folder.mkdir(parents=True, exist_ok=True)


_active: Workspace | None = None
_default_cache: tuple[str, Workspace] | None = None


def set_active_workspace(workspace: Workspace | None) -> Workspace | None:
    """Make ``workspace`` the one that ``@cache`` and ``Store()`` use (an experiment or a job
    does this); returns the previous one."""
    global _active
    previous, _active = _active, workspace
    return previous


def current_workspace() -> Workspace:
    """The active experiment's (or job's) workspace, else the default workspace."""
    global _default_cache
    if _active is not None:
        return _active
    key = os.environ.get("XPMSTORE_WORKSPACE", "")
    if _default_cache is None or _default_cache[0] != key:
        _default_cache = (key, Workspace.at(None))
    return _default_cache[1]
