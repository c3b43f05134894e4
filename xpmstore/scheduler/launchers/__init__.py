"""Launchers: where and how jobs run — ``LocalLauncher`` (this machine) and ``SlurmLauncher``
(a Slurm cluster); named launchers from settings via :func:`named_launcher`; the interface a
launcher implements: :class:`Launcher`, which takes one :class:`LaunchRequest` per job."""

from __future__ import annotations

from .base import Launcher, LaunchRequest
from .local import LocalLauncher
from .named import named_launcher
from .slurm import SlurmLauncher

__all__ = ["LaunchRequest", "Launcher", "LocalLauncher", "SlurmLauncher", "named_launcher"]
