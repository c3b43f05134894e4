"""The installed packages' hash of the run record's header, cached once per environment
(xpmstore.scheduler.envfacts): the same value as computing it, computed again when a
distribution is added, removed or upgraded in a folder of ``sys.path``, and a damaged or hostile
cache file ignored and written anew."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import pytest

from xpmstore.scheduler import envfacts
from xpmstore.scheduler.runlog import RunRecord, read_run

from ..storehelpers import isolate


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each value :func:`envfacts.compute_packages_hash` returns, as it is called."""
    calls: list[str] = []
    real = envfacts.compute_packages_hash

    def counting() -> str:
        calls.append(real())
        return calls[-1]

    monkeypatch.setattr(envfacts, "compute_packages_hash", counting)
    return calls


def _add_distribution(site: Path, name: str, version: str) -> Path:
    """A ``*.dist-info`` as an installer leaves it, then the folder's time moved on (an
    install happens after the run that cached the key)."""
    folder = site / f"{name}-{version}.dist-info"
    folder.mkdir()
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    _touch_later(site)
    return folder


def _touch_later(path: Path) -> None:
    later = os.stat(path).st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(later, later))


def test_the_cached_hash_is_the_computed_one_and_computed_once(
        tmp_path: Path, computed: list[str]) -> None:
    folder = tmp_path / "environments"
    first = envfacts.packages_hash(folder)
    second = envfacts.packages_hash(folder)
    assert first == second == computed[0]
    assert len(computed) == 1
    assert [p.name for p in folder.iterdir()] == [envfacts.cache_path(folder).name]


def test_without_a_folder_it_is_computed_each_time(computed: list[str]) -> None:
    assert envfacts.packages_hash(None) == envfacts.packages_hash(None) == computed[0]
    assert len(computed) == 2


def test_a_distribution_added_removed_or_upgraded_is_seen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, computed: list[str]) -> None:
    site = tmp_path / "venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(site))
    folder = tmp_path / "environments"
    before = envfacts.packages_hash(folder)

    added = _add_distribution(site, "xpmstore-test-dist", "1.0")
    with_it = envfacts.packages_hash(folder)
    assert with_it != before
    assert with_it == envfacts.compute_packages_hash()
    assert envfacts.packages_hash(folder) == with_it  # cached again under the new key

    (added / "METADATA").rename(added / "METADATA.old")  # upgraded: another version
    added.rename(site / "xpmstore-test-dist-2.0.dist-info")
    (site / "xpmstore-test-dist-2.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: xpmstore-test-dist\nVersion: 2.0\n")
    _touch_later(site)
    upgraded = envfacts.packages_hash(folder)
    assert upgraded not in (before, with_it)
    assert upgraded == envfacts.compute_packages_hash()

    for child in (site / "xpmstore-test-dist-2.0.dist-info").iterdir():
        child.unlink()
    (site / "xpmstore-test-dist-2.0.dist-info").rmdir()
    _touch_later(site)
    assert envfacts.packages_hash(folder) == before


def test_scripts_in_two_folders_keep_their_own_cache(tmp_path: Path,
                                                     computed: list[str]) -> None:
    folder = tmp_path / "environments"
    other = tmp_path / "scripts"  # another script's folder: first on sys.path, as Python puts it
    other.mkdir()
    first = envfacts.packages_hash(folder)
    sys.path.insert(0, str(other))
    try:
        second = envfacts.packages_hash(folder)
    finally:
        sys.path.remove(str(other))
    assert envfacts.packages_hash(folder) == first == second
    assert len(computed) == 2  # once each, never again when they alternate
    sys.path.insert(0, str(other))
    try:
        assert envfacts.packages_hash(folder) == second
    finally:
        sys.path.remove(str(other))
    assert len(computed) == 2


def test_metadata_rewritten_in_place_is_seen(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    added = _add_distribution(site, "xpmstore-test-dist", "1.0")
    folder = tmp_path / "environments"
    before = envfacts.packages_hash(folder)
    (added / "METADATA").write_text("Metadata-Version: 2.1\nName: xpmstore-test-dist\n"
                                    "Version: 1.0.post1\n")  # same folder, longer file
    assert envfacts.packages_hash(folder) != before


HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "not JSON": b"\x00\xff garbage",
    "truncated": b'{"key": "',
    "a list": b"[1, 2]",
    "deep": b"[" * 100_000,
    "huge": b'{"key": "' + b"a" * 100_000 + b'"}',
    "a path as hash": b'{"key": "KEY", "packages": "../../etc/passwd"}',
    "a number as hash": b'{"key": "KEY", "packages": 12}',
    "a long hash": b'{"key": "KEY", "packages": "0123456789abcdef0"}',
    "another key": b'{"key": "other", "packages": "0123456789abcdef"}',
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_damaged_or_hostile_cache_file_is_ignored_and_rewritten(
        tmp_path: Path, computed: list[str], kind: str) -> None:
    folder = tmp_path / "environments"
    folder.mkdir()
    path = envfacts.cache_path(folder)
    path.write_bytes(HOSTILE[kind].replace(b"KEY", envfacts.environment_key().encode()))
    value = envfacts.packages_hash(folder)
    assert value == computed[0]
    assert json.loads(path.read_text())["packages"] == value  # written anew
    assert envfacts.packages_hash(folder) == value
    assert len(computed) == 1


def test_a_symlink_or_a_fifo_as_cache_file_is_not_followed(tmp_path: Path,
                                                            computed: list[str]) -> None:
    folder = tmp_path / "environments"
    folder.mkdir()
    outside = tmp_path / "outside.json"
    key = envfacts.environment_key()
    outside.write_text(json.dumps({"key": key, "packages": "0123456789abcdef"}))
    path = envfacts.cache_path(folder)
    path.symlink_to(outside)
    assert envfacts.packages_hash(folder) == computed[0] != "0123456789abcdef"
    assert not path.is_symlink()  # replaced by a file of its own
    assert json.loads(outside.read_text())["packages"] == "0123456789abcdef"  # untouched

    path.unlink()
    os.mkfifo(path)
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(envfacts.packages_hash(folder)),
                              daemon=True)
    reader.start()
    reader.join(60)  # a deadline, not a duration: a read waiting on the fifo would hang
    assert result == [computed[0]]


def test_a_folder_that_is_a_symlink_is_never_written_through(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "environments"
    folder.symlink_to(elsewhere)
    assert envfacts.packages_hash(folder) == envfacts.compute_packages_hash()
    assert list(elsewhere.iterdir()) == []


def test_a_folder_that_cannot_be_made_costs_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "environments"
    folder.write_text("a file where the folder goes")  # its mkdir fails, as a read-only one
    assert envfacts.packages_hash(folder) == envfacts.compute_packages_hash()
    assert folder.read_text() == "a file where the folder goes"


def test_the_header_records_the_cached_hash(tmp_path: Path, computed: list[str]) -> None:
    folder = tmp_path / "environments"
    first = RunRecord(tmp_path / "experiments", "exp", environments=folder)
    first.end("ok")
    second = RunRecord(tmp_path / "experiments", "exp", environments=folder)
    second.end("ok")
    recorded = [read_run(r.path)[0]["packages"] for r in (first, second)]
    assert recorded == [computed[0]] * 2
    assert len(computed) == 1
