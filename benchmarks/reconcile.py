"""The store at a million objects: reconciling the index with the disk, and gc's mark.

Run it with ``benchmarks/run reconcile`` (``--objects N``, default 1,000,000; ``--quick``:
20,000).  ``--baseline DIR`` also runs the mark of another checkout of xpmstore (its ``DIR`` on
``PYTHONPATH`` in the child), for a before/after in one run.

The workspace ``benchmarks/.work/reconcile-<n>`` is made once and reused while its stamp is
right: n/2 ``Learn`` and n/2 ``Evaluate`` task directories (each Evaluate depending on one
Learn), each a real directory holding ``.xpm/done`` (an empty file: neither the reconcile nor
the mark reads a done manifest the index knows), their records in the index (synthetic, shaped
like ``taskdirs.index_record``'s, identity section included), 1,000 Evaluate directories that
are not done (failed leftovers), and three successful runs of an experiment ``bench``, each
naming a tenth of the Evaluates with their dependency: gc's roots reach 20% of the store.  At
1M objects it takes about 10 GB and 3M inodes (directories: 4 KiB each on ext4).

Timed, page cache warm, garbage collector on (as for a user):

* **reconcile, nothing changed** — :func:`xpmstore.store.reconcile.reconcile`, what ``ls``,
  ``find`` (``Store.reconcile``), gc and a prefix ``get`` run first; median of 7;
* its anchor, **the full listing** ls, find and gc made before: every object directory listed
  and its done manifest ``stat``-ed (``locate.scan_objects``), then the index compared with it
  (``gc.reconcile_listing``); median of 3;
* **after one change**: a task directory created in the Learn folder (that folder is listed
  again, and only the new directory checked), and a not-done directory that becomes done in
  place (no folder listed); median of 5 each;
* **gc's mark** (``gc.mark``) in a new process, once per line: wall time, peak anonymous memory
  (``RssAnon`` of ``/proc/self/status`` sampled every 5 ms: the index's pages, mapped from its
  file, are page cache, not the process's memory), ``ru_maxrss`` (which counts those pages),
  and in another process the peak of Python's allocations (``tracemalloc``).  Checked: the
  number of candidates and of reached objects.

Targets: reconcile with nothing changed ≤ 0.3 s at 1M objects; the mark's peak memory ≤ 300 MB
at 1M objects.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from blake3 import blake3

WORK = Path(__file__).resolve().parent / ".work"
FILL_VERSION = "reconcile-1"
CREATED = 1_764_000_000.0
BATCH = 50_000
FAILED = 1_000
TARGET_RECONCILE_S = 0.3
TARGET_MARK_MB = 300.0
LEARN, EVALUATE = "bench.store.Learn", "bench.store.Evaluate"


def ident(kind: str, number: int) -> str:
    """The identifier of synthetic object ``number`` of ``kind``."""
    return blake3(f"bench.reconcile {kind} {number}".encode()).hexdigest()


def record(kind: str, number: int) -> dict[str, Any]:
    """The index record of a synthetic task (Learn: four params and a tag; Evaluate: one
    Learn), shaped like ``taskdirs.index_record``'s."""
    name = LEARN if kind == "learn" else EVALUATE
    identifier = ident(kind, number)
    if kind == "learn":
        fields: dict[str, Any] = {"epochs": number, "lr": 1.0 / (number + 1),
                                  "name": f"synthetic-{number}", "sizes": [number % 7, 64]}
        dependencies: list[str] = []
    else:
        dependencies = [ident("learn", number)]
        fields = {"metric": ("ndcg", "map")[number % 2], "model": {"$task": dependencies[0]}}
    return {"kind": "task", "name": name, "path": f"jobs/{name}/{identifier}",
            "created": CREATED + 2 * number, "last_access": CREATED + 2 * number, "size": 900,
            "tags": {"seed": number % 5}, "dependencies": dependencies,
            "identity": {"name": name, "pathgens": [], "fields": fields}}


def make_dir(folder: str, identifier: str, done: bool) -> None:
    """``folder/identifier/.xpm/`` and, when ``done``, an empty ``.xpm/done``."""
    directory = f"{folder}/{identifier}"
    os.mkdir(directory)
    os.mkdir(f"{directory}/.xpm")
    if done:
        os.close(os.open(f"{directory}/.xpm/done", os.O_WRONLY | os.O_CREAT, 0o644))


def filled(count: int) -> Any:
    """The workspace of ``count`` objects (see the module doc), made once."""
    from xpmstore.scheduler.runlog import RunRecord
    from xpmstore.store.index import Index
    from xpmstore.store.workspace import Workspace

    workspace = Workspace.at(WORK / f"reconcile-{count}")
    stamp = workspace.root / "filled.txt"
    wanted = f"{FILL_VERSION} {count}\n"
    if stamp.exists() and stamp.read_text() == wanted:
        print(f"{count:,} objects: reusing {workspace.root}")
        return workspace
    shutil.rmtree(workspace.root, ignore_errors=True)
    workspace.ensure()
    start = time.perf_counter()
    half = count // 2
    index = Index.for_workspace(workspace)
    for kind, name in (("learn", LEARN), ("evaluate", EVALUATE)):
        folder = str(workspace.jobs / name)
        os.mkdir(folder)
        for first in range(0, half, BATCH):
            numbers = range(first, min(first + BATCH, half))
            for number in numbers:
                make_dir(folder, ident(kind, number), True)
            index.put_many((ident(kind, n), record(kind, n)) for n in numbers)
    for number in range(FAILED):  # failed leftovers: directories that are not done
        make_dir(str(workspace.jobs / EVALUATE), ident("failed", number), False)
    used = count // 10
    for first in (0, used // 2, used):
        run = RunRecord(workspace.experiments, "bench")
        run.append_many([{"type": "job", "id": ident("evaluate", n), "name": EVALUATE,
                          "reason": "ran:new", "tags": {},
                          "dependencies": [ident("learn", n)]}
                         for n in range(first, first + used)])
        run.end("ok")
    past = time.time() - 3600  # as if the last change was an hour ago
    for name in (LEARN, EVALUATE):
        os.utime(workspace.jobs / name, (past, past))
    stamp.write_text(wanted)
    print(f"{count:,} objects: made in {time.perf_counter() - start:.0f} s")
    return workspace


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


# --- gc's mark in a child process -----------------------------------------------------------


def _rss_anon_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def child_mark(root: str, traced: bool) -> None:
    """In a new process: gc.mark of the workspace; print JSON figures."""
    import tracemalloc

    from xpmstore.admin import gc as gc_module
    from xpmstore.store.workspace import Workspace

    workspace = Workspace.at(root)
    peak = [_rss_anon_kb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], _rss_anon_kb())

    if traced:
        tracemalloc.start()
    sampler = threading.Thread(target=sample, daemon=True)
    before = _rss_anon_kb()
    sampler.start()
    elapsed, plan = timed(lambda: gc_module.mark(workspace))
    stop.set()
    sampler.join()
    figures = {"seconds": elapsed, "candidates": len(plan.candidates),
               "reachable": len(plan.reachable), "objects": plan.objects,
               "rss_anon_before_mb": before / 1024, "rss_anon_peak_mb":
                   max(peak[0], _rss_anon_kb()) / 1024,
               "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if traced:
        figures["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    print(json.dumps(figures))


def run_mark(root: str, traced: bool, baseline: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if baseline:
        env["PYTHONPATH"] = baseline
    done = subprocess.run([sys.executable, __file__, "--child-mark", root]
                          + (["--traced"] if traced else []),
                          env=env, capture_output=True, text=True, check=False, cwd="/")
    if done.returncode != 0:
        raise AssertionError(f"the mark's process failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Make (or reuse) the workspace, time every line, print the tables."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 objects")
    parser.add_argument("--baseline", help="another checkout whose mark is measured too")
    parser.add_argument("--child-mark", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_mark:
        child_mark(args.child_mark, args.traced)
        return 0
    count = 20_000 if args.quick else args.objects
    import xpmstore
    from xpmstore.admin import gc as gc_module
    from xpmstore.store.index import Index
    from xpmstore.store.locate import bulk
    from xpmstore.store.objectdirs import scan_objects
    from xpmstore.store.reconcile import reconcile

    print(f"python {platform.python_version()}, {os.cpu_count()} cores, "
          f"xpmstore {xpmstore.__version__}, lmdb {version('lmdb')}")
    WORK.mkdir(exist_ok=True)
    workspace = filled(count)
    index = Index.for_workspace(workspace)
    first, found = timed(lambda: reconcile(index, workspace))
    print(f"first reconcile (no stamps yet, or stamps of another run): {first:.2f} s, "
          f"{found.folders} folders listed")
    quiet = reconcile(index, workspace)
    if quiet.folders or quiet.added or quiet.removed or len(quiet.unindexed) != FAILED:
        raise AssertionError(f"nothing changed, yet {quiet[:3]}, {len(quiet.unindexed)} "
                             "unindexed")

    def full_listing() -> tuple[int, int]:
        with bulk():
            directories = scan_objects(workspace)
            return gc_module.reconcile_listing(
                index, workspace, {d.identifier: d.path for d in directories if d.done})

    rows: dict[str, list[float]] = {"unchanged": [], "anchor": [], "new task": [],
                                    "done in place": []}
    for _ in range(7):
        rows["unchanged"].append(timed(lambda: reconcile(index, workspace))[0])
    for _ in range(3):
        seconds, counts = timed(full_listing)
        if counts != (0, 0):
            raise AssertionError(f"the full listing changed the index: {counts}")
        rows["anchor"].append(seconds)
    learn_folder = workspace.jobs / LEARN
    past = time.time() - 3600
    for number in range(5):  # one new task directory, done, in the folder of 500k
        extra = ident("extra", number)
        make_dir(str(learn_folder), extra, True)
        index.put(extra, {**record("learn", 10**9 + number), "path": f"jobs/{LEARN}/{extra}"})
        os.utime(learn_folder, (past, past))  # not racy: listed once, as after a real change
        seconds, done = timed(lambda: reconcile(index, workspace))
        if done.folders != 1:
            raise AssertionError(f"a new task: {done.folders} folders listed")
        rows["new task"].append(seconds)
        shutil.rmtree(learn_folder / extra)
        os.utime(learn_folder, (past, past))
        reconcile(index, workspace)
    failed = workspace.jobs / EVALUATE
    for number in range(5):  # a failed directory becomes done in place
        directory = failed / ident("failed", number)
        os.close(os.open(directory / ".xpm" / "done", os.O_WRONLY | os.O_CREAT, 0o644))
        seconds, done = timed(lambda: reconcile(index, workspace))
        seen = [d.identifier for d in done.unindexed if d.done]  # done, its manifest unreadable
        if done.folders != 0 or seen != [directory.name]:
            raise AssertionError(f"done in place: {done.folders} folders listed, {seen} done")
        rows["done in place"].append(seconds)
        os.unlink(directory / ".xpm" / "done")
        reconcile(index, workspace)
    after = reconcile(index, workspace)
    if after.folders or len(after.unindexed) != FAILED or any(d.done for d in after.unindexed):
        raise AssertionError(f"not back to the start: {after[:3]}")

    median = {name: statistics.median(values) for name, values in rows.items()}
    print(f"\nReconcile, {count:,} objects ({FAILED:,} not done); s, median (min)\n")
    print("| reconcile | s median | s min |")
    print("|---|---:|---:|")
    for name, label in (("unchanged", "nothing changed (`reconcile`: ls, find, gc, prefix get)"),
                        ("anchor", "anchor: the full listing they made before "
                                   "(`scan_objects` + `reconcile_listing`)"),
                        ("new task", "one new task directory in the folder of "
                                     f"{count // 2:,} (that folder listed)"),
                        ("done in place", "one not-done directory became done in place")):
        print(f"| {label} | {median[name]:.4f} | {min(rows[name]):.4f} |")
    print(f"| ratio anchor / nothing changed | {median['anchor'] / median['unchanged']:,.0f}x | |")

    print(f"\ngc's mark, {count:,} objects, each in a new process\n")
    print("| code | s | peak RssAnon MB | ru_maxrss MB | tracemalloc peak MB | candidates "
          "| reached |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    results = {}
    for label, baseline in (("this code", None), ("baseline", args.baseline)):
        if label == "baseline" and not baseline:
            continue
        plain = run_mark(str(workspace.root), False, baseline)
        traced = run_mark(str(workspace.root), True, baseline)
        expected = (count * 8 // 10 + FAILED, count * 2 // 10)
        if (plain["candidates"], plain["reachable"]) != expected:
            raise AssertionError(f"{label}: {plain['candidates']} candidates, "
                                 f"{plain['reachable']} reached, expected {expected}")
        results[label] = plain
        print(f"| {label} | {plain['seconds']:.1f} | {plain['rss_anon_peak_mb']:,.0f} "
              f"| {plain['maxrss_mb']:,.0f} | {traced['traced_peak_mb']:,.0f} "
              f"| {plain['candidates']:,} | {plain['reachable']:,} |")
    print()
    verdict = "met" if median["unchanged"] <= TARGET_RECONCILE_S else "NOT met"
    print(f"target reconcile, nothing changed, <= {TARGET_RECONCILE_S} s: {verdict} "
          f"({median['unchanged']:.4f} s)")
    mark_mb = results["this code"]["rss_anon_peak_mb"]
    verdict = "met" if mark_mb <= TARGET_MARK_MB else "NOT met"
    print(f"target gc mark peak memory <= {TARGET_MARK_MB:.0f} MB: {verdict} ({mark_mb:,.0f} MB"
          f" at {count:,} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
