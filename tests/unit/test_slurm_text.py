"""Slurm's text, without Slurm: sbatch scripts, squeue and sbatch output, state reasons, options,
and named launchers from settings (the real cluster's tests are in tests/slurm/)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from xpmstore.errors import XpmstoreError
from xpmstore.launchers import LocalLauncher, SlurmLauncher, named_launcher
from xpmstore.store.workspace import Workspace
from xpmstore.system import slurmctl


def test_script_runs_the_runner_with_the_environment_exported(tmp_path: Path) -> None:
    taskdir = str(tmp_path / "a dir")
    options = slurmctl.SlurmOptions(partition="gpu", time="1:00:00", cpus=4, extra=("--exclusive",))
    command = ["/usr/bin/python3", "-m", "xpmstore.scheduler.runner", taskdir]
    text = slurmctl.render_script(taskdir, command, options, {"B": "it's $HOME", "A": "1"},
                                  "xpm-abc")
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert f'#SBATCH --output="{taskdir}/.xpm/slurm-%j.out"' in lines  # quoted: a space
    assert "#SBATCH --partition=gpu" in lines and "#SBATCH --cpus-per-task=4" in lines
    assert "#SBATCH --time=1:00:00" in lines and "#SBATCH --exclusive" in lines
    assert lines[-1] == f"exec /usr/bin/python3 -m xpmstore.scheduler.runner {shlex.quote(taskdir)}"
    # the exports, run by a real shell, give back the values byte for byte
    exports = "\n".join(x for x in lines if x.startswith("export "))
    out = subprocess.run(["bash", "-c", exports + '\nprintf "%s|%s" "$A" "$B"'],
                         capture_output=True, text=True, check=True).stdout
    assert out == "1|it's $HOME"


def test_script_refuses_a_directory_its_directives_cannot_hold() -> None:
    with pytest.raises(XpmstoreError, match="double quote"):
        slurmctl.render_script('/t/a"b', ["true"], slurmctl.SlurmOptions(), {}, "j")


@pytest.mark.parametrize("name", ["1X", "A-B", "A B", ""])
def test_script_refuses_invalid_variable_names(name: str) -> None:
    with pytest.raises(XpmstoreError, match="not a valid name"):
        slurmctl.render_script("/t", ["true"], slurmctl.SlurmOptions(), {name: "v"}, "j")


def test_sbatch_output_parsed() -> None:
    assert slurmctl.parse_sbatch("42\n") == "42"
    assert slurmctl.parse_sbatch("17;cluster\n") == "17"
    with pytest.raises(slurmctl.SlurmError, match="not a job id"):
        slurmctl.parse_sbatch("sbatch: error: nope\n")


def test_squeue_output_parsed() -> None:
    found = slurmctl.parse_squeue("12|RUNNING|None\n13|PENDING|Dependency\n14|TIMEOUT|\n\n")
    assert found["12"].active and found["13"].active and not found["14"].active
    assert found["13"].reason == "Dependency"
    assert set(found) == {"12", "13", "14"}


@pytest.mark.parametrize("state", ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                   "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED"])
def test_every_end_state_is_ended_and_described(state: str) -> None:
    status = slurmctl.SlurmStatus("7", state, "None")
    assert not status.active
    described = slurmctl.describe_state(status)
    assert described.startswith(f"{state} (Slurm job 7: ") and "None" not in described


def test_retryable_states_are_the_three_of_the_design() -> None:
    assert {"TIMEOUT", "PREEMPTED", "NODE_FAIL"} == slurmctl.RETRYABLE
    assert not slurmctl.RETRYABLE & slurmctl.ACTIVE


def test_options_merge_hook_overrides() -> None:
    base = slurmctl.SlurmOptions(partition="cpu", extra=("--exclusive",))
    merged = base.merged({"partition": "gpu", "extra": ["--constraint=a100"]})
    assert merged.partition == "gpu"
    assert merged.extra == ("--exclusive", "--constraint=a100")
    assert base.partition == "cpu"  # unchanged
    with pytest.raises(XpmstoreError, match="'nodes'"):
        base.merged({"nodes": 2})


def test_launcher_refuses_a_string_for_extra_and_negative_retries() -> None:
    with pytest.raises(XpmstoreError, match="a list of sbatch arguments"):
        SlurmLauncher(extra="--exclusive")
    with pytest.raises(XpmstoreError, match="max_retries"):
        SlurmLauncher(max_retries=-1)
    for wrong in (0, -3, True, 2.5, "10"):
        with pytest.raises(XpmstoreError, match=r"max_queued=.*a count >= 1"):
            SlurmLauncher(max_queued=wrong)  # type: ignore[arg-type]
    assert SlurmLauncher().max_queued == 1000 and SlurmLauncher(max_queued=3).max_queued == 3


def test_missing_command_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(slurmctl.SlurmError, match="squeue: not found"):
        slurmctl.query(["1"])
    assert slurmctl.active_states(["1"]) is None  # liveness then falls back to pid/heartbeat


def _workspace(tmp_path: Path, toml: str) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "xpmstore.toml").write_text(toml)
    return Workspace.at(root)


def test_named_launchers_from_the_workspace_settings(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-user-settings"))
    ws = _workspace(tmp_path, '[launchers.gpu]\ntype = "slurm"\npartition = "gpu"\ngpus = 1\n'
                              'max_retries = 2\n[launchers.small]\ntype = "local"\nworkers = 3\n')
    gpu = named_launcher(ws, "gpu")
    assert isinstance(gpu, SlurmLauncher)
    assert gpu.options.partition == "gpu" and gpu.options.gpus == 1 and gpu.max_retries == 2
    small = named_launcher(ws, "small")
    assert isinstance(small, LocalLauncher)
    assert small.describe().startswith("local") and "3" in small.describe()


@pytest.mark.parametrize(("toml", "name", "message"), [
    ('[launchers.gpu]\ntype = "slurm"\n', "cpu", "launcher 'cpu' is not in the settings"),
    ('[launchers.gpu]\ntype = "pbs"\n', "gpu", "type = 'pbs'"),
    ('[launchers.gpu]\ntype = "slurm"\nnodes = 2\n', "gpu", "nodes: not an argument"),
])
def test_named_launcher_errors_name_the_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 toml: str, name: str, message: str) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-user-settings"))
    ws = _workspace(tmp_path, toml)
    with pytest.raises(XpmstoreError, match=message):
        named_launcher(ws, name)


def test_user_settings_hold_named_launchers_the_workspace_overrides(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    (config / "xpmstore").mkdir(parents=True)
    (config / "xpmstore" / "settings.toml").write_text(
        '[launchers.mine]\ntype = "local"\nworkers = 1\n'
        '[launchers.both]\ntype = "local"\nworkers = 1\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    ws = _workspace(tmp_path, '[launchers.both]\ntype = "local"\nworkers = 2\n')
    assert named_launcher(ws, "mine").describe() == "local(workers=1)"
    assert named_launcher(ws, "both").describe() == "local(workers=2)"


def test_a_failing_squeue_never_makes_a_slurm_job_look_dead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A controller that does not answer (restarting, overloaded) must not let a pending job's
    record, which names a scheduler long gone, look dead: that would run the task twice."""
    from xpmstore.store.taskstate import launch_is_live

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"  # what a real squeue prints when slurmctld is unreachable
    squeue.write_text("#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm"
                      " controller (connect failure)' >&2\nexit 1\n")
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    assert slurmctl.active_states(["424242"]) == {"424242": True}
    record = {"host": "login-node-that-is-not-this-one", "pid": 1, "slurm_job_id": "424243"}
    (tmp_path / "task" / ".xpm").mkdir(parents=True)
    assert launch_is_live(tmp_path / "task", record)
