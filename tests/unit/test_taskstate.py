"""A task directory's protocol files (xpmstore.store.taskstate): every reader answers as for a
missing file when the file is damaged or hostile (never raises, never blocks, never reads on
without end), the writers publish what the readers read back, and earlier attempts are numbered
whatever else their folder holds."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from xpmstore.admin.show import describe
from xpmstore.scheduler.claim import claim
from xpmstore.serve.files import is_listed, log_names
from xpmstore.store import taskdirs, taskstate
from xpmstore.store.workspace import XPM, Workspace

from ..schedtasks import Model, ModelLearn

# --- damaged files ------------------------------------------------------------------------------


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _directory(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # nobody writes to it: a blocking open or read would wait for ever


def _device(path: Path) -> None:
    path.symlink_to("/dev/zero")  # endless bytes: a reader without a bound never ends


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere")


DAMAGES: dict[str, Callable[[Path], None]] = {
    "empty": _bytes(b""),
    "not JSON": _bytes(b"{not json"),
    "torn": _bytes(b'{"state": "running", "pid": 12'),
    "not UTF-8": _bytes(b'{"state": "\xff\xfe"}'),
    "an array": _bytes(b'["running"]'),
    "a string": _bytes(b'"running"'),
    "null": _bytes(b"null"),
    "nested too deep": _bytes(b"[" * 100_000 + b"]" * 100_000),
    "a directory": _directory,
    "a fifo": _fifo,
    "a device": _device,
    "a dangling link": _dangling,
}


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    found = tmp_path / "jobs" / "tests.Task" / ("a" * 64)
    (found / XPM).mkdir(parents=True)
    return found


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_state_file_reads_as_none(directory: Path, damage: str) -> None:
    DAMAGES[damage](directory / taskstate.STATE)
    assert taskstate.read_state(directory) == {}
    assert taskstate.object_status(directory) == "absent"


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_launch_record_reads_as_none(directory: Path, damage: str) -> None:
    DAMAGES[damage](directory / taskstate.LAUNCH)
    assert taskstate.read_launch(directory) is None
    assert taskstate.live_directories([directory]) == []
    taskstate.remove_own_launch(directory)  # names nobody: left as it is
    assert os.path.lexists(directory / taskstate.LAUNCH)


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_slurm_record_reads_as_none(directory: Path, damage: str) -> None:
    DAMAGES[damage](directory / taskstate.SLURM_RECORD)
    assert taskstate.read_slurm_record(directory) == {}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_attempt_state_reads_as_none(directory: Path, damage: str) -> None:
    folder = taskstate.attempt_dir(directory, 1)
    folder.mkdir(parents=True)
    DAMAGES[damage](folder / "state.json")
    assert taskstate.attempt_numbers(directory) == [1]
    assert taskstate.read_attempt_state(directory, 1) == {}


def test_missing_files_read_as_none(tmp_path: Path) -> None:
    nothing = tmp_path / "gone"  # not even the directory
    assert taskstate.read_state(nothing) == {}
    assert taskstate.read_launch(nothing) is None
    assert taskstate.read_slurm_record(nothing) == {}
    assert taskstate.attempt_numbers(nothing) == []
    assert taskstate.object_status(nothing) == "absent"
    assert not taskstate.launch_is_live(nothing)


def _me(**changes: Any) -> dict[str, Any]:
    record = {"host": socket.gethostname(), "boot_id": taskstate.boot_id(), "pid": os.getpid(),
              "pid_start": taskstate.process_start(os.getpid())}
    record.update(changes)
    return record


@pytest.mark.parametrize("changes", [
    {"pid": str(os.getpid())},  # a number as text
    {"pid": None},
    {"pid": [os.getpid()]},
    {"pid_start": "0"},
])
def test_a_launch_record_of_this_host_with_fields_of_other_types_names_no_live_holder(
        directory: Path, changes: dict[str, Any]) -> None:
    (directory / taskstate.LAUNCH).write_text(json.dumps(_me()))
    assert taskstate.launch_is_live(directory)  # the record as written names this process
    (directory / taskstate.LAUNCH).write_text(json.dumps(_me(**changes)))
    assert not taskstate.launch_is_live(directory)
    (directory / taskstate.STATE).write_text(json.dumps({"state": "running"}))
    assert taskstate.object_status(directory) == "failed"  # its holder is gone


@pytest.mark.parametrize("state", [5, None, "RUNNING", ["failed"], {"state": "failed"}])
def test_a_state_of_another_kind_is_no_status(directory: Path, state: Any) -> None:
    (directory / taskstate.STATE).write_text(json.dumps({"state": state}))
    assert taskstate.object_status(directory) == "absent"


# --- what the writers publish ---------------------------------------------------------------------


def test_the_writers_publish_what_the_readers_read(directory: Path) -> None:
    record = taskstate.launch_record(launcher="local", tags={"lr": 0.1})
    assert record["pid"] == os.getpid() and record["tags"] == {"lr": 0.1}
    taskstate.write_launch(directory, record)
    assert taskstate.read_launch(directory) == record
    assert taskstate.launch_is_live(directory)
    assert taskstate.object_status(directory) == "queued"  # claimed, not started
    taskstate.write_running(directory, {**record, "state": "running", "started": 1.0})
    assert taskstate.read_state(directory)["state"] == "running"
    assert taskstate.read_launch(directory) == taskstate.read_state(directory)
    assert taskstate.object_status(directory) == "running"
    taskstate.write_state(directory, "failed", exit_code=3, reason="boom")
    state = taskstate.read_state(directory)
    assert (state["state"], state["exit_code"], state["reason"]) == ("failed", 3, "boom")
    assert taskstate.object_status(directory) == "failed"
    taskstate.remove_own_launch(directory)  # it names this process
    assert taskstate.read_launch(directory) is None
    taskstate.remove_state(directory)
    assert taskstate.read_state(directory) == {}
    with pytest.raises(FileNotFoundError):
        taskstate.remove_state(directory)


def test_a_launch_record_is_written_into_a_missing_xpm_folder(tmp_path: Path) -> None:
    directory = tmp_path / "task"
    directory.mkdir()
    taskstate.write_launch(directory, taskstate.launch_record())
    assert taskstate.read_launch(directory) is not None


def test_a_heartbeat_is_created_then_touched(directory: Path) -> None:
    path = taskstate.heartbeat_path(directory)
    taskstate.touch_heartbeat(path)
    os.utime(path, (0, 0))
    taskstate.touch_heartbeat(path)
    assert os.stat(path).st_mtime > 0
    taskstate.touch_heartbeat(str(directory / "gone" / "heartbeat"))  # never raises


def test_another_hosts_record_is_live_while_its_heartbeat_is_fresh(directory: Path) -> None:
    (directory / taskstate.LAUNCH).write_text(json.dumps(_me(host="elsewhere")))
    os.utime(directory / taskstate.LAUNCH, (0, 0))
    assert not taskstate.launch_is_live(directory)
    taskstate.touch_heartbeat(taskstate.heartbeat_path(directory))
    assert taskstate.launch_is_live(directory)


def test_the_slurm_record_is_read_back(directory: Path) -> None:
    taskstate.write_slurm_record(directory, {"job_id": "12", "attempt": 1, "after": ["11"],
                                             "history": ["TIMEOUT"], "launcher": "slurm"})
    assert taskstate.read_slurm_record(directory)["after"] == ["11"]


# --- earlier attempts ---------------------------------------------------------------------------

JUNK = ["007", "0", "²", "١", "x", "12345678901", "-1"]
"""Names in ``.xpm/attempts/`` that are no attempt's: leading zeros, digits of other scripts
(``int()`` reads some of them, ``str.isdigit`` accepts them all), too long, not numbers."""


def test_attempt_numbers_leave_out_what_is_no_attempt(directory: Path) -> None:
    for name in ["10", "2", "1", *JUNK]:
        (directory / taskstate.ATTEMPTS / name).mkdir(parents=True)
    assert taskstate.attempt_numbers(directory) == [1, 2, 10]


def test_a_claim_moves_a_failed_attempt_beside_names_that_are_no_attempts(
        ws: Workspace, counters: str) -> None:
    """A hostile or damaged attempts folder used to stop the claim with a ValueError."""
    task = ModelLearn(model=Model(hidden=11), epochs=1, counters=counters)
    directory = taskdirs.prepare_task_dir(ws, task)
    (directory / "stderr").write_text("the first attempt's traceback\n")
    taskstate.write_state(directory, "failed", reason="boom")
    for name in ["1", *JUNK]:
        (directory / taskstate.ATTEMPTS / name).mkdir(parents=True)
    outcome = claim(ws, task.__identifier__, directory, launcher="test")
    assert outcome.outcome == "launch" and outcome.failed_before
    assert taskstate.read_attempt_state(directory, 2)["reason"] == "boom"
    assert (taskstate.attempt_dir(directory, 2) / "stderr").read_text().startswith("the first")
    assert not (directory / "stderr").exists()


def test_show_and_serve_list_the_attempts_beside_names_that_are_no_attempts(
        ws: Workspace, counters: str) -> None:
    """``xpmstore show`` and the server's log list used to fail with a ValueError."""
    task = ModelLearn(model=Model(hidden=12), epochs=1, counters=counters)
    directory = taskdirs.prepare_task_dir(ws, task)
    folder = taskstate.attempt_dir(directory, 1)
    folder.mkdir(parents=True)
    (folder / "stderr").write_text("traceback\n")
    (folder / "state.json").write_text(json.dumps({"state": "failed", "reason": "boom"}))
    for name in JUNK:
        (directory / taskstate.ATTEMPTS / name).mkdir()
        (directory / taskstate.ATTEMPTS / name / "stderr").write_text("not an attempt\n")
    attempts = describe(ws, task.__identifier__).attempts
    assert [(a["attempt"], a["state"], a["reason"]) for a in attempts] == [(1, "failed", "boom")]
    assert log_names(directory) == [f"{taskstate.ATTEMPTS}/1/stderr"]
    assert is_listed(directory, f"{taskstate.ATTEMPTS}/1/stderr")
    assert not is_listed(directory, f"{taskstate.ATTEMPTS}/007/stderr")
