"""Progress reported from inside a task (xpmstore.store.taskprogress): the reporter's arguments and
levels, the file a job writes and another process reads, and a reader that never raises on a
damaged or hostile file."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import xpmstore
from xpmstore import experiment, progress
from xpmstore.errors import ProgressArgumentError
from xpmstore.launchers import LocalLauncher
from xpmstore.store.taskprogress import (
    MAX_LEVELS,
    TaskProgress,
    overall_fraction,
    parse_progress,
    progress_text,
    read_progress,
)
from xpmstore.store.workspace import Workspace

from ..clihelpers import invoke
from ..progresstasks import Reporting
from ..storehelpers import isolate, wait_for
from .test_experiment import hang_guard


@pytest.fixture
def reporter(tmp_path: Path) -> Iterator[tuple[TaskProgress, Path]]:
    """A reporter writing to a task directory of its own, as a job's process does."""
    taskdir = tmp_path / "task"
    (taskdir / ".xpm").mkdir(parents=True)
    reporting = TaskProgress()
    reporting.begin(taskdir)
    yield reporting, taskdir
    reporting.end()


def levels_of(taskdir: Path) -> list[tuple[Any, ...]]:
    found = read_progress(taskdir)
    assert found is not None
    return [(x["level"], x["fraction"], x["step"], x["total"], x["desc"]) for x in found]


# --- the public name ------------------------------------------------------------------------


def test_progress_is_public_and_survives_the_import_of_the_display_module() -> None:
    from xpmstore.scheduler.progress import Progress  # the experiment's display

    assert "progress" in xpmstore.__all__
    assert xpmstore.progress is progress
    assert isinstance(progress, TaskProgress)
    assert Progress.__module__ == "xpmstore.scheduler.progress"


def test_outside_a_job_a_call_writes_nothing(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    progress(0.4)
    progress(3, total=10, desc="x")
    assert list(progress.track([1, 2, 3])) == [1, 2, 3]
    assert list(tmp_path.iterdir()) == []
    assert progress._path is None and progress._levels == []


@pytest.mark.parametrize("call", [
    lambda p: p("40%"), lambda p: p(True), lambda p: p(None), lambda p: p(0.5, total=10),
    lambda p: p(3, total="10"), lambda p: p(1, desc=3), lambda p: p.track([1], desc=b"x"),
    lambda p: p(1, level="0"),
])
def test_arguments_of_the_wrong_type_are_refused(call: Any, tmp_path: Path) -> None:
    reporting = TaskProgress()
    with pytest.raises(ProgressArgumentError) as caught:
        call(progress)  # outside a job too: the same call fails the same way in a job
    assert isinstance(caught.value, TypeError)
    assert str(caught.value).startswith("progress")
    (tmp_path / ".xpm").mkdir()
    reporting.begin(tmp_path)
    with pytest.raises(ProgressArgumentError):
        call(reporting)
    reporting.end()


# --- what is written ------------------------------------------------------------------------


def test_fractions_steps_and_totals(reporter: tuple[TaskProgress, Path]) -> None:
    reporting, taskdir = reporter
    reporting(0.25)
    reporting.end()
    assert levels_of(taskdir) == [(0, 0.25, None, None, None)]
    reporting.begin(taskdir)
    assert read_progress(taskdir) is None  # a new attempt starts from nothing
    reporting(1.7)  # kept within [0, 1]
    reporting.end()
    assert levels_of(taskdir) == [(0, 1.0, None, None, None)]
    reporting.begin(taskdir)
    reporting(300, total=1000, desc="epoch 3")
    reporting.end()
    assert levels_of(taskdir) == [(0, 0.3, 300, 1000, "epoch 3")]
    reporting.begin(taskdir)
    reporting(12)  # an int without a total: a step of an unknown total
    reporting.end()
    assert levels_of(taskdir) == [(0, None, 12, None, None)]


def test_numbers_of_other_libraries(reporter: tuple[TaskProgress, Path]) -> None:
    numpy = pytest.importorskip("numpy")
    reporting, taskdir = reporter
    reporting(numpy.int64(5), total=numpy.int32(10))
    reporting(numpy.float32(0.5), level=1)
    reporting.end()
    assert levels_of(taskdir) == [(0, 0.5, 5, 10, None), (1, 0.5, None, None, None)]


def test_track_nests_levels_and_an_outer_step_drops_the_inner_levels(
        reporter: tuple[TaskProgress, Path]) -> None:
    reporting, taskdir = reporter
    seen = []
    for epoch in reporting.track(range(2), desc="epoch"):
        for batch in reporting.track(["a", "b", "c", "d"], desc="train"):
            if epoch == 1 and batch == "c":
                reporting.end()  # write what the file would hold now
                seen = levels_of(taskdir)
                reporting.begin(taskdir)
    assert seen == [(0, 0.5, 1, 2, "epoch"), (1, 0.5, 2, 4, "train")]
    assert reporting._depth == 0  # both loops closed their level
    reporting(0.9)  # no loop open: level 0, and no deeper level stays
    reporting.end()
    assert levels_of(taskdir) == [(0, 0.9, None, None, None)]


def test_a_loop_left_early_closes_its_level(reporter: tuple[TaskProgress, Path]) -> None:
    reporting, _ = reporter
    for item in reporting.track(range(10)):
        if item == 3:
            break
    assert reporting._depth == 0
    with pytest.raises(KeyError):
        for _ in reporting.track(range(10)):
            raise KeyError("the task failed")
    assert reporting._depth == 0


def test_track_has_a_length_for_tqdm_when_the_total_is_known() -> None:
    assert len(progress.track(range(7))) == 7
    assert len(progress.track(iter(range(7)), total=7)) == 7
    unknown = progress.track(iter(range(7)))
    with pytest.raises(TypeError):
        len(unknown)
    assert list(unknown) == list(range(7))


def test_levels_beyond_the_last_are_the_last(reporter: tuple[TaskProgress, Path]) -> None:
    reporting, taskdir = reporter
    reporting(0.5, level=MAX_LEVELS + 5)
    reporting.end()
    assert levels_of(taskdir) == [(MAX_LEVELS - 1, 0.5, None, None, None)]


def test_the_background_thread_writes_without_an_end(reporter: tuple[TaskProgress, Path]) -> None:
    reporting, taskdir = reporter
    reporting(7, total=10, desc="waiting")
    wait_for(lambda: read_progress(taskdir) is not None, "the progress file")
    assert levels_of(taskdir) == [(0, 0.7, 7, 10, "waiting")]
    data = json.loads((taskdir / ".xpm" / "progress.json").read_text())
    assert data["pid"] == os.getpid() and abs(data["updated"] - time.time()) < 3600


def test_a_removed_task_directory_never_fails_the_task(tmp_path: Path) -> None:
    reporting = TaskProgress()
    reporting.begin(tmp_path / "gone")
    reporting(0.5)
    reporting.end()  # the write fails (no such folder) and is dropped
    assert not (tmp_path / "gone").exists()


# --- across processes: a real job -----------------------------------------------------------


def test_a_running_job_is_read_from_another_process(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)
    ws = Workspace.at(tmp_path / "ws")
    reported, release = tmp_path / "reported", tmp_path / "release"
    task = Reporting(n=1, reported=str(reported), release=str(release)).tag("lr", 0.1)
    taskdir = ws.task_dir("tests.progress.Reporting", task.__identifier__)
    with hang_guard(), experiment(ws, "progress", launcher=LocalLauncher(workers=1)):
        task.submit()
        wait_for(reported.exists, "the task to report")
        wait_for(lambda: read_progress(taskdir) is not None
                 and len(read_progress(taskdir) or []) == 2, "two levels in the file")
        levels = read_progress(taskdir)
        assert levels is not None
        assert [(x["level"], x["step"], x["total"], x["desc"]) for x in levels] == [
            (0, 2, 3, "epoch"), (1, 40, 100, "train")]
        assert levels[1]["fraction"] == 0.4
        job_pid = int(reported.read_text())
        assert job_pid != os.getpid()
        assert json.loads((taskdir / ".xpm" / "progress.json").read_text())["pid"] == job_pid
        assert progress_text(levels) == "epoch 2/3 · train 40% (40/100)"
        shown_by_jobs_and_show(ws, task.__identifier__)
        release.write_text("")
    assert levels_of(taskdir) == [(0, 1.0, None, None, None)]  # written at the job's end


def shown_by_jobs_and_show(ws: Workspace, identifier: str) -> None:
    """``xpmstore jobs`` (JSON and text) and ``show`` of the running Reporting job."""
    found = json.loads(invoke(ws, "jobs", "--json").stdout)
    assert len(found) == 1
    job = found[0]
    assert (job["identifier"], job["status"], job["tags"]) == (identifier, "running",
                                                               {"lr": 0.1})
    assert [level["step"] for level in job["progress"]] == [2, 40]
    assert job["started"] <= time.time() and 0 <= job["elapsed"] < 3600
    row = invoke(ws, "jobs").stdout.splitlines()[0].split("\t")
    assert row[0] == identifier and row[2] == "running"
    assert float(row[6]) >= 0 and row[7:] == ["epoch 2/3 · train 40% (40/100)", "lr=0.1"]
    shown = dict(line.split("\t", 1) for line in invoke(ws, "show", identifier).stdout
                 .splitlines())
    assert shown["progress"].startswith("epoch 2/3 · train 40% (40/100) (reported ")
    details = json.loads(invoke(ws, "show", identifier, "--json").stdout)
    assert [level["desc"] for level in details["progress"]] == ["epoch", "train"]


# --- the reader: another host's file, damaged or hostile files --------------------------------


def write(taskdir: Path, data: bytes | str) -> None:
    (taskdir / ".xpm").mkdir(parents=True, exist_ok=True)
    target = taskdir / ".xpm" / "progress.json"
    target.write_bytes(data.encode() if isinstance(data, str) else data)


def document(**changes: Any) -> str:
    base: dict[str, Any] = {"version": 1, "pid": 4242, "updated": 1.7e9, "levels": [
        {"level": 0, "fraction": 0.5, "step": 5, "total": 10, "desc": "epoch"}]}
    base.update(changes)
    return json.dumps(base)


def test_a_file_written_on_another_host_reads_back(tmp_path: Path) -> None:
    write(tmp_path, document())  # another host's pid means nothing here: it is not looked at
    assert read_progress(tmp_path) == [{"level": 0, "fraction": 0.5, "step": 5, "total": 10,
                                        "desc": "epoch", "updated": 1.7e9}]
    assert read_progress(str(tmp_path)) == read_progress(tmp_path)


@pytest.mark.parametrize("data", [
    b"", b"{", b"\xff\xfe", b"[]", b"null", document(version=2), document(version=True),
    document(updated="now"), document(updated=float("nan")), document(levels={}),
    document(levels=[{"level": 0, "fraction": 2.0}]),
    document(levels=[{"level": 0, "fraction": float("inf")}]),
    document(levels=[{"level": -1, "fraction": 0.5}]),
    document(levels=[{"level": True, "fraction": 0.5}]),
    document(levels=[{"level": 0, "step": -1}]),
    document(levels=[{"level": 0, "step": 1.5}]),
    document(levels=[{"level": 0, "total": 0}]),
    document(levels=[{"level": 0, "step": 2**70}]),
    document(levels=[{"level": 1}, {"level": 0}]),
    document(levels=[{"level": 0}, {"level": 0}]),
    document(levels=[{"level": i} for i in range(MAX_LEVELS + 1)]),
    document(levels=[{"level": 0, "desc": ["x"]}]),
    document(levels=["x"]),
    document(levels=[]),
    b"[" * 100000 + b"]" * 100000,
    b"[" * 30000 + b"]" * 30000,  # within the size bound: too deep for the parser
])
def test_a_damaged_file_reads_as_nothing(tmp_path: Path, data: bytes | str) -> None:
    write(tmp_path, data)
    assert read_progress(tmp_path) is None


def test_hostile_files_read_as_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(document())
    link = tmp_path / "link"
    (link / ".xpm").mkdir(parents=True)
    (link / ".xpm" / "progress.json").symlink_to(secret)  # never followed
    assert read_progress(link) is None
    fifo = tmp_path / "fifo"
    (fifo / ".xpm").mkdir(parents=True)
    os.mkfifo(fifo / ".xpm" / "progress.json")  # opening must not block for a writer
    assert read_progress(fifo) is None
    folder = tmp_path / "folder"
    (folder / ".xpm" / "progress.json").mkdir(parents=True)
    assert read_progress(folder) is None
    large = tmp_path / "large"
    write(large, document(padding="x" * 100_000))
    assert read_progress(large) is None
    assert read_progress(tmp_path / "absent") is None
    assert read_progress(None) is None  # type: ignore[arg-type]


def test_descriptions_lose_terminal_escapes_and_are_bounded(tmp_path: Path) -> None:
    write(tmp_path, document(levels=[{"level": 0, "desc": "\x1b[2J\x1b]0;pwned\x07ok\nline"
                                      + "y" * 1000}]))
    levels = read_progress(tmp_path)
    assert levels is not None
    desc = levels[0]["desc"]
    assert desc is not None and desc.startswith("[2J ]0;pwned ok line")
    assert all(c.isprintable() for c in desc) and len(desc) <= 200


def test_overall_fraction_combines_the_levels() -> None:
    def levels(*entries: dict[str, Any]) -> Any:
        return parse_progress(document(levels=[{"level": i, **e}
                                               for i, e in enumerate(entries)]).encode())

    assert overall_fraction(None) is None
    assert overall_fraction(levels({"fraction": 0.3})) == 0.3
    assert overall_fraction(levels({"step": 2, "total": 5},
                                   {"fraction": 0.4, "step": 40, "total": 100})) == 0.48
    assert overall_fraction(levels({"step": 2, "total": 5}, {"step": 7})) == 0.4  # no total
    assert overall_fraction(levels({"step": 5, "total": 5}, {"fraction": 0.9})) == 1.0
    assert overall_fraction(levels({"step": 3}, {"fraction": 0.5})) is None


def test_progress_text() -> None:
    assert progress_text(None) == ""
    assert progress_text(parse_progress(document(levels=[
        {"level": 0, "fraction": 0.4}, {"level": 1, "step": 7, "desc": "batches"},
        {"level": 2, "fraction": 1.0, "step": 3, "total": 3, "desc": "fold"}]).encode())) \
        == "40% · batches 7 · fold 3/3"
