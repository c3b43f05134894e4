"""``@cache`` hits against ``joblib.Memory`` hits, the anchor, in one run.

Run it with ``benchmarks/run cache`` (``--quick`` for a smoke run): the wrapper creates the
benchmark environment ``benchmarks/.venv-bench`` where both libraries are installed.

Two measurements, each printed as a table:

* **Hits in one process.** The same 1 KiB payload cached by both systems, both caches warm, many
  hits in a row on the same config object / the same joblib argument.  xpmstore's cached method
  reads its file and returns the bytes (``return path.read_bytes()``, computing on
  FileNotFoundError); joblib's cached function returns the bytes, which joblib unpickles on a hit.
  Also xpmstore with the pattern of docs/store.md (``if path.is_file(): return
  path.read_bytes()``: one more stat), and for reference xpmstore's own overhead (a cached method
  whose body returns None without touching the file), the body alone (no cache) and a plain
  function call.  Median (and minimum) over the repetitions, per call.
* **A hit in a new process.** This script started again with ``--child <system>``: it imports
  the library, defines the cached function, and calls it once, which is a hit.  The child reports
  its import time and its first-call latency (xpmstore: config construction and identifier
  included; joblib: ``Memory`` and the decorator included); the parent times the whole process,
  and the same script doing nothing (``--child none``) gives the interpreter's own start.
  xpmstore is measured twice: when the entry was last accessed more than a minute ago (the hit
  records the access in the index: one write transaction; the usual case for a new process) and
  when it was accessed within the minute (nothing written).  Median over the processes.

The caches live in ``benchmarks/.work/`` and are emptied at the start of each run, so the parent
computes each entry once (a miss) and every timed call is a hit (checked).  The garbage collector
is paused inside timed regions and run between them.
"""

import argparse
import gc
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

WORK = Path(__file__).resolve().parent / ".work"
XPM_WORKSPACE = WORK / "cache-workspace"
JOBLIB_LOCATION = WORK / "cache-joblib"
PAYLOAD_SIZE = 1024
TARGET_SPEEDUP = 10.0
"""A hit with a new config object each call, against joblib's hit."""
TARGET_SAME_OBJECT = 20.0
"""A hit on the same config object, against joblib's hit."""

COMPUTED: list[str] = []
"""One entry per miss (a cached body that computed): must stay empty while timing hits."""


def payload() -> bytes:
    """The cached value: 1 KiB of fixed pseudo-random bytes."""
    return random.Random(20261125).randbytes(PAYLOAD_SIZE)


# --- the cached functions, in both systems (imported only by the side that uses them) -----------


def xpmstore_side() -> type:
    """Import xpmstore and define the config whose methods are cached; returns the class."""
    import xpmstore

    class Payload(xpmstore.Config):
        """xpmstore: a config with a cached 1 KiB payload and a cached no-op."""

        __xpmid__ = "bench.cache.Payload"
        key: xpmstore.Param[int]

        @xpmstore.cache("payload.bin")
        def read(self, path: Path) -> bytes:
            try:
                return path.read_bytes()
            except FileNotFoundError:  # a miss: compute and write
                COMPUTED.append("xpmstore read")
                data = payload()
                path.write_bytes(data)
                return data

        @xpmstore.cache("payload-checked.bin")
        def read_checked(self, path: Path) -> bytes:
            if path.is_file():  # the pattern of docs/store.md: one more stat than `read`
                return path.read_bytes()
            COMPUTED.append("xpmstore read_checked")
            data = payload()
            path.write_bytes(data)
            return data

        @xpmstore.cache("empty.bin")
        def empty(self, path: Path) -> None:
            return None

    return Payload


def payload_for(key: int) -> bytes:
    """joblib: the function whose result joblib caches (the same payload for every key)."""
    COMPUTED.append("joblib")
    return payload()


def joblib_side() -> Callable[[int], bytes]:
    """Import joblib and return ``payload_for`` cached by a ``joblib.Memory``."""
    import joblib

    return joblib.Memory(str(JOBLIB_LOCATION), verbose=0).cache(payload_for)


def body_alone(path: Path) -> bytes:
    """The body of ``Payload.read`` on a hit, without the cache around it."""
    return path.read_bytes()


def plain() -> None:
    """A plain function call, for reference."""
    return None


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


def per_call_seconds(action: Callable[[], Any], calls: int) -> float:
    """Seconds per call of ``action`` over ``calls`` calls in a row, collector paused."""
    with quiet_gc():
        start = time.perf_counter()
        for _ in range(calls):
            action()
        elapsed = time.perf_counter() - start
    return elapsed / calls


@dataclass
class Row:
    """One line of the in-process table."""

    name: str
    action: Callable[[], Any]
    calls: int
    seconds: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.seconds) * 1e6

    @property
    def min_us(self) -> float:
        return min(self.seconds) * 1e6


def bench_in_process(calls: int, repetitions: int) -> bool:
    """Time hits of both caches in this process; print the table; whether the target is met."""
    import joblib

    import xpmstore
    from xpmstore.store.workspace import Workspace, set_active_workspace

    set_active_workspace(Workspace.at(XPM_WORKSPACE))
    config = xpmstore_side()(key=1)
    cached = joblib_side()
    expected = payload()
    # warm-up: one miss each (the caches were emptied), then hits
    for _ in range(3):
        if (config.read() != expected or config.read_checked() != expected
                or cached(1) != expected or config.empty() is not None):
            raise AssertionError("a cache returned the wrong value")
    if sorted(COMPUTED) != ["joblib", "xpmstore read", "xpmstore read_checked"]:
        raise AssertionError(f"expected exactly one miss per cached function, got {COMPUTED}")
    COMPUTED.clear()
    file = next(XPM_WORKSPACE.glob("cache/bench.cache.Payload/*/payload.bin"))

    xpm = f"xpmstore {xpmstore.__version__}"
    joblib_calls = max(calls // 10, 1)
    cls = type(config)
    rows = [
        Row("plain function call (reference)", plain, calls),
        Row("`path.read_bytes()` of the 1 KiB file, no cache (reference)",
            lambda: body_alone(file), calls),
        Row("`Payload(key=1)`: a new config object, no cache (reference)",
            lambda: cls(key=1), calls),
        Row(f"{xpm} `@cache` hit, same object, empty body (xpmstore's own overhead)",
            config.empty, calls),
        Row(f"{xpm} `@cache` hit, same object, 1 KiB: body `read_bytes()`", config.read, calls),
        Row(f"{xpm} `@cache` hit, same object, 1 KiB: body `is_file()` + `read_bytes()` "
            "(docs pattern)", config.read_checked, calls),
        Row(f"{xpm} `@cache` hit, new object each call, empty body: `Payload(key=1).empty()`",
            lambda: cls(key=1).empty(), calls),
        Row(f"{xpm} `@cache` hit, new object each call, 1 KiB: `Payload(key=1).read()`",
            lambda: cls(key=1).read(), calls),
        Row(f"joblib {joblib.__version__} `Memory.cache` hit, 1 KiB", lambda: cached(1),
            joblib_calls),
    ]
    for row in rows:  # warm-up of the loop itself
        per_call_seconds(row.action, min(row.calls, 100))
    for _ in range(repetitions):  # the rows alternate, so drift on the machine hits all alike
        for row in rows:
            row.seconds.append(per_call_seconds(row.action, row.calls))
    if COMPUTED:
        raise AssertionError(f"a timed call missed the cache: {COMPUTED}")

    print(f"\nHits in one process: 1 KiB payload, warm caches, same config / same argument; "
          f"per call, median (min) of {repetitions} repetitions of {calls:,} calls "
          f"({joblib_calls:,} for joblib)\n")
    print("| call | µs/call median | µs/call min |")
    print("|---|---:|---:|")
    for row in rows:
        print(f"| {row.name} | {row.median_us:.2f} | {row.min_us:.2f} |")
    anchor = rows[-1]
    ratios = [  # (label, row, target)
        ("new object each call, 1 KiB hit", rows[7], TARGET_SPEEDUP),
        ("new object each call, xpmstore's own overhead", rows[6], None),
        ("same object, 1 KiB hit", rows[4], TARGET_SAME_OBJECT),
        ("same object, 1 KiB hit, docs pattern", rows[5], None),
        ("same object, xpmstore's own overhead", rows[3], TARGET_SAME_OBJECT),
    ]
    for label, row, _ in ratios:
        print(f"| ratio joblib/xpmstore ({label}) "
              f"| {anchor.median_us / row.median_us:.1f}x | {anchor.min_us / row.min_us:.1f}x |")
    print()
    met = True
    for label, row, target in ratios:
        if target is not None:
            ratio = anchor.median_us / row.median_us
            met = met and ratio >= target
            print(f"target ({label}) ≥ {target:.0f}x less time than joblib's: "
                  f"{'met' if ratio >= target else 'NOT met'} ({ratio:.1f}x)")
    return met


# --- a hit in a new process -----------------------------------------------------------------------


def child(system: str) -> None:
    """One new-process hit: print JSON {import_s, first_call_s, missed}."""
    start = time.perf_counter()
    if system == "xpmstore":
        cls = xpmstore_side()
        imported = time.perf_counter()
        value = cls(key=1).read()
    elif system == "joblib":
        cached = joblib_side()
        imported = time.perf_counter()
        value = cached(1)
    else:
        imported = time.perf_counter()
        value = payload()
    first = time.perf_counter()
    if value != payload():
        raise AssertionError(f"{system}: wrong value in the child")
    print(json.dumps({"import_s": imported - start, "first_call_s": first - imported,
                      "missed": bool(COMPUTED)}))


@dataclass
class ProcessRow:
    """One line of the new-process table."""

    name: str
    system: str
    prepare: Callable[[], None]
    wall: list[float] = field(default_factory=list)
    imports: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)


def run_child(system: str) -> tuple[float, dict[str, Any]]:
    """(wall seconds, report) of one child process."""
    env = dict(os.environ, XPMSTORE_WORKSPACE=str(XPM_WORKSPACE))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", system], env=env, check=True,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    report = json.loads(done.stdout)
    if report["missed"]:
        raise AssertionError(f"{system}: the child missed the cache")
    return wall, report


def bench_new_process(processes: int) -> None:
    """Time a first hit in new processes; print the table."""
    import joblib

    import xpmstore
    from xpmstore.core.identifier import cache_identifier
    from xpmstore.store.index import Index
    from xpmstore.store.workspace import Workspace

    entry = cache_identifier(xpmstore_side()(key=1).__identifier__, "payload.bin")
    index = Index.for_workspace(Workspace.at(XPM_WORKSPACE))
    if index.get(entry) is None:
        raise AssertionError("the cache entry is not in the index")

    def accessed(seconds_ago: float) -> Callable[[], None]:
        return lambda: index.touch(entry, time.time() - seconds_ago)

    rows = [
        ProcessRow("interpreter + this script, no library (`--child none`)", "none",
                   lambda: None),
        ProcessRow(f"xpmstore {xpmstore.__version__}, entry last accessed > 1 min ago",
                   "xpmstore", accessed(3600.0)),
        ProcessRow(f"xpmstore {xpmstore.__version__}, entry accessed < 1 min ago", "xpmstore",
                   accessed(0.0)),
        ProcessRow(f"joblib {joblib.__version__}", "joblib", lambda: None),
    ]
    for row in rows:  # warm-up: page cache of the interpreter and both libraries
        row.prepare()
        run_child(row.system)
    for _ in range(processes):
        for row in rows:
            row.prepare()
            wall, report = run_child(row.system)
            row.wall.append(wall)
            row.imports.append(report["import_s"])
            row.first.append(report["first_call_s"])
    base = statistics.median(rows[0].wall)
    print(f"\nA hit in a new process: median of {processes} processes per line\n")
    print("| process | whole process ms | minus interpreter start ms | import ms "
          "| first hit ms |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        wall = statistics.median(row.wall)
        extra = "" if row.system == "none" else f"{(wall - base) * 1e3:.1f}"
        print(f"| {row.name} | {wall * 1e3:.1f} | {extra} "
              f"| {statistics.median(row.imports) * 1e3:.1f} "
              f"| {statistics.median(row.first) * 1e3:.2f} |")


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print their tables; exit status 0 even when a target is missed.
    """
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2,000 calls per repetition, 3 repetitions, 3 processes")
    parser.add_argument("--repetitions", type=int, default=None,
                        help="repetitions in one process (default 7, 3 with --quick)")
    parser.add_argument("--processes", type=int, default=None,
                        help="new processes per line (default 15, 3 with --quick)")
    parser.add_argument("--child", choices=["xpmstore", "joblib", "none"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    calls = 2_000 if args.quick else 20_000
    repetitions = args.repetitions or (3 if args.quick else 7)
    processes = args.processes or (3 if args.quick else 15)
    for location in (XPM_WORKSPACE, JOBLIB_LOCATION):
        shutil.rmtree(location, ignore_errors=True)
    WORK.mkdir(exist_ok=True)
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, "
          f"xpmstore {version('xpmstore')}, joblib {version('joblib')}, lmdb {version('lmdb')}")
    met = bench_in_process(calls, repetitions)
    bench_new_process(processes)
    print(f"\ntargets (new object ≥ {TARGET_SPEEDUP:.0f}x, same object ≥ "
          f"{TARGET_SAME_OBJECT:.0f}x less time than joblib's hit): "
          f"{'met' if met else 'NOT all met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
