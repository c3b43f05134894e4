"""Presence once per experiment (docs/remote.md, "Presence in bulk"): an experiment of 2,000 jobs
planned in several batches asks the remote about each identifier at most once, lists each 2-hex
prefix at most once and estimates the remote's size once — against a directory remote and a real
SeaweedFS server.  Requests are counted by a wrapper around the real backend (every call goes
through to it); the decisions are those a one-shot question gives."""

from __future__ import annotations

import io
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from xpmstore import experiment
from xpmstore.launchers import LocalLauncher
from xpmstore.remote import Remote, RemoteSync, open_remote, sync
from xpmstore.remote.presence import BULK_THRESHOLD, SAMPLE_LIMIT
from xpmstore.scheduler.progress import Progress
from xpmstore.scheduler.submission import BATCH_SIZE, ScheduledJob, gather_jobs, plan_batch
from xpmstore.store.workspace import Workspace

from ..storehelpers import Tiny
from .conftest import RemoteFactory
from .counting import CountingBackend

JOBS = 2_000
PREFIXES = 256
OTHERS = 500
"""Objects of the remote that the experiment never asks about (so that it has a size)."""


def _store(remote: Remote, identifiers: list[str]) -> None:
    """Remote objects under ``identifiers`` (placeholders: presence reads keys, not bytes)."""
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: remote.backend.put_bytes(remote.object_key(i), b"{}"),
                      identifiers))


def _fake_ids(start: int, count: int, prefix: str = "") -> list[str]:
    return [f"{prefix}{n:0{64 - len(prefix)}x}" for n in range(start, start + count)]


@pytest.fixture
def counted(workspaces: RemoteFactory, monkeypatch: pytest.MonkeyPatch
            ) -> tuple[Workspace, CountingBackend]:
    """A workspace whose experiments see its remote through a CountingBackend."""
    workspace = workspaces("ws", push="manual")
    remote = open_remote(workspace)
    assert remote is not None
    counting = CountingBackend(remote.backend)
    monkeypatch.setattr(sync, "open_remote",
                        lambda _workspace: Remote(counting, remote.settings))
    return workspace, counting


def _tasks() -> tuple[list[Tiny], set[str]]:
    """The experiment's tasks and the identifiers of those the remote holds (a third)."""
    tasks = [Tiny(i=i) for i in range(JOBS)]
    return tasks, {t.__identifier__ for t in tasks[::3]}


def _expected(tasks: list[Tiny], stored: set[str]) -> dict[str, str]:
    return {t.__identifier__: "pull" if t.__identifier__ in stored else "run" for t in tasks}


def test_an_experiment_planned_in_batches_lists_each_prefix_once(
        counted: tuple[Workspace, CountingBackend]) -> None:
    workspace, counting = counted
    tasks, stored = _tasks()
    _store(Remote(counting.real), [*stored, *_fake_ids(0, OTHERS)])
    remote = RemoteSync.for_workspace(workspace)
    assert remote is not None
    jobs: list[ScheduledJob] = []
    seen: set[str] = set()
    launcher = LocalLauncher(workers=1)
    for task in tasks:
        jobs.extend(gather_jobs(task, launcher, [], workspace, seen))
    counting.requests.clear()
    decisions: dict[str, str] = {}
    batches = [jobs[i:i + BATCH_SIZE] for i in range(0, len(jobs), BATCH_SIZE)]
    assert len(batches) == 4
    for batch in batches:  # as the engine plans them, one call of the remote each
        decisions.update({i: d.action for i, d in plan_batch(workspace, batch, remote,
                                                              None).items()})
    assert decisions == _expected(tasks, stored)
    # one estimate of the remote's size, then each prefix listed once: not once per batch
    assert counting.requests["COUNT"] == 1
    assert counting.total() <= 1 + PREFIXES, counting.requests
    # asked again (a second submit of the same tasks): answered from what the run learned
    before = counting.total()
    again = plan_batch(workspace, jobs[:BATCH_SIZE], remote, None)
    assert {i: d.action for i, d in again.items()} == {
        i: a for i, a in _expected(tasks, stored).items() if i in again}
    assert counting.total() == before


def test_a_dry_run_of_one_submit_per_task_stops_asking_a_head_each(
        counted: tuple[Workspace, CountingBackend]) -> None:
    workspace, counting = counted
    tasks, stored = _tasks()
    _store(Remote(counting.real), [*stored, *_fake_ids(0, OTHERS)])
    counting.requests.clear()
    out = io.StringIO()
    with experiment(workspace, "dry", dry_run=True, progress=Progress("dry", stream=out)):
        for task in tasks:  # each submit plans its one job: 2,000 questions of one identifier
            task.submit()
    printed = dict((m[2], m[1]) for m in re.finditer(r"\[dry run\] (\w+) +\S+ (\w{12}) ",
                                                       out.getvalue()))
    assert printed == {i[:12]: a for i, a in _expected(tasks, stored).items()}
    # a HEAD each until the run has asked about BULK_THRESHOLD, then one estimate, then each
    # prefix listed once (2,000 HEADs before)
    assert counting.requests["COUNT"] == 1
    assert counting.total() <= BULK_THRESHOLD + PREFIXES, counting.requests


def test_against_a_crowded_prefix_each_identifier_costs_one_head_per_run(
        workspaces: RemoteFactory) -> None:
    workspace = workspaces("ws", push="manual")
    opened = open_remote(workspace)
    assert opened is not None
    counting = CountingBackend(opened.backend)
    # a prefix that fills a listing page: the remote is judged large, HEADs win
    crowd = _fake_ids(0, SAMPLE_LIMIT + 5, prefix="ab")
    _store(opened, crowd)
    remote = RemoteSync(workspace, Remote(counting, opened.settings))
    first = crowd[:100] + _fake_ids(10**6, 100, prefix="ab")
    second = crowd[50:150] + _fake_ids(10**6 + 50, 100, prefix="ab")
    counting.requests.clear()
    assert remote.present(first) == set(crowd[:100])
    assert remote.present(second) == set(crowd[50:150])
    assert counting.requests["LIST"] == 0 and counting.requests["COUNT"] == 1
    assert counting.requests["HEAD"] == len(set(first) | set(second)), counting.requests


def test_an_object_pushed_after_the_question_waits_for_the_next_run(
        workspaces: RemoteFactory) -> None:
    workspace = workspaces("ws", push="manual")
    remote = open_remote(workspace)
    assert remote is not None
    asked = _fake_ids(0, 300)
    _store(remote, asked[::2])
    run = RemoteSync(workspace, remote)
    assert run.present(asked) == set(asked[::2])
    late = asked[1]
    _store(remote, [late])  # a teammate pushes it after this run asked
    assert run.present(asked) == set(asked[::2])  # this run keeps its answer (documented)
    assert RemoteSync(workspace, remote).present(asked) == set(asked[::2]) | {late}



def test_a_key_in_the_wrong_prefix_never_answers_present(workspaces: RemoteFactory) -> None:
    workspace = workspaces("ws", push="manual")
    remote = open_remote(workspace)
    assert remote is not None
    asked = _fake_ids(0, 100, prefix="ab")
    misplaced = _fake_ids(7, 1, prefix="cd")[0]
    _store(remote, asked[:10])
    remote.backend.put_bytes(f"objects/ab/{misplaced}", b"{}")  # listed with "ab", not its own
    run = RemoteSync(workspace, remote)
    assert run.present(asked) == set(asked[:10])  # "ab" listed (a small remote)
    assert run.present([misplaced]) == set()
