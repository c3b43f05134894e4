"""Launchers: where and how jobs run — ``LocalLauncher`` (this machine) and ``SlurmLauncher``
(a Slurm cluster); named launchers from settings via :func:`named_launcher`."""

from __future__ import annotations

from .base import Launcher
from .local import LocalLauncher
from .named import named_launcher
from .slurm import SlurmLauncher

__all__ = ["Launcher", "LocalLauncher", "SlurmLauncher", "named_launcher"]
