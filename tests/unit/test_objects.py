"""Objects on disk (xpmstore.store.taskdirs): task directories, finishing, records read back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from xpmstore.core.params import load, params_of, read_params
from xpmstore.errors import CorruptObjectError
from xpmstore.store import manifest, taskdirs
from xpmstore.store.index import Index
from xpmstore.store.workspace import DONE, Workspace

from ..storehelpers import Evaluate, Failing, Learn, Model, Tiny, isolate


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def test_prepare_task_dir_writes_params_once(ws: Workspace) -> None:
    task = Learn(model=Model(hidden=8))
    directory = taskdirs.prepare_task_dir(ws, task)
    assert directory == ws.jobs / "tests.store.Learn" / task.__identifier__
    assert (directory / ".xpm").is_dir()
    document = read_params(directory)
    assert document["identifier"] == task.__identifier__
    before = (directory / "params.json").stat()
    assert taskdirs.prepare_task_dir(ws, task) == directory
    after = (directory / "params.json").stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert os.fspath(task.checkpoint) == str(directory / "model.bin")  # bound
    assert not taskdirs.is_done(directory)
    assert load(directory).__identifier__ == task.__identifier__


def test_bind_binds_every_reachable_task(ws: Workspace) -> None:
    learn = Learn(model=Model())
    evaluate = Evaluate(learned=learn)
    taskdirs.bind(evaluate, ws)
    assert evaluate.__taskdir__ == ws.task_dir("tests.store.Evaluate", evaluate.__identifier__)
    assert learn.__taskdir__ == ws.task_dir("tests.store.Learn", learn.__identifier__)


def test_run_here_publishes_and_indexes(ws: Workspace) -> None:
    learn = Learn(model=Model(hidden=3), epochs=2).tag("lr", 0.5)
    directory = taskdirs.run_here(ws, learn)
    assert taskdirs.is_done(directory)
    assert (directory / "model.bin").read_text() == "3 2 0.1\n"
    found = taskdirs.read_manifest(directory)
    assert found is not None
    assert found.identifier == learn.__identifier__ and found.kind == "task"
    assert found.name == "tests.store.Learn"
    assert [f.path for f in found.files] == ["model.bin", "params.json"]
    assert found.extra == {"tags": {"lr": 0.5}, "dependencies": []}
    assert manifest.verify(directory, found) == []
    record = Index.for_workspace(ws).get(learn.__identifier__)
    assert record is not None
    assert record["path"] == f"jobs/tests.store.Learn/{learn.__identifier__}"
    assert record["tags"] == {"lr": 0.5}
    assert record["identity"] == params_of(learn)["identity"]
    assert record["size"] == found.size


def test_run_here_twice_runs_once(ws: Workspace) -> None:
    task = Tiny(i=3)
    directory = taskdirs.run_here(ws, task)
    done = (directory / DONE).read_bytes()
    (directory / "out.txt").write_text("changed by hand")
    assert taskdirs.run_here(ws, Tiny(i=3)) == directory
    assert (directory / "out.txt").read_text() == "changed by hand"  # not executed again
    assert (directory / DONE).read_bytes() == done


def test_dependencies_are_recorded(ws: Workspace) -> None:
    learn = Learn(model=Model())
    taskdirs.run_here(ws, learn)
    evaluate = Evaluate(learned=learn)
    directory = taskdirs.run_here(ws, evaluate)
    assert (directory / "score.txt").read_text() == "64 10 0.1\n"
    index = Index.for_workspace(ws)
    assert index.get(evaluate.__identifier__)["dependencies"] == [learn.__identifier__]
    assert index.dependents(learn.__identifier__) == [evaluate.__identifier__]


def test_a_failing_task_is_not_done(ws: Workspace) -> None:
    task = Failing()
    with pytest.raises(RuntimeError):
        taskdirs.run_here(ws, task)
    directory = ws.task_dir("tests.store.Failing", task.__identifier__)
    assert directory.is_dir() and not taskdirs.is_done(directory)
    assert taskdirs.read_manifest(directory) is None
    assert Index.for_workspace(ws).get(task.__identifier__) is None
    assert taskdirs.record_from_disk(ws, directory) is None


def test_excluded_files_are_not_listed(ws: Workspace, tmp_path: Path) -> None:
    directory = tmp_path / "obj"
    (directory / "ckpt").mkdir(parents=True)
    (directory / "ckpt" / "a.pt").write_text("a")
    (directory / "keep.txt").write_text("k")
    made = taskdirs.finish(directory, "ab" * 32, "task", "pkg.X", exclude=("ckpt/*",))
    assert [f.path for f in made.files] == ["keep.txt"]
    assert taskdirs.read_manifest(directory) == made


def test_record_from_disk_round_trip(ws: Workspace) -> None:
    task = Tiny(i=4)
    directory = taskdirs.run_here(ws, task)
    from_index = Index.for_workspace(ws).get(task.__identifier__)
    assert taskdirs.record_from_disk(ws, directory) == from_index


def test_record_from_disk_refuses_bad_objects(ws: Workspace) -> None:
    task = Tiny(i=5)
    directory = taskdirs.run_here(ws, task)
    # a done manifest naming another identifier (a copied directory) is not this object
    moved = directory.parent / ("f" * 64)
    os.rename(directory, moved)
    assert taskdirs.record_from_disk(ws, moved) is None
    os.rename(moved, directory)
    assert taskdirs.record_from_disk(ws, directory) is not None
    # a task without a readable params.json
    os.unlink(directory / "params.json")
    assert taskdirs.record_from_disk(ws, directory) is None
    # a corrupt manifest: never indexed, and read_manifest says why
    (directory / DONE).write_text("{garbage")
    assert taskdirs.record_from_disk(ws, directory) is None
    with pytest.raises(CorruptObjectError):
        taskdirs.read_manifest(directory)
    # a manifest of a newer version
    (directory / DONE).write_text(json.dumps({"format": "xpmstore.done", "version": 99}))
    assert taskdirs.record_from_disk(ws, directory) is None


def test_list_object_dirs(ws: Workspace) -> None:
    done = taskdirs.run_here(ws, Tiny(i=1))
    pending = taskdirs.prepare_task_dir(ws, Tiny(i=2))
    (ws.jobs / "tests.store.Tiny" / "not-an-id").mkdir()
    (ws.jobs / "tests.store.Tiny" / ("a" * 63)).mkdir()
    (ws.jobs / ".hidden" / ("b" * 64)).mkdir(parents=True)
    (ws.cache / "pkg.T" / ("c" * 64)).mkdir(parents=True)
    (ws.jobs / "tests.store.Tiny" / ("d" * 64)).write_text("a file, not a directory")
    found = sorted(taskdirs.list_object_dirs(ws))
    assert found == sorted([done, pending, ws.cache / "pkg.T" / ("c" * 64)])
    assert taskdirs.list_object_dirs(Workspace.at(ws.root / "absent")) == []
