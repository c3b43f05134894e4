"""kill -9 at random moments: a process publishing task directories (objects.run_here over many
small tasks) or writing the index is killed 100 times; after each kill the index opens, nothing is
reported done without its manifest, and every done object verifies against its manifest."""

from __future__ import annotations

import os
import random
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from xpmstore.store import manifest, taskdirs
from xpmstore.store.index import Index, index_location
from xpmstore.store.lookup import Store
from xpmstore.store.workspace import Workspace

from ..storehelpers import Tiny, check_done_objects, fork_call, isolate, make_workspace

ITERATIONS = 100
NEW_PER_ITERATION = 6
OLD_PER_ITERATION = 3
LONGEST_DELAY = 0.1  # seconds before the kill, drawn from a seeded RNG (the crash moment)


def _publisher(workspace: Workspace, numbers: list[int]) -> Callable[[], None]:
    def body() -> None:
        for i in numbers:
            taskdirs.run_here(workspace, Tiny(i=i))
    return body


def _index_writer(workspace: Workspace, seed: int) -> Callable[[], None]:
    """Rebuild, reconcile, batch puts of real and fake records, touches, pins: all at once."""
    def body() -> None:
        rng = random.Random(seed)
        store = Store(workspace)
        index = store.index
        real = [d for d in taskdirs.list_object_dirs(workspace) if taskdirs.is_done(d)]
        for _ in range(20):
            action = rng.randrange(5)
            if action == 0:
                store.rebuild()
            elif action == 1:
                store.reconcile()
            elif action == 2:
                records = [(d.name, taskdirs.record_from_disk(workspace, d)) for d in real]
                index.put_many((i, r) for i, r in records if r is not None)
            elif action == 3:
                fake = [f"{rng.getrandbits(256):064x}" for _ in range(50)]
                index.put_many((i, {"kind": "task", "name": "fake.Thing", "created": 0.0,
                                     "path": f"jobs/fake.Thing/{i}", "tags": {"t": i[:4]}})
                               for i in fake)
                index.delete_many(fake[::2])
            else:
                for directory in real[:20]:
                    index.touch(directory.name, time.time())
                if real:
                    index.pin(real[0].name, rng.random() < 0.5)
    return body


def run_victim(body: Callable[[], None], delay: float) -> str:
    """Fork a child running ``body``; kill it with SIGKILL ``delay`` seconds after it started
    (unless it ended before).  Returns "killed" or "finished"; an error in the child fails."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the victim
        os.close(read_end)
        os.write(write_end, b"S")
        code = 0
        try:
            body()
        except BaseException:
            os.write(write_end, traceback.format_exc().encode()[-3000:])
            code = 1
        os._exit(code)
    os.close(write_end)
    assert os.read(read_end, 1) == b"S"  # started: now pick the moment
    time.sleep(delay)  # not a synchronisation: the random crash moment
    os.kill(pid, signal.SIGKILL)  # a child that already ended is a zombie until waitpid: no error
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as rest:
        error = rest.read().decode(errors="replace")
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return "killed"
    assert os.WEXITSTATUS(status) == 0, f"the victim failed:\n{error}"
    return "finished"


def check_reported(workspace: Workspace, store: Store, numbers: list[int]) -> None:
    """Nothing reported done lacks its manifest, and every done object it names verifies."""
    for i in numbers:
        task = Tiny(i=i)
        directory = workspace.task_dir("tests.store.Tiny", task.__identifier__)
        if store.status(task) == "done":
            found = taskdirs.read_manifest(directory)
            assert found is not None and found.identifier == task.__identifier__
            assert manifest.verify(directory, found) == [], directory
    for record in store.records():
        if record.status == "done":
            assert taskdirs.read_manifest(record.path) is not None, record.path


@pytest.mark.slow
def test_kill9_while_publishing_or_indexing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    isolate(monkeypatch, tmp_path)
    workspace = make_workspace(tmp_path / "ws")
    rng = random.Random(20240601)
    store = Store(workspace)
    store.index.count()  # the parent holds the index open throughout, as a scheduler would
    outcomes = {"killed": 0, "finished": 0}
    started: list[int] = []
    for iteration in range(ITERATIONS):
        if iteration % 3 == 2 and started:
            body = _index_writer(workspace, seed=iteration)
            touched: list[int] = []
        else:
            fresh = list(range(len(started), len(started) + NEW_PER_ITERATION))
            old = rng.sample(started, min(OLD_PER_ITERATION, len(started)))
            touched = fresh + old
            rng.shuffle(touched)
            started.extend(fresh)
            body = _publisher(workspace, touched)
        outcomes[run_victim(body, rng.uniform(0, LONGEST_DELAY))] += 1

        assert store.index.count() >= 0  # the index opens and reads after the kill
        check_reported(workspace, store, touched)
        if iteration % 10 == 9:
            assert fork_call(lambda: Index.open(index_location(workspace)).count() >= 0)
            check_done_objects(workspace)

    assert outcomes["killed"] >= ITERATIONS // 4, outcomes  # the kills did land mid-way
    # Afterwards everything can be finished, and the index agrees with the disk.
    for i in started:
        taskdirs.run_here(workspace, Tiny(i=i))
    done = check_done_objects(workspace)
    assert len(done) == len(started)
    assert all(store.status(Tiny(i=i)) == "done" for i in started)
    assert store.rebuild() == len(started)
    assert sorted(r.identifier for r in store.records()) == sorted(d.name for d in done)
    assert "moved it to" not in capfd.readouterr().err
    assert not [p for p in index_location(workspace).parent.iterdir() if "corrupt" in p.name]
