"""Leases (xpmstore.store.leases): a ``@cache`` entry a live process uses is leased until the
process ends (``kill -9`` included), a forked child leases on its own, and gc, ``rm`` and the lease
reader keep to that — with real processes and damaged lease folders.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from xpmstore.admin.gc import GcOptions, collect, mark
from xpmstore.core.identifier import cache_identifier
from xpmstore.store import leases
from xpmstore.store.workspace import Workspace

from ..clihelpers import invoke
from ..helpers import PYTHON, REPO_ROOT
from ..storehelpers import DEADLINE, Terms, active, fork_context, isolate

DRIVER = "from tests.gctasks import drive; drive()"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)
    leases.release()  # nothing leased by an earlier test of this process


def entry(n: int) -> str:
    return cache_identifier(Terms(n=n).__identifier__, "terms.txt")


def lease_files(ws: Workspace) -> list[Path]:
    return sorted((ws.private / "leases").glob("*.lease"))


class Holder:
    """A real process that uses the entries ``Terms(n)`` of ``numbers`` and waits."""

    def __init__(self, ws: Workspace, counters: str, *numbers: int):
        self.process = subprocess.Popen(
            [PYTHON, "-c", DRIVER, "hold", str(ws.root), counters, *map(str, numbers)],
            cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "leased"

    def end(self) -> None:
        self.process.communicate("\n", timeout=DEADLINE)
        assert self.process.returncode == 0

    def kill(self) -> None:
        self.process.kill()
        self.process.communicate()


def candidates(ws: Workspace) -> set[str]:
    return {c.identifier for c in mark(ws, GcOptions(older_than=0)).candidates}


def test_a_live_process_leases_what_it_uses_until_kill9(ws: Workspace, counters: str) -> None:
    holder = Holder(ws, counters, 1, 2)
    try:
        assert set(leases.in_use(ws)) == {entry(1), entry(2)}
        assert leases.in_use(ws)[entry(1)].endswith(f"-{holder.process.pid}-"
                                                    + lease_files(ws)[0].stem.split("-")[-1])
        plan = mark(ws, GcOptions(older_than=0, max_size=0))
        assert plan.candidates == []
        assert [(s.role, set(s.identifiers), s.done) for s in plan.sources] == [
            ("in use", {entry(1), entry(2)}, 2)]
        assert not collect(ws, GcOptions(older_than=0)).deleted
        assert len(lease_files(ws)) == 1  # gc's sweep leaves a live lease alone
        os.kill(holder.process.pid, signal.SIGKILL)
    finally:
        holder.kill()
    assert leases.in_use(ws) == {}
    assert len(lease_files(ws)) == 1  # stale until the next gc
    assert candidates(ws) == {entry(1), entry(2)}
    result = collect(ws, GcOptions(older_than=0))
    assert {c.identifier for c in result.deleted} == {entry(1), entry(2)}
    assert lease_files(ws) == []


def test_a_normal_exit_removes_the_lease_file(ws: Workspace, counters: str) -> None:
    holder = Holder(ws, counters, 1)
    assert len(lease_files(ws)) == 1
    holder.end()
    assert lease_files(ws) == []
    assert leases.in_use(ws) == {}


def _child(root: str, counters: str, queue: Any) -> None:
    """In a forked child: use entries 1 and 2, report what is in use, exit without release."""
    with active(Workspace.at(root)):
        Terms(n=1).load(counters)
        Terms(n=2).load(counters)
    queue.put(sorted(leases.in_use(Workspace.at(root)).items()))


def test_a_forked_child_leases_on_its_own_and_never_lets_the_parents_lease_go(
        ws: Workspace, counters: str) -> None:
    with active(ws):
        Terms(n=1).load(counters)
    (mine,) = lease_files(ws)
    context = fork_context()
    queue = context.Queue()
    child = context.Process(target=_child, args=(str(ws.root), counters, queue))
    child.start()
    seen = dict(queue.get(timeout=DEADLINE))
    child.join(DEADLINE)
    assert child.exitcode == 0
    assert set(seen) == {entry(1), entry(2)}
    assert seen[entry(2)] != mine.stem  # the child's own lease file
    assert len(lease_files(ws)) == 2  # the child's, stale now, and this process's
    assert leases.in_use(ws) == {entry(1): mine.stem}  # closing its copy kept the parent's lock
    leases.release()
    assert not mine.exists()
    assert leases.in_use(ws) == {}
    with active(ws):  # used again after release: leased again, in a new file
        Terms(n=1).load(counters)
    assert set(leases.in_use(ws)) == {entry(1)}


def test_damaged_and_hostile_lease_folders(ws: Workspace, counters: str, tmp_path: Path) -> None:
    folder = ws.private / "leases"
    folder.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.write_text(entry(7) + "\n")
    (folder / "link.lease").symlink_to(outside)
    os.mkfifo(folder / "fifo.lease")
    (folder / "dir.lease").mkdir()
    (folder / "stale.lease").write_text(entry(8) + "\n")
    held = folder / "held.lease"
    held.write_bytes(b"\xff\xfe not an id\n" + b"a" * 1_000_000 + b"\n../../etc\n"
                     + entry(9).encode() + b"\n" + entry(9).upper().encode() + b"\n")
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert leases.in_use(ws) == {entry(9): "held"}
        assert leases.sweep(ws) == 2  # the stale file and the link, never what it points to
    finally:
        os.close(fd)
    assert outside.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["dir.lease", "fifo.lease", "held.lease"]

    for damaged in ("file", "link"):  # the folder itself replaced: made again, never followed
        for path in folder.iterdir():
            path.rmdir() if path.is_dir() else path.unlink()
        folder.rmdir()
        elsewhere = tmp_path / f"elsewhere-{damaged}"
        elsewhere.mkdir()
        if damaged == "file":
            folder.write_text("junk")
        else:
            folder.symlink_to(elsewhere)
        assert leases.in_use(ws) == {}
        leases.release()
        with active(ws):
            assert Terms(n=3).load(counters) == "terms of 3\n" * 3
        assert folder.is_dir() and not folder.is_symlink()
        assert set(leases.in_use(ws)) == {entry(3)}
        assert list(elsewhere.iterdir()) == []


def test_rm_refuses_an_entry_a_live_process_uses(ws: Workspace, counters: str) -> None:
    holder = Holder(ws, counters, 4)
    try:
        refused = invoke(ws, "rm", entry(4))
        assert refused.exit_code == 1
        assert "in use" in refused.stderr and str(holder.process.pid) in refused.stderr
        assert len(refused.stderr.splitlines()) == 1
        assert (ws.cache / "tests.store.Terms" / entry(4)).is_dir()
    finally:
        holder.end()
    removed = invoke(ws, "rm", entry(4))
    assert removed.exit_code == 0, removed.output
    assert not (ws.cache / "tests.store.Terms" / entry(4)).exists()


def test_gc_dry_run_json_names_the_entries_in_use(ws: Workspace, counters: str) -> None:
    holder = Holder(ws, counters, 5)
    try:
        dry = json.loads(invoke(ws, "gc", "--dry-run", "--json", "--older-than", "0s").stdout)
        assert dry["candidates"] == []
        assert dry["sources"] == [{"role": "in use", "experiment": "", "run": "", "status": "",
                                   "objects": [entry(5)], "done": 1}]
        text = invoke(ws, "gc", "--dry-run", "--older-than", "0s").stdout
        assert "in use: 1 objects, 1 done" in text
        kept = invoke(ws, "gc", "-y", "--max-size", "0")
        assert kept.exit_code == 0 and "freed 0 in 0 objects" in kept.stdout, kept.output
        assert "above --max-size" in kept.stderr and "in use" in kept.stderr
        assert (ws.cache / "tests.store.Terms" / entry(5)).is_dir()
    finally:
        holder.end()
