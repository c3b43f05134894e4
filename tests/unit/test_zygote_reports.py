"""Jobs forked from the zygote report their own end (xpmstore.scheduler.zygote, EXITS_FD), then the
zygote reports it again when it reaps them: the launcher calls each job's ``on_exit`` exactly once,
with its exit code, whichever line comes first — and a job that cannot report (killed, or
holding a GPU) is reported by the zygote alone."""

from __future__ import annotations

import collections
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from xpmstore.core.config import Task
from xpmstore.launchers import LocalLauncher
from xpmstore.scheduler.claim import claim
from xpmstore.scheduler.launchers.base import LaunchRequest
from xpmstore.scheduler.runner import EXIT_OK, EXIT_WAITED
from xpmstore.store import taskdirs
from xpmstore.store.workspace import Workspace
from xpmstore.system.locks import held_or_refused

from ..schedtasks import Blocker, Counted
from ..storehelpers import count_of, isolate, wait_for
from .test_experiment import hang_guard


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    isolate(monkeypatch, tmp_path)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with hang_guard():
        yield


class Exits:
    """Every ``on_exit`` call, by identifier."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, list[int]] = collections.defaultdict(list)

    def __call__(self, identifier: str, code: int) -> None:
        with self.lock:
            self.calls[identifier].append(code)

    def count(self) -> int:
        with self.lock:
            return sum(len(codes) for codes in self.calls.values())


def start(ws: Workspace, launcher: LocalLauncher, task: Task, exits: Exits,
          claimed: bool = True) -> Path:
    """Prepare (and claim) ``task`` as a scheduler does, and launch it."""
    directory = taskdirs.prepare_task_dir(ws, task)
    if claimed:
        assert claim(ws, task.__identifier__, directory, launcher="test").outcome == "launch"
    launcher.launch(LaunchRequest(task.__identifier__, directory, {}, {}, ["tests.schedtasks"],
                                  [], False, exits))
    return directory


def drained(launcher: LocalLauncher) -> None:
    """Close the launcher and wait until its zygote and every job ended and all their lines
    were read (both of each job's lines are then in)."""
    zygotes = list(launcher._zygotes)
    launcher.close()
    for zygote in zygotes:
        zygote.reader.join(60)
        assert not zygote.reader.is_alive(), "the zygote's lines never ended"


def run_all(ws: Workspace, launcher: LocalLauncher, tasks: list[Counted], exits: Exits) -> None:
    """Start ``tasks`` as workers free, wait for every end; each was reported once, done."""
    for task in tasks:
        wait_for(lambda: launcher.capacity() > 0, "a free worker")
        start(ws, launcher, task, exits)
    wait_for(lambda: exits.count() == len(tasks), "every job to end")
    drained(launcher)
    assert {t.__identifier__: [EXIT_OK] for t in tasks} == dict(exits.calls)


@pytest.mark.parametrize("gpus", [None, [0]], ids=["report", "gpu"])
def test_each_job_is_reported_once(ws: Workspace, counters: str, gpus: list[int] | None) -> None:
    launcher = LocalLauncher(workers=4, gpus=gpus)
    exits = Exits()
    tasks = [Counted(n=n, counters=counters) for n in range(8)]
    run_all(ws, launcher, tasks, exits)
    assert all(count_of(counters, f"counted-{n}") == 1 for n in range(8))


def test_a_waited_job_and_a_killed_one_are_reported_once(ws: Workspace, counters: str,
                                                         tmp_path: Path) -> None:
    launcher = LocalLauncher(workers=2)
    exits = Exits()
    blocker = Blocker(key="k", counters=counters, release=str(tmp_path / "never"))
    start(ws, launcher, blocker, exits)
    wait_for(lambda: count_of(counters, "started-k") == 1, "the blocker to start")
    launcher.kill(blocker.__identifier__, force=True)  # no report of its own: the zygote's
    wait_for(lambda: exits.count() == 1, "the killed job to be reported")
    twin = Counted(n=1, counters=counters)
    directory = taskdirs.prepare_task_dir(ws, twin)
    assert claim(ws, twin.__identifier__, directory, launcher="test").outcome == "launch"
    with held_or_refused(ws.run_lock_path(twin.__identifier__)):  # "another process runs it"
        launcher.launch(LaunchRequest(twin.__identifier__, directory, {}, {},
                                      ["tests.schedtasks"], [], False, exits))
        wait_for(lambda: exits.count() == 2, "the job to find its run lock held")
    start(ws, launcher, twin, exits, claimed=False)  # launched again: it runs
    wait_for(lambda: exits.count() == 3, "the second launch to end")
    drained(launcher)
    assert exits.calls[blocker.__identifier__] == [-signal.SIGKILL]
    assert exits.calls[twin.__identifier__] == [EXIT_WAITED, EXIT_OK]
    assert count_of(counters, "counted-1") == 1


SLOW_REAP = '''
import os, time
_waitpid = os.waitpid
def _slow_waitpid(pid, options):
    if pid == -1 and options & os.WNOHANG:
        time.sleep(0.2)  # a job may take its job, run and end in this window
    return _waitpid(pid, options)
os.waitpid = _slow_waitpid
'''


def test_a_job_that_ends_before_the_zygote_reads_that_it_started_is_reported(
        ws: Workspace, counters: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The zygote reaps a child it did not know had taken a job (its "taken" line not read
    yet): it still reports it, and still ends once its input closes."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_REAP)  # the zygote's waitpid, slowed down
    monkeypatch.syspath_prepend(str(site))  # on the zygote's PYTHONPATH
    launcher = LocalLauncher(workers=1)
    exits = Exits()
    tasks = [Counted(n=10 + n, counters=counters) for n in range(6)]
    for count, task in enumerate(tasks, 1):
        start(ws, launcher, task, exits)
        wait_for(lambda c=count: exits.count() == c, "the job to end")  # type: ignore[misc]
    drained(launcher)  # the zygote ended (it would wait forever for a job it missed)
    assert {t.__identifier__: [EXIT_OK] for t in tasks} == dict(exits.calls)


FAST_BEAT = '''
import xpmstore.scheduler.runner
xpmstore.scheduler.runner.HEARTBEAT_PERIOD = 0.05
'''


@pytest.mark.parametrize("fresh", [False, True], ids=["zygote", "fresh"])
def test_a_running_job_has_a_heartbeat(ws: Workspace, counters: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, fresh: bool) -> None:
    """The zygote refreshes the heartbeat file of the jobs it forked (they hold no thread of
    their own for it); a fresh process refreshes its own."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FAST_BEAT)  # a beat every 50 ms
    monkeypatch.syspath_prepend(str(site))  # on the zygote's PYTHONPATH
    monkeypatch.setenv("PYTHONPATH", str(site))  # and the fresh process's
    launcher = LocalLauncher(workers=1, fresh_process=fresh)
    exits = Exits()
    release = tmp_path / "release"
    blocker = Blocker(key="beat", counters=counters, release=str(release))
    directory = start(ws, launcher, blocker, exits)
    beat = directory / ".xpm" / "heartbeat"
    wait_for(beat.exists, "a first heartbeat")
    first = beat.stat().st_mtime_ns
    wait_for(lambda: beat.stat().st_mtime_ns > first, "the next heartbeat")
    release.write_text("")
    wait_for(lambda: exits.count() == 1, "the job to end")
    drained(launcher)
    assert exits.calls[blocker.__identifier__] == [EXIT_OK]


def test_without_a_seqpacket_socket_every_job_goes_through_the_zygote(
        ws: Workspace, counters: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("no SOCK_SEQPACKET here")

    monkeypatch.setattr(socket, "socketpair", refuse)
    launcher = LocalLauncher(workers=2)
    exits = Exits()
    tasks = [Counted(n=30 + n, counters=counters) for n in range(4)]
    run_all(ws, launcher, tasks, exits)
