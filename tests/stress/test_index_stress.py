"""The index under concurrent writers: growth from a tiny map loses no write and never shows a
caller MapFullError or MapResizedError; children forked from a process holding the open index
use it safely."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import lmdb
import pytest

from xpmstore.store.index import Index

from ..storehelpers import fork_call, spawn_context

WRITERS = 4
RECORDS = 400
SMALL_MAP = 64 * 1024


def ident(writer: int, n: int) -> str:
    return f"{writer:02x}{n:062x}"


def record(writer: int, n: int) -> dict[str, Any]:
    return {"kind": "task", "name": f"pkg.W{writer}", "path": f"jobs/w/{n}",
            "created": float(n), "tags": {"writer": writer, "pad": "p" * (n % 300)},
            "dependencies": [ident(writer, n - 1)] if n else []}


def _writer(path: str, writer: int, start: Any, results: Any) -> None:
    """In a spawned process: open the index with the tiny map, then write and read back."""
    rng = random.Random(writer)
    try:
        start.wait()
        index = Index(Path(path), map_size=SMALL_MAP)  # the same constant in every process
        n = 0
        while n < RECORDS:
            if rng.random() < 0.3:
                batch = range(n, min(RECORDS, n + rng.randrange(2, 20)))
                index.put_many((ident(writer, i), record(writer, i)) for i in batch)
                n = batch[-1] + 1
            else:
                index.put(ident(writer, n), record(writer, n))
                n += 1
            if index.get(ident(writer, n - 1)) != record(writer, n - 1):
                raise AssertionError(f"read back {ident(writer, n - 1)} differs")
            if rng.random() < 0.05:
                index.count()
                index.by_tag("writer", writer)
        results.put((writer, "ok"))
    except (lmdb.MapFullError, lmdb.MapResizedError) as exc:
        results.put((writer, f"a caller saw {type(exc).__name__}: {exc}"))
    except BaseException as exc:
        results.put((writer, f"{type(exc).__name__}: {exc}"))


@pytest.mark.slow
def test_concurrent_writers_grow_a_tiny_map(tmp_path: Path,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "index"
    context = spawn_context()
    start = context.Barrier(WRITERS)
    results = context.Queue()
    processes = [context.Process(target=_writer, args=(str(path), w, start, results))
                 for w in range(WRITERS)]
    for process in processes:
        process.start()
    reports = sorted(results.get(timeout=240) for _ in processes)
    for process in processes:
        process.join()
    assert reports == [(w, "ok") for w in range(WRITERS)]
    assert [p.exitcode for p in processes] == [0] * WRITERS
    err = capfd.readouterr().err
    assert "moved it to" not in err, err  # a healthy index is never taken for a corrupt one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index", "index.lock"]

    index = Index(path, map_size=SMALL_MAP)
    assert index.count() == WRITERS * RECORDS
    for w in range(WRITERS):
        assert sorted(index.by_name(f"pkg.W{w}")) == [ident(w, n) for n in range(RECORDS)]
        assert len(index.by_tag("writer", w)) == RECORDS
        for n in range(RECORDS):
            assert index.get(ident(w, n)) == record(w, n)
        assert index.dependents(ident(w, 0)) == [ident(w, 1)]
    assert index.env.info()["map_size"] > SMALL_MAP


CHILDREN = 4
PER_CHILD = 150


@pytest.mark.slow
def test_forked_children_share_the_parents_open_index(tmp_path: Path,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """Children forked while the parent holds the open index (and keeps writing) read the
    parent's records and write their own, through the inherited object and a fresh open."""
    index = Index.open(tmp_path / "index")
    index.put(ident(0xFF, 0), record(0xFF, 0))
    pids = []
    for child in range(CHILDREN):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                assert index.get(ident(0xFF, 0)) == record(0xFF, 0)
                mine = Index.open(tmp_path / "index")
                for n in range(PER_CHILD):
                    target = index if n % 2 else mine
                    target.put(ident(child, n), record(child, n))
                    assert target.get(ident(child, n)) == record(child, n)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for n in range(1, PER_CHILD):  # the parent writes meanwhile
        index.put(ident(0xFF, n), record(0xFF, n))
    statuses = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    assert statuses == [0] * CHILDREN
    assert index.count() == (CHILDREN + 1) * PER_CHILD
    for child in range(CHILDREN):
        assert sorted(index.by_name(f"pkg.W{child}")) == [ident(child, n)
                                                          for n in range(PER_CHILD)]
    assert fork_call(lambda: Index.open(tmp_path / "index").count()) == (
        CHILDREN + 1) * PER_CHILD
    assert "moved it to" not in capfd.readouterr().err
    assert not [p for p in tmp_path.iterdir() if "corrupt" in p.name]
