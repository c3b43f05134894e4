"""The remote (docs/remote.md): pulling a 1 GiB artifact from a directory remote, verification
included, against plain ``cp`` of the same file; and the presence of 10,000 identifiers decided
against a real S3 server (SeaweedFS ``weed mini`` on loopback, started by this script).

Run it with ``benchmarks/run remote`` (``--quick``: a 64 MiB artifact and 2 repetitions).

* **Pull.**  A ``@cache`` entry holding one file of random bytes (1 GiB) is pushed once to a
  directory remote in ``benchmarks/.work/remote/``.  Each repetition pulls it into an empty
  workspace (``xpmstore.remote.pull``: fetch and check the remote object, copy the blob, check
  its size and blake3, publish, index) and copies the same blob with ``cp`` (a process; the
  destination removed first), side by side, the order swapped at each repetition.  Source and
  destinations are on the same file system; the source is in the page cache for both, and
  ``sync`` runs before each (untimed) so that neither pays for the other's writeback.  Both copy
  in the kernel (``copy_file_range``); the pull copies 16 MiB pieces while a thread hashes the
  piece of its local copy just written (``xpmstore.remote.trailing``), then fsyncs its manifest.
  Throughput = size / median wall time.  The ratio is the median of each repetition's ratio
  (``cp`` time / pull time, measured seconds apart: this VM's disk and CPU speed drift within
  minutes); the target is pull ≥ 70% of ``cp``.
* **Presence.**  5,000 remote objects are written to a fresh bucket (untimed); then
  ``Remote.present`` is asked about 10,000 identifiers (the 5,000 and 5,000 absent ones): it
  lists the 2-hex prefixes that hold them on a thread pool.  For reference, the same question by
  one HEAD per identifier on 16 threads.  Target ≤ 3 s.
* **Presence per experiment.**  What an experiment of 10,000 jobs asks: 20 questions of at most
  512 identifiers (``BATCH_SIZE``, one per planning batch) through one ``RemoteSync``, half of
  them present, against the 5,000-object bucket and against a *large* one (``--objects``,
  300,000 tiny keys by default: more than 1,000 keys a prefix, so that the remote is judged large
  as one of 10 million is — a HEAD each).  Each row gives the time and the requests sent
  (counted by ``tests/remote/counting.py`` around the real backend), for this tree and for the
  tree before the change (``--base``, a checkout run in a subprocess against the same bucket:
  ``XPMSTORE_BENCH_BASE`` puts its ``xpmstore`` first).  Target: ≤ 20 s against the large
  remote (docs/scale.md extrapolates to 10 million objects).
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = os.environ.get("XPMSTORE_BENCH_BASE")
if BASE:  # the tree before a change: its xpmstore, this tree's tests helpers
    sys.path.insert(0, BASE)
    import xpmstore  # noqa: F401
    sys.path.remove(BASE)
sys.path.insert(0, str(ROOT))  # tests.s3server: the suite's own SeaweedFS launcher

from tests.remote.counting import CountingBackend  # noqa: E402
from tests.s3server import S3Server  # noqa: E402
from xpmstore import Config, Param  # noqa: E402
from xpmstore.core.identifier import cache_identifier  # noqa: E402
from xpmstore.remote import Remote, RemoteSync, open_backend, pull, push_one  # noqa: E402
from xpmstore.scheduler.cache import cache  # noqa: E402
from xpmstore.scheduler.submission import BATCH_SIZE  # noqa: E402
from xpmstore.store.workspace import Workspace, set_active_workspace  # noqa: E402

WORK = ROOT / "benchmarks" / ".work" / "remote"
GIB = 1 << 30
PRESENCE = 10_000
PULL_TARGET = 0.70
PRESENCE_TARGET_S = 3.0
RUN_TARGET_S = 20.0
LARGE = 300_000


class Artifact(Config):
    """One big file: a hard link to the benchmark's input of ``size`` bytes."""

    __xpmid__ = "benchmarks.remote.Artifact"
    size: Param[int]

    @cache("artifact.bin")
    def file(self, path: Path, source: str) -> Path:
        if not path.exists():
            os.link(source, path)
        return path


def make_input(size: int) -> Path:
    """A file of ``size`` random bytes (made once, reused)."""
    path = WORK / f"input-{size}.bin"
    if path.is_file() and path.stat().st_size == size:
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    with open(temp, "wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 24))
            out.write(chunk)
            left -= len(chunk)
    os.replace(temp, path)
    return path


def workspace_at(root: Path) -> Workspace:
    workspace = Workspace.at(root)
    workspace.ensure()
    return workspace


def pushed_artifact(size: int) -> tuple[Remote, str, Path]:
    """The directory remote holding the artifact of ``size`` bytes (pushed once); returns it,
    the entry's identifier and the input file."""
    source = make_input(size)
    remote = Remote(open_backend(f"file://{WORK / f'remote-{size}'}"))
    remote.backend.init()  # (a push never creates a missing remote)
    artifact = Artifact(size=size)
    identifier = cache_identifier(artifact.__identifier__, "artifact.bin")
    if not remote.backend.exists(remote.object_key(identifier)):
        origin = WORK / f"origin-{size}"
        shutil.rmtree(origin, ignore_errors=True)
        previous = set_active_workspace(workspace_at(origin))
        try:
            artifact.file(str(source))
        finally:
            set_active_workspace(previous)
        push_one(remote, origin / "cache" / "benchmarks.remote.Artifact" / identifier)
    return remote, identifier, source


def bench_pull(size: int, repeat: int) -> dict[str, float]:
    remote, identifier, source = pushed_artifact(size)
    blob = remote.backend.root / remote.blob_key(  # type: ignore[attr-defined]
        next(iter(remote.backend.list("cas/"))).rsplit("/", 1)[1])
    subprocess.run(["cat", str(blob)], stdout=subprocess.DEVNULL, check=True)  # page cache
    target = WORK / "copy.bin"

    def timed_pull() -> float:
        dest = WORK / "pulled"
        shutil.rmtree(dest, ignore_errors=True)
        workspace = workspace_at(dest)
        os.sync()  # both start with nothing dirty: writeback of the last copy is not billed
        started = time.perf_counter()
        pulled = pull(workspace, identifier, remote)
        elapsed = time.perf_counter() - started
        assert (pulled / "artifact.bin").stat().st_size == size
        shutil.rmtree(dest)
        return elapsed

    def timed_cp() -> float:
        target.unlink(missing_ok=True)
        os.sync()
        started = time.perf_counter()
        subprocess.run(["cp", str(blob), str(target)], check=True)
        elapsed = time.perf_counter() - started
        target.unlink()
        return elapsed

    pulls, copies = [], []
    for i in range(repeat):
        if i % 2 == 0:
            pulls.append(timed_pull())
            copies.append(timed_cp())
        else:
            copies.append(timed_cp())
            pulls.append(timed_pull())
    del source
    return {"pull": statistics.median(pulls), "cp": statistics.median(copies),
            "ratio": statistics.median(c / p for c, p in zip(copies, pulls, strict=True))}


def measure_run(url: str, endpoint: str, identifiers: list[str]) -> dict[str, float]:
    """An experiment's questions: ``identifiers`` in batches of BATCH_SIZE through one
    RemoteSync; its time, the requests sent and how many were found present."""
    backend = CountingBackend(open_backend(url, endpoint_url=endpoint))
    run = RemoteSync(Workspace.at(WORK / "presence-ws"), Remote(backend))
    found: set[str] = set()
    started = time.perf_counter()
    for start in range(0, len(identifiers), BATCH_SIZE):
        found |= run.present(identifiers[start:start + BATCH_SIZE])
    return {"seconds": time.perf_counter() - started, "requests": backend.total(),
            "found": len(found)}


def measure_run_before(base: str, url: str, endpoint: str,
                       identifiers: list[str]) -> dict[str, float]:
    """:func:`measure_run` with the xpmstore of the checkout ``base``, in a subprocess."""
    WORK.mkdir(parents=True, exist_ok=True)
    asked = WORK / "presence-ids.txt"
    asked.write_text("\n".join(identifiers))
    done = subprocess.run(
        [sys.executable, __file__, "--measure-run", url, endpoint, str(asked)],
        env={**os.environ, "XPMSTORE_BENCH_BASE": base}, capture_output=True, text=True,
        check=True)
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def fill(server: S3Server, bucket: str, identifiers: list[str]) -> None:
    """Tiny remote objects under ``identifiers`` (straight PUTs: presence reads keys only)."""
    client = server.client()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda i: client.put_object(  # type: ignore[attr-defined]
            Bucket=bucket, Key=f"team/{Remote.object_key(i)}", Body=b"{}"), identifiers))


def bench_presence(count: int, repeat: int, large: int, base: str | None) -> dict[str, float]:
    server = S3Server()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "any")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "any")
    for var in [k for k in os.environ if "proxy" in k.lower()]:
        del os.environ[var]
    server.start()
    try:
        out: dict[str, float] = {}
        for size in (count // 2, large):
            bucket = f"bench-{os.getpid()}-{size}"
            server.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
            url = f"s3://{bucket}/team"
            stored = [os.urandom(32).hex() for _ in range(size)]
            started = time.perf_counter()
            fill(server, bucket, stored)
            out[f"fill-{size}"] = time.perf_counter() - started
            identifiers = stored[: count // 2] + [os.urandom(32).hex()
                                                  for _ in range(count - count // 2)]
            after = measure_run(url, server.endpoint, identifiers)
            assert after["found"] == count // 2, after
            out |= {f"run-{size}": after["seconds"], f"run-{size}-requests": after["requests"]}
            if base:
                before = measure_run_before(base, url, server.endpoint, identifiers)
                assert before["found"] == count // 2, before
                out |= {f"before-{size}": before["seconds"],
                        f"before-{size}-requests": before["requests"]}
            if size != count // 2:
                continue
            remote = Remote(open_backend(url, endpoint_url=server.endpoint))
            listing = []
            for _ in range(repeat):
                started = time.perf_counter()
                found = remote.present(identifiers)
                listing.append(time.perf_counter() - started)
                assert found == set(stored), len(found)
            started = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                flags = list(pool.map(lambda i, r=remote: r.backend.exists(r.object_key(i)),
                                      identifiers))
            out["head"] = time.perf_counter() - started
            assert sum(flags) == len(stored)
            out["present"] = statistics.median(listing)
        return out
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB artifact, 2 repetitions")
    parser.add_argument("--presence-only", action="store_true", help="skip the pull")
    parser.add_argument("--objects", type=int, default=LARGE,
                        help=f"objects of the large remote (default {LARGE:,})")
    parser.add_argument("--base", help="a checkout of the tree before the change: its"
                        " requests and time per experiment are measured too")
    parser.add_argument("--measure-run", nargs=3, metavar=("URL", "ENDPOINT", "IDS"),
                        help=argparse.SUPPRESS)  # the subprocess of --base
    args = parser.parse_args()
    if args.measure_run:
        url, endpoint, asked = args.measure_run
        for var in [k for k in os.environ if "proxy" in k.lower()]:
            del os.environ[var]
        print(json.dumps(measure_run(url, endpoint, Path(asked).read_text().split())))
        return 0
    size = (64 << 20) if args.quick else GIB
    repeat = 2 if args.quick else 5
    print(f"python {platform.python_version()}, {os.cpu_count()} cores; artifact"
          f" {size >> 20} MiB, median of {repeat}; load average"
          f" {os.getloadavg()[0]:.1f}")
    rows = []
    if not args.presence_only:
        timings = bench_pull(size, repeat)
        mib = size / (1 << 20)
        pull_rate, cp_rate = mib / timings["pull"], mib / timings["cp"]
        ratio = timings["ratio"]
        rows += [
            ("pull 1 artifact (verified)", f"{timings['pull']:.2f} s", f"{pull_rate:.0f} MiB/s",
             f"{ratio:.0%} of cp (target ≥ {PULL_TARGET:.0%})", ratio >= PULL_TARGET),
            ("cp of the same file", f"{timings['cp']:.2f} s", f"{cp_rate:.0f} MiB/s", "", True),
        ]
    presence = bench_presence(PRESENCE, min(repeat, 3), args.objects, args.base)
    small, large = PRESENCE // 2, args.objects
    rows += [
        (f"presence of {PRESENCE:,} ids (S3)", f"{presence['present']:.2f} s", "",
         f"target ≤ {PRESENCE_TARGET_S:.0f} s", presence["present"] <= PRESENCE_TARGET_S),
        ("  (reference: HEAD each, 16 threads)", f"{presence['head']:.2f} s", "", "", True),
    ]
    for objects in (small, large):
        target = objects == large
        seconds = presence[f"run-{objects}"]
        rows.append((f"experiment of {PRESENCE:,} ids, {objects:,} objects",
                     f"{seconds:.2f} s", f"{presence[f'run-{objects}-requests']:,.0f} req",
                     f"target ≤ {RUN_TARGET_S:.0f} s" if target else "",
                     seconds <= RUN_TARGET_S or not target))
        if f"before-{objects}" in presence:
            rows.append(("  (before: --base)", f"{presence[f'before-{objects}']:.2f} s",
                         f"{presence[f'before-{objects}-requests']:,.0f} req", "", True))
    rows.append((f"  (filling {large:,} objects, untimed above)",
                 f"{presence[f'fill-{large}']:.0f} s", "", "", True))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'time':>8}  {'rate':>11}  note")
    for name, seconds_text, rate, note, ok in rows:
        print(f"{name:<{width}}  {seconds_text:>8}  {rate:>11}  {note}{'' if ok else '  MISSED'}")
    return 0 if all(r[4] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
