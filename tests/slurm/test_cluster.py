"""The cluster of these tests itself (tests/slurm/conftest.py, scripts/slurm-up): a job runs and
writes where it is told, and the settings the launcher's tests rely on are in force."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from .conftest import SlurmCluster

pytestmark = pytest.mark.slurm


def _scontrol(*args: str) -> dict[str, str]:
    """``scontrol show ...`` as a mapping (``Key = value`` lines, or ``Key=value`` words)."""
    out = subprocess.run(["scontrol", "show", *args], capture_output=True, text=True,
                         check=True).stdout
    values: dict[str, str] = {}
    for line in out.splitlines():
        if " = " in line:
            key, value = line.split(" = ", 1)
            values[key.strip()] = value.strip()
        else:
            for word in line.split():
                if "=" in word:
                    key, value = word.split("=", 1)
                    values[key] = value
    return values


def test_a_batch_job_runs_and_writes_its_file(slurm_cluster: SlurmCluster,
                                              tmp_path: Path) -> None:
    assert os.environ["SLURM_CONF"] == str(slurm_cluster.conf)
    out = tmp_path / "out.txt"
    job_id = subprocess.run(
        ["sbatch", "--parsable", "--job-name", "xpm-smoke", "--chdir", str(tmp_path),
         "--output", str(tmp_path / "slurm-%j.out"),
         "--wrap", f'echo "hello from job $SLURM_JOB_ID" > {shlex.quote(str(out))}'],
        capture_output=True, text=True, check=True).stdout.strip().split(";")[0]
    state = slurm_cluster.wait_job(job_id, "COMPLETED", timeout=120)
    log = tmp_path / f"slurm-{job_id}.out"
    assert state == "COMPLETED", (state, log.read_text() if log.exists() else "no log")
    assert out.read_text() == f"hello from job {job_id}\n"


def test_the_cluster_runs_the_settings_the_tests_rely_on(slurm_cluster: SlurmCluster) -> None:
    config = _scontrol("config")
    assert config["KillWait"].split()[0] == "1"
    assert "kill_invalid_depend" in config["SchedulerParameters"].split(",")
    assert "batch_sched_delay=0" in config["SchedulerParameters"].split(",")
    assert config["MinJobAge"].split()[0] == "300"
    node = _scontrol("node")
    assert node["CPUTot"] == os.environ.get("SLURM_CI_CPUS", "4")
    assert node["State"].split("+")[0] in {"IDLE", "MIXED", "ALLOCATED", "COMPLETING"}
