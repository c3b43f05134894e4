"""Identifiers and input digests: xpmstore against the anchor, experimaestro 2.7.0, in one run.

Run it with ``benchmarks/run identifiers`` (``--quick`` for a smoke run): the wrapper creates the
benchmark environment ``benchmarks/.venv-bench`` where both libraries are installed.

Two measurements, each printed as a table:

* **Identifiers.** 10,000 distinct configs, each with four params (int, float, str, list[int]) and
  its own nested config of two params (int, bool), never shared.  Construction and identifier
  computation are timed separately.  Identifiers are memoized once computed (xpmstore seals the
  config; experimaestro caches on sealed configs), so every repetition builds fresh configs; the
  figure reported is the median over the repetitions, per config.
* **Input digest.** A 1 GiB file in ``benchmarks/.work/`` (created once), page cache warm:
  ``xpmstore.core.digests.digest_input`` (memo cleared before each call) against raw multi-threaded
  blake3 over an mmap of the same file, in GB/s (10^9 bytes per second).

The garbage collector is paused inside every timed region (as :mod:`timeit` does) and run between
them, so one system does not pay for the other's garbage.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import blake3
import experimaestro

import xpmstore
import xpmstore.core.digests

WORK = Path(__file__).resolve().parent / ".work"
TARGET_SPEEDUP = 10.0
TARGET_DIGEST_SHARE = 0.80


# --- the configs, in both systems -----------------------------------------------------------------


class XInner(xpmstore.Config):
    """xpmstore: the nested config (two params)."""

    __xpmid__ = "bench.identifiers.Inner"
    hidden: xpmstore.Param[int]
    bias: xpmstore.Param[bool]


class XOuter(xpmstore.Config):
    """xpmstore: the outer config (four params and a nested config)."""

    __xpmid__ = "bench.identifiers.Outer"
    epochs: xpmstore.Param[int]
    lr: xpmstore.Param[float]
    name: xpmstore.Param[str]
    sizes: xpmstore.Param[list[int]]
    inner: xpmstore.Param[XInner]


class EInner(experimaestro.Config):
    """experimaestro: the nested config (two params)."""

    __xpmid__ = "bench.identifiers.Inner"
    hidden: experimaestro.Param[int]
    bias: experimaestro.Param[bool]


class EOuter(experimaestro.Config):
    """experimaestro: the outer config (four params and a nested config)."""

    __xpmid__ = "bench.identifiers.Outer"
    epochs: experimaestro.Param[int]
    lr: experimaestro.Param[float]
    name: experimaestro.Param[str]
    sizes: experimaestro.Param[list[int]]
    inner: experimaestro.Param[EInner]


def values(index: int) -> dict[str, Any]:
    """The parameter values of config number ``index`` (distinct for distinct indexes)."""
    return {
        "epochs": index,
        "lr": 1.0 / (index + 1),
        "name": f"run-{index}",
        "sizes": [index % 7, 64, index % 13],
        "hidden": 32 + index % 97,
        "bias": index % 2 == 0,
    }


def build_xpmstore(count: int) -> list[XOuter]:
    """``count`` fresh xpmstore configs, each with its own nested config."""
    configs = []
    for index in range(count):
        v = values(index)
        inner = XInner(hidden=v["hidden"], bias=v["bias"])
        configs.append(
            XOuter(epochs=v["epochs"], lr=v["lr"], name=v["name"], sizes=v["sizes"], inner=inner)
        )
    return configs


def build_experimaestro(count: int) -> list[Any]:
    """``count`` fresh experimaestro configs, each with its own nested config."""
    configs = []
    for index in range(count):
        v = values(index)
        inner = EInner.C(hidden=v["hidden"], bias=v["bias"])
        configs.append(
            EOuter.C(epochs=v["epochs"], lr=v["lr"], name=v["name"], sizes=v["sizes"], inner=inner)
        )
    return configs


def identify_xpmstore(configs: Sequence[XOuter]) -> list[str]:
    """The identifiers of ``configs`` (64 hex characters each)."""
    return [config.__identifier__ for config in configs]


def identify_experimaestro(configs: Sequence[Any]) -> list[bytes]:
    """The identifiers of ``configs`` (32 raw bytes each): ``__xpm__.identifier.all``."""
    return [config.__xpm__.identifier.all for config in configs]


def check_fresh_xpmstore(configs: Sequence[XOuter]) -> None:
    """Fail unless no config (outer or nested) already holds an identifier."""
    for config in configs:
        for held in (config, config.inner):
            if "_xpm_id" in held.__dict__ or "_xpm_raw" in held.__dict__:
                raise AssertionError("xpmstore: an identifier is already memoized")


def check_fresh_experimaestro(configs: Sequence[Any]) -> None:
    """Fail unless no config (outer or nested) is sealed or holds a cached identifier.

    experimaestro only caches the identifier of sealed configs, so these are computed afresh.
    """
    for config in configs:
        for held in (config, config.inner):
            if held.__xpm__._sealed or held.__xpm__._identifier is not None:
                raise AssertionError("experimaestro: an identifier is already cached")


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


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of ``action()``, with the garbage collector paused."""
    with quiet_gc():
        start = time.perf_counter()
        result = action()
        elapsed = time.perf_counter() - start
    return elapsed, result


@dataclass
class System:
    """One system under test: how to build configs, identify them, and check they are fresh."""

    name: str
    build: Callable[[int], list[Any]]
    identify: Callable[[Sequence[Any]], list[Any]]
    check_fresh: Callable[[Sequence[Any]], None]
    build_s: list[float]
    identify_s: list[float]


def bench_identifiers(count: int, repetitions: int) -> list[System]:
    """Time construction and identifiers of ``count`` fresh configs per system and repetition.

    The systems alternate inside each repetition, so drift on the machine hits both alike.
    """
    systems = [
        System(f"xpmstore {xpmstore.__version__}", build_xpmstore, identify_xpmstore,
               check_fresh_xpmstore, [], []),
        System(f"experimaestro {experimaestro.__version__}", build_experimaestro,
               identify_experimaestro, check_fresh_experimaestro, [], []),
    ]
    for system in systems:  # warm-up: class specs, imports, caches of each library
        system.identify(system.build(100))
    for _ in range(repetitions):
        for system in systems:
            elapsed, configs = timed(lambda s=system: s.build(count))
            system.build_s.append(elapsed)
            system.check_fresh(configs)
            elapsed, identifiers = timed(lambda s=system, c=configs: s.identify(c))
            system.identify_s.append(elapsed)
            if len(set(identifiers)) != count:
                raise AssertionError(f"{system.name}: the identifiers are not all distinct")
            del configs, identifiers
    return systems


def per_config_us(seconds: list[float], count: int) -> float:
    """The median of ``seconds`` over the repetitions, per config, in microseconds."""
    return statistics.median(seconds) / count * 1e6


def report_identifiers(systems: list[System], count: int, repetitions: int) -> bool:
    """Print the identifier table; whether the speed target is met."""
    xpm, anchor = systems
    build = [per_config_us(s.build_s, count) for s in systems]
    ident = [per_config_us(s.identify_s, count) for s in systems]
    print(f"\nIdentifiers: {count:,} fresh configs (4 params + nested config of 2), "
          f"median of {repetitions} repetitions\n")
    print("| system | construction µs/config | identifier µs/config |")
    print("|---|---:|---:|")
    for system, b, i in zip(systems, build, ident, strict=True):
        print(f"| {system.name} | {b:.2f} | {i:.2f} |")
    print(f"| ratio {anchor.name.split()[0]}/{xpm.name.split()[0]} "
          f"| {build[1] / build[0]:.1f}x | {ident[1] / ident[0]:.1f}x |")
    speedup = ident[1] / ident[0]
    met = speedup >= TARGET_SPEEDUP
    print(f"\ntarget xpmstore ≥ {TARGET_SPEEDUP:.0f}x faster per identifier: "
          f"{'met' if met else 'NOT met'} ({speedup:.1f}x)")
    return met


# --- input digest ---------------------------------------------------------------------------------


def input_file(size: int) -> Path:
    """A file of ``size`` pseudo-random bytes in benchmarks/.work/ (created once, then reused)."""
    WORK.mkdir(exist_ok=True)
    path = WORK / f"input-{size >> 20}MiB.bin"
    if path.exists() and path.stat().st_size == size:
        return path
    print(f"creating {path} ({size >> 20} MiB, once)", file=sys.stderr)
    partial = path.with_suffix(".partial")
    chunk = 16 << 20
    block = os.urandom(chunk)
    with open(partial, "wb") as handle:
        for offset in range(0, size, chunk):
            # vary each chunk so the file does not repeat itself
            handle.write(offset.to_bytes(8, "big") + block[8:min(chunk, size - offset)])
    partial.replace(path)
    return path


def raw_blake3(path: Path) -> bytes:
    """Multi-threaded blake3 of the memory-mapped file: the upper bound."""
    return blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(path).digest()


def xpmstore_digest(path: Path) -> bytes:
    """xpmstore's content digest of the input file, its in-process memo cleared first."""
    xpmstore.core.digests._clear_memo()
    digest = xpmstore.core.digests.digest_input(path)
    assert isinstance(digest, bytes)
    return digest


def bench_digest(size: int, repetitions: int) -> bool:
    """Time both digests of a ``size``-byte file with a warm page cache; print the table."""
    path = input_file(size)
    expected = raw_blake3(path)  # also warms the page cache
    raw_blake3(path)
    runs: dict[str, list[float]] = {"xpmstore digest_input": [], "raw blake3 update_mmap": []}
    for _ in range(repetitions):
        elapsed, digest = timed(lambda: xpmstore_digest(path))
        runs["xpmstore digest_input"].append(elapsed)
        if digest != bytes([xpmstore.core.digests.DIGEST_FILE]) + expected:
            raise AssertionError("xpmstore digest_input disagrees with raw blake3")
        elapsed, digest = timed(lambda: raw_blake3(path))
        runs["raw blake3 update_mmap"].append(elapsed)
        if digest != expected:
            raise AssertionError("raw blake3 is not deterministic")
    rates = {name: size / statistics.median(seconds) / 1e9 for name, seconds in runs.items()}
    print(f"\nInput digest: {size >> 20} MiB file, warm page cache, "
          f"median of {repetitions} repetitions\n")
    print("| method | GB/s |")
    print("|---|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.2f} |")
    share = rates["xpmstore digest_input"] / rates["raw blake3 update_mmap"]
    print(f"| ratio xpmstore/raw | {share:.0%} |")
    met = share >= TARGET_DIGEST_SHARE
    print(f"\ntarget xpmstore ≥ {TARGET_DIGEST_SHARE:.0%} of raw: "
          f"{'met' if met else 'NOT met'} ({share:.0%})")
    return met


# --- main -----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run both benchmarks and print their tables; exit status 0 even when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1,000 configs, a 64 MiB file, 3 repetitions")
    parser.add_argument("--repetitions", type=int, default=None,
                        help="repetitions per measurement (default 5, 3 with --quick)")
    args = parser.parse_args(argv)
    count = 1_000 if args.quick else 10_000
    size = (64 << 20) if args.quick else (1 << 30)
    repetitions = args.repetitions or (3 if args.quick else 5)
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, "
          f"xpmstore {xpmstore.__version__}, experimaestro {version('experimaestro')}, "
          f"blake3 {version('blake3')}")
    identifiers_met = report_identifiers(
        bench_identifiers(count, repetitions), count, repetitions
    )
    digest_met = bench_digest(size, repetitions)
    print(f"\ntargets: identifiers {'met' if identifiers_met else 'NOT met'}, "
          f"input digest {'met' if digest_met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
