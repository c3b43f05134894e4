"""What outlives the move of the modules into layered subpackages (docs/architecture.md): the
public names of the façade, and the old paths that users, job scripts and pickles name."""

from __future__ import annotations

import base64
import pickle
import types
from pathlib import Path
from typing import Annotated

import pytest

from xpmstore import Param, Record, Store, Task, pathgenerator
from xpmstore.core.config import TaskPath
from xpmstore.core.typecheck import FrozenDict, FrozenList
from xpmstore.scheduler.claim import claim
from xpmstore.scheduler.runner import EXIT_OK
from xpmstore.store import taskdirs
from xpmstore.store.workspace import Workspace

from ..helpers import REPO_ROOT, run_python
from ..schedtasks import Model, ModelLearn
from ..storehelpers import count_of


def test_the_facade_names_stay_the_public_objects_once_their_modules_are_imported():
    code = ("import inspect, xpmstore, xpmstore.scheduler.cache, xpmstore.scheduler.experiment; "
            "print(inspect.isfunction(xpmstore.cache), inspect.isclass(xpmstore.experiment))")
    result = run_python(["-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_no_public_name_is_a_module():
    import xpmstore

    for name in xpmstore.__all__:
        assert not isinstance(getattr(xpmstore, name), types.ModuleType), name


# --- python -m xpmstore.runner: the command of job scripts written before the move ------------


def test_old_job_scripts_still_run_their_task(ws: Workspace, counters: str):
    learn = ModelLearn(model=Model(hidden=3), epochs=1, counters=counters)
    directory = taskdirs.prepare_task_dir(ws, learn)
    assert claim(ws, learn.__identifier__, directory, launcher="slurm").outcome == "launch"
    done = run_python(["-m", "xpmstore.runner", str(directory)], cwd=REPO_ROOT,
                      env={"PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == EXIT_OK, done.stderr
    assert taskdirs.is_done(directory) and count_of(counters, "learn-1") == 1


def test_old_runner_command_keeps_its_help_and_its_bad_arguments_exit():
    helped = run_python(["-m", "xpmstore.runner", "--help"])
    assert helped.returncode == 0 and helped.stdout.startswith("usage: python -m xpmstore.")
    wrong = run_python(["-m", "xpmstore.runner"])
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1


# --- pickles written before the move ------------------------------------------------------------


class PickledTask(Task):
    """A task pickled by xpmstore 0.1.0 before the move (its class must stay here)."""

    __xpmid__ = "tests.compat.pickled"
    sizes: Param[list[int]]
    weights: Param[dict[str, float]]
    out: Annotated[Path, pathgenerator("out.txt")]

    def execute(self) -> None:
        """Nothing to do."""


OLD_PICKLE = base64.b64decode(
    "gASVxAIAAAAAAAB9lCiMBHRhc2uUjBZ0ZXN0cy51bml0LnRlc3RfY29tcGF0lIwLUGlja2xlZFRhc2uUk5QpgZR9lCiM"
    "BXNpemVzlIwPeHBtc3RvcmUuY2hlY2tzlIwKRnJvemVuTGlzdJSTlF2UKEsBSwJlhZRSlIwHd2VpZ2h0c5RoCIwKRnJv"
    "emVuRGljdJSTlH2UjAFhlEc/4AAAAAAAAHOFlFKUjANvdXSUjA94cG1zdG9yZS5jb25maWeUjAhUYXNrUGF0aJSTlCmB"
    "lE59lCiMBG5hbWWUjAdvdXQudHh0lIwFb3duZXKUaAV1hpRijAhfeHBtX3Jhd5RDIN+YbPgWoOB/AjDQ50+MTBwSD9HM"
    "a2yNYfln4n863eoilIwLX3hwbV9zZWFsZWSUiIwHX3hwbV9pZJSMQGRmOTg2Y2Y4MTZhMGUwN2YwMjMwZDBlNzRmOGM0"
    "YzFjMTIwZmQxY2M2YjZjOGQ2MWY5NjdlMjdmM2FkZGVhMjKUdWKMBnJlY29yZJSMDnhwbXN0b3JlLnN0b3JllIwGUmVj"
    "b3JklJOUKYGUfZQojAppZGVudGlmaWVylIxAYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFi"
    "YWJhYmFiYWJhYmFiYWJhYmFiYWJhYpSMBGtpbmSUaAFoG4wUdGVzdHMuY29tcGF0LnBpY2tsZWSUjAZzdGF0dXOUjARk"
    "b25llIwEcGF0aJSMB3BhdGhsaWKUjAlQb3NpeFBhdGiUk5QojAEvlIwBd5SMBGpvYnOUjAF4lGgrdJRSlIwHY3JlYXRl"
    "ZJRHP/AAAAAAAACMC2xhc3RfYWNjZXNzlEdAAAAAAAAAAIwEc2l6ZZRLA4wEdGFnc5R9lIwCbHKURz+5mZmZmZmac4wM"
    "ZGVwZW5kZW5jaWVzlF2UjAZjb25maWeUTnVidS4="
)
"""``{"task": PickledTask(sizes=[1, 2], weights={"a": 0.5}), "record": Record(…)}`` pickled by
xpmstore 0.1.0 before the move: it names ``xpmstore.checks.FrozenList`` and ``FrozenDict``,
``xpmstore.config.TaskPath`` and ``xpmstore.store.Record``."""


def test_pickles_written_before_the_move_load():
    for old in (b"xpmstore.checks", b"xpmstore.config", b"xpmstore.store"):
        assert old in OLD_PICKLE
    loaded = pickle.loads(OLD_PICKLE)
    task = loaded["task"]
    assert isinstance(task, PickledTask)
    assert task.sizes == [1, 2] and isinstance(task.sizes, FrozenList)
    assert task.weights == {"a": 0.5} and isinstance(task.weights, FrozenDict)
    assert isinstance(task.out, TaskPath) and task.out.task_and_relpath() == (task, "out.txt")
    assert task.__identifier__ == PickledTask(sizes=[1, 2], weights={"a": 0.5}).__identifier__
    with pytest.raises(TypeError):
        task.sizes.append(3)  # still immutable
    assert loaded["record"] == Record(
        identifier="ab" * 32, kind="task", name="tests.compat.pickled", status="done",
        path=Path("/w/jobs/x/" + "ab" * 32), created=1.0, last_access=2.0, size=3,
        tags={"lr": 0.1}, dependencies=[], config=None)


# --- import paths of the public API -------------------------------------------------------------


def test_launchers_are_imported_from_xpmstore_launchers():
    from xpmstore import launchers
    from xpmstore.scheduler import launchers as real

    assert sorted(launchers.__all__) == sorted(real.__all__)
    for name in real.__all__:
        assert getattr(launchers, name) is getattr(real, name)


def test_store_and_record_are_still_importable_from_xpmstore_store():
    from xpmstore.store import Record as OldRecord
    from xpmstore.store import Store as OldStore

    assert OldStore is Store and OldRecord is Record
    with pytest.raises(ImportError):
        from xpmstore.store import Nothing  # noqa: F401
