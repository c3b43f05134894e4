"""The scheduler under real signals: ``kill -9`` of experiment processes (with or without their
jobs), Ctrl-C, and the locks a killed process leaves behind (docs/scheduler.md).

Every experiment is a real interpreter running ``tests.schedtasks.drive`` (cwd: the repository
root).  Its stderr goes to a file, never a pipe: the zygote and the jobs inherit it, so a pipe
would stay open after the experiment is killed.  Synchronisation is on files (the counter files
the tasks append to, launch records, run records) and on the processes' own output lines; the
only sleep is the random moment of a kill, drawn from a seeded RNG.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from xpmstore.scheduler.runlog import read_run
from xpmstore.store import manifest, taskdirs
from xpmstore.store.lookup import Store
from xpmstore.store.taskstate import launch_is_live, process_start, read_launch, read_state
from xpmstore.store.workspace import Workspace

from ..helpers import PYTHON, REPO_ROOT
from ..schedtasks import Blocker, Crashy
from ..storehelpers import DEADLINE, check_done_objects, count_of, isolate, make_workspace, wait_for

DRIVER = "from tests.schedtasks import drive; drive()"
ITERATIONS = 50


# --- processes -----------------------------------------------------------------------------------


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C's default action, even when this test runs in a
    background job (whose shell made it ignore SIGINT, which Python would then keep)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Experiment:
    """One experiment process: ``drive MODE WORKSPACE COUNTERS ARGS…``, stdout piped, stderr in
    the file ``log``."""

    def __init__(self, log: Path, mode: str, workspace: Workspace, counters: Path,
                 *args: str):
        self.log = log
        with open(log, "w") as err:
            self.process = subprocess.Popen(
                [PYTHON, "-c", DRIVER, mode, str(workspace.root), str(counters), *args],
                cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                text=True, preexec_fn=_default_sigint,
            )
        self.pid = self.process.pid

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def readline(self) -> str:
        """The next line of its stdout (blocks until the process writes it or ends)."""
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def finish(self) -> int:
        """Wait for the process to end on its own (a hang fails the test); its exit code."""
        try:
            self.process.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise AssertionError(f"the experiment hung; its stderr:\n{self.stderr()}") from None
        return self.process.returncode

    def succeed(self) -> None:
        """Wait for the process to end on its own and assert that it succeeded."""
        assert self.finish() == 0, self.stderr()

    def abort(self) -> None:
        """Kill the process if it still runs (test clean-up)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, process group) of a process, or None when it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2])


def _processes() -> dict[int, tuple[str, int, int]]:
    """(state, parent pid, process group) of every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                found[int(entry)] = stat
    return found


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (children forked by any of its threads)."""
    return [child for child, stat in _processes().items() if stat[1] == pid]


def _freeze(pid: int) -> bool:
    """SIGSTOP ``pid`` and wait until it is stopped (or dead); False when it is gone."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return False

    def stopped() -> bool:
        stat = _stat(pid)
        return stat is None or stat[0] in ("T", "t", "Z", "X")

    wait_for(stopped, f"process {pid} to stop")
    return True


def _gone(pid: int, start: int | None) -> bool:
    """Whether the process ``pid`` that started at ``start`` has ended (zombies count)."""
    return start is None or process_start(pid) != start


def kill_experiment_and_jobs(experiment: Experiment, taskdir: Path) -> None:
    """``kill -9`` the experiment process and its job's process group, and wait until they are
    gone.  The experiment must not have been reaped yet (or its pid may name another process).

    The tree under the experiment is frozen first (SIGSTOP, top-down; each process is stopped
    before its children are listed, and a stopped process forks no more), so no job escapes
    between the listing and the kill; the zygote is killed too, or it would fork a job that
    was already asked for.  The job is also killed by its process group, named by the launch
    record (the runner rewrites it with its own pid; its session and group ids equal its pid).
    """
    frozen: list[int] = []
    pending = [experiment.pid]
    while pending:
        pid = pending.pop()
        if _freeze(pid):
            frozen.append(pid)
            pending.extend(_children(pid))
    starts = {pid: process_start(pid) for pid in frozen}
    record = read_launch(taskdir)  # nothing rewrites it any more
    os.kill(experiment.pid, signal.SIGKILL)
    job = record.get("pid") if record is not None else None
    if isinstance(job, int) and job != experiment.pid and launch_is_live(taskdir, record):
        os.killpg(job, signal.SIGKILL)
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    experiment.process.wait()
    wait_for(lambda: all(_gone(pid, start) for pid, start in starts.items()),
             "the killed processes to be gone")


def group_gone(pgid: int) -> bool:
    """Whether no live process is left in the process group ``pgid`` (zombies are dead: an
    orphan is reaped by init whenever init gets to it)."""
    return not any(stat[2] == pgid and stat[0] not in ("Z", "X")
                   for stat in _processes().values())


# --- run records ---------------------------------------------------------------------------------


def run_files(workspace: Workspace, name: str) -> set[Path]:
    return set((workspace.root / "experiments" / name).glob("*.jsonl"))


def reasons(path: Path) -> dict[str, str]:
    """The final reason of each job in a run record."""
    found: dict[str, str] = {}
    for line in read_run(path):
        if line["type"] in ("job", "reason"):
            found[line["id"]] = line["reason"]
    return found


def only_new_run(workspace: Workspace, name: str, before: set[Path]) -> Path:
    (new,) = run_files(workspace, name) - before
    return new


def outcome_of(path: Path) -> str | None:
    ends = [line for line in read_run(path) if line["type"] == "end"]
    return ends[-1]["outcome"] if ends else None


# --- the tests -----------------------------------------------------------------------------------


@pytest.fixture
def setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Workspace, Path]:
    """An isolated HOME, a workspace and a counters folder."""
    isolate(monkeypatch, tmp_path)
    counters = tmp_path / "counters"
    counters.mkdir()
    return make_workspace(tmp_path / "ws"), counters


def _crash_moment(rng: random.Random, experiment: Experiment, taskdir: Path, counters: Path,
                  i: int) -> None:
    """Wait for one of three anchors, then a random delay: the moment of the kill.

    Anchors: the process start (the kill lands in start-up, the claim or the launch), the launch
    record (launch and job start-up), the job's start note (its files, its done manifest).
    """
    anchor = rng.randrange(3)
    if anchor == 1:
        wait_for(lambda: (taskdir / ".xpm" / "launch.json").exists() or not experiment.alive(),
                 "the launch record")
    elif anchor == 2:
        wait_for(lambda: count_of(counters, f"crashy-started-{i}") > 0 or not experiment.alive(),
                 "the job to start")
    longest = (0.4, 0.05, 0.02)[anchor]
    time.sleep(rng.uniform(0, longest))  # not a synchronisation: the random crash moment


def _check_reported(workspace: Workspace, store: Store, counters: Path, i: int) -> bool:
    """Nothing is reported done without its completion note; a done one verifies.  Returns
    whether the task is done."""
    task = Crashy(i=i, counters=str(counters))
    directory = workspace.task_dir("tests.sched.Crashy", task.__identifier__)
    done = taskdirs.is_done(directory)
    reported = store.status(task) == "done"
    assert done == reported, (i, done, reported)
    if done:
        assert count_of(counters, f"completed-{i}") >= 1, i
        found = taskdirs.read_manifest(directory)
        assert found is not None and found.identifier == task.__identifier__
        assert manifest.verify(directory, found) == [], directory
    return done


@pytest.mark.slow
def test_kill9_of_experiment_and_job_then_resubmit(setting: tuple[Workspace, Path],
                                                   tmp_path: Path) -> None:
    """50 times: kill -9 an experiment and its job at a random moment; nothing is done without
    its completion; the next experiment completes the task, claiming it at once (a lock left by
    a killed process is no holder: its reason is never ``waited:``)."""
    workspace, counters = setting
    store = Store(workspace)
    rng = random.Random(20240917)
    outcomes: dict[str, int] = {}
    for i in range(ITERATIONS):
        taskdir = workspace.task_dir("tests.sched.Crashy", Crashy(i=i).__identifier__)
        victim = Experiment(tmp_path / f"victim-{i}.err", "crashy", workspace, counters, str(i))
        try:
            _crash_moment(rng, victim, taskdir, counters, i)
            if victim.alive():  # not reaped: its pid still names it
                kill_experiment_and_jobs(victim, taskdir)
            else:  # it ended before the moment: it must have succeeded
                victim.succeed()
        finally:
            victim.abort()

        done = _check_reported(workspace, store, counters, i)
        started = count_of(counters, f"crashy-started-{i}") > 0
        completed = count_of(counters, f"completed-{i}") > 0
        moment = ("done" if done else "completed, not done" if completed else
                  "mid-job" if started else
                  "claimed" if (taskdir / ".xpm" / "launch.json").exists() else "before-claim")
        outcomes[moment] = outcomes.get(moment, 0) + 1

        before = run_files(workspace, "crash")
        Experiment(tmp_path / f"next-{i}.err", "crashy", workspace, counters, str(i)).succeed()
        run = only_new_run(workspace, "crash", before)
        assert outcome_of(run) == "ok"
        (reason,) = reasons(run).values()
        if done:
            assert reason == "reused:local", (i, reason)
            assert count_of(counters, f"completed-{i}") == 1  # it did not run again
        else:
            assert reason in ("ran:new", "ran:failed-before"), (i, moment, reason)
            assert count_of(counters, f"completed-{i}") in (1, 2)
        assert _check_reported(workspace, store, counters, i), i
        if i % 10 == 9:
            check_done_objects(workspace)

    assert len(check_done_objects(workspace)) == ITERATIONS
    assert sum(v for k, v in outcomes.items() if k != "done") >= ITERATIONS // 5, outcomes
    assert len(outcomes) >= 3, outcomes  # the kills landed at several stages
    print(f"moments of the kills: {outcomes}")


def test_kill9_of_the_experiment_alone_leaves_its_job_running(
        setting: tuple[Workspace, Path], tmp_path: Path) -> None:
    """kill -9 of the scheduler alone: its job finishes in its own session; a second experiment
    waits for it instead of starting a copy."""
    workspace, counters = setting
    release = tmp_path / "release"
    taskdir = workspace.task_dir("tests.sched.Blocker", Blocker(key="k").__identifier__)
    first = Experiment(tmp_path / "first.err", "blocker", workspace, counters, str(release), "k")
    second: Experiment | None = None
    try:
        wait_for(lambda: count_of(counters, "started-k") == 1 or not first.alive(),
                 "the job to start")
        assert count_of(counters, "started-k") == 1, first.stderr()
        record = read_launch(taskdir)
        assert record is not None and record["pid"] != first.pid
        job = record["pid"]
        os.kill(first.pid, signal.SIGKILL)
        first.process.wait()
        assert first.process.returncode == -signal.SIGKILL
        assert launch_is_live(taskdir, record)  # the job runs on
        assert os.getpgid(job) == job == os.getsid(job)

        before = run_files(workspace, "blocker")
        # "waiter" is "blocker" printing each poll of the holder: the scheduler claimed the job,
        # found it held and waits.
        second = Experiment(tmp_path / "second.err", "waiter", workspace, counters,
                            str(release), "k")
        polls = []
        while not polls or polls[-1] != "holder running":
            line = second.readline()
            assert line, f"the second experiment ended: {polls}\n{second.stderr()}"
            polls.append(line)
        assert polls[0] == "submitted" and polls[1:] == ["holder running"], polls
        runs = run_files(workspace, "blocker") - before
        assert [list(reasons(run).values()) for run in runs] == [["waited:" + record["host"]]]
        assert count_of(counters, "started-k") == 1  # no copy started
        assert not taskdirs.is_done(taskdir)

        release.touch()
        second.succeed()
    finally:
        first.abort()
        if second is not None:
            second.abort()

    assert taskdirs.is_done(taskdir)
    assert count_of(counters, "started-k") == 1
    assert count_of(counters, "ended-k") == 1
    wait_for(lambda: group_gone(job), "the job's process group to end")
    run = only_new_run(workspace, "blocker", before)
    (reason,) = reasons(run).values()
    assert reason.startswith("waited:"), reason
    assert outcome_of(run) == "ok"
    check_done_objects(workspace)


def test_ctrl_c_kills_the_jobs_and_marks_them_interrupted(
        setting: tuple[Workspace, Path], tmp_path: Path) -> None:
    """SIGINT to the experiment: its job's process group is gone, the job is failed
    ``interrupted``, and the script ends with one line and the status of an uncaught
    KeyboardInterrupt (killed by SIGINT); the next experiment runs it again."""
    workspace, counters = setting
    release = tmp_path / "release"
    taskdir = workspace.task_dir("tests.sched.Blocker", Blocker(key="i").__identifier__)
    interrupted = Experiment(tmp_path / "interrupted.err", "interrupt", workspace, counters,
                             str(release), "i")
    try:
        assert interrupted.readline() == "submitted", interrupted.stderr()
        wait_for(lambda: count_of(counters, "started-i") == 1 or not interrupted.alive(),
                 "the job to start")
        record = read_launch(taskdir)
        assert record is not None and record["pid"] != interrupted.pid, interrupted.stderr()
        job = record["pid"]
        os.kill(interrupted.pid, signal.SIGINT)
        code = interrupted.finish()
    finally:
        interrupted.abort()
    stderr = interrupted.stderr()
    assert code == -signal.SIGINT, stderr  # CPython's end of an uncaught KeyboardInterrupt
    assert "Traceback" not in stderr, stderr
    assert stderr.splitlines()[-1] == (
        f"xpmstore: experiment 'interrupt' interrupted: 1 job(s) stopped: tests.sched.Blocker"
        f" {taskdir.name[:12]} (log {taskdir / 'stderr'})"), stderr
    wait_for(lambda: group_gone(job), "the job's process group to end")
    assert not launch_is_live(taskdir, record)
    state = read_state(taskdir)
    assert state.get("state") == "failed" and state.get("reason") == "interrupted", state
    assert not taskdirs.is_done(taskdir)
    assert count_of(counters, "ended-i") == 0

    release.touch()
    before = run_files(workspace, "interrupt")
    Experiment(tmp_path / "again.err", "interrupt", workspace, counters, str(release),
               "i").succeed()
    run = only_new_run(workspace, "interrupt", before)
    assert reasons(run) == {taskdir.name: "ran:failed-before"}
    assert outcome_of(run) == "ok"
    assert taskdirs.is_done(taskdir)
    assert count_of(counters, "started-i") == 2
    assert count_of(counters, "ended-i") == 1
    check_done_objects(workspace)


def test_a_lock_left_by_killed_processes_is_claimed_at_once(
        setting: tuple[Workspace, Path], tmp_path: Path) -> None:
    """kill -9 of an experiment and its running job: the job's run lock and launch record stay
    behind; the next experiment claims the job without waiting (``ran:failed-before``)."""
    workspace, counters = setting
    release = tmp_path / "release"
    taskdir = workspace.task_dir("tests.sched.Blocker", Blocker(key="s").__identifier__)
    victim = Experiment(tmp_path / "victim.err", "blocker", workspace, counters, str(release),
                        "s")
    try:
        wait_for(lambda: count_of(counters, "started-s") == 1 or not victim.alive(),
                 "the job to start")
        assert count_of(counters, "started-s") == 1, victim.stderr()
        record = read_launch(taskdir)
        assert record is not None and record["pid"] != victim.pid
        kill_experiment_and_jobs(victim, taskdir)
    finally:
        victim.abort()
    assert group_gone(record["pid"])
    assert read_state(taskdir).get("state") == "running"  # nobody recorded an outcome
    assert not launch_is_live(taskdir, record)

    release.touch()
    before = run_files(workspace, "blocker")
    Experiment(tmp_path / "next.err", "blocker", workspace, counters, str(release),
               "s").succeed()
    run = only_new_run(workspace, "blocker", before)
    assert reasons(run) == {taskdir.name: "ran:failed-before"}
    assert taskdirs.is_done(taskdir)
    assert count_of(counters, "started-s") == 2
    assert count_of(counters, "ended-s") == 1
    check_done_objects(workspace)
