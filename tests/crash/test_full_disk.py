"""A full disk under a running experiment (a real 4 MiB tmpfs; the suite runs as root).

A task fills the disk; the experiment must end with one clear error naming the full disk (never
hang: the scheduler thread once died on the ENOSPC of a state file, leaving the main thread
waiting for ever), leave nothing half-written counted as done, and every command must still
answer on that full disk without a traceback.  When ``mount`` is refused, the test fails with the
reason (never skipped).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from xpmstore.scheduler.runlog import read_run
from xpmstore.scheduler.runs import read_one
from xpmstore.store import taskdirs
from xpmstore.store.workspace import Workspace

from ..clihelpers import XPMSTORE, one_error_line
from ..helpers import PYTHON
from ..storehelpers import check_done_objects

DEADLINE = 60.0
"""Seconds after which the experiment counts as hung (never an expected duration)."""

SCRIPT = '''
import sys
from pathlib import Path
from xpmstore import ExperimentFailed, Param, Task, experiment
from xpmstore.launchers import LocalLauncher

class Small(Task):
    __xpmid__ = "disk.Small"
    n: Param[int] = 0

    def execute(self):
        Path("out.txt").write_text("x" * 100)

class Filler(Task):
    __xpmid__ = "disk.Filler"

    def execute(self):
        with open("big", "wb") as out:
            while True:  # until the disk is full (OSError)
                out.write(b"x" * 65536)

class After(Task):
    __xpmid__ = "disk.After"
    filler: Param[Filler]

    def execute(self):
        Path("after.txt").write_text("after")

if __name__ == "__main__":
    workspace, name = sys.argv[1], sys.argv[2]
    try:
        with experiment(workspace, name, launcher=LocalLauncher(workers=1)):
            if name == "warm":
                Small(n=0).submit()
            elif name == "elsewhere":
                Small(n=2).submit()
            else:
                After(filler=Filler().submit()).submit()
                Small(n=1).submit()
    except ExperimentFailed as exc:
        print(f"FAILED {exc}", file=sys.stderr)
        sys.exit(3)
'''


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted at a folder of ``tmp_path`` (unmounted afterwards)."""
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mountpoint)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the test needs root): {mounted.stderr.strip()}",
                    pytrace=False)
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True,
                          check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)  # a late job's cwd


def _environment(home: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "XPMSTORE"))}
    environ["HOME"] = str(home)
    return environ


def _run(script: Path, workspace: Path, name: str,
         environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([PYTHON, str(script), str(workspace), name], capture_output=True,
                              text=True, timeout=DEADLINE, env=environ, cwd=script.parent,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the experiment {name!r} hung on a full disk: {exc.stderr!r}")\
            from None


def _command(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([XPMSTORE, *args], capture_output=True, text=True, timeout=DEADLINE,
                          env=environ, stdin=subprocess.DEVNULL, check=False)


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          cwd=folder, capture_output=True, text=True, check=True).stdout.strip()


def test_a_full_disk_fails_the_experiment_clearly(full_disk: Path, tmp_path: Path) -> None:
    # Outside the full disk and in a git repository, as a user's script would be: git's line
    # is written in the background, which must cost no traceback on the full disk.
    project = tmp_path / "project"
    project.mkdir()
    script = project / "experiment.py"
    script.write_text(SCRIPT)
    _git(project, "init", "-q")
    _git(project, "add", "experiment.py")
    _git(project, "commit", "-q", "-m", "the experiment")
    commit = _git(project, "rev-parse", "HEAD")
    home = tmp_path / "home"
    home.mkdir()
    environ = _environment(home)
    root = full_disk / "ws"
    warm = _run(script, root, "warm", environ)  # a workspace in use: its index exists
    assert warm.returncode == 0, warm.stderr
    [warm_record] = (root / "experiments" / "warm").glob("*.jsonl")
    warm_run = read_one("warm", warm_record)
    assert warm_run is not None and warm_run.header["git"] == {"commit": commit, "dirty": False}
    # A result this index does not know yet (made with another index, as on another host):
    # the commands below must record it in the index on the full disk.
    other = _run(script, root, "elsewhere",
                 {**environ, "XPMSTORE_INDEX_DIR": str(tmp_path / "other-index")})
    assert other.returncode == 0, other.stderr

    run = _run(script, root, "fill", environ)

    assert run.returncode == 3, run.stderr
    assert "Traceback" not in run.stderr, run.stderr  # no thread or job of xpmstore crashed
    [failure] = [line for line in run.stderr.splitlines() if line.startswith("FAILED ")]
    assert "disk.Filler" in failure and "disk full" in failure, failure
    workspace = Workspace.at(root)
    [record_path] = (workspace.experiments / "fill").glob("*.jsonl")
    record = read_run(record_path)
    assert record[-1]["type"] == "end" and record[-1]["outcome"] == "failed", record[-1]
    ids = {line["name"]: line["id"] for line in record if line["type"] == "job"}
    assert set(ids) == {"disk.Filler", "disk.After", "disk.Small"}
    # Nothing half-written is done: only the tasks of the first runs, and they verify.
    done = check_done_objects(workspace)
    assert [d.parent.name for d in done] == ["disk.Small", "disk.Small"]
    assert ids["disk.Small"] not in {d.name for d in done}
    for name, identifier in ids.items():
        assert not taskdirs.is_done(workspace.task_dir(name, identifier)), name

    # Every command answers on the full disk, without a traceback.
    environ["XPMSTORE_WORKSPACE"] = str(root)
    listed = _command(environ, "ls", "--status", "done")
    assert listed.returncode == 0, listed.stderr
    assert sorted(line.split("\t")[0] for line in listed.stdout.splitlines()) == sorted(
        d.name for d in done)
    listed = _command(environ, "ls")
    assert listed.returncode == 0 and ids["disk.Filler"] in listed.stdout, listed.stderr
    shown = _command(environ, "show", ids["disk.Filler"])
    assert shown.returncode == 0 and ids["disk.Filler"] in shown.stdout, shown.stderr
    got = _command(environ, "get", done[0].name)
    assert got.returncode == 0 and got.stdout.strip() == str(done[0]), got.stderr
    refused = _command(environ, "get", ids["disk.Filler"])
    assert refused.returncode == 1 and "not done" in one_error_line(refused.stderr)
    jobs = _command(environ, "jobs")
    assert jobs.returncode == 0 and ids["disk.Filler"] in jobs.stdout, jobs.stderr
    checked = _command(environ, "fsck")
    assert checked.returncode == 0 and "0 damaged" in checked.stdout, checked.stderr
    for answer in (listed, shown, got, jobs, checked):
        assert "Traceback" not in answer.stderr, answer.stderr

    # An experiment started on the full disk cannot even write its run record: one clear
    # error, and no record without its header left behind.
    again = _run(script, root, "fill", environ)
    assert again.returncode == 3, again.stderr
    assert "Traceback" not in again.stderr, again.stderr
    [failure] = [line for line in again.stderr.splitlines() if line.startswith("FAILED ")]
    assert "cannot start" in failure and "disk full" in failure, failure
    assert list((workspace.experiments / "fill").glob("*.jsonl")) == [record_path]


def test_commands_on_a_full_disk_without_an_index(full_disk: Path, tmp_path: Path) -> None:
    """LMDB writes its lock file through a memory map: on a full disk, making a new index
    once killed every command with SIGBUS.  Now the index cannot be made there, and each
    command says so in one line, keeps it in memory and answers from the workspace."""
    root = full_disk / "ws"
    (root / "jobs").mkdir(parents=True)
    with open(full_disk / "filler", "wb", buffering=0) as out, pytest.raises(OSError):
        while True:
            out.write(b"x" * 65536)
    home = tmp_path / "home"
    home.mkdir()
    environ = {**_environment(home), "XPMSTORE_WORKSPACE": str(root)}
    for args in (["ls"], ["fsck"], ["get", "ab"], ["show", "ab"]):
        answer = _command(environ, *args)
        assert "Traceback" not in answer.stderr, answer.stderr
        warning, *rest = answer.stderr.splitlines()
        assert "No space left on device" in warning and "in memory" in warning, warning
        if args[0] in ("ls", "fsck"):  # an empty workspace: nothing to list, nothing damaged
            assert answer.returncode == 0 and rest == [], (args, answer.stderr)
        else:  # and no object starts with ab
            assert answer.returncode == 1, (args, answer.returncode, answer.stderr)
            assert "ab" in one_error_line("\n".join(rest)), answer.stderr
    jobs = _command(environ, "jobs")
    assert jobs.returncode == 0 and "Traceback" not in jobs.stderr, jobs.stderr
