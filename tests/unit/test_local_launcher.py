"""The local launcher (xpmstore.scheduler.launchers.local) and the job's process: bounded
parallelism, the GPU pool, zygote-forked and fresh processes, logs in the task directory, and a
zygote that dies.

Tasks write facts about their process (``facts.json``: pid, parent, session, the ``__main__``
module, the environment) or append ``start``/``end`` lines to ``counters/intervals``; tests read
them after the experiment, and never wait on a clock.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xpmstore import ExperimentFailed, Task, experiment
from xpmstore.core.config import class_spec
from xpmstore.launchers import LocalLauncher
from xpmstore.scheduler.progress import Progress
from xpmstore.store import taskdirs
from xpmstore.store.workspace import Workspace

from ..helpers import REPO_ROOT
from ..schedtasks import (
    APPLIED,
    Blocker,
    Counted,
    Flaky,
    FreshWhereAmI,
    Interval,
    WhereAmI,
    lines,
    set_env,
)
from ..storehelpers import count_of, isolate, wait_for
from .test_experiment import hang_guard


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    isolate(monkeypatch, tmp_path)
    for name in ("CUDA_VISIBLE_DEVICES", "PYTHONXPMTEST"):
        monkeypatch.delenv(name, raising=False)
    with hang_guard():
        yield


def xp(ws: Workspace, launcher: LocalLauncher) -> experiment:
    return experiment(ws, "local", launcher=launcher,
                      progress=Progress("local", stream=io.StringIO()))


def taskdir(ws: Workspace, task: Task) -> Path:
    return ws.task_dir(class_spec(type(task)).identity_name, task.__identifier__)


def facts(ws: Workspace, task: Task) -> dict[str, Any]:
    data = json.loads((taskdir(ws, task) / "facts.json").read_text())
    assert isinstance(data, dict)
    return data


def intervals(counters: str) -> list[tuple[str, int, str]]:
    """The ``(start|end, k, device)`` lines of the Interval tasks, in the order written."""
    found = []
    for line in lines(counters, "intervals"):
        kind, k, device = line.split()
        found.append((kind, int(k), device))
    return found


def replay(events: list[tuple[str, int, str]]) -> list[dict[int, str]]:
    """The set of running jobs (k → device) after each event; checks starts and ends pair up
    and that no device is held twice at once."""
    running: dict[int, str] = {}
    states = []
    for kind, k, device in events:
        if kind == "start":
            assert k not in running, f"job {k} started twice"
            assert device == "-" or device not in running.values(), \
                f"device {device} given to job {k} while {running} run"
            running[k] = device
        else:
            assert running.pop(k) == device
        states.append(dict(running))
    assert running == {}, f"jobs never ended: {running}"
    return states


def _check_python_path(fact: dict[str, Any]) -> None:
    """The job can import the test modules, and its PYTHONPATH does not carry this
    interpreter's standard library or site-packages (they would break any other Python the job
    starts)."""
    entries = [p for p in fact["environ"].get("PYTHONPATH", "").split(os.pathsep) if p]
    assert str(REPO_ROOT) in entries
    paths = sysconfig.get_paths()
    own = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    leaked = [p for p in entries if os.path.realpath(p) in own]
    assert leaked == []


# --- parallelism and devices -----------------------------------------------------------------


def test_launcher_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="workers=0"):
        LocalLauncher(workers=0)
    assert LocalLauncher(workers=3, gpus=[0, "1"]).describe() == \
        "local(workers=3, gpus=['0', '1'])"
    assert LocalLauncher().workers == (os.cpu_count() or 1)


def test_one_worker_runs_one_job_at_a_time(ws: Workspace, counters: str) -> None:
    with xp(ws, LocalLauncher(workers=1)):
        for k in range(4):
            Interval(k=k, counters=counters).submit()
    events = intervals(counters)
    assert sorted(k for kind, k, _ in events if kind == "start") == [0, 1, 2, 3]
    states = replay(events)
    assert max(len(s) for s in states) == 1
    # Strictly alternating: every start is followed by its own end.
    for (kind, k, _), (next_kind, next_k, _) in zip(events[::2], events[1::2], strict=True):
        assert (kind, next_kind, next_k) == ("start", "end", k)


def test_gpu_pool_gives_each_job_one_free_device(ws: Workspace, counters: str) -> None:
    tasks = [Interval(k=k, counters=counters, group=2) for k in range(4)]
    with xp(ws, LocalLauncher(workers=2, gpus=["0", "1"])):
        for task in tasks:
            task.submit()
    events = intervals(counters)
    assert all(device in ("0", "1") for _, _, device in events)
    states = replay(events)  # never one device twice at once
    assert max(len(s) for s in states) == 2  # the group makes pairs overlap: two at a time
    for task in tasks:
        assert (taskdir(ws, task) / "device.txt").read_text() in ("0", "1")


def test_gpus_bound_parallelism_below_workers(ws: Workspace, counters: str) -> None:
    with xp(ws, LocalLauncher(workers=4, gpus=["7"])):
        for k in range(3):
            Interval(k=k, counters=counters).submit()
    events = intervals(counters)
    assert {device for _, _, device in events} == {"7"}
    assert max(len(s) for s in replay(events)) == 1


# --- the job's process -----------------------------------------------------------------------


def test_zygote_jobs_run_in_their_own_session_in_the_task_directory(ws: Workspace) -> None:
    first, second = WhereAmI(n=1), WhereAmI(n=2)
    with xp(ws, LocalLauncher(workers=2)):
        first.submit()
        second.submit()
    seen = [facts(ws, first), facts(ws, second)]  # facts.json is written relative to the cwd
    for fact in seen:
        assert fact["sid"] == fact["pid"] == fact["pgid"]  # setsid(): its own session
        assert fact["main"] == "xpmstore.scheduler.zygote"  # forked, not a new interpreter
        assert fact["ppid"] != os.getpid()
        assert "PYTHONXPMTEST" not in fact["environ"]
        assert "CUDA_VISIBLE_DEVICES" not in fact["environ"]
        _check_python_path(fact)
    assert seen[0]["ppid"] == seen[1]["ppid"]  # one zygote forks every job
    assert seen[0]["pid"] != seen[1]["pid"]


def test_fresh_process_and_startup_variables_use_the_runner(ws: Workspace) -> None:
    APPLIED.clear()
    fresh = FreshWhereAmI(n=1)
    startup = WhereAmI(n=2)
    forked = WhereAmI(n=3)
    with xp(ws, LocalLauncher(workers=2)):
        fresh.submit()
        startup.submit(hooks=[set_env("PYTHONXPMTEST", "1")])
        forked.submit()
    for task in (fresh, startup):
        fact = facts(ws, task)
        assert fact["main"] == "xpmstore.scheduler.runner"
        assert fact["argv"][1] == str(taskdir(ws, task))
        assert fact["sid"] == fact["pid"]
        assert fact["ppid"] == os.getpid()  # started by the launcher itself
    assert facts(ws, startup)["environ"]["PYTHONXPMTEST"] == "1"
    _check_python_path(facts(ws, fresh))
    assert "PYTHONXPMTEST" not in facts(ws, fresh)["environ"]
    assert facts(ws, forked)["main"] == "xpmstore.scheduler.zygote"
    applied = list(APPLIED)
    assert applied == [("set_env", ("PYTHONXPMTEST", "1"), startup.__identifier__)]


def test_launcher_wide_fresh_process(ws: Workspace) -> None:
    task = WhereAmI(n=4)
    with xp(ws, LocalLauncher(workers=1, fresh_process=True)):
        task.submit()
    assert facts(ws, task)["main"] == "xpmstore.scheduler.runner"


@pytest.mark.parametrize("fresh", [False, True], ids=["zygote", "fresh"])
def test_stdout_and_stderr_land_in_the_task_directory(ws: Workspace, counters: str,
                                                      tmp_path: Path, fresh: bool) -> None:
    flag = tmp_path / "flag"
    failing = Flaky(n=10, counters=counters, flag=str(flag))
    with pytest.raises(ExperimentFailed), xp(ws, LocalLauncher(workers=1, fresh_process=fresh)):
        failing.submit()
    directory = taskdir(ws, failing)
    assert (directory / "stdout").read_text() == "flaky attempt 1\n"
    stderr = (directory / "stderr").read_text()
    assert "Traceback (most recent call last)" in stderr
    assert stderr.rstrip().endswith("RuntimeError: flaky task 10: no flag file yet")

    flag.write_text("")
    with xp(ws, LocalLauncher(workers=1, fresh_process=fresh)):
        Flaky(n=10, counters=counters, flag=str(flag)).submit()
    assert (directory / "stdout").read_text() == "flaky attempt 2\n"
    assert (directory / "stderr").read_text() == ""
    done = taskdirs.read_manifest(directory)
    assert done is not None
    assert {"stdout", "stderr", "result.txt"} <= {entry.path for entry in done.files}


@pytest.mark.parametrize("fresh", [False, True], ids=["zygote", "fresh"])
def test_a_job_killed_by_a_signal_fails_with_that_signal(ws: Workspace, counters: str,
                                                         tmp_path: Path, fresh: bool) -> None:
    blocker = Blocker(key="killed", counters=counters, release=str(tmp_path / "never"))
    with pytest.raises(ExperimentFailed, match="killed by signal 9") as info, \
            xp(ws, LocalLauncher(workers=1, fresh_process=fresh)):
        blocker.submit()
        wait_for(lambda: count_of(counters, "started-killed") == 1, "the blocker to start")
        [pid] = lines(counters, "started-killed")  # the job's process wrote its pid
        os.kill(int(pid), signal.SIGKILL)
    assert [f[0] for f in info.value.failed] == [blocker.__identifier__]
    state = json.loads((taskdir(ws, blocker) / ".xpm" / "state.json").read_text())
    assert (state["state"], state["reason"]) == ("failed", "killed by signal 9")
    assert not taskdirs.is_done(taskdir(ws, blocker))


def test_a_launcher_serves_two_experiments(ws: Workspace, counters: str) -> None:
    launcher = LocalLauncher(workers=1)
    with xp(ws, launcher):
        Counted(n=1, counters=counters).submit()
    with xp(ws, launcher):  # the first experiment closed its zygote; this one starts another
        Counted(n=2, counters=counters).submit()
    assert count_of(counters, "counted-1") == count_of(counters, "counted-2") == 1


def test_a_killed_zygote_neither_loses_its_jobs_nor_stops_the_experiment(
        ws: Workspace, counters: str, tmp_path: Path) -> None:
    release = tmp_path / "release"
    probe = WhereAmI(n=5)
    blocker = Blocker(key="z", counters=counters, release=str(release))
    later = Counted(n=5, counters=counters)
    with xp(ws, LocalLauncher(workers=2)):
        probe.submit()
        blocker.submit()
        wait_for(lambda: taskdirs.is_done(taskdir(ws, probe)), "the probe to finish")
        wait_for(lambda: count_of(counters, "started-z") == 1, "the blocker to start")
        zygote = facts(ws, probe)["ppid"]  # the probe was forked by the zygote
        os.kill(zygote, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{zygote}/cmdline")
                 or not Path(f"/proc/{zygote}/cmdline").read_bytes(), "the zygote to die")
        release.write_text("")  # the blocker, orphaned, still finishes in its own session
        later.submit()  # and a new zygote runs what comes next
    assert taskdirs.is_done(taskdir(ws, blocker))
    assert count_of(counters, "ended-z") == 1
    assert count_of(counters, "counted-5") == 1
