"""Store lookups against the size of the index: ``Store.get`` and ``Store.status``, p50 and p99.

Run it with ``benchmarks/run lookup`` (``--quick`` for a smoke run): the wrapper creates the
benchmark environment ``benchmarks/.venv-bench``.

For each size (10,000, 100,000 and 1,000,000 objects) a workspace in ``benchmarks/.work/`` holds
an index filled once and reused by later runs while its count is right:

* 2,000 **real** tasks (``Learn`` configs of four params and a tag): their directories hold a
  params.json and a done manifest byte-for-byte like ``objects.run_here`` writes them (checked
  against ``run_here`` for a few), and their records come from ``objects.index_record``;
* the rest **synthetic** records of the same shape (same keys, an identity section of the same
  form, a tag), written straight with ``Index.put_many`` in batches of 50,000; their directories
  do not exist (``get`` and ``status`` are only timed on the real tasks).

Timed, one call at a time (``time.perf_counter_ns`` around each call), over the 2,000 real
tasks in a shuffled order: ``Store.get(identifier)`` (an index read and one ``stat`` for the
status) and ``Store.status(config)`` (the config's identifier computed before timing:
"identifier excluded"; one ``stat``).  For reference, in the same run: ``Index.get`` alone, and
the floors under them, a raw LMDB read transaction + ``json.loads`` and a bare
``os.path.exists`` of the done manifest.  Every lookup is warmed once; each figure is the
median over the repetitions of that repetition's p50 (p99).  The garbage collector is paused
inside timed regions.  There is no anchor: experimaestro 2.7.0 has no index of its objects (a
done check there is a ``stat`` of a marker file too, the last floor line).

``benchmarks/rebuild.py`` reuses the task classes and :func:`write_task` from here.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import lmdb
from blake3 import blake3

import xpmstore
from xpmstore.core.config import class_spec
from xpmstore.core.params import params_of, to_json_bytes
from xpmstore.store import taskdirs
from xpmstore.store.index import Index
from xpmstore.store.lookup import Store
from xpmstore.store.manifest import FileEntry, Manifest
from xpmstore.store.manifest import build as build_manifest
from xpmstore.store.workspace import DONE, Workspace

WORK = Path(__file__).resolve().parent / ".work"
FILL_VERSION = "lookup-1"
"""Change it when the generated content changes: filled indexes of another version are remade."""
SAMPLE = 2_000
BATCH = 50_000
SIZES = (10_000, 100_000, 1_000_000)
CREATED = 1_764_000_000.0  # 2025-11-24: creation time of the generated objects
TARGET_P50_US = 20.0
TARGET_FLAT = 1.25
"""'Flat': the p50 at the largest size is at most this many times the p50 at the smallest."""


# --- the tasks, and their directories as xpmstore writes them -------------------------------------


class Learn(xpmstore.Task):
    """A task of four params (tagged with a seed by :func:`learn`)."""

    __xpmid__ = "bench.store.Learn"
    epochs: xpmstore.Param[int]
    lr: xpmstore.Param[float]
    name: xpmstore.Param[str]
    sizes: xpmstore.Param[list[int]]

    def execute(self) -> None:
        return None


class Evaluate(xpmstore.Task):
    """A task that depends on a Learn (used by the rebuild benchmark)."""

    __xpmid__ = "bench.store.Evaluate"
    model: xpmstore.Param[Learn]
    metric: xpmstore.Param[str]

    def execute(self) -> None:
        return None


def learn(index: int, prefix: str) -> Learn:
    """Learn number ``index`` (distinct for distinct (index, prefix)), tagged ``seed``."""
    task = Learn(epochs=index, lr=1.0 / (index + 1), name=f"{prefix}-{index}",
                 sizes=[index % 7, 64, index % 13])
    task.tag("seed", index % 5)
    return task


def write_task(workspace: Workspace, task: xpmstore.Task,
               created: float) -> tuple[str, dict[str, Any]]:
    """Write ``task``'s directory as ``objects.run_here`` would for a task whose ``execute``
    writes nothing (params.json, then the done manifest listing it), without its fsyncs and
    locks; returns (identifier, index record)."""
    name = class_spec(type(task)).identity_name
    ident = task.__identifier__
    directory = workspace.task_dir(name, ident)
    (directory / ".xpm").mkdir(parents=True, exist_ok=True)
    document = params_of(task)
    params = to_json_bytes(document)
    (directory / "params.json").write_bytes(params)
    manifest = Manifest(ident, "task", name, created,
                        [FileEntry("params.json", len(params), False, blake3(params).hexdigest())],
                        [], taskdirs.task_extra(task))
    (directory / DONE).write_bytes(build_manifest(manifest))
    return ident, taskdirs.index_record(workspace, directory, manifest, document["identity"])


def check_write_task(fresh: Sequence[Callable[[], xpmstore.Task]], where: Path) -> None:
    """Fail unless :func:`write_task` writes what ``objects.run_here`` writes (apart from the
    creation time), for the tasks ``fresh`` builds (each factory called twice: once per
    writer, since run_here binds its task)."""
    shutil.rmtree(where, ignore_errors=True)
    ours, theirs = Workspace.at(where / "ours"), Workspace.at(where / "run_here")
    for make in fresh:
        ident, record = write_task(ours, make(), CREATED)
        directory = taskdirs.run_here(theirs, make())
        mine = ours.task_dir(directory.parent.name, ident)
        if (mine / "params.json").read_bytes() != (directory / "params.json").read_bytes():
            raise AssertionError(f"{ident}: params.json differs from run_here's")
        done = [json.loads((d / DONE).read_bytes()) for d in (mine, directory)]
        for document in done:
            document.pop("created")
        if done[0] != done[1]:
            raise AssertionError(f"{ident}: the done manifest differs from run_here's")
        reference = Index.for_workspace(theirs).get(ident)
        if reference is None or {**reference, "created": CREATED, "last_access": CREATED} != record:
            raise AssertionError(f"{ident}: the index record differs from run_here's")
    shutil.rmtree(where)


# --- filling an index -----------------------------------------------------------------------------


def synthetic(index: int) -> tuple[str, dict[str, Any]]:
    """A synthetic Learn record (identifier, record), shaped like ``objects.index_record``'s."""
    ident = blake3(b"bench.lookup synthetic %d" % index).hexdigest()
    name = "bench.store.Learn"
    return ident, {
        "kind": "task",
        "name": name,
        "path": f"jobs/{name}/{ident}",
        "created": CREATED + index,
        "last_access": CREATED + index,
        "size": 900,
        "tags": {"seed": index % 5},
        "dependencies": [],
        "identity": {"name": name, "pathgens": [], "fields": {
            "epochs": index, "lr": 1.0 / (index + 1), "name": f"synthetic-{index}",
            "sizes": [index % 7, 64, index % 13],
        }},
    }


def same_shape(a: Any, b: Any) -> bool:
    """Whether two JSON values have the same keys and value types, recursively."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_shape(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return all(same_shape(x, y) for x, y in zip(a, b, strict=False))
    return type(a) is type(b)


def index_count(workspace: Workspace) -> int | None:
    """The object count of the workspace's index read with a throw-away read-only handle
    (None when there is no index), so that a wrong index can still be deleted."""
    path = workspace.private / "index"
    if not (path / "data.mdb").exists():
        return None
    env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=8, subdir=True)
    try:
        with env.begin() as txn:
            data = txn.get(b"objects")
            if data is None:
                return None
            return int(txn.stat(env.open_db(b"objects", txn=txn, create=False))["entries"])
    finally:
        env.close()


def filled_workspace(size: int, sample: list[Learn]) -> Workspace:
    """The workspace of ``size`` objects (the tasks of ``sample`` real, the rest synthetic):
    reused when its stamp and count are right, else made again."""
    workspace = Workspace.at(WORK / f"lookup-{size}")
    stamp = workspace.root / "filled.txt"
    wanted = f"{FILL_VERSION} {size} {len(sample)}\n"
    done = [workspace.task_dir("bench.store.Learn", t.__identifier__) / DONE for t in sample]
    if (stamp.exists() and stamp.read_text() == wanted and index_count(workspace) == size
            and all(path.exists() for path in done)):
        print(f"{size:,} objects: reusing {workspace.root}")
        return workspace
    shutil.rmtree(workspace.root, ignore_errors=True)
    workspace.ensure()
    start = time.perf_counter()
    real = [write_task(workspace, task, CREATED) for task in sample]
    if not same_shape(synthetic(0)[1], real[0][1]):
        raise AssertionError("synthetic records are not shaped like objects.index_record's")
    index = Index.for_workspace(workspace)
    for first in range(0, size - len(sample), BATCH):
        last = min(first + BATCH, size - len(sample))
        index.put_many(synthetic(i) for i in range(first, last))
    index.put_many(real)
    if index.count() != size:
        raise AssertionError(f"the index holds {index.count()} objects, expected {size}")
    stamp.write_text(wanted)
    megabytes = (workspace.private / "index" / "data.mdb").stat().st_size / 1e6
    print(f"{size:,} objects: filled in {time.perf_counter() - start:.1f} s "
          f"(index {megabytes:,.0f} MB)")
    return workspace


# --- timing ---------------------------------------------------------------------------------------


@contextmanager
def quiet_gc() -> Iterator[None]:
    """Collect garbage, then pause the collector for the timed region."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def latencies_ns(action: Callable[[int], Any], order: Sequence[int]) -> list[int]:
    """Nanoseconds of each ``action(k)`` for k in ``order``, collector paused."""
    clock = time.perf_counter_ns
    out = []
    with quiet_gc():
        for k in order:
            start = clock()
            action(k)
            out.append(clock() - start)
    return out


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile ``share`` (0..1) of already sorted values."""
    return sorted_values[min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))]


@dataclass
class Row:
    """One lookup, timed at each size: (size → [(p50, p99) per repetition]) in µs."""

    name: str
    figures: dict[int, list[tuple[float, float]]] = field(default_factory=dict)

    def p(self, size: int, which: int) -> float:
        return statistics.median(run[which] for run in self.figures[size])


ROW_NAMES = (
    "`Store.get(identifier)`",
    "`Store.status(config)`, identifier excluded",
    "`Index.get(identifier)` (inside `Store.get`)",
    "floor: LMDB read txn + get + `json.loads`",
    "floor: `os.path.exists(done)` (one bare stat)",
)


def bench_size(size: int, sample: list[Learn], count: int, repetitions: int,
               rows: list[Row]) -> None:
    """Time every lookup over the first ``count`` tasks of ``sample`` against the index of
    ``size`` objects."""
    workspace = filled_workspace(size, sample)
    configs = sample[:count]
    store = Store(workspace)
    index = store.index
    idents = [config.__identifier__ for config in configs]
    raws = [bytes.fromhex(i) for i in idents]
    done = [os.path.join(workspace.task_dir("bench.store.Learn", i), DONE) for i in idents]
    env, objects_db = index.env, index.dbs[b"objects"]

    def raw_get(k: int) -> Any:
        with env.begin(buffers=False) as txn:
            return json.loads(txn.get(raws[k], db=objects_db)[4:])  # past the record's check

    actions: list[Callable[[int], Any]] = [
        lambda k: store.get(idents[k]),
        lambda k: store.status(configs[k]),
        lambda k: index.get(idents[k]),
        raw_get,
        lambda k: os.path.exists(done[k]),
    ]
    for k in range(len(configs)):  # checks, and warm-up of every page and inode used
        record = store.get(idents[k])
        if record.status != "done" or record.identifier != idents[k]:
            raise AssertionError(f"{idents[k]}: Store.get gave {record.status}")
        if store.status(configs[k]) != "done" or not os.path.exists(done[k]):
            raise AssertionError(f"{idents[k]}: Store.status is not done")
        if raw_get(k) != index.get(idents[k]):
            raise AssertionError(f"{idents[k]}: the raw read differs from Index.get")
    if any("_xpm_id" not in config.__dict__ for config in configs):
        raise AssertionError("an identifier would be computed inside the timed region")
    order = list(range(len(configs)))
    shuffle = random.Random(size)
    for row in rows:
        row.figures[size] = []
    for _ in range(repetitions):
        shuffle.shuffle(order)
        for row, action in zip(rows, actions, strict=True):  # alternate: drift hits all alike
            found = sorted(latencies_ns(action, order))
            row.figures[size].append((percentile(found, 0.50) / 1e3,
                                      percentile(found, 0.99) / 1e3))


def report(rows: list[Row], sizes: Sequence[int], count: int, repetitions: int) -> bool:
    """Print the table; whether both targets (p50 and flatness of Store.get/status) are met."""
    print(f"\nLookups: {count:,} done tasks looked up one call at a time, shuffled, warm; "
          f"µs per call, median over {repetitions} repetitions of each repetition's p50 / p99\n")
    header = " | ".join(f"{size:,}: p50 | p99" for size in sizes)
    print(f"| objects in the index → | {header} |")
    print("|---|" + "---:|---:|" * len(sizes))
    for row in rows:
        cells = " | ".join(f"{row.p(s, 0):.1f} | {row.p(s, 1):.1f}" for s in sizes)
        print(f"| {row.name} | {cells} |")
    met = True
    for row in rows[:2]:
        worst = max(row.p(s, 0) for s in sizes)
        growth = row.p(sizes[-1], 0) / row.p(sizes[0], 0)
        fast, flat = worst <= TARGET_P50_US, growth <= TARGET_FLAT
        met = met and fast and flat
        print(f"\ntarget {row.name}: p50 ≤ {TARGET_P50_US:.0f} µs {'met' if fast else 'NOT met'} "
              f"(worst {worst:.1f} µs); flat {sizes[0]:,} → {sizes[-1]:,} "
              f"(p50 ≤ {TARGET_FLAT}x) {'met' if flat else 'NOT met'} ({growth:.2f}x)")
    return met


# --- main -----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Fill (or reuse) the indexes, time the lookups, print the table; exit status 0 even when a
    target is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 10,000 objects only, 500 lookups, 3 repetitions")
    parser.add_argument("--repetitions", type=int, default=None,
                        help="repetitions (default 9, 3 with --quick)")
    args = parser.parse_args(argv)
    sizes = SIZES[:1] if args.quick else SIZES
    count = 500 if args.quick else SAMPLE
    repetitions = args.repetitions or (3 if args.quick else 9)
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, "
          f"xpmstore {xpmstore.__version__}, lmdb {version('lmdb')} (LMDB "
          f"{'.'.join(map(str, lmdb.version()))})")
    WORK.mkdir(exist_ok=True)
    check_write_task([lambda: learn(0, "check"), lambda: learn(1, "check")],
                     WORK / "lookup-check")
    sample = [learn(i, "sample") for i in range(SAMPLE)]
    rows = [Row(name) for name in ROW_NAMES]
    for size in sizes:
        bench_size(size, sample, count, repetitions, rows)
    met = report(rows, sizes, count, repetitions)
    print(f"\ntargets: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
