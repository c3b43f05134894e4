"""SlurmLauncher against the real single-node Slurm the suite starts (tests/slurm/conftest.py):
a graph with afterok chains, the SubmitHook environment and options reaching the job, reattach
after ``kill -9`` of the scheduler, ``scancel``, a failed dependency, TIMEOUT and retries."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from xpmstore import Task, experiment
from xpmstore.admin import gc
from xpmstore.core.config import class_spec
from xpmstore.errors import ExperimentFailed
from xpmstore.launchers import SlurmLauncher
from xpmstore.scheduler.hooks import Job, SubmitHook
from xpmstore.scheduler.runlog import read_run
from xpmstore.scheduler.runner import EXIT_WAITED
from xpmstore.store.taskstate import read_launch, read_state
from xpmstore.store.workspace import Workspace
from xpmstore.system import slurmctl

from ..clihelpers import console
from ..helpers import PYTHON, REPO_ROOT
from ..schedtasks import After, Flaky, WhereAmI, layered_graph, set_env
from ..storehelpers import count_of, make_workspace, wait_for
from .slurmtasks import Sleeper, SlowFirstTime

pytestmark = pytest.mark.slurm

DRIVER = "from tests.slurm.slurmtasks import drive; drive()"


@pytest.fixture
def ws(tmp_path: Path, slurm_cluster: Any) -> Workspace:
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def counters(tmp_path: Path) -> Path:
    folder = tmp_path / "counters"
    folder.mkdir()
    return folder


def _launcher(**options: Any) -> SlurmLauncher:
    return SlurmLauncher(poll_max=1.0, **options)


def _squeue(*args: str) -> list[tuple[str, str]]:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%T", *args],
                         capture_output=True, text=True, check=True).stdout
    return [(line.split("|")[0], line.split("|")[1]) for line in out.split()]


@pytest.fixture(autouse=True)
def _first_job_id() -> None:
    """Slurm's ids grow: the jobs of this test are those above the last id known before it."""
    global _BASELINE
    _BASELINE = max((int(i) for i, _ in _squeue()), default=0)


_BASELINE = 0


def _jobs_named(name: str) -> list[tuple[str, str]]:
    """(id, state) of the jobs of this test (ended ones included) named ``name``."""
    return [(i, s) for i, s in _squeue("-n", name) if int(i) > _BASELINE]


def _taskdir(ws: Workspace, task: Task) -> Path:
    return ws.task_dir(class_spec(type(task)).identity_name, task.__identifier__)


def _slurm_json(ws: Workspace, task: Task) -> dict[str, Any]:
    """The launcher's own record of the task's Slurm job (.xpm/slurm.json)."""
    return dict(json.loads((_taskdir(ws, task) / ".xpm" / "slurm.json").read_text()))


def _slurm_id(taskdir: Path) -> str:
    return str((read_launch(taskdir) or {}).get("slurm_job_id", ""))


def test_a_graph_of_20_tasks_runs_on_slurm_chained_with_afterok(ws: Workspace,
                                                                counters: Path) -> None:
    nodes = layered_graph(str(counters), layers=4, width=5)
    with experiment(ws, "graph", launcher=_launcher()):
        for node in nodes:
            node.submit()
    for node in nodes:
        assert count_of(counters, f"node-{node.i}") == 1
        assert (_taskdir(ws, node) / ".xpm" / "done").exists()
        assert read_state(_taskdir(ws, node))["state"] == "done"
        jobs = _jobs_named(f"xpm-{node.__identifier__[:12]}")
        assert len(jobs) == 1
        record = read_launch(_taskdir(ws, node)) or {}
        # rewritten by the job's runner (its pid), still naming the Slurm job
        assert record["slurm_job_id"] == jobs[0][0] and record["pid"] != os.getpid()
    chained = [n for n in nodes if _slurm_json(ws, n)["after"]]
    assert chained, "no job was submitted with afterok on a pending or running dependency"
    # each chain names exactly the Slurm jobs of the node's parents that were not done yet
    for node in chained:
        parents = {_slurm_id(_taskdir(ws, p)) for p in node.parents}
        assert set(_slurm_json(ws, node)["after"]) <= parents


class comment(SubmitHook):
    """Asks Slurm for a job comment through ``launcher_options``."""

    def __init__(self, text: str):
        self.text = text

    def spec(self) -> Any:
        return self.text

    def process(self, job: Job, launcher: Any) -> None:
        job.launcher_options["extra"] = [f"--comment={self.text}"]


def test_submit_hooks_reach_the_slurm_job(ws: Workspace) -> None:
    task = WhereAmI(n=41)
    with experiment(ws, "env", launcher=_launcher()):
        task.submit(hooks=[set_env("XPMTEST_SLURM", "from the hook"), comment("xpmtest-41")])
    facts = json.loads((_taskdir(ws, task) / "facts.json").read_text())
    assert facts["environ"]["XPMTEST_SLURM"] == "from the hook"
    assert facts["main"] == "xpmstore.scheduler.runner"  # the task's own runner, in the batch job
    job_id = _slurm_id(_taskdir(ws, task))
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True,
                           check=True).stdout
    assert "Comment=xpmtest-41" in shown
    assert (_taskdir(ws, task) / ".xpm" / f"slurm-{job_id}.out").exists()


def _reasons(ws: Workspace, name: str) -> list[str]:
    folder = ws.experiments / name
    return [line.get("reason", "") for run in folder.glob("*.jsonl") for line in read_run(run)
            if line.get("type") in ("job", "reason")]


def test_kill_9_of_the_scheduler_then_a_new_submit_reattaches(ws: Workspace, counters: Path,
                                                              tmp_path: Path) -> None:
    release = tmp_path / "release"
    task = Sleeper(key="reattach", counters=str(counters), release=str(release))

    def start(log: str) -> subprocess.Popen[str]:
        with open(tmp_path / log, "w") as err:
            return subprocess.Popen([PYTHON, "-c", DRIVER, str(ws.root), str(counters),
                                     str(release)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                    stderr=err, text=True)

    first = start("first.log")
    wait_for(lambda: count_of(counters, "started-reattach") == 1, "the Slurm job to start",
             deadline=120)
    first.kill()  # kill -9 of the scheduler: its Slurm job runs on
    first.wait()
    job_id = _slurm_id(_taskdir(ws, task))
    name = f"xpm-{task.__identifier__[:12]}"
    assert _jobs_named(name) == [(job_id, "RUNNING")]

    second = start("second.log")
    wait_for(lambda: any(r.startswith("waited:") for r in _reasons(ws, "reattach")),
             "the new scheduler to reattach", deadline=120)
    release.touch()
    assert second.wait(timeout=120) == 0, (tmp_path / "second.log").read_text()
    assert count_of(counters, "started-reattach") == 1
    assert count_of(counters, "ended-reattach") == 1
    assert _jobs_named(name) == [(job_id, "COMPLETED")]  # never a second copy
    assert (_taskdir(ws, task) / ".xpm" / "done").exists()


def _cancel_when_started(counters: Path, key: str, taskdir: Path,
                         errors: list[BaseException]) -> threading.Thread:
    def body() -> None:
        try:
            wait_for(lambda: count_of(counters, f"started-{key}") == 1, f"{key} to start",
                     deadline=120)
            subprocess.run(["scancel", _slurm_id(taskdir)], check=True)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def test_scancel_of_a_running_job_fails_it_with_reason_cancelled(ws: Workspace, counters: Path,
                                                                 tmp_path: Path) -> None:
    task = Sleeper(key="cancelled", counters=str(counters), release=str(tmp_path / "never"))
    errors: list[BaseException] = []
    canceller = _cancel_when_started(counters, "cancelled", _taskdir(ws, task), errors)
    with pytest.raises(ExperimentFailed) as failure, experiment(ws, "cancel", launcher=_launcher()):
        task.submit()
    canceller.join()
    assert not errors, errors
    assert failure.value.failed[0][0] == task.__identifier__
    state = read_state(_taskdir(ws, task))
    assert state["state"] == "failed"
    assert state["reason"].startswith("CANCELLED (Slurm job ")
    assert count_of(counters, "ended-cancelled") == 0


def test_a_failed_dependency_cancels_its_chained_dependents(ws: Workspace, counters: Path,
                                                            tmp_path: Path) -> None:
    flaky = Flaky(n=7, counters=str(counters), flag=str(tmp_path / "no-flag"))
    after = After(previous=flaky, label="chained", counters=str(counters))
    with pytest.raises(ExperimentFailed) as failure, \
            experiment(ws, "dependency", launcher=_launcher()):
        after.submit()
    assert {f[0] for f in failure.value.failed} == {flaky.__identifier__, after.__identifier__}
    assert read_state(_taskdir(ws, flaky))["reason"].startswith("RuntimeError: flaky task 7")
    assert _slurm_json(ws, after)["after"] == [_slurm_id(_taskdir(ws, flaky))]
    assert read_state(_taskdir(ws, after))["reason"] == \
        f"dependency tests.sched.Flaky {flaky.__identifier__[:12]} failed"
    assert count_of(counters, "after-chained") == 0
    # the dependent never ran, and Slurm does not keep it pending
    ended = dict(_jobs_named(f"xpm-{after.__identifier__[:12]}"))
    assert ended[_slurm_id(_taskdir(ws, after))] == "CANCELLED"


@pytest.mark.slow
def test_time_limit_fails_with_timeout_and_max_retries_reruns(ws: Workspace, counters: Path,
                                                              tmp_path: Path) -> None:
    stuck = Sleeper(key="stuck", counters=str(counters), release=str(tmp_path / "never"))
    retried = SlowFirstTime(key="retried", counters=str(counters))
    with pytest.raises(ExperimentFailed) as failure, \
            experiment(ws, "timeout", launcher=_launcher(time="1")):
        stuck.submit()
        retrying = _launcher(time="1", max_retries=1)
        retried.submit(launcher=retrying)
        After(previous=retried, label="after-retry", counters=str(counters)).submit(
            launcher=retrying)
    assert [f[0] for f in failure.value.failed] == [stuck.__identifier__]
    assert read_state(_taskdir(ws, stuck))["reason"].startswith("TIMEOUT (Slurm job ")
    assert count_of(counters, "started-stuck") == 1
    # the retried task ran twice in the same directory and is done
    assert count_of(counters, "attempt-retried") == 2
    assert (_taskdir(ws, retried) / ".xpm" / "done").exists()
    assert _slurm_json(ws, retried)["attempt"] == 1
    # its dependent was not chained on the first attempt (whose afterok would never be met)
    assert count_of(counters, "after-after-retry") == 1


def test_interrupt_leaves_slurm_jobs_running(ws: Workspace, counters: Path,
                                             tmp_path: Path) -> None:
    release = tmp_path / "release"
    task = Sleeper(key="kept", counters=str(counters), release=str(release))
    with pytest.raises(KeyboardInterrupt), experiment(ws, "interrupt", launcher=_launcher()):
        task.submit()
        wait_for(lambda: count_of(counters, "started-kept") == 1, "the job to start",
                 deadline=120)
        raise KeyboardInterrupt
    job_id = _slurm_id(_taskdir(ws, task))
    assert dict(_jobs_named(f"xpm-{task.__identifier__[:12]}"))[job_id] == "RUNNING"
    # the run has ended (its latest run roots it too); the Slurm job is a live job for gc
    # (via squeue)
    plan = gc.mark(ws)
    assert task.__identifier__ in plan.roots
    assert [s.role for s in plan.sources if task.__identifier__ in s.identifiers] == [
        "latest run", "live jobs"]
    release.touch()
    with experiment(ws, "interrupt", launcher=_launcher()):
        task.submit()  # reattaches, or reuses if it ended meanwhile
    assert count_of(counters, "started-kept") == 1
    assert (_taskdir(ws, task) / ".xpm" / "done").exists()


def test_max_queued_keeps_at_most_that_many_jobs_in_slurm(ws: Workspace, counters: Path) -> None:
    """``max_queued=2``: of 5 independent tasks, 2 are in Slurm at once; each one that ends
    lets the next be submitted, and all 5 run once."""
    tasks = [Sleeper(key=f"cap-{i}", counters=str(counters), release=str(counters / f"go-{i}"))
             for i in range(5)]
    names = {f"xpm-{t.__identifier__[:12]}": t for t in tasks}
    seen: list[int] = []  # the number of our jobs pending or running, at each look

    def ours() -> list[tuple[str, str]]:
        found = [(i, s) for i, s in _squeue() if int(i) > _BASELINE]
        names_of = dict(_squeue_names())
        return [(i, s) for i, s in found if names_of.get(i) in names]

    def active() -> int:
        count = sum(1 for _, state in ours() if state in slurmctl.ACTIVE)
        seen.append(count)
        return count

    failure: list[BaseException] = []

    def run() -> None:
        try:
            with experiment(ws, "capped", launcher=_launcher(max_queued=2)):
                for task in tasks:
                    task.submit()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        released: set[int] = set()
        while len(released) < len(tasks):
            # the jobs in Slurm have started (or the run failed): look, then release one
            wait_for(lambda: failure or sum(count_of(counters, f"started-cap-{i}")
                                            for i in range(5)) >= min(len(released) + 2, 5),
                     "the next capped job to start", deadline=120)
            assert not failure, failure
            assert active() <= 2 and len(ours()) == min(len(released) + 2, 5)
            started = [i for i in range(5) if count_of(counters, f"started-cap-{i}")]
            first = next(i for i in started if i not in released)
            (counters / f"go-{first}").touch()
            released.add(first)
    finally:
        for i in range(5):
            (counters / f"go-{i}").touch()
        thread.join(300)
    assert not thread.is_alive() and not failure, failure
    assert [count_of(counters, f"ended-cap-{i}") for i in range(5)] == [1] * 5
    assert len(ours()) == 5 and max(seen) == 2  # one Slurm job each, never 3 at once


def _squeue_names() -> list[tuple[str, str]]:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%j"],
                         capture_output=True, text=True, check=True).stdout
    return [(line.split("|")[0], line.split("|")[1]) for line in out.split()]


def test_a_poll_of_thousands_of_ids_is_split_and_purged_ids_are_absent() -> None:
    # 20,000 ids would pass the kernel's limit on one argument; none of them exists
    unknown = [str(10**8 + i) for i in range(20_000)]
    assert slurmctl.query(unknown) == {}
    assert slurmctl.active_states(unknown[:3]) == dict.fromkeys(unknown[:3], False)



def _adopt_unknown(tmp_path: Path) -> tuple[SlurmLauncher, Path, queue.SimpleQueue[int]]:
    """A launcher following a Slurm job id Slurm never had (as if purged long ago)."""
    taskdir = tmp_path / "task"
    (taskdir / ".xpm").mkdir(parents=True)
    exits: queue.SimpleQueue[int] = queue.SimpleQueue()
    launcher = _launcher()
    launcher.adopt("f" * 64, taskdir, "99999999", lambda _ident, code: exits.put(code))
    return launcher, taskdir, exits


@pytest.mark.slow
def test_a_job_vanished_from_slurm_fails_after_the_grace(tmp_path: Path,
                                                         slurm_cluster: Any) -> None:
    launcher, _taskdir, exits = _adopt_unknown(tmp_path)
    try:
        code = exits.get(timeout=120)
    finally:
        launcher.close()
    assert code != 0
    assert launcher.exit_reason("f" * 64) == \
        "vanished from Slurm (Slurm job 99999999) without writing its done manifest"
    assert launcher.polls >= 2  # re-listed on several polls before giving up


def test_a_done_manifest_seen_within_the_grace_is_done(tmp_path: Path,
                                                       slurm_cluster: Any) -> None:
    launcher, taskdir, exits = _adopt_unknown(tmp_path)
    try:
        wait_for(lambda: launcher.polls >= 1, "a first poll that does not find the job")
        assert exits.empty()  # missing from Slurm, but within the grace: not failed yet
        (taskdir / ".xpm" / "done").write_text("{}")  # the file system shows it late
        assert exits.get(timeout=60) == 0
    finally:
        launcher.close()
    assert launcher.exit_reason("f" * 64) is None


def test_submit_picks_a_named_launcher_from_the_settings(tmp_path: Path, slurm_cluster: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-user-settings"))
    root = tmp_path / "named"
    root.mkdir()
    (root / "xpmstore.toml").write_text('[launchers.cluster]\ntype = "slurm"\npoll_max = 1.0\n'
                                        'extra = ["--comment=named-launcher"]\n')
    ws = make_workspace(root)
    here, there = WhereAmI(n=51), WhereAmI(n=52)
    with experiment(ws, "named"):  # the default launcher is local...
        here.submit()
        there.submit(launcher="cluster")  # ...this one goes to Slurm
    assert "slurm_job_id" not in (read_launch(_taskdir(ws, here)) or {})
    job_id = _slurm_id(_taskdir(ws, there))
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True,
                           check=True).stdout
    assert "Comment=named-launcher" in shown


def test_reentering_an_experiment_reattaches_a_pending_job(ws: Workspace, counters: Path,
                                                          tmp_path: Path) -> None:
    """As in a notebook: Ctrl-C while the Slurm job is still pending, then the same cell
    again in the same process — the job is followed, never submitted twice."""
    release = tmp_path / "release"
    release.touch()
    task = Sleeper(key="pending", counters=str(counters), release=str(release))
    later = _launcher(extra=["--begin=now+4"])  # pending for a few seconds
    with pytest.raises(KeyboardInterrupt), experiment(ws, "pending", launcher=later):
        task.submit()
        wait_for(lambda: bool(_slurm_id(_taskdir(ws, task))), "the Slurm job to be submitted")
        raise KeyboardInterrupt
    name = f"xpm-{task.__identifier__[:12]}"
    assert [s for _, s in _jobs_named(name)] == ["PENDING"]
    with experiment(ws, "pending", launcher=later):
        task.submit()
    assert count_of(counters, "started-pending") == 1
    assert [s for _, s in _jobs_named(name)] == ["COMPLETED"]  # one Slurm job, ever
    assert any(r.startswith("waited:") for r in _reasons(ws, "pending"))


def test_a_job_waiting_on_a_dependency_that_failed_is_cancelled_and_freed(
        tmp_path: Path, slurm_cluster: Any) -> None:
    """afterok on a job that failed leaves a job PENDING (DependencyNeverSatisfied) forever,
    kill_invalid_depend or not: the launcher cancels it and reports it free to resubmit."""
    failed = slurmctl.run_command(["sbatch", "--parsable", "--output=/dev/null", "--wrap",
                                   "false"]).strip()
    stuck = slurmctl.run_command(["sbatch", "--parsable", "--output=/dev/null",
                                  f"--dependency=afterok:{failed}", "--wrap", "true"]).strip()
    taskdir = tmp_path / "task"
    (taskdir / ".xpm").mkdir(parents=True)
    exits: queue.SimpleQueue[int] = queue.SimpleQueue()
    launcher = _launcher()
    launcher.adopt("e" * 64, taskdir, stuck, lambda _ident, code: exits.put(code))
    try:
        assert exits.get(timeout=60) == EXIT_WAITED
    finally:
        launcher.close()
    assert slurmctl.query([stuck])[stuck].state == "CANCELLED"


def test_a_workspace_path_with_a_space_works(tmp_path: Path, slurm_cluster: Any) -> None:
    ws = make_workspace(tmp_path / "a dir" / "ws")
    task = WhereAmI(n=61)
    with experiment(ws, "space", launcher=_launcher()):
        task.submit()
    assert (_taskdir(ws, task) / "facts.json").exists()
    assert (_taskdir(ws, task) / ".xpm" / f"slurm-{_slurm_id(_taskdir(ws, task))}.out").exists()


def test_xpmstore_kill_cancels_a_slurm_job(ws: Workspace, counters: Path,
                                           tmp_path: Path) -> None:
    task = Sleeper(key="killed", counters=str(counters), release=str(tmp_path / "never"))
    said: list[subprocess.CompletedProcess[str]] = []

    def kill_when_started() -> None:
        try:
            wait_for(lambda: count_of(counters, "started-killed") == 1, "the job to start",
                     deadline=120)
            said.append(console(ws, "kill", task.__identifier__[:12]))
        finally:
            (tmp_path / "never").touch()  # never left waiting, whatever happened

    thread = threading.Thread(target=kill_when_started)
    thread.start()
    with pytest.raises(ExperimentFailed), experiment(ws, "kill", launcher=_launcher()):
        task.submit()
    thread.join()
    assert said[0].returncode == 0, said[0].stderr
    assert "its Slurm job, with scancel" in said[0].stdout
    assert read_state(_taskdir(ws, task))["reason"].startswith("CANCELLED (Slurm job ")
    assert count_of(counters, "ended-killed") == 0
