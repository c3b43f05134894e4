"""The command line against a workspace of 100,000 objects: whole-process times of
``xpmstore get``, ``xpmstore ls --json`` and ``xpmstore gc --dry-run``, and gc's mark phase.

Run it with ``benchmarks/run cli`` (``--quick`` for a smoke run of 4,000 objects): the wrapper
creates the benchmark environment ``benchmarks/.venv-bench``, whose console script ``xpmstore``
is timed.

The workspace ``benchmarks/.work/cli-<n>`` is made once and reused while its stamp and its count
of directories are right: n/2 ``Learn`` tasks and n/2 ``Evaluate`` tasks (each depending on one
Learn), written like ``objects.run_here`` writes them (``lookup.write_task``, checked
byte-for-byte against ``run_here`` at each run), their records put in the index, and three
successful runs of an experiment ``bench``, the last of which used a fifth of the Evaluates (so
gc's roots reach 20% of the store and 80% is garbage).

Timed, as whole processes started from this script (``subprocess.run``, wall clock around each,
output discarded), alternating between the commands inside each repetition: ``python -c pass``
(the interpreter's own start, for reference), ``xpmstore --help``, ``xpmstore get ID`` (full
identifier, then a 12-character prefix), ``xpmstore ls --json`` and ``xpmstore gc --dry-run``;
in this process, ``xpmstore.admin.gc.mark`` (the mark phase: reconcile with a listing of the disk,
read every index record and run record, close the roots over the dependencies).  Medians and
minimums over the repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from lookup import CREATED, WORK, Evaluate, check_write_task, learn, write_task

import xpmstore
from xpmstore.admin import gc
from xpmstore.scheduler.runlog import RunRecord
from xpmstore.store import taskdirs
from xpmstore.store.index import Index
from xpmstore.store.workspace import Workspace

FILL_VERSION = "cli-1"
"""Change it when the generated content changes: workspaces of another version are remade."""
COUNT = 100_000
BATCH = 20_000
XPMSTORE = str(Path(sys.executable).parent / "xpmstore")
TARGETS_MS = {"get": 150.0, "ls --json": 2000.0, "gc mark": 5000.0}


def evaluate(index: int) -> Evaluate:
    """Evaluate number ``index``: it holds ``learn(index, "cli")``."""
    return Evaluate(model=learn(index, "cli"), metric=("ndcg", "map")[index % 2])


def filled(count: int) -> tuple[Workspace, list[str]]:
    """The workspace of ``count`` objects (made once, see the module doc) and the identifiers
    of its Evaluates."""
    workspace = Workspace.at(WORK / f"cli-{count}")
    stamp = workspace.root / "filled.txt"
    wanted = f"{FILL_VERSION} {count}\n"
    tasks = [evaluate(i) for i in range(count // 2)]
    evaluates = [t.__identifier__ for t in tasks]
    if (stamp.exists() and stamp.read_text() == wanted
            and len(taskdirs.list_object_dirs(workspace)) == count):
        print(f"{count:,} objects: reusing {workspace.root}")
        return workspace, evaluates
    shutil.rmtree(workspace.root, ignore_errors=True)
    workspace.ensure()
    start = time.perf_counter()
    index = Index.for_workspace(workspace)
    batch: list[tuple[str, dict[str, Any]]] = []
    for number, task in enumerate(tasks):
        batch.append(write_task(workspace, task.model, CREATED + 2 * number))
        batch.append(write_task(workspace, task, CREATED + 2 * number + 1))
        if len(batch) >= BATCH:
            index.put_many(batch)
            batch = []
    index.put_many(batch)
    used = count // 10  # the last run used a fifth of the Evaluates (and, through them, Learns)
    for first in (0, used, 2 * used):
        record = RunRecord(workspace.experiments, "bench")
        record.append_many([
            {"type": "job", "id": t.__identifier__, "name": "bench.store.Evaluate",
             "reason": "ran:new", "tags": {}, "dependencies": [t.model.__identifier__]}
            for t in tasks[first:first + used]])
        record.end("ok")
    stamp.write_text(wanted)
    print(f"{count:,} objects: made in {time.perf_counter() - start:.1f} s")
    return workspace, evaluates


def whole_process(args: Sequence[str], workspace: Workspace) -> float:
    """Milliseconds of one run of ``args`` (stdout discarded); fails unless it exits 0."""
    env = {**os.environ, "XPMSTORE_WORKSPACE": str(workspace.root)}
    start = time.perf_counter()
    result = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            check=False)
    elapsed = (time.perf_counter() - start) * 1e3
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}: {result.stderr!r}")
    return elapsed


def in_process(action: Callable[[], Any]) -> float:
    """Milliseconds of one ``action()``."""
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1e3


def main(argv: list[str] | None = None) -> int:
    """Make (or reuse) the workspace, time every line, print the table; exit status 0 even
    when a target is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 4,000 objects, fewer repetitions")
    args = parser.parse_args(argv)
    count = 4_000 if args.quick else COUNT
    fast_reps, slow_reps = (5, 2) if args.quick else (21, 5)
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, "
          f"xpmstore {xpmstore.__version__}, click {version('click')}, lmdb {version('lmdb')}")
    WORK.mkdir(exist_ok=True)
    check_write_task([lambda: learn(0, "check"), lambda: evaluate(0)], WORK / "cli-check")
    workspace, evaluates = filled(count)
    target = evaluates[len(evaluates) // 2]

    # checks (and warm-up of the page cache and the index)
    env = {**os.environ, "XPMSTORE_WORKSPACE": str(workspace.root)}
    got = subprocess.run([XPMSTORE, "get", target[:12]], capture_output=True, text=True,
                         env=env, check=True).stdout.strip()
    if Path(got).name != target:
        raise AssertionError(f"xpmstore get gave {got!r}")
    listed = json.loads(subprocess.run([XPMSTORE, "ls", "--json"], capture_output=True,
                                       text=True, env=env, check=True).stdout)
    if len(listed) != count:
        raise AssertionError(f"ls --json listed {len(listed)} objects, expected {count}")
    plan = gc.mark(workspace)
    if len(plan.candidates) != count * 8 // 10 or len(plan.reachable) != count * 2 // 10:
        raise AssertionError(f"mark: {len(plan.candidates)} candidates,"
                             f" {len(plan.reachable)} reachable")

    fast: dict[str, list[str]] = {
        "`python -c pass` (interpreter start, reference)": [sys.executable, "-c", "pass"],
        "`xpmstore --help`": [XPMSTORE, "--help"],
        "`xpmstore get ID` (full identifier)": [XPMSTORE, "get", target],
        "`xpmstore get PREFIX` (12 characters)": [XPMSTORE, "get", target[:12]],
    }
    slow: dict[str, Callable[[], float]] = {
        "`xpmstore ls --json`": lambda: whole_process([XPMSTORE, "ls", "--json"], workspace),
        "`xpmstore gc --dry-run` (whole process)":
            lambda: whole_process([XPMSTORE, "gc", "--dry-run"], workspace),
        "`gc.mark()` (the mark phase, in process)":
            lambda: in_process(lambda: gc.mark(workspace)),
    }
    figures: dict[str, list[float]] = {name: [] for name in [*fast, *slow]}
    for _ in range(fast_reps):
        for name, command in fast.items():
            figures[name].append(whole_process(command, workspace))
    for _ in range(slow_reps):
        for name, action in slow.items():
            figures[name].append(action())

    print(f"\nCommand line, {count:,} objects ({len(plan.candidates):,} unreachable); whole"
          f" processes unless said; ms, median and min over {fast_reps} (first four lines) or"
          f" {slow_reps} repetitions\n")
    print("| command | ms median | ms min |")
    print("|---|---:|---:|")
    for name, values in figures.items():
        print(f"| {name} | {statistics.median(values):,.1f} | {min(values):,.1f} |")
    checks = {
        "get": statistics.median(figures["`xpmstore get ID` (full identifier)"]),
        "ls --json": statistics.median(figures["`xpmstore ls --json`"]),
        "gc mark": statistics.median(figures["`gc.mark()` (the mark phase, in process)"]),
    }
    print()
    for name, value in checks.items():
        verdict = "met" if value <= TARGETS_MS[name] else "NOT met"
        print(f"target {name} <= {TARGETS_MS[name]:,.0f} ms: {verdict} ({value:,.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
