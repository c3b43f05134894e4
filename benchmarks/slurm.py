"""SlurmLauncher on the single-node Slurm of ``scripts/slurm-up`` (started here if needed):
the time from submit to the first job running, and the scheduler's polling cost per 100 jobs.

Run it with ``benchmarks/run slurm`` (``--quick``: fewer repetitions).  Measured, medians over
the repetitions:

* **submit → running**: a plain ``sbatch --wrap`` whose command writes the time it starts
  (Slurm alone), and an experiment with ``SlurmLauncher`` submitting one task whose ``execute``
  writes the time it starts (Slurm, then the job's interpreter importing xpmstore and the task);
  both from just before the submit.  The first job after the cluster starts waits for
  slurmctld's first scheduling pass; it is left out (one warm-up job first).
* **polling cost per 100 jobs**: 100 held jobs (``sbatch --hold``, so they stay PENDING), and
  the time of the one ``squeue`` a poll makes for all of them (``xpmstore.system.slurmctl.query``),
  against asking ``squeue`` once per job, which a poll must never do.
* the number of ``squeue`` calls the launcher made while a 20-task graph ran.
* **max_queued**: 40 independent tasks with ``SlurmLauncher(max_queued=8)`` and, as the anchor
  in the same run, with the default (1,000): the most of them pending or running in Slurm at
  once (``squeue`` sampled every 0.1 s from a thread) and the time to run them all.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' tasks (tests.schedtasks), imported by the jobs too

from tests.schedtasks import layered_graph  # noqa: E402
from xpmstore import Param, Task, experiment  # noqa: E402
from xpmstore.launchers import SlurmLauncher  # noqa: E402
from xpmstore.system import slurmctl  # noqa: E402

WORK = ROOT / "benchmarks" / ".work" / "slurm"


class Stamp(Task):
    """Writes the wall-clock time its ``execute`` starts into ``started.txt``."""

    __xpmid__ = "benchmarks.slurm.Stamp"
    n: Param[int]
    run: Param[str]

    def execute(self) -> None:
        Path("started.txt").write_text(repr(time.time()))


def cluster_up() -> None:
    """Start the test cluster (idempotent) and point this process at it."""
    out = subprocess.run([str(ROOT / "scripts" / "slurm-up")], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        name, _, value = line.partition("=")
        if name == "SLURM_CONF":
            os.environ["SLURM_CONF"] = value


def wait_for(path: Path, deadline: float = 120.0) -> float:
    end = time.monotonic() + deadline
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > end:
            raise RuntimeError(f"{path} did not appear within {deadline:.0f} s")
        time.sleep(0.005)
    return float(path.read_text())


def sbatch_to_running(folder: Path, n: int) -> float:
    stamp = folder / f"wrap-{n}.txt"
    command = f"{shlex.quote(sys.executable)} -c 'import time; print(repr(time.time()))'" \
              f" > {shlex.quote(str(stamp))}.tmp && mv {shlex.quote(str(stamp))}.tmp" \
              f" {shlex.quote(str(stamp))}"
    started = time.time()
    slurmctl.run_command(["sbatch", "--parsable", f"--output={folder}/wrap-{n}.out",
                          "--wrap", command])
    return wait_for(stamp) - started


def launcher_to_running(folder: Path, run: str, n: int) -> float:
    task = Stamp(n=n, run=run)
    started = time.time()
    with experiment(folder / "ws", f"stamp-{n}", launcher=SlurmLauncher(poll_max=1.0)):
        task.submit()
        begun = wait_for(task.__taskdir__ / "started.txt")
    return begun - started


def polling_cost(repeat: int) -> tuple[float, float]:
    ids = [slurmctl.run_command(["sbatch", "--parsable", "--hold", "--output=/dev/null", "--wrap",
                                 "true"]).strip() for _ in range(100)]
    try:
        batched, single = [], []
        for _ in range(repeat):
            t = time.perf_counter()
            found = slurmctl.query(ids)
            batched.append(time.perf_counter() - t)
            assert len(found) == 100 and all(s.state == "PENDING" for s in found.values())
            t = time.perf_counter()
            for job_id in ids:
                slurmctl.query([job_id])
            single.append(time.perf_counter() - t)
        return statistics.median(batched), statistics.median(single)
    finally:
        slurmctl.cancel(ids)


def graph_polls(folder: Path) -> tuple[int, float]:
    launcher = SlurmLauncher()
    nodes = layered_graph(str(folder), layers=4, width=5)
    started = time.perf_counter()
    with experiment(folder / "ws", "graph", launcher=launcher):
        for node in nodes:
            node.submit()
    return launcher.polls, time.perf_counter() - started


def capped(folder: Path, run: str, cap: int | None, count: int = 40) -> tuple[int, float]:
    """(most jobs of ``count`` pending or running in Slurm at once, seconds to run them all)
    with ``SlurmLauncher(max_queued=cap)`` (the default when ``cap`` is None)."""
    tasks = [Stamp(n=10_000 * (cap or 0) + i, run=run) for i in range(count)]
    names = {f"xpm-{t.__identifier__[:12]}" for t in tasks}
    most = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            out = slurmctl.run_command(["squeue", "-h", "-t", "all", "-o", "%j|%T"])
            active = sum(1 for line in out.split() if line.split("|")[0] in names
                         and line.split("|")[1] in slurmctl.ACTIVE)
            most[0] = max(most[0], active)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    launcher = SlurmLauncher() if cap is None else SlurmLauncher(max_queued=cap)
    started = time.perf_counter()
    with experiment(folder / "ws", f"capped-{cap}", launcher=launcher):
        for task in tasks:
            task.submit()
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    return most[0], elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 7")
    args = parser.parse_args()
    repeat = 3 if args.quick else 7
    cluster_up()
    WORK.mkdir(parents=True, exist_ok=True)
    version = slurmctl.run_command(["sinfo", "--version"]).strip()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {version};"
          f" median of {repeat}")
    with tempfile.TemporaryDirectory(dir=WORK) as scratch:
        folder = Path(scratch)
        run = str(time.time_ns())  # new task identifiers at every run: nothing is reused
        sbatch_to_running(folder, -1)  # warm-up: slurmctld's first scheduling pass
        wrap = statistics.median(sbatch_to_running(folder, n) for n in range(repeat))
        launched = statistics.median(launcher_to_running(folder, run, n) for n in range(repeat))
        batched, single = polling_cost(repeat)
        polls, graph_time = graph_polls(folder)
        uncapped_most, uncapped_time = capped(folder, run, None)
        capped_most, capped_time = capped(folder, run, 8)
    rows = [
        ("submit → running: sbatch --wrap (Slurm alone)", f"{wrap * 1000:.0f} ms", ""),
        ("submit → task running: SlurmLauncher", f"{launched * 1000:.0f} ms",
         "sbatch, scheduling, interpreter and imports"),
        ("poll of 100 jobs: one squeue", f"{batched * 1000:.1f} ms", "what a poll costs"),
        ("  (squeue once per job, 100 calls)", f"{single * 1000:.0f} ms",
         f"{single / batched:.0f}x more; never done"),
        ("20-task graph (afterok chains)", f"{graph_time:.1f} s", f"{polls} squeue calls"),
        ("40 tasks, default max_queued (1,000): the anchor", f"{uncapped_time:.1f} s",
         f"at most {uncapped_most} in Slurm at once"),
        ("40 tasks, max_queued=8", f"{capped_time:.1f} s",
         f"at most {capped_most} in Slurm at once; {capped_time / uncapped_time:.2f}x the time"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'time':>9}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>9}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
