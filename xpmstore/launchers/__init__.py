"""Launchers: where and how jobs run.  ``LocalLauncher`` here; ``SlurmLauncher`` later."""

from __future__ import annotations

from .base import Launcher
from .local import LocalLauncher

__all__ = ["Launcher", "LocalLauncher"]
