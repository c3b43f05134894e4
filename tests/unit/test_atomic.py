"""Atomic publication (xpmstore.system.atomic): whole or nothing at the final name, no temp left
behind, never a symlink followed."""

from __future__ import annotations

import errno
import os
import resource
import signal
import stat
from pathlib import Path

import pytest

from xpmstore.system import atomic
from xpmstore.system.atomic import TEMP_MARK, fsync_dir, write_atomic

from ..storehelpers import fork_context, wait_for


def leftovers(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if TEMP_MARK in name)


def test_publishes_bytes_with_mode_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    write_atomic(target, b"hello", mode=0o640)
    assert target.read_bytes() == b"hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_replaces_an_existing_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"old content that is longer than the new one")
    write_atomic(target, b"new", durable=False)
    assert target.read_bytes() == b"new"
    assert leftovers(tmp_path) == []


def test_empty_and_large_payloads(tmp_path: Path) -> None:
    write_atomic(tmp_path / "empty", b"")
    assert (tmp_path / "empty").read_bytes() == b""
    big = os.urandom(3 << 20)
    write_atomic(tmp_path / "big", big)
    assert (tmp_path / "big").read_bytes() == big


def test_missing_parent_raises_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "absent" / "file", b"x")
    assert os.listdir(tmp_path) == []


def test_temp_removed_when_the_rename_fails(tmp_path: Path) -> None:
    # the final name is a non-empty directory: os.replace fails after the temp file was written
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("keep me")
    with pytest.raises(OSError):
        write_atomic(target, b"payload")
    assert leftovers(tmp_path) == []
    assert (target / "inside").read_text() == "keep me"


def test_temp_removed_when_writing_fails(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_atomic(tmp_path / "file", 12345)  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


def _write_beyond_limit(path: str) -> None:
    """In a child: a file-size limit makes write() fail with EFBIG like a full disk would."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    try:
        write_atomic(path, b"x" * 100_000)
    except OSError as exc:
        os._exit(10 if exc.errno == errno.EFBIG else 11)
    os._exit(12)


def test_write_error_leaves_neither_partial_file_nor_temp(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"previous")
    process = fork_context().Process(target=_write_beyond_limit, args=(str(target),))
    process.start()
    process.join()
    assert process.exitcode == 10
    assert target.read_bytes() == b"previous"
    assert leftovers(tmp_path) == []


def test_symlink_at_the_temp_name_is_not_followed(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # make the random part of the temp name predictable so that a symlink can be planted there
    monkeypatch.setattr(atomic.os, "urandom", lambda n: bytes.fromhex("deadbeef"))
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_bytes(b"precious")
    folder = tmp_path / "folder"
    folder.mkdir()
    temp = folder / f".file{TEMP_MARK}{os.getpid()}-deadbeef"
    temp.symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_atomic(folder / "file", b"attacker data")
    assert victim.read_bytes() == b"precious"
    assert not (folder / "file").exists()
    assert temp.is_symlink()  # not ours: left alone

    dangling = folder / f".other{TEMP_MARK}{os.getpid()}-deadbeef"
    dangling.symlink_to(outside / "created-through-link")
    with pytest.raises(FileExistsError):
        write_atomic(folder / "other", b"attacker data")
    assert not (outside / "created-through-link").exists()


def test_symlink_at_the_final_name_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = tmp_path / "file"
    link.symlink_to(victim)
    write_atomic(link, b"new")
    assert not link.is_symlink()
    assert link.read_bytes() == b"new"
    assert victim.read_bytes() == b"precious"


def test_fsync_dir_of_missing_directory_raises(tmp_path: Path) -> None:
    fsync_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        fsync_dir(tmp_path / "absent")


_VERSIONS = 40
_SIZE = 256 * 1024


def _writer(path: str, started: str) -> None:
    Path(started).write_text("go")
    for version in range(1, _VERSIONS + 1):
        write_atomic(path, bytes([version]) * (_SIZE + version), durable=version % 4 == 0)


def test_a_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    """A reader polling the final name while another process rewrites it sees whole versions."""
    target = tmp_path / "file"
    write_atomic(target, bytes([0]) * _SIZE)
    started = tmp_path / "started"
    process = fork_context().Process(target=_writer, args=(str(target), str(started)))
    process.start()
    wait_for(started.exists, "the writer to start")
    seen = set()
    while process.is_alive() or not seen:
        data = target.read_bytes()
        version = data[0]
        assert data == bytes([version]) * (_SIZE + version), "a partial or mixed file was seen"
        seen.add(version)
    process.join()
    assert process.exitcode == 0
    final = target.read_bytes()
    assert final == bytes([_VERSIONS]) * (_SIZE + _VERSIONS)
    assert leftovers(tmp_path) == []
