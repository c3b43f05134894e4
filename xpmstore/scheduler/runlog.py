"""Run records: ``experiments/<name>/<run>.jsonl``, appended, never rewritten (docs/scheduler.md).

A header line (versions, git state, a hash of the installed packages, host and pid), one line
per job with its reason, an end line with the outcome.  A run without an end line whose process
is alive is a *live* run; live runs, the latest run and the last successful runs of each
experiment are the gc roots (:mod:`xpmstore.admin.gc`).  Lines are written with one ``write`` each
on an ``O_APPEND`` descriptor, so a crash never leaves a half line (readers skip a torn last
line anyway).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from blake3 import blake3

from ..store.taskstate import boot_id, process_start
from ..system import jsonio

__all__ = ["RunRecord", "iter_run", "read_run"]


def _git_state() -> dict[str, Any]:
    import subprocess  # only when a run starts

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=False)
        if commit.returncode != 0:
            return {}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=False)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {}


def _packages_hash() -> str:
    from importlib import metadata  # slow to import: only when a run starts

    names = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
    return blake3("\n".join(names).encode()).hexdigest()[:16]


class RunRecord:
    """The record of one run of an experiment, opened for appending.  Raises OSError when it
    cannot be written (a full disk: then no file is left)."""

    def __init__(self, experiments_dir: Path, name: str):
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        self.run = f"{stamp}-{socket.gethostname()}-{os.getpid()}"
        self.path = experiments_dir / name / f"{self.run}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o644)
        import platform

        from .. import __version__

        try:
            self.append({
                "type": "header", "xpmstore": __version__, "python": platform.python_version(),
                "git": _git_state(), "packages": _packages_hash(), "host": socket.gethostname(),
                "boot_id": boot_id(), "pid": os.getpid(),
                "pid_start": process_start(os.getpid()), "started": time.time(),
                "experiment": name,
            })
        except BaseException:  # a full disk: no record rather than one without its header
            os.close(self._fd)
            self.path.unlink()
            raise

    def append(self, line: dict[str, Any]) -> None:
        """Append one JSON line (one write)."""
        os.write(self._fd, (json.dumps(line, separators=(",", ":")) + "\n").encode())

    def append_many(self, lines: list[dict[str, Any]]) -> None:
        """Append several lines in one write."""
        if lines:
            data = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines)
            os.write(self._fd, data.encode())

    def end(self, outcome: str, **fields: Any) -> None:
        """Write the end line and close the record (closed even when the write fails: a full
        disk raises OSError, and the run counts as ended by its process's death)."""
        try:
            self.append({"type": "end", "outcome": outcome, "ended": time.time(), **fields})
            os.fsync(self._fd)
        finally:
            os.close(self._fd)


def read_run(path: Path) -> list[dict[str, Any]]:
    """The lines of a run record (a torn last line, or any line that is not a readable
    document, is skipped)."""
    return list(iter_run(path))


def iter_run(path: Path) -> Iterator[dict[str, Any]]:
    """:func:`read_run` a line at a time (a run of 100,000 jobs is never held whole).  Raises
    FileNotFoundError at once when the record is gone."""
    handle = open(path, "rb")  # noqa: SIM115 - closed by the generator
    return _lines(handle, str(path))


def _lines(handle: BinaryIO, where: str) -> Iterator[dict[str, Any]]:
    with handle:
        for raw in handle:
            try:
                yield jsonio.loads(raw, where)
            except ValueError:
                continue
