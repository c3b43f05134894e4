"""``xpmstore serve`` against a workspace of 100,000 objects: page latency of the JSON API the
pages use, and event latency (a state change on the disk to the event in an open stream).

Run it with ``benchmarks/run serve`` (``--quick``: 4,000 objects, fewer repetitions).  The
workspace is the one of ``benchmarks/run cli`` (``cli.filled``: 50,000 ``Learn`` tasks tagged
with a seed, 50,000 ``Evaluate`` tasks, three runs of 10,000 jobs each), made once and reused.

A real server (``xpmstore serve --port 0``, the benchmark environment's console script) is
started; its listing of the workspace is made once first (the search catalog, see
docs/serve.md).  Each request is timed on the client, from sending it to the last byte of its
answer, over one kept-alive HTTP connection; the requests alternate inside each repetition.
Medians and maximums over the repetitions.

Event latency: a stream of ``/api/events/objects/ID`` is open on a task directory; this
process publishes a new state (``.xpm/state.json`` written atomically, failed / removed in
turn) and times until an event carrying the new status arrives.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import xpmstore
from cli import XPMSTORE, filled
from xpmstore.store.workspace import Workspace
from xpmstore.system.atomic import write_atomic

TARGET_PAGE_MS = 300.0
TARGET_EVENT_MS = 1000.0


def start_server(workspace: Workspace) -> tuple[subprocess.Popen[str], str, int]:
    """A real server on a free port: (process, host, port)."""
    process = subprocess.Popen([XPMSTORE, "serve", "-w", str(workspace.root), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return process, host, int(port)


def get(connection: http.client.HTTPConnection, path: str) -> tuple[float, bytes]:
    """(milliseconds, body) of one GET; fails unless it answers 200."""
    start = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - start) * 1e3
    if response.status != 200:
        raise AssertionError(f"GET {path}: {response.status} {body[:200]!r}")
    return elapsed, body


def page_latency(host: str, port: int, workspace: Workspace, evaluates: list[str],
                 repetitions: int, count: int) -> dict[str, list[float]]:
    """Milliseconds of each page's requests (see the module doc)."""
    connection = http.client.HTTPConnection(host, port, timeout=600)
    started = time.perf_counter()
    _, body = get(connection, "/api/search?per_page=50")  # makes the catalog's first listing
    first = (time.perf_counter() - started) * 1e3
    total = json.loads(body)["total"]
    print(f"first search (makes the listing of {total:,} objects): {first:,.0f} ms")
    run = sorted(os.listdir(workspace.experiments / "bench"))[-1].removesuffix(".jsonl")
    target = evaluates[len(evaluates) // 2]
    cold, body = get(connection, "/api/search?name=bench.store.Learn&param=epochs=7")
    print(f"first params search (reads the params.json of every Learn): {cold:,.0f} ms")
    matched = json.loads(body)["total"]
    if matched != 1:
        raise AssertionError(f"param search matched {matched}")
    requests = {
        "search, page 1 (no filter)": "/api/search?per_page=50",
        "search, page 1,000 (no filter)": "/api/search?per_page=50&page=1000",
        "search by class": "/api/search?name=bench.store.Evaluate&per_page=50",
        "search by class, tag and status": "/api/search?name=bench.store.Learn&tag=seed=3"
                                           "&status=done&per_page=50",
        "search by class and params (memoized)": "/api/search?name=bench.store.Learn"
                                                 "&param=epochs=7",
        "object page (`/api/objects/ID`)": f"/api/objects/{target}",
        "provenance graph (depth 3)": f"/api/objects/{target}/graph",
        "class names": "/api/names",
        "HTML shell of a page (`/search`)": "/search",
        f"experiments (3 runs × {count // 10:,} jobs)": "/api/experiments",
        f"one run ({count // 10:,} jobs)": f"/api/runs/bench/{run}",
    }
    figures: dict[str, list[float]] = {name: [] for name in requests}
    for _ in range(repetitions):
        for name, path in requests.items():
            figures[name].append(get(connection, path)[0])
    connection.close()
    return figures


def event_latency(host: str, port: int, workspace: Workspace, repetitions: int) -> list[float]:
    """Milliseconds from a state published on the disk to the event that shows it (the task
    directory it makes for that is removed after)."""
    directory = workspace.task_dir("bench.store.Pending", "e" * 64)
    try:
        return _event_latency(host, port, directory, repetitions)
    finally:
        shutil.rmtree(directory.parent, ignore_errors=True)


def _event_latency(host: str, port: int, directory: Path, repetitions: int) -> list[float]:
    (directory / ".xpm").mkdir(parents=True, exist_ok=True)
    (directory / "params.json").write_text("{}")
    state = directory / ".xpm" / "state.json"
    state.unlink(missing_ok=True)
    sock = socket.create_connection((host, port), timeout=60)
    sock.sendall(f"GET /api/events/objects/{directory.name} HTTP/1.1\r\nHost: {host}\r\n\r\n"
                 .encode())
    stream = sock.makefile("rb")

    def next_status() -> str:
        while True:
            line = stream.readline()
            if not line:
                raise AssertionError("the event stream ended")
            if line.startswith(b"data: "):
                return str(json.loads(line[6:])["status"])

    if next_status() != "absent":
        raise AssertionError("the first event is not the absent object")
    figures = []
    for number in range(repetitions):
        time.sleep(0.3)  # let the stream settle: a change at a random point of its poll
        wanted = "failed" if number % 2 == 0 else "absent"
        start = time.perf_counter()
        if wanted == "failed":
            write_atomic(state, json.dumps({"state": "failed", "time": time.time()}).encode())
        else:
            state.unlink()
        while next_status() != wanted:
            pass
        figures.append((time.perf_counter() - start) * 1e3)
    sock.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    """Make (or reuse) the workspace, start the server, time, print the tables."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 4,000 objects, fewer repetitions")
    args = parser.parse_args(argv)
    count = 4_000 if args.quick else 100_000
    repetitions, events = (3, 6) if args.quick else (11, 30)
    from importlib.metadata import version

    print(f"python {platform.python_version()}, {os.cpu_count()} cores, xpmstore"
          f" {xpmstore.__version__}, starlette {version('starlette')}, uvicorn"
          f" {version('uvicorn')}")
    workspace, evaluates = filled(count)
    process, host, port = start_server(workspace)
    try:
        pages = page_latency(host, port, workspace, evaluates, repetitions, count)
        latencies = event_latency(host, port, workspace, events)
    finally:
        process.terminate()
        process.wait(60)
    print(f"\nPage latency, {count:,} objects; ms from request to last byte, median and max"
          f" over {repetitions} repetitions\n")
    print("| request | ms median | ms max |")
    print("|---|---:|---:|")
    for name, values in pages.items():
        print(f"| {name} | {statistics.median(values):,.1f} | {max(values):,.1f} |")
    print(f"\nEvent latency: state change on the disk -> event in an open stream, {events}"
          f" changes: median {statistics.median(latencies):,.0f} ms, max"
          f" {max(latencies):,.0f} ms\n")
    searches = [v for k, v in pages.items() if k.startswith("search")]
    worst = max(statistics.median(v) for v in searches)
    print(f"target: a search page <= {TARGET_PAGE_MS:.0f} ms at {count:,} objects:"
          f" {'met' if worst <= TARGET_PAGE_MS else 'NOT met'} (slowest median"
          f" {worst:,.1f} ms)")
    slowest = max(latencies)
    print(f"target: a state change shown within {TARGET_EVENT_MS:.0f} ms:"
          f" {'met' if slowest <= TARGET_EVENT_MS else 'NOT met'} (max {slowest:,.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
