"""An unguarded script whose jobs run on the real Slurm of the suite (tests/slurm/conftest.py):
the job's runner imports the script by path, its experiment() is refused, and the experiment
stops with the same one-line error as with the local launcher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..helpers import run_python
from ..unit.test_user_scripts import check_refused, unguarded_script

pytestmark = pytest.mark.slurm


def test_an_unguarded_script_stops_with_the_one_line_error_on_slurm(
        tmp_path: Path, slurm_cluster: Any) -> None:
    workspace = tmp_path / "ws"
    script = unguarded_script(tmp_path, workspace, "SlurmLauncher(poll_max=1.0)")
    check_refused(run_python([str(script)], cwd=tmp_path, timeout=300), workspace)
