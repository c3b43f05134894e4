"""The cost of ``xpmstore.scheduler.progress`` calls inside a task, when nothing is written.

Run it with ``benchmarks/run progress`` (``--quick`` for a smoke run).

A job's process reports progress from its training loop; the target (issue 14) is at most 2 µs a
call when nothing is written (a background thread writes ``.xpm/progress.json`` at most every
0.25 s, so almost every call writes nothing).  Timed here, in this process made a job's as the
runner makes it (``progress.begin(taskdir)``, so the background thread runs and writes):

* ``progress(0.4)``, ``progress(step, total=1000, desc="epoch 3")`` and a nested call
  (``level=1``), each called N times in a loop (the loop's own cost, measured with a call of an
  empty function of the same arguments, is subtracted and printed beside);
* ``for x in progress.track(range(N))`` per item, against the bare ``for x in range(N)``;
* the same calls outside a job (the reporter does nothing then).

Medians over the repetitions.  Nothing is compared with an anchor: tqdm's per-item cost is
printed for reference when tqdm is installed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from xpmstore.store.taskprogress import TaskProgress, read_progress

TARGET_US = 2.0


def per_call_us(body: Callable[[int], None], count: int, repetitions: int) -> float:
    """The median time of one iteration of ``body(count)``, in µs."""
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        body(count)
        times.append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(times)


def empty(value: object, total: object = None, *, desc: object = None,
          level: object = None) -> None:
    """A function of progress' arguments that does nothing: the loop's own cost."""


def calls(reporter: Callable[..., None]) -> dict[str, Callable[[int], None]]:
    def fraction(n: int) -> None:
        for _ in range(n):
            reporter(0.4)

    def step(n: int) -> None:
        for i in range(n):
            reporter(i, total=n, desc="epoch 3")

    def nested(n: int) -> None:
        for i in range(n):
            reporter(i, total=n, desc="batch", level=1)

    return {"progress(0.4)": fraction, "progress(i, total=N, desc=...)": step,
            "progress(i, total=N, desc=..., level=1)": nested}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer calls")
    args = parser.parse_args(argv)
    count, repetitions = (100_000, 3) if args.quick else (1_000_000, 7)
    print(f"xpmstore.scheduler.progress: {count:,} calls a measure, median of {repetitions};"
          f" Python {platform.python_version()}, {platform.machine()}")
    rows: list[tuple[str, float, float]] = []
    loop = calls(empty)
    with tempfile.TemporaryDirectory() as folder:
        taskdir = Path(folder)
        (taskdir / ".xpm").mkdir()
        inside = TaskProgress()
        inside.begin(taskdir)  # as the runner does: the background thread writes
        for (label, body), (_, base) in zip(calls(inside).items(), loop.items(), strict=True):
            loop_us = per_call_us(base, count, repetitions)
            rows.append((f"in a job: {label}", per_call_us(body, count, repetitions) - loop_us,
                         loop_us))

        def tracked(n: int) -> None:
            for _ in inside.track(range(n), desc="train"):
                pass

        def bare(n: int) -> None:
            for _ in range(n):
                pass

        bare_us = per_call_us(bare, count, repetitions)
        rows.append(("in a job: for x in progress.track(range(N)), per item",
                     per_call_us(tracked, count, repetitions) - bare_us, bare_us))
        inside.end()
        written = read_progress(taskdir)
        if not written or written[0]["step"] != count:
            raise AssertionError(f"the progress file does not hold the last step: {written}")
    outside = TaskProgress()
    for (label, body), (_, base) in zip(calls(outside).items(), loop.items(), strict=True):
        loop_us = per_call_us(base, count, repetitions)
        rows.append((f"outside a job: {label}", per_call_us(body, count, repetitions) - loop_us,
                     loop_us))
    try:
        from tqdm import tqdm

        def with_tqdm(n: int) -> None:
            with open(os.devnull, "w") as sink:
                for _ in tqdm(range(n), file=sink, mininterval=3600):
                    pass

        rows.append(("for reference: for x in tqdm(range(N)), per item",
                     per_call_us(with_tqdm, count, repetitions) - bare_us, bare_us))
    except ImportError:
        pass
    width = max(len(label) for label, _, _ in rows)
    print(f"\n{'measure'.ljust(width)}  {'µs a call':>10}  {'loop alone':>10}")
    for label, cost, loop_us in rows:
        print(f"{label.ljust(width)}  {cost:10.3f}  {loop_us:10.3f}")
    worst = max(cost for label, cost, _ in rows if label.startswith("in a job"))
    met = worst <= TARGET_US
    print(f"\nworst call in a job: {worst:.3f} µs (target ≤ {TARGET_US} µs):"
          f" {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
