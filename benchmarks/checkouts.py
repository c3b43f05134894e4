"""The same public-API work timed on several checkouts of xpmstore, side by side in one run.

``benchmarks/run checkouts DIR [DIR...]`` (``--quick`` for a smoke run) measures this
repository's tree and each ``DIR`` (another checkout, e.g. a ``git worktree add --detach`` of an
older commit): a change that must not change speed (a restructure) is judged by the ratio of
each row to the first checkout's, measured in the same run with the checkouts alternating inside
every repetition, so that the machine's drift hits them alike.

Every measurement is a new process (this script with ``--child``) whose ``PYTHONPATH`` puts the
checkout first (``xpmstore`` and its ``cli`` folder as ``xpmstore_cli``, through symbolic links
in ``benchmarks/.work/checkouts/``); the child checks that it imported that checkout's code.  The
work uses only the public API (``Config``, ``Task``, ``Param``, ``cache``, ``experiment``,
``Store``, ``xpmstore.launchers.LocalLauncher``), which a restructure keeps:

* ``from xpmstore import Config, Store, Task, cache, experiment``: what a script imports,
  in a new process (ms);
* identifier: ``__identifier__`` of a new two-level config (µs each, 5,000 objects);
* ``@cache`` hit, a new config object each call (µs);
* ``Store.status`` of a done task in a workspace of 1,000 (µs each, 1,000 tasks);
* re-submitting 1,000 done tasks (``schedtasks.XWrite``): the ``with experiment`` block in a
  new process (ms);
* a cold run of 100 trivial tasks, default launcher (ms);
* ``xpmstore get ID`` as a new process, wall time (ms).

Each checkout's workspace of 1,000 done tasks is made once (untimed) and reused.  Medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "checkouts"
DONE_TASKS = 1000
COLD_TASKS = 100

WORKLOADS = ["import", "identifier", "cache-hit", "status", "resubmit", "cold", "cli-get"]
UNITS = {"import": "ms", "identifier": "us", "cache-hit": "us", "status": "us",
         "resubmit": "ms", "cold": "ms", "cli-get": "ms"}


# --- the child: one workload on the checkout its PYTHONPATH names ---------------------------


def _classes() -> dict[str, Any]:
    from pathlib import Path as _Path

    import xpmstore

    class Inner(xpmstore.Config):
        __xpmid__ = "bench.checkouts.Inner"
        width: xpmstore.Param[int] = 4
        name: xpmstore.Param[str] = "inner"

    class Outer(xpmstore.Config):
        __xpmid__ = "bench.checkouts.Outer"
        index: xpmstore.Param[int]
        inner: xpmstore.Param[Inner]
        rate: xpmstore.Param[float] = 0.1

    class Cached(xpmstore.Config):
        __xpmid__ = "bench.checkouts.Cached"
        k: xpmstore.Param[int]

        @xpmstore.cache("value.json")
        def value(self, path: _Path) -> int:
            if path.exists():
                return int(path.read_text())
            path.write_text(str(self.k * 2))
            return self.k * 2

    from schedtasks import XWrite  # the scheduler benchmark's task: importable by its jobs

    return {"Inner": Inner, "Outer": Outer, "Cached": Cached, "Write": XWrite}


def _run_tasks(workspace: Path, count: int, name: str) -> float:
    from xpmstore import experiment

    write = _classes()["Write"]
    start = time.perf_counter()
    with experiment(str(workspace), name):
        for i in range(count):
            write(index=i).submit()
    return time.perf_counter() - start


def child(workload: str, checkout: Path, workspace: Path) -> float:
    """One measurement of ``workload`` (in the unit of :data:`UNITS`)."""
    start = time.perf_counter()
    import xpmstore
    from xpmstore import Config, Store, Task, cache, experiment  # noqa: F401 - what a script uses
    imported = time.perf_counter() - start
    if not Path(xpmstore.__file__).resolve().is_relative_to(checkout.resolve()):
        raise SystemExit(f"imported {xpmstore.__file__}, not the checkout {checkout}")
    if workload == "import":
        return imported * 1e3
    classes = _classes()
    if workload == "identifier":
        outer, inner = classes["Outer"], classes["Inner"]
        start = time.perf_counter()
        for i in range(5000):
            outer(index=i, inner=inner(width=i % 7)).__identifier__  # noqa: B018
        return (time.perf_counter() - start) / 5000 * 1e6
    if workload == "cache-hit":
        cached = classes["Cached"]
        cached(k=1).value()
        calls = 20000
        start = time.perf_counter()
        for _ in range(calls):
            cached(k=1).value()
        return (time.perf_counter() - start) / calls * 1e6
    if workload == "status":
        store = xpmstore.Store(str(workspace))
        tasks = [classes["Write"](index=i) for i in range(DONE_TASKS)]
        if store.status(tasks[0]) != "done":
            raise SystemExit("the prepared workspace lost its tasks")
        start = time.perf_counter()
        for task in tasks:
            store.status(task)
        return (time.perf_counter() - start) / len(tasks) * 1e6
    if workload == "resubmit":
        return _run_tasks(workspace, DONE_TASKS, "resubmit") * 1e3
    if workload == "cold":
        return _run_tasks(workspace, COLD_TASKS, "cold") * 1e3
    raise SystemExit(f"unknown workload {workload}")


# --- the parent -----------------------------------------------------------------------------


def _pythonpath(checkout: Path, label: str) -> Path:
    """A folder holding ``xpmstore`` and ``xpmstore_cli`` of ``checkout`` (symbolic links)."""
    shim = WORK / label / "path"
    shim.mkdir(parents=True, exist_ok=True)
    for name, target in (("xpmstore", checkout / "xpmstore"), ("xpmstore_cli", checkout / "cli")):
        link = shim / name
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return shim


def _environ(shim: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{shim}{os.pathsep}{HERE}"
    env.pop("XPMSTORE_WORKSPACE", None)
    return env


def _spawn(workload: str, checkout: Path, label: str, workspace: Path) -> float:
    env = _environ(_pythonpath(checkout, label))
    if workload == "cache-hit":
        env["XPMSTORE_WORKSPACE"] = str(workspace)
    out = subprocess.run([sys.executable, __file__, "--child", workload, "--checkout",
                          str(checkout), "--workspace", str(workspace)],
                         env=env, capture_output=True, text=True, cwd=WORK, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{label} {workload} failed:\n{out.stdout}{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def _cli_get(checkout: Path, label: str, workspace: Path, identifier: str) -> float:
    env = _environ(_pythonpath(checkout, label))
    code = "import sys; from xpmstore_cli import main; sys.argv[0] = 'xpmstore'; main()"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, "--workspace", str(workspace), "get",
                          identifier], env=env, capture_output=True, text=True, cwd=WORK,
                         check=False)
    took = (time.perf_counter() - start) * 1e3
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"{label} get failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    return took


def _prepare(checkout: Path, label: str) -> tuple[Path, str]:
    """The checkout's workspace of :data:`DONE_TASKS` done tasks (made once) and the
    identifier of one of them."""
    workspace = WORK / label / "done-ws"
    marker = workspace / ".bench-ready"
    if not marker.exists():
        shutil.rmtree(workspace, ignore_errors=True)
        _spawn("resubmit", checkout, label, workspace)  # the first run makes them
        marker.write_text("ok")
    env = _environ(_pythonpath(checkout, label))
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); from checkouts import _classes; "
            "print(_classes()['Write'](index=0).__identifier__)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return workspace, out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="*", type=Path,
                        help="other checkouts to compare with this repository's tree")
    parser.add_argument("--quick", action="store_true", help="3 repetitions, fewer workloads")
    parser.add_argument("--repetitions", type=int, default=None)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--checkout", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workspace", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(child(args.child, args.checkout, args.workspace))
        return
    if not args.checkouts:
        parser.error("name at least one other checkout to compare with")
    WORK.mkdir(parents=True, exist_ok=True)
    repo = HERE.parent
    checkouts = [("this", repo)] + [(f"dir{i + 1}", d.resolve())
                                     for i, d in enumerate(args.checkouts)]
    for _, checkout in checkouts:
        if not (checkout / "xpmstore" / "__init__.py").exists():
            raise SystemExit(f"{checkout}: not an xpmstore checkout (no xpmstore/__init__.py)")
    repetitions = args.repetitions or (3 if args.quick else 7)
    workloads = [w for w in args.workloads.split(",") if w]
    prepared = {label: _prepare(checkout, label) for label, checkout in checkouts}
    figures: dict[tuple[str, str], list[float]] = {}
    for _ in range(repetitions):
        for workload in workloads:
            for label, checkout in checkouts:
                workspace, identifier = prepared[label]
                if workload == "cold":
                    scratch = WORK / label / "cold-ws"
                    shutil.rmtree(scratch, ignore_errors=True)
                    os.sync()
                    value = _spawn("cold", checkout, label, scratch)
                elif workload == "cache-hit":
                    value = _spawn(workload, checkout, label, WORK / label / "cache-ws")
                elif workload == "cli-get":
                    value = _cli_get(checkout, label, workspace, identifier)
                else:
                    value = _spawn(workload, checkout, label, workspace)
                figures.setdefault((workload, label), []).append(value)
    print(f"{len(checkouts)} checkouts, {repetitions} repetitions, medians; ratio: the checkout "
          "against the first ('this')")
    for label, checkout in checkouts:
        commit = subprocess.run(["git", "-C", str(checkout), "log", "-1", "--format=%h %s"],
                                capture_output=True, text=True, check=False).stdout.strip()
        print(f"  {label}: {checkout}  ({commit[:70]})")
    header = f"{'work':<28}" + "".join(f"{label:>14}" for label, _ in checkouts)
    print(header)
    for workload in workloads:
        first = statistics.median(figures[(workload, checkouts[0][0])])
        cells = []
        for label, _ in checkouts:
            value = statistics.median(figures[(workload, label)])
            ratio = "" if label == checkouts[0][0] else f" ({value / first:.2f}x)"
            cells.append(f"{value:.1f}{ratio}")
        print(f"{workload + ' (' + UNITS[workload] + ')':<28}" + "".join(f"{c:>14}" for c in cells))
    print(json.dumps({f"{w}|{lb}": statistics.median(v) for (w, lb), v in figures.items()}))


if __name__ == "__main__":
    main()
