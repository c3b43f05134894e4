"""``@cache`` entries pushed with ``push = "auto"`` (docs/remote.md), against a directory remote and
a real SeaweedFS server: an entry created in this process, in a plain script (which waits for its
pushes when it exits), in an experiment's process and in its jobs' processes (which leave them
to the experiment) reaches the remote, and a second workspace pulls it instead of computing it.
A cache hit imports nothing of the remote.  Computations are counted in files."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

from xpmstore import experiment
from xpmstore.core.identifier import cache_identifier
from xpmstore.launchers import LocalLauncher
from xpmstore.remote import cachepush, open_remote, push_one
from xpmstore.scheduler.progress import Progress
from xpmstore.store.workspace import Workspace

from ..helpers import PYTHON, REPO_ROOT
from ..storehelpers import Terms, active, count_of
from .cachetasks import UsesTerms
from .conftest import RemoteFactory, damage, environ_without_proxy
from .test_remote import reasons


def entry_of(n: int) -> str:
    return cache_identifier(Terms(n=n).__identifier__, "terms.txt")


def notes(workspace: Workspace) -> list[str]:
    """The outbox: entries created and not pushed yet."""
    folder = cachepush.outbox(workspace)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def in_remote(workspace: Workspace, numbers: list[int]) -> set[str]:
    remote = open_remote(workspace)
    assert remote is not None
    return remote.present(entry_of(n) for n in numbers)


def create_in_a_script(workspace: Workspace, counters: Path, numbers: list[int],
                       **environ: str) -> subprocess.CompletedProcess[str]:
    code = "from tests.remote.cachetasks import create_entries; create_entries()"
    return subprocess.run(
        [PYTHON, "-c", code, str(workspace.root), str(counters), *map(str, numbers)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False,
        env={**environ_without_proxy(), **environ})


def pulled_not_computed(workspaces: RemoteFactory, counters: Path, numbers: list[int],
                        name: str = "second") -> None:
    """Another workspace loads the entries: pulled, none computed again."""
    second = workspaces(name, push="manual")
    with active(second):
        for n in numbers:
            assert Terms(n=n).load(str(counters)) == f"terms of {n}\n" * 3
    assert [count_of(counters, f"terms-{n}") for n in numbers] == [1] * len(numbers)


def test_an_entry_created_here_is_pushed_in_the_background(
        workspaces: RemoteFactory, counters: Path) -> None:
    first = workspaces("first")
    with active(first):
        assert Terms(n=5).load(str(counters)) == "terms of 5\n" * 3
    cachepush.wait()
    assert in_remote(first, [5]) == {entry_of(5)}
    assert notes(first) == []
    pulled_not_computed(workspaces, counters, [5])


def test_push_manual_pushes_no_entry(workspaces: RemoteFactory, counters: Path) -> None:
    first = workspaces("first", push="manual")
    with active(first):
        Terms(n=5).load(str(counters))
    cachepush.wait()
    assert in_remote(first, [5]) == set() and notes(first) == []


def test_a_script_waits_for_its_pushes_when_it_exits(
        workspaces: RemoteFactory, counters: Path) -> None:
    first = workspaces("first")
    done = create_in_a_script(first, counters, [1, 2, 3])
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    assert "xpmstore.remote.cachepush" in json.loads(done.stdout)  # misses: imported
    assert in_remote(first, [1, 2, 3]) == {entry_of(n) for n in (1, 2, 3)}
    assert notes(first) == []
    pulled_not_computed(workspaces, counters, [1, 2, 3])


def test_a_cache_hit_imports_nothing_of_the_remote(
        workspaces: RemoteFactory, counters: Path) -> None:
    first = workspaces("first")
    assert create_in_a_script(first, counters, [1]).returncode == 0
    hit = create_in_a_script(first, counters, [1])
    assert hit.returncode == 0, hit.stderr
    assert json.loads(hit.stdout) == []
    assert count_of(counters, "terms-1") == 1


def test_entries_created_in_jobs_are_pushed_by_their_experiment(
        workspaces: RemoteFactory, counters: Path) -> None:
    first = workspaces("first")
    jobs = [UsesTerms(n=n, counters=str(counters)) for n in (1, 2, 3)]
    with experiment(first, "exp", launcher=LocalLauncher(workers=2),
                    progress=Progress("exp", stream=io.StringIO())):
        for job in jobs:
            job.submit()
        Terms(n=9).load(str(counters))  # in the experiment's own process
    # no wait here: the experiment's end waited for every push
    assert in_remote(first, [1, 2, 3, 9]) == {entry_of(n) for n in (1, 2, 3, 9)}
    remote = open_remote(first)
    assert remote is not None
    assert remote.present(job.__identifier__ for job in jobs) == {j.__identifier__ for j in jobs}
    assert notes(first) == []

    second = workspaces("second", push="manual")
    with experiment(second, "exp", launcher=LocalLauncher(workers=2),
                    progress=Progress("exp", stream=io.StringIO())):
        for job in jobs:
            job.submit()
    assert set(reasons(second, "exp").values()) == {"reused:remote"}
    pulled_not_computed(workspaces, counters, [1, 2, 3, 9], name="third")


def test_an_entry_a_job_computed_after_a_refused_pull_repairs_the_remote(
        workspaces: RemoteFactory, counters: Path) -> None:
    first = workspaces("first", push="manual")
    with active(first):
        Terms(n=4).load(str(counters))
    remote = open_remote(first)
    assert remote is not None
    assert push_one(remote, first.cache / "tests.store.Terms" / entry_of(4))
    (key,) = remote.backend.list("cas/")
    damage(remote, key)  # damaged in the remote

    second = workspaces("second")  # its job refuses the entry, computes it, notes it
    with experiment(second, "exp", launcher=LocalLauncher(workers=1),
                    progress=Progress("exp", stream=io.StringIO())):
        UsesTerms(n=4, counters=str(counters)).submit()
    assert count_of(counters, "terms-4") == 2 and notes(second) == []
    with active(workspaces("third", push="manual")):
        assert Terms(n=4).load(str(counters)) == "terms of 4\n" * 3
    assert count_of(counters, "terms-4") == 2  # pulled: the experiment's push repaired it
