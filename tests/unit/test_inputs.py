"""Content digests of input files and directories, and their memo (xpmstore.core.digests)."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import pytest
from blake3 import blake3

from xpmstore.core import digests
from xpmstore.errors import InputPathError

from ..helpers import refused

HOUR_NS = 3600 * 1_000_000_000


def _age(path: Path) -> None:
    """Set the mtime one hour back, so that a memo of the file is trusted."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, time.time_ns() - HOUR_NS))


def _freshen(path: Path) -> None:
    """Set the mtime one hour ahead: the file counts as still changing however slow the test."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, time.time_ns() + HOUR_NS))


class DictMemo:
    """A persistent memo backed by a dict (what the index provides)."""

    def __init__(self) -> None:
        self.data: dict[tuple[int, int, int, int, int], bytes] = {}
        self.pending: dict[tuple[int, int, int, int, int], bytes] = {}

    def get_digest(self, key):
        return self.data.get(key)

    def put_digest(self, key, digest):
        self.pending[key] = digest

    def flush_digests(self):
        self.data.update(self.pending)
        self.pending.clear()


@pytest.fixture
def memo():
    """A fresh in-process memo and a persistent one; the previous memo is restored after."""
    previous = digests._persistent
    digests._clear_memo()
    persistent = DictMemo()
    digests.set_persistent_memo(persistent)
    yield persistent
    digests.set_persistent_memo(previous)
    digests._clear_memo()


def _key(path: Path) -> tuple[int, int, int, int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def test_file_digest_is_kind_byte_and_blake3(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    assert digests.digest_input(path) == b"\x01" + blake3(b"hello").digest()


def test_big_files_are_hashed_with_mmap(tmp_path):
    data = os.urandom(3 << 20) + b"tail"
    path = tmp_path / "big"
    path.write_bytes(data)
    assert digests.hash_file(path) == blake3(data).digest()
    assert digests.digest_input(path) == b"\x01" + blake3(data).digest()


def test_empty_file_and_empty_directory(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "dir").mkdir()
    assert digests.digest_input(tmp_path / "empty") == b"\x01" + blake3(b"").digest()
    assert digests.digest_input(tmp_path / "dir") == b"\x02" + blake3(b"").digest()


def test_directory_digest_by_hand(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.txt").write_bytes(b"B")
    (tmp_path / "d" / "sub" / "a.sh").write_bytes(b"A")
    (tmp_path / "d" / "sub" / "a.sh").chmod(0o755)
    hasher = blake3()
    for name, executable, content in [(b"b.txt", b"\x00", b"B"), (b"sub/a.sh", b"\x01", b"A")]:
        hasher.update(len(name).to_bytes(4, "big") + name + executable + blake3(content).digest())
    assert digests.digest_input(tmp_path / "d") == b"\x02" + hasher.digest()


def test_directory_entries_are_sorted_by_name_bytes(tmp_path):
    top = tmp_path / "d"
    (top / "a").mkdir(parents=True)
    (top / "a" / "b").write_bytes(b"1")
    (top / "a.txt").write_bytes(b"2")
    hasher = blake3()
    for name, content in [(b"a.txt", b"2"), (b"a/b", b"1")]:  # "." (2e) sorts before "/" (2f)
        hasher.update(len(name).to_bytes(4, "big") + name + b"\x00" + blake3(content).digest())
    assert digests.digest_input(top) == b"\x02" + hasher.digest()


def test_relative_paths_are_resolved_against_the_cwd(tmp_path, monkeypatch):
    (tmp_path / "f").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert digests.digest_input(Path("f")) == digests.digest_input(tmp_path / "f")


def test_a_symlink_to_a_file_digests_its_target(tmp_path):
    (tmp_path / "target").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    assert digests.digest_input(tmp_path / "link") == digests.digest_input(tmp_path / "target")


def test_missing_path(tmp_path):
    with refused(InputPathError, ValueError, str(tmp_path / "nope"), "does not exist"):
        digests.digest_input(tmp_path / "nope")


def test_broken_symlink_inside_a_directory(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "dangling").symlink_to(tmp_path / "gone")
    with refused(InputPathError, ValueError, "dangling", "broken symbolic link"):
        digests.digest_input(tmp_path / "d")


def test_symlink_cycle(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "up").symlink_to(tmp_path / "a")
    with refused(InputPathError, ValueError, "up", "cycle"):
        digests.digest_input(tmp_path / "a")


def test_a_directory_linked_twice_is_not_a_cycle(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "f").write_bytes(b"x")
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "one").symlink_to(tmp_path / "shared")
    (tmp_path / "top" / "two").symlink_to(tmp_path / "shared")
    digest = digests.digest_input(tmp_path / "top")
    assert digest[:1] == b"\x02"


def test_special_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with refused(InputPathError, ValueError, "fifo", "not a regular file"):
        digests.digest_input(tmp_path / "fifo")


def test_object_path_parts(tmp_path):
    ident = "0f" * 32
    root = tmp_path / "ws" / "jobs" / "pkg.Task" / ident
    assert digests.object_path_parts(str(root / "out.txt")) is None  # no .xpm/ yet
    (root / ".xpm").mkdir(parents=True)
    assert digests.object_path_parts(str(root / "out.txt")) == (ident, "out.txt")
    assert digests.object_path_parts(str(root / "a" / "b")) == (ident, "a/b")
    assert digests.object_path_parts(str(root)) == (ident, "")
    assert digests.digest_input(root / "a" / "b") == (ident, "a/b")
    cache = tmp_path / "ws" / "cache" / "terms" / ident
    (cache / ".xpm").mkdir(parents=True)
    assert digests.object_path_parts(str(cache / "terms.npy")) == (ident, "terms.npy")
    for wrong in (f"{tmp_path}/ws/other/pkg.Task/{ident}/x", f"{tmp_path}/ws/jobs/{ident}/x",
                  f"{tmp_path}/ws/jobs/pkg.Task/{ident[:-1]}/x",
                  f"{tmp_path}/ws/jobs/pkg.Task/{ident.upper()}/x"):
        assert digests.object_path_parts(wrong) is None


def test_fresh_files_are_not_memoized(tmp_path, memo):
    path = tmp_path / "fresh"
    path.write_bytes(b"one")
    _freshen(path)
    assert digests.digest_input(path) == b"\x01" + blake3(b"one").digest()
    assert _key(path) not in digests._memo and memo.data == {}


def test_old_files_are_memoized_in_process_and_persistently(tmp_path, memo):
    path = tmp_path / "old"
    path.write_bytes(b"content")
    _age(path)
    digest = digests.digest_input(path)
    key = _key(path)
    assert digests._memo[key] == digest
    assert memo.data[key] == digest and memo.pending == {}  # batched, then flushed
    digests._memo[key] = b"\x01" + b"\xee" * 32  # the memo is what a second lookup answers
    assert digests.digest_input(path) == b"\x01" + b"\xee" * 32


def test_a_change_of_the_file_changes_the_key(tmp_path, memo):
    path = tmp_path / "old"
    path.write_bytes(b"content")
    _age(path)
    digests.digest_input(path)
    path.write_bytes(b"CONTENT")
    _age(path)
    assert digests.digest_input(path) == b"\x01" + blake3(b"CONTENT").digest()


def test_persistent_memo_is_consulted_for_old_files_only(tmp_path, memo):
    old, fresh = tmp_path / "old", tmp_path / "fresh"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    _age(old)
    _freshen(fresh)
    planted = b"\x01" + b"\xaa" * 32
    memo.data[_key(old)] = planted
    memo.data[_key(fresh)] = planted
    assert digests.digest_input(old) == planted
    assert digests.digest_input(fresh) == b"\x01" + blake3(b"x").digest()


def test_directory_files_use_the_memo(tmp_path, memo):
    (tmp_path / "d").mkdir()
    inner = tmp_path / "d" / "f"
    inner.write_bytes(b"x")
    _age(inner)
    first = digests.digest_input(tmp_path / "d")
    assert _key(inner) in digests._memo
    digests._memo[_key(inner)] = b"\x01" + b"\xbb" * 32
    assert digests.digest_input(tmp_path / "d") != first


def test_large_inputs_warn_once(tmp_path, monkeypatch):
    monkeypatch.setattr(digests, "_WARN_FILES", 3)
    (tmp_path / "d").mkdir()
    for index in range(6):
        (tmp_path / "d" / f"f{index}").write_bytes(b"x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        digests.digest_input(tmp_path / "d")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert "versioned dataset Config" in messages[0] and str(tmp_path / "d") in messages[0]
