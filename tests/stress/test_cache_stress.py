"""``@cache`` under contention: 8 processes × 1,000 calls over 50 configs compute every entry
exactly once, and every call returns the entry's value."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from xpmstore.core.identifier import cache_identifier
from xpmstore.store import taskdirs
from xpmstore.store.index import Index, index_location
from xpmstore.store.workspace import Workspace

from ..storehelpers import Terms, active, count_of, isolate, make_workspace, spawn_context

PROCESSES = 8
CALLS = 1000
CONFIGS = 50


def expected(n: int) -> str:
    return f"terms of {n}\n" * 3


def _caller(root: str, counters: str, seed: int, start: Any, results: Any) -> None:
    """In a spawned process: CALLS cached calls on random configs, after the barrier."""
    rng = random.Random(seed)
    wrong = []
    try:
        with active(Workspace.at(root)):
            kept = {n: Terms(n=n) for n in range(CONFIGS)}
            start.wait()
            for _ in range(CALLS):
                n = rng.randrange(CONFIGS)
                terms = kept[n] if rng.random() < 0.5 else Terms(n=n)  # memoized or fresh
                value = terms.load(counters)
                if value != expected(n):
                    wrong.append((n, value))
        results.put((seed, "ok", wrong[:5]))
    except BaseException as exc:
        results.put((seed, f"{type(exc).__name__}: {exc}", wrong[:5]))


@pytest.mark.slow
def test_every_entry_is_computed_exactly_once(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    isolate(monkeypatch, tmp_path)
    workspace = make_workspace(tmp_path / "ws")
    counters = tmp_path / "counters"
    counters.mkdir()
    context = spawn_context()
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [context.Process(target=_caller,
                                 args=(str(workspace.root), str(counters), seed, start, results))
                 for seed in range(PROCESSES)]
    for process in processes:
        process.start()
    reports = [results.get(timeout=240) for _ in processes]
    for process in processes:
        process.join()
    assert sorted(reports) == [(seed, "ok", []) for seed in range(PROCESSES)]
    assert [p.exitcode for p in processes] == [0] * PROCESSES

    counts = {n: count_of(counters, f"terms-{n}") for n in range(CONFIGS)}
    assert counts == {n: 1 for n in range(CONFIGS)}, "an entry was computed twice (or never)"
    index = Index.open(index_location(workspace))
    for n in range(CONFIGS):
        entry = cache_identifier(Terms(n=n).__identifier__, "terms.txt")
        directory = workspace.cache / "tests.store.Terms" / entry
        assert taskdirs.is_done(directory)
        assert (directory / "terms.txt").read_text() == expected(n)
        record = index.get(entry)
        assert record is not None and record["kind"] == "cache"
    assert index.count() == CONFIGS
    assert "Traceback" not in capfd.readouterr().err
