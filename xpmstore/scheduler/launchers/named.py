"""Launchers named in settings, picked by name: ``submit(launcher="gpu")``.

```toml
# xpmstore.toml (the workspace's; else ~/.config/xpmstore/settings.toml)
[launchers.gpu]
type = "slurm"            # or "local"
partition = "gpu"
time = "4:00:00"
gpus = 1
max_retries = 2

[launchers.small]
type = "local"
workers = 2
```

Every other key is an argument of :class:`~xpmstore.scheduler.launchers.SlurmLauncher` or
:class:`~xpmstore.scheduler.launchers.LocalLauncher`.  One name gives one launcher per experiment.
"""

from __future__ import annotations

import inspect
from typing import Any

from ...errors import XpmstoreError
from ...store.workspace import Workspace, user_settings
from .base import Launcher

__all__ = ["launcher_settings", "named_launcher"]


def _types() -> dict[str, type[Launcher]]:
    from .local import LocalLauncher
    from .slurm import SlurmLauncher

    return {"local": LocalLauncher, "slurm": SlurmLauncher}


def launcher_settings(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """The ``[launchers.NAME]`` tables: the user settings', overridden by the workspace's."""
    found: dict[str, dict[str, Any]] = {}
    for settings in (user_settings(), workspace.settings):
        table = settings.get("launchers", {})
        if not isinstance(table, dict):
            raise XpmstoreError("settings: [launchers] must be a table of named launchers"
                                " ([launchers.NAME] with type = \"local\" or \"slurm\")")
        for name, section in table.items():
            if not isinstance(section, dict):
                raise XpmstoreError(f"settings: [launchers.{name}] must be a table")
            found[name] = section
    return found


def named_launcher(workspace: Workspace, name: str) -> Launcher:
    """A new launcher built from the settings of ``name``.  Raises XpmstoreError naming the
    launcher and what is wrong (unknown name, type or argument)."""
    sections = launcher_settings(workspace)
    if name not in sections:
        known = ", ".join(sorted(sections)) or "none"
        raise XpmstoreError(f"launcher {name!r} is not in the settings (named launchers:"
                            f" {known}); add [launchers.{name}] to {workspace.root}/xpmstore.toml")
    section = dict(sections[name])
    kind = section.pop("type", None)
    types = _types()
    if kind not in types:
        raise XpmstoreError(f"[launchers.{name}] type = {kind!r}: expected one of"
                            f" {sorted(types)}")
    cls = types[kind]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(section) - set(accepted))
    if unknown:
        raise XpmstoreError(f"[launchers.{name}] {', '.join(unknown)}: not an argument of"
                            f" {cls.__name__} (known: {', '.join(accepted)})")
    try:
        return cls(**section)
    except TypeError as exc:
        raise XpmstoreError(f"[launchers.{name}]: {exc}") from None
