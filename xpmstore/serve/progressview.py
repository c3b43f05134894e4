"""In-task progress of a running job, as the task reports it (``xpmstore.store.taskprogress``).

The reporting side may be missing from an installation that predates it: then no job shows
progress.  Reads only; safe across threads and processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["job_progress"]


def job_progress(directory: Path) -> list[dict[str, Any]] | None:
    """The progress levels a running task reported (outer level first), or None when it
    reported none (or its report cannot be read)."""
    try:
        from ..store.taskprogress import (
            read_progress,
        )  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        levels = read_progress(directory)
    except (OSError, ValueError):
        return None
    return [dict(level) for level in levels] if levels else None
