"""Launchers, imported from here: :class:`LocalLauncher` (this machine), :class:`SlurmLauncher`
(a Slurm cluster), :func:`named_launcher`; they live in :mod:`xpmstore.scheduler.launchers`."""

from __future__ import annotations

from ..scheduler.launchers import (
    Launcher,
    LaunchRequest,
    LocalLauncher,
    SlurmLauncher,
    named_launcher,
)

__all__ = ["LaunchRequest", "Launcher", "LocalLauncher", "SlurmLauncher", "named_launcher"]
