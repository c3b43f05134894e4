"""Reconciling the index in proportion to change (xpmstore.store.reconcile): only class folders
whose stamp moved are listed, yet every change is seen — a result made on another host, a
directory removed, a directory that became done in place (its folder's mtime does not move),
a done object undone by ``fsck --repair`` elsewhere, a whole class folder removed.

"Another host" is a real child process with an index of its own (``XPMSTORE_INDEX_DIR``): what
it publishes reaches the disk, not this process's index.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xpmstore.admin import fsck
from xpmstore.admin.gc import mark
from xpmstore.admin.ls import list_entries
from xpmstore.store import reconcile as reconcile_module
from xpmstore.store import taskdirs
from xpmstore.store.index import Index
from xpmstore.store.lookup import Store
from xpmstore.store.reconcile import reconcile
from xpmstore.store.workspace import DONE, Workspace

from ..storehelpers import Learn, Model, Terms, active, fork_call, isolate, make_workspace

NAME = "tests.store.Learn"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = make_workspace(tmp_path / "ws")
    with active(workspace):
        yield workspace


def learn(epochs: int) -> Learn:
    return Learn(model=Model(hidden=8), epochs=epochs)


def stamp(folder: Path) -> tuple[int, int, int]:
    found = os.lstat(folder)
    return found.st_ino, found.st_mtime_ns, found.st_ctime_ns


def settle(ws: Workspace) -> Index:
    """Age every class folder's mtime past the racy window and reconcile until nothing is
    listed: the state every test starts from (stamps trusted)."""
    past = time.time() - 10
    for top in (ws.jobs, ws.cache):
        for folder in top.iterdir():
            os.utime(folder, (past, past))
    index = Index.for_workspace(ws)
    reconcile(index, ws)
    assert reconcile(index, ws).folders == 0
    return index


def on_another_host(ws: Workspace, tmp_path: Path, body: object) -> None:
    """Run ``body()`` in a child process whose index is not this one's."""
    def child() -> None:
        os.environ["XPMSTORE_INDEX_DIR"] = str(tmp_path / "other-host-index")
        with active(Workspace.at(ws.root)):
            body()  # type: ignore[operator]

    fork_call(child)


def indexed(ws: Workspace) -> set[str]:
    return Index.for_workspace(ws).identifiers()


def test_nothing_changed_lists_no_folder(ws: Workspace) -> None:
    for epochs in range(3):
        taskdirs.run_here(ws, learn(epochs))
    index = settle(ws)
    done = reconcile(index, ws)
    assert (done.added, done.removed, done.folders, done.unindexed) == (0, 0, 0, [])
    assert len(indexed(ws)) == 3


def test_a_reconcile_that_finds_nothing_new_writes_nothing(ws: Workspace) -> None:
    # A read-only command (ls, find, serve's listing) must not write the index when nothing
    # changed: no transaction, whether the folders' stamps are trusted or (racy) listed again.
    task = learn(1)
    taskdirs.run_here(ws, task)
    index = Index.for_workspace(ws)
    index.delete(task.__identifier__)  # made elsewhere: its name is not indexed yet, and the
    reconcile(index, ws)  # first pass writes its record and stamps (its absent cache folder's)
    before = index.env.info()["last_txnid"]
    assert reconcile(index, ws).folders == 1  # racy: listed again, found the same
    assert index.env.info()["last_txnid"] == before
    settle(ws)  # the stamps aged: written once more (no longer racy)
    trusted = index.env.info()["last_txnid"]
    assert reconcile(index, ws).folders == 0
    assert index.env.info()["last_txnid"] == trusted


def test_a_result_made_on_another_host_appears(ws: Workspace, tmp_path: Path) -> None:
    taskdirs.run_here(ws, learn(1))
    index = settle(ws)
    other = learn(2)
    on_another_host(ws, tmp_path, lambda: taskdirs.run_here(Workspace.at(ws.root), learn(2)))
    assert other.__identifier__ not in indexed(ws)  # the other host's index got it, not ours
    done = reconcile(index, ws)
    assert (done.added, done.removed, done.folders) == (1, 0, 1)
    assert other.__identifier__ in indexed(ws)
    assert Store(ws).get(other.__identifier__[:12]).status == "done"


def test_a_removed_directory_is_forgotten(ws: Workspace, tmp_path: Path) -> None:
    gone, kept = learn(1), learn(2)
    for task in (gone, kept):
        taskdirs.run_here(ws, task)
    index = settle(ws)
    directory = ws.task_dir(NAME, gone.__identifier__)
    on_another_host(ws, tmp_path, lambda: shutil.rmtree(directory))
    done = reconcile(index, ws)
    assert (done.added, done.removed) == (0, 1)
    assert indexed(ws) == {kept.__identifier__}


def test_a_directory_that_becomes_done_in_place_is_seen(ws: Workspace, tmp_path: Path) -> None:
    taskdirs.run_here(ws, learn(1))
    waiting = learn(2)
    directory = taskdirs.prepare_task_dir(ws, waiting)  # claimed, running: not done
    index = settle(ws)
    listed = reconcile(index, ws)
    assert [(d.identifier, d.done) for d in listed.unindexed] == [(waiting.__identifier__, False)]
    folder = ws.jobs / NAME
    before = stamp(folder)
    on_another_host(ws, tmp_path, lambda: taskdirs.run_here(Workspace.at(ws.root), learn(2)))
    assert (directory / DONE).exists()
    assert stamp(folder) == before  # the class folder did not change: its mtime tells nothing
    done = reconcile(index, ws)
    assert (done.added, done.folders, done.unindexed) == (1, 0, [])
    assert waiting.__identifier__ in indexed(ws)


@pytest.mark.parametrize("folder_changed", [False, True])
def test_a_done_object_undone_by_fsck_on_another_host(ws: Workspace, tmp_path: Path,
                                                      folder_changed: bool) -> None:
    """fsck --repair moves a damaged object's done manifest aside: the class folder does not
    change, the journal says so (also when the folder changed for another reason meanwhile)."""
    damaged, intact = learn(1), learn(2)
    for task in (damaged, intact):
        taskdirs.run_here(ws, task)
    directory = ws.task_dir(NAME, damaged.__identifier__)
    (directory / "model.bin").write_text("not what the manifest says\n")
    index = settle(ws)
    before = stamp(ws.jobs / NAME)

    def repair() -> None:
        fsck.check(Workspace.at(ws.root), repair=True)
        if folder_changed:
            taskdirs.run_here(Workspace.at(ws.root), learn(3))

    on_another_host(ws, tmp_path, repair)
    assert not (directory / DONE).exists()
    assert (stamp(ws.jobs / NAME) == before) is not folder_changed
    assert damaged.__identifier__ in indexed(ws)  # ours still says done
    done = reconcile(index, ws)
    assert (done.removed, done.folders) == (1, int(folder_changed))
    assert damaged.__identifier__ not in indexed(ws) and intact.__identifier__ in indexed(ws)
    assert [(d.identifier, d.done) for d in done.unindexed] == [(damaged.__identifier__, False)]
    assert damaged.__identifier__ in {c.identifier for c in mark(ws).candidates}
    again = reconcile(index, ws)  # the journal is read from where it stopped
    assert again.removed == 0


def test_a_removed_class_folder_forgets_its_objects(ws: Workspace, counters: str) -> None:
    taskdirs.run_here(ws, learn(1))
    Terms(n=1).load(counters)
    index = settle(ws)
    shutil.rmtree(ws.jobs / NAME)
    done = reconcile(index, ws)
    assert done.removed == 1
    assert {Index.for_workspace(ws).get(i)["kind"] for i in indexed(ws)} == {"cache"}
    assert reconcile(index, ws).folders == 0


@pytest.mark.parametrize("checks", [1000, 0])
def test_a_new_cache_entry_keeps_the_tasks_of_its_name(ws: Workspace, counters: str,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       checks: int) -> None:
    """A name can have both a jobs/ and a cache/ folder; a change in one must not drop the
    objects of the other (checked one by one, or by listing it past ``SIBLING_CHECKS``)."""
    class Task(Learn):
        __xpmid__ = "tests.store.Terms"  # the name of Terms' cache folder

    monkeypatch.setattr(reconcile_module, "SIBLING_CHECKS", checks)
    tasks = [Task(model=Model(), epochs=i) for i in range(3)]
    for task in tasks:
        taskdirs.run_here(ws, task)
    index = settle(ws)
    Terms(n=2).load(counters)  # a new entry in cache/tests.store.Terms
    done = reconcile(index, ws)
    assert done.removed == 0
    assert {t.__identifier__ for t in tasks} <= indexed(ws)
    assert len(indexed(ws)) == 4


def test_a_folder_changed_within_the_racy_window_is_listed_again(ws: Workspace) -> None:
    taskdirs.run_here(ws, learn(1))
    index = Index.for_workspace(ws)
    assert reconcile(index, ws).folders == 1  # its mtime is seconds old at most: not trusted
    assert reconcile(index, ws).folders == 1  # so listed again
    settle(ws)  # mtime aged: the stamp is trusted
    assert reconcile(index, ws).folders == 0


def test_full_sees_a_done_manifest_deleted_by_hand(ws: Workspace) -> None:
    task = learn(1)
    directory = taskdirs.run_here(ws, task)
    index = settle(ws)
    os.unlink(directory / DONE)  # by hand: the only change nothing announces
    assert reconcile(index, ws).removed == 0  # documented limit (docs/store.md)
    done = reconcile(index, ws, full=True)
    assert done.removed == 1 and task.__identifier__ not in indexed(ws)


def test_damaged_states_and_journal_cost_a_listing_never_a_crash(ws: Workspace) -> None:
    for epochs in range(2):
        taskdirs.run_here(ws, learn(epochs))
    index = settle(ws)
    states = index.folder_states()
    index.commit_reconcile([], [], {key: b"S\x00garbage" for key in states})  # not a state
    journal = ws.private / "undone"
    journal.write_bytes(b"\xff\xfe not a line\n" + b"a" * 64 + b" jobs/../x\n" + b"\0" * 100)
    done = reconcile(index, ws)
    assert (done.added, done.removed, done.folders) == (0, 0, 1)
    assert len(indexed(ws)) == 2
    journal.unlink()
    journal.symlink_to("/dev/zero")  # never followed
    assert reconcile(index, ws).folders == 0


def test_ls_and_gc_see_directories_the_index_does_not_hold(ws: Workspace) -> None:
    taskdirs.run_here(ws, learn(1))
    waiting = learn(2)
    taskdirs.prepare_task_dir(ws, waiting)
    settle(ws)
    for _ in range(2):  # stamps trusted: the not-done directory comes from the stamp
        statuses = {e["identifier"]: e["status"] for e in list_entries(Store(ws))}
        assert statuses[waiting.__identifier__] != "done" and len(statuses) == 2
        plan = mark(ws)
        assert plan.objects == 2
        assert waiting.__identifier__ in {c.identifier for c in plan.candidates}


def test_a_dropped_damaged_record_forgets_every_stamp(ws: Workspace) -> None:
    directory = taskdirs.run_here(ws, learn(1))
    index = settle(ws)
    shutil.rmtree(directory)  # its record cannot be recomputed when it is found damaged
    raw = bytes.fromhex(learn(1).__identifier__)
    index.write(lambda txn: txn.put(raw, b"\0\0\0\0{}", db=index.dbs[b"objects"]))
    assert index.get(learn(1).__identifier__) is None  # damaged: dropped, not recomputed
    assert index.folder_states() == {}
    assert reconcile(index, ws).folders == 1
