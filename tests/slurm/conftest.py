"""The real single-node Slurm of these tests, started once per session by ``scripts/slurm-up``
(which installs Slurm with apt-get when it is missing; root only).

``slurm_cluster`` (session scope) yields a :class:`SlurmCluster` and sets ``SLURM_CONF`` in
``os.environ`` for the session, so that ``sbatch``, ``squeue``, ``scontrol`` and the launcher
find the cluster.  It stops the cluster at the end of the session with ``scripts/slurm-down``
only if this session started it: a cluster that was already running (started by hand, or by
another session) is left running.  ``XPMSTORE_SLURM_KEEP=1`` leaves it running in any case.

Without root, or when apt-get or a daemon fails, every test that asks for the cluster fails
with the one-line reason (never skipped: a skipped test must not pass for a tested one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..helpers import REPO_ROOT

SLURM_UP = REPO_ROOT / "scripts" / "slurm-up"
SLURM_DOWN = REPO_ROOT / "scripts" / "slurm-down"
UP_TIMEOUT = 1200.0  # seconds: a first run installs Slurm with apt-get

#: The states a job leaves no more (squeue's long names).
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY",
                          "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"})

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder is marked ``slurm`` (each module also says so with
    ``pytestmark``), so that ``-m "not slurm"`` leaves them all out."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slurm)


@dataclass(frozen=True)
class SlurmCluster:
    """The running cluster, as ``scripts/slurm-up`` described it."""

    conf: Path                      # slurm.conf; also os.environ["SLURM_CONF"]
    state: Path                     # SLURM_CI_STATE: logs in state / "log"
    started: bool                   # this session started the daemons (and stops them)
    pids: dict[str, int] = field(default_factory=dict)  # munged (if ours), slurmctld, slurmd

    def job_state(self, job_id: str) -> str:
        """The job's state as ``squeue -t all`` names it (``""`` once purged, MinJobAge=300)."""
        out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"],
                             capture_output=True, text=True, check=True).stdout
        return out.strip()

    def wait_job(self, job_id: str, until: str = "COMPLETED", timeout: float = 60.0) -> str:
        """Poll the job's state until it is ``until`` or a final state, or until ``timeout``
        seconds passed; returns the last state seen (compare it with what you expect)."""
        deadline = time.monotonic() + timeout
        state = self.job_state(job_id)
        while state != until and state not in FINAL_STATES and time.monotonic() < deadline:
            time.sleep(0.1)
            state = self.job_state(job_id)
        return state


def _up() -> dict[str, str]:
    """Run scripts/slurm-up; its KEY=VALUE lines, or the test fails with a one-line reason."""
    try:
        done = subprocess.run([str(SLURM_UP)], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=UP_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        sys.stderr.write(str(exc.stderr or ""))
        pytest.fail(f"scripts/slurm-up did not finish in {UP_TIMEOUT:.0f} s", pytrace=False)
    sys.stderr.write(done.stderr)  # shown with the failing test's captured output
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else "no message"
        pytest.fail(f"scripts/slurm-up failed (exit {done.returncode}): {reason}", pytrace=False)
    values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    if "SLURM_CONF" not in values:
        pytest.fail(f"scripts/slurm-up printed no SLURM_CONF line: {done.stdout!r}",
                    pytrace=False)
    return values


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """The single-node Slurm cluster (started if needed); sets ``SLURM_CONF`` for the session."""
    values = _up()
    cluster = SlurmCluster(
        conf=Path(values["SLURM_CONF"]),
        state=Path(os.environ.get("SLURM_CI_STATE", "/tmp/xpmstore-slurm")),
        started=values.get("SLURM_CI_STARTED") == "1",
        pids={key[:-4].lower(): int(value) for key, value in values.items()
              if key.endswith("_PID") and value.isdigit()},
    )
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        if cluster.started and os.environ.get("XPMSTORE_SLURM_KEEP") != "1":
            subprocess.run([str(SLURM_DOWN)], stdin=subprocess.DEVNULL, timeout=120,
                           check=False)
