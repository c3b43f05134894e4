"""``Store.rebuild()`` over 100,000 real task directories, and where its time goes.

Run it with ``benchmarks/run rebuild`` (``--quick`` for a smoke run): the wrapper creates the
benchmark environment ``benchmarks/.venv-bench``.

The workspace ``benchmarks/.work/rebuild-100000`` (made once, reused while its stamp and its
count of task directories are right) holds 50,000 ``Learn`` tasks (four params, a tag) and
50,000 ``Evaluate`` tasks (each holding one Learn: a dependency), written by
``lookup.write_task``: a params.json and a done manifest byte-for-byte like ``objects.run_here``
writes them (checked against ``run_here`` for a few of each class).

Timed, in the same run: ``Store.rebuild()`` (list the directories, read each object's done
manifest and params.json, replace every record in one write transaction), and its parts one at a
time: ``objects.list_object_dirs``, ``objects.record_from_disk`` for every directory, and
``Index.replace_all`` of the records.  For reference, the floor of the reading part without
xpmstore: ``os.scandir`` of the folders, then both files of each task read and ``json.loads``-ed.
There is no anchor (experimaestro 2.7.0 has no index to rebuild).  Page cache warm (one untimed
pass over the files first); median and minimum over the repetitions; the garbage collector is
left on, as it is for a user calling ``rebuild``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import lmdb
from lookup import CREATED, WORK, Evaluate, check_write_task, learn, write_task

import xpmstore
from xpmstore.core.params import params_of
from xpmstore.store import taskdirs
from xpmstore.store.lookup import Store
from xpmstore.store.workspace import DONE, Workspace

FILL_VERSION = "rebuild-1"
"""Change it when the generated content changes: trees of another version are made again."""
COUNT = 100_000
TARGET_SECONDS = 30.0


def evaluate(index: int) -> Evaluate:
    """Evaluate number ``index``: it holds ``learn(index, "rebuild")``."""
    return Evaluate(model=learn(index, "rebuild"), metric=("ndcg", "map")[index % 2])


def tree(count: int) -> Workspace:
    """The workspace of ``count`` done tasks (half Learn, half Evaluate), made once."""
    workspace = Workspace.at(WORK / f"rebuild-{count}")
    stamp = workspace.root / "filled.txt"
    wanted = f"{FILL_VERSION} {count}\n"
    if (stamp.exists() and stamp.read_text() == wanted
            and len(taskdirs.list_object_dirs(workspace)) == count):
        print(f"reusing {workspace.root}")
        return workspace
    shutil.rmtree(workspace.root, ignore_errors=True)
    workspace.ensure()
    start = time.perf_counter()
    for index in range(count // 2):
        task = evaluate(index)
        write_task(workspace, task.model, CREATED + 2 * index)
        write_task(workspace, task, CREATED + 2 * index + 1)
    stamp.write_text(wanted)
    print(f"made {count:,} task directories in {time.perf_counter() - start:.1f} s")
    return workspace


def floor_read(workspace: Workspace) -> int:
    """Read and parse both files of every task directory, no xpmstore; returns the count."""
    count = 0
    for top in os.scandir(workspace.jobs):
        for entry in os.scandir(top.path):
            with open(os.path.join(entry.path, DONE), "rb") as handle:
                json.loads(handle.read())
            with open(os.path.join(entry.path, "params.json"), "rb") as handle:
                json.loads(handle.read())
            count += 1
    return count


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of ``action()``."""
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    """Make (or reuse) the tree, time the rebuild and its parts, print the table; exit status 0
    even when the target is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2,000 task directories, 3 repetitions")
    parser.add_argument("--repetitions", type=int, default=3, help="repetitions (default 3)")
    args = parser.parse_args(argv)
    count = 2_000 if args.quick else COUNT
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, "
          f"xpmstore {xpmstore.__version__}, lmdb {version('lmdb')}")
    WORK.mkdir(exist_ok=True)
    check_write_task([lambda: learn(0, "check"), lambda: evaluate(0), lambda: evaluate(1)],
                     WORK / "rebuild-check")
    workspace = tree(count)
    store = Store(workspace)
    index = store.index
    if floor_read(workspace) != count:  # also warms the page cache
        raise AssertionError("the tree does not hold the expected number of tasks")

    records: list[tuple[str, dict[str, Any]]] = []
    directories: list[Any] = []

    def list_dirs() -> int:
        directories[:] = taskdirs.list_object_dirs(workspace)
        return len(directories)

    def read_records() -> int:
        records[:] = [(d.name, taskdirs.record_from_disk(workspace, d)) for d in directories]
        return len(records)

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("floor: `os.scandir` + read both files + `json.loads`, no xpmstore",
         lambda: floor_read(workspace)),
        ("`objects.list_object_dirs`", list_dirs),
        ("`objects.record_from_disk` × every directory", read_records),
        ("`Index.replace_all` (one write transaction)", lambda: index.replace_all(records)),
        ("`Store.rebuild()` (all of the above)", store.rebuild),
    ]
    seconds: dict[str, list[float]] = {name: [] for name, _ in steps}
    for _ in range(args.repetitions):
        for name, action in steps:
            elapsed, found = timed(action)
            if found != count:
                raise AssertionError(f"{name}: {found} objects, expected {count}")
            seconds[name].append(elapsed)
        if any(record is None for _, record in records):
            raise AssertionError("a task directory was not readable as a done object")
    if index.count() != count:
        raise AssertionError(f"the index holds {index.count()} objects after the rebuild")
    for index_number in (0, count // 2 - 1):
        task = evaluate(index_number)
        for config in (task.model, task):
            record = index.get(config.__identifier__)
            if record is None or record["identity"] != params_of(config)["identity"]:
                raise AssertionError(f"{config.__identifier__}: wrong record after the rebuild")
            if store.status(config) != "done":
                raise AssertionError(f"{config.__identifier__}: not done after the rebuild")

    megabytes = (workspace.private / "index" / "data.mdb").stat().st_size / 1e6
    print(f"\nRebuild: {count:,} task directories ({count // 2:,} Learn, {count // 2:,} Evaluate "
          f"with a dependency), page cache warm; index {megabytes:,.0f} MB (LMDB "
          f"{'.'.join(map(str, lmdb.version()))}); {args.repetitions} repetitions\n")
    print("| step | s median | s min | µs/object median |")
    print("|---|---:|---:|---:|")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {min(values):.2f} | {median / count * 1e6:.1f} |")
    total = statistics.median(seconds["`Store.rebuild()` (all of the above)"])
    scaled = total * COUNT / count
    met = scaled <= TARGET_SECONDS
    note = "" if count == COUNT else f", {scaled:.1f} s scaled to {COUNT:,}"
    print(f"\ntarget rebuild of {COUNT:,} ≤ {TARGET_SECONDS:.0f} s: {'met' if met else 'NOT met'} "
          f"({total:.1f} s{note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
