"""``@cache`` (xpmstore.cache): a miss computes once and records, a hit reuses, a failure or a
killed attempt leaves nothing done."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xpmstore import Config, Param, Task, cache
from xpmstore.core.identifier import cache_identifier
from xpmstore.scheduler import cache as cache_module
from xpmstore.store import taskdirs
from xpmstore.store.index import Index
from xpmstore.store.lookup import Store
from xpmstore.store.workspace import DONE, Workspace
from xpmstore.system.locks import object_lock

from ..storehelpers import (
    Terms,
    active,
    count_of,
    fork_context,
    isolate,
    make_workspace,
    wait_for,
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = make_workspace(tmp_path / "ws")
    with active(workspace):
        yield workspace


def entry_dir(ws: Workspace, config: Config, filename: str) -> Path:
    entry = cache_identifier(config.__identifier__, filename)
    return ws.cache / "tests.store.Terms" / entry


def test_miss_then_hit(ws: Workspace, counters: str) -> None:
    terms = Terms(n=1)
    assert terms.load(counters) == "terms of 1\n" * 3
    assert count_of(counters, "terms-1") == 1
    directory = entry_dir(ws, terms, "terms.txt")
    assert taskdirs.is_done(directory)
    assert (directory / "terms.txt").read_text() == "terms of 1\n" * 3
    assert Terms(n=1).load(counters) == "terms of 1\n" * 3  # another instance, same entry
    assert terms.load(counters) == "terms of 1\n" * 3
    assert count_of(counters, "terms-1") == 1
    assert Terms(n=2).load(counters) == "terms of 2\n" * 3
    assert count_of(counters, "terms-2") == 1


def test_the_entry_is_recorded(ws: Workspace, counters: str) -> None:
    terms = Terms(n=3)
    terms.load(counters)
    directory = entry_dir(ws, terms, "terms.txt")
    found = taskdirs.read_manifest(directory)
    assert found is not None and found.kind == "cache" and found.name == "tests.store.Terms"
    assert [f.path for f in found.files] == ["terms.txt"]
    assert found.extra == {"config": terms.__identifier__, "method": "Terms.load",
                           "file": "terms.txt"}
    record = Index.for_workspace(ws).get(directory.name)
    assert record is not None
    assert record["kind"] == "cache" and record["config"] == terms.__identifier__
    assert record["method"] == "Terms.load" and record["file"] == "terms.txt"
    stored = Store(ws).get(directory.name)
    assert stored.kind == "cache" and stored.status == "done"
    assert stored.config == terms.__identifier__ and stored.path == directory


def test_a_failure_marks_nothing_done_and_the_next_call_computes(ws: Workspace,
                                                                 counters: str) -> None:
    terms = Terms(n=4)
    for attempt in (1, 2):
        with pytest.raises(ValueError, match="the computation failed"):
            terms.boom(counters)
        assert count_of(counters, "boom-4") == attempt
        directory = entry_dir(ws, terms, "boom.txt")
        assert not taskdirs.is_done(directory)
        assert not directory.exists()  # the partial file went with the entry
        assert Index.for_workspace(ws).get(directory.name) is None


def test_leftovers_are_cleared_before_computing(ws: Workspace, counters: str) -> None:
    terms = Terms(n=5)
    directory = entry_dir(ws, terms, "terms.txt")
    (directory / ".xpm").mkdir(parents=True)
    (directory / "terms.txt").write_text("LEFTOVER")
    (directory / "stray").write_text("from a killed attempt")
    assert terms.load(counters) == "terms of 5\n" * 3
    assert count_of(counters, "terms-5") == 1
    assert sorted(os.listdir(directory)) == [".xpm", "terms.txt"]


def _slow_call(root: str, counters: str, inside: str, release: str) -> None:
    with active(Workspace.at(root)):
        Terms(n=6).slow(counters, inside, release)


def test_a_process_killed_inside_a_miss(ws: Workspace, counters: str, tmp_path: Path) -> None:
    inside, release = tmp_path / "inside", tmp_path / "release"
    process = fork_context().Process(
        target=_slow_call, args=(str(ws.root), counters, str(inside), str(release)))
    process.start()
    wait_for(inside.exists, "the child to be inside the cached function")
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    assert process.exitcode == -signal.SIGKILL
    terms = Terms(n=6)
    directory = entry_dir(ws, terms, "slow.txt")
    assert (directory / "slow.txt").read_text() == "LEFTOVER of a killed attempt"
    assert not taskdirs.is_done(directory)
    release.write_text("go")
    assert terms.slow(counters, str(inside), str(release)) == "slow result of 6"
    assert count_of(counters, "slow-6") == 2
    assert (directory / "slow.txt").read_text() == "slow result of 6"
    assert taskdirs.is_done(directory)
    assert terms.slow(counters, str(inside), str(release)) == "slow result of 6"
    assert count_of(counters, "slow-6") == 2


def _hold_lock(path: str, ready: Any, release: Any) -> None:
    with object_lock(Path(path)):
        ready.set()
        release.wait()


def _hit(root: str, counters: str) -> None:
    with active(Workspace.at(root)):
        assert Terms(n=7).load(counters) == "terms of 7\n" * 3


def test_a_hit_takes_no_lock(ws: Workspace, counters: str) -> None:
    terms = Terms(n=7)
    terms.load(counters)
    lock = ws.lock_path(entry_dir(ws, terms, "terms.txt").name)
    context = fork_context()
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(str(lock), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        hit = context.Process(target=_hit, args=(str(ws.root), counters))
        hit.start()
        hit.join(60)  # a hit that waited for the lock would still be waiting
        assert hit.exitcode == 0
    finally:
        release.set()
        holder.join()
    assert count_of(counters, "terms-7") == 1


def test_a_hit_refreshes_an_old_last_access(ws: Workspace, counters: str) -> None:
    terms = Terms(n=8)
    terms.load(counters)
    entry = entry_dir(ws, terms, "terms.txt").name
    index = Index.for_workspace(ws)
    index.touch(entry, 0.0)
    cache_module._entries.clear()  # as in a new process
    terms = Terms(n=8)
    terms.load(counters)
    refreshed = index.get(entry)["last_access"]
    assert refreshed != 0.0  # rewritten by the hit
    index.touch(entry, 1.0)  # within the period, this process does not write again
    terms.load(counters)
    Terms(n=8).load(counters)  # nor through another object of the same identity
    assert index.get(entry)["last_access"] == 1.0


def test_the_done_file_is_the_only_truth(ws: Workspace, counters: str) -> None:
    terms = Terms(n=9)
    terms.load(counters)
    directory = entry_dir(ws, terms, "terms.txt")
    os.unlink(directory / DONE)  # the index still has the record
    assert Index.for_workspace(ws).get(directory.name) is not None
    assert terms.load(counters) == "terms of 9\n" * 3
    assert count_of(counters, "terms-9") == 2


def test_extra_arguments_are_passed_but_not_identity(ws: Workspace, tmp_path: Path) -> None:
    class Adder(Config):
        __xpmid__ = "tests.store.Adder"
        base: Param[int]

        @cache("sum.txt")
        def add(self, path: Path, extra: int, *, scale: int = 1) -> int:
            if path.is_file():
                return int(path.read_text())
            path.write_text(str((self.base + extra) * scale))
            return (self.base + extra) * scale

    adder = Adder(base=1)
    assert adder.add(2, scale=10) == 30
    assert adder.add(5) == 30  # the entry is (config, file name) only
    assert Adder.add.__xpm_cache__ == "sum.txt"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["", "a/b", ".", "..", ".xpm", ".xpm-state"])
def test_bad_file_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        cache(name)


class _Produces(Task):
    __xpmid__ = "tests.store.Produces"
    terms: Param[Terms]

    def task_outputs(self, dep: Any) -> Any:
        return dep(self.terms)


def test_an_output_marked_copy_has_its_own_entry(ws: Workspace, counters: str) -> None:
    terms = Terms(n=10)
    terms.load(counters)  # the entry of the plain config, remembered by the object
    marked = _Produces(terms=terms).__xpm_outputs__()
    assert marked.__identifier__ != terms.__identifier__  # an output: its producer is identity
    assert marked.load(counters) == "terms of 10\n" * 3
    assert taskdirs.is_done(entry_dir(ws, marked, "terms.txt"))  # not the plain config's entry
    assert count_of(counters, "terms-10") == 2
