"""Exactly once: 8 experiment processes submit the same 100-task graph at the same moment.

Each process is a real interpreter (``tests.schedtasks.drive graph``) that prints ``ready`` and
waits for a line on stdin: the test starts them all, waits until every one is ready, then
releases them together.  Every task appends one line to its counter file when it executes
(``O_APPEND``), so the counts show how many times each ran across all processes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from xpmstore.scheduler.runlog import read_run

from ..helpers import PYTHON, REPO_ROOT
from ..schedtasks import layered_graph
from ..storehelpers import check_done_objects, count_of, isolate, make_workspace

PROCESSES = 8
DRIVER = "import sys; from tests.schedtasks import drive; drive()"


@pytest.mark.slow
def test_eight_processes_run_every_task_exactly_once(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)
    workspace = make_workspace(tmp_path / "ws")
    counters = tmp_path / "counters"
    counters.mkdir()
    processes = [
        subprocess.Popen([PYTHON, "-c", DRIVER, "graph", str(workspace.root), str(counters),
                          str(seed)], cwd=REPO_ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed in range(PROCESSES)
    ]
    try:
        for process in processes:  # the barrier: every process is ready...
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        for process in processes:  # ...then all go at once
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outcomes = [process.communicate(timeout=240) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (_, err) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, err[-3000:]

    nodes = layered_graph(str(counters))
    counts = {node.i: count_of(counters, f"node-{node.i}") for node in nodes}
    assert counts == {node.i: 1 for node in nodes}
    done = {d.name for d in check_done_objects(workspace)}
    assert {node.__identifier__ for node in nodes} <= done

    # Every process recorded every job; exactly one of them ran it, the others waited for it
    # or reused it.
    runs = sorted((workspace.root / "experiments" / "stress").glob("*.jsonl"))
    assert len(runs) == PROCESSES
    final: dict[str, list[str]] = {node.__identifier__: [] for node in nodes}
    for run in runs:
        record = read_run(run)
        assert record[0]["type"] == "header"
        assert record[-1]["type"] == "end" and record[-1]["outcome"] == "ok"
        reasons: dict[str, str] = {}
        for line in record:
            if line["type"] in ("job", "reason"):
                reasons[line["id"]] = line["reason"]
        assert set(reasons) == set(final)
        for identifier, reason in reasons.items():
            final[identifier].append(reason)
    for identifier, reasons in final.items():
        ran = [r for r in reasons if r.startswith("ran:")]
        assert len(ran) == 1, (identifier, reasons)
        assert all(r == "reused:local" or r.startswith(("ran:", "waited:")) for r in reasons)
