"""``Store.table`` over a sweep of 10,000 done tasks, each with a metrics file.

Run it with ``benchmarks/run table`` (``--quick`` for a smoke run: 1,000 tasks).

The workspace ``benchmarks/.work/table-<count>`` (made once, reused while its stamp is right)
holds a sweep of ``count`` ``Evaluate`` tasks, each holding its own ``Learn`` (four params, a
tag): ``2 × count`` task directories written by ``lookup.write_task`` (params.json and a done
manifest as ``objects.run_here`` writes them), each Evaluate with a ``metrics.json`` of three
values, one of them nested; the index is filled by ``Store.rebuild()``.

Timed (the target of issue 14: ≤ 2 s at 10,000 tasks):

* ``store.table(Evaluate)``: the index reconciled with the directories, every Evaluate's record
  read, its ``learned`` reference followed (the Learn's identity section from the index), the
  params that differ found, each metrics file opened and parsed — in a new ``Store`` each time,
  as a command would;
* ``store.table(Learn, metrics=None)``: the same without the metrics files;
* the floor: ``os.scandir`` of the Evaluate folder, each metrics file read and parsed, no
  xpmstore.

Page cache warm (one untimed call first); medians over the repetitions.
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
from typing import Any

from lookup import CREATED, WORK, Evaluate, Learn, learn, write_task

from xpmstore.store.lookup import Store
from xpmstore.store.workspace import Workspace

FILL_VERSION = "table-1"
"""Change it when the generated content changes: sweeps of another version are made again."""
TARGET_SECONDS = 2.0


def evaluate(index: int) -> Evaluate:
    return Evaluate(model=learn(index, "table"), metric=("ndcg", "map")[index % 2])


def sweep(count: int) -> Workspace:
    """The workspace of the sweep of ``count`` Evaluate tasks (made once)."""
    workspace = Workspace.at(WORK / f"table-{count}")
    stamp = workspace.root / "filled.txt"
    wanted = f"{FILL_VERSION} {count}\n"
    if stamp.exists() and stamp.read_text() == wanted:
        print(f"reusing {workspace.root}")
        return workspace
    shutil.rmtree(workspace.root, ignore_errors=True)
    workspace.ensure()
    start = time.perf_counter()
    for index in range(count):
        task = evaluate(index)
        write_task(workspace, task.model, CREATED + 2 * index)
        ident, _ = write_task(workspace, task, CREATED + 2 * index + 1)
        metrics = {"ndcg": round(index / count, 6), "map": index % 17 / 17,
                   "eval": {"queries": 50 + index % 3}}
        (workspace.task_dir("bench.store.Evaluate", ident) / "metrics.json").write_text(
            json.dumps(metrics))
    Store(workspace).rebuild()
    stamp.write_text(wanted)
    print(f"made {2 * count:,} task directories and their index in"
          f" {time.perf_counter() - start:.1f} s")
    return workspace


def floor(workspace: Workspace) -> int:
    """Read and parse every Evaluate's metrics file, no xpmstore; returns the count."""
    count = 0
    with os.scandir(workspace.jobs / "bench.store.Evaluate") as entries:
        for entry in entries:
            with open(os.path.join(entry.path, "metrics.json"), "rb") as handle:
                json.loads(handle.read())
            count += 1
    return count


def timed(action: Callable[[], Any], repetitions: int) -> tuple[float, Any]:
    action()  # warm: the page cache, the index's pages
    times, result = [], None
    for _ in range(repetitions):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 tasks")
    args = parser.parse_args(argv)
    count, repetitions = (1_000, 3) if args.quick else (10_000, 5)
    workspace = sweep(count)
    print(f"Store.table over a sweep of {count:,} tasks (each with its Learn), median of"
          f" {repetitions}; Python {platform.python_version()}, {os.cpu_count()} cores")
    table_s, rows = timed(lambda: Store(workspace).table(Evaluate), repetitions)
    if len(rows) != count or set(rows[0]) != {
            "id", "model.epochs", "model.lr", "model.name", "model.sizes", "metric", "tag:seed",
            "ndcg", "map", "eval.queries"}:
        raise AssertionError(f"unexpected table: {len(rows)} rows, columns {list(rows[0])}")
    learn_s, learned = timed(lambda: Store(workspace).table(Learn, metrics=None), repetitions)
    if len(learned) != count:
        raise AssertionError(f"unexpected table of Learn: {len(learned)} rows")
    floor_s, read = timed(lambda: floor(workspace), repetitions)
    if read != count:
        raise AssertionError(f"the floor read {read} files")
    print(f"\n{'measure':<44} {'seconds':>8} {'µs a task':>10}")
    for label, seconds in ((f"store.table(Evaluate) ({len(rows[0])} columns)", table_s),
                           ("store.table(Learn, metrics=None)", learn_s),
                           ("floor: read and parse the metrics files", floor_s)):
        print(f"{label:<44} {seconds:8.3f} {seconds / count * 1e6:10.1f}")
    met = table_s <= TARGET_SECONDS * count / 10_000
    print(f"\nstore.table(Evaluate) at {count:,} tasks: {table_s:.2f} s (target ≤"
          f" {TARGET_SECONDS * count / 10_000:.1f} s): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
