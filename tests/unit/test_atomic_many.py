"""One document published under several names (xpmstore.system.atomic.write_atomic_many): each name
atomic, one inode when the file system has hard links, no temporary file left behind."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from xpmstore.system import atomic
from xpmstore.system.atomic import TEMP_MARK, write_atomic_many


def leftovers(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if TEMP_MARK in name)


def test_both_names_hold_the_document_as_one_inode(tmp_path: Path) -> None:
    first, second = tmp_path / "launch.json", tmp_path / "state.json"
    second.write_text("old state")
    write_atomic_many((first, second), b'{"state": "running"}')
    assert first.read_bytes() == second.read_bytes() == b'{"state": "running"}'
    assert first.stat().st_ino == second.stat().st_ino
    assert stat.S_IMODE(first.stat().st_mode) == 0o644
    assert leftovers(tmp_path) == []
    atomic.write_atomic(second, b"done", durable=False)  # replacing one leaves the other
    assert first.read_bytes() == b'{"state": "running"}' and second.read_bytes() == b"done"


def test_without_hard_links_each_name_is_written(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)
    first, second = tmp_path / "a", tmp_path / "b"
    write_atomic_many((first, second), b"doc")
    assert first.read_bytes() == second.read_bytes() == b"doc"
    assert first.stat().st_ino != second.stat().st_ino
    assert leftovers(tmp_path) == []


def test_a_failure_leaves_no_temporary_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "link", broken)
    with pytest.raises(OSError):
        write_atomic_many((tmp_path / "a", tmp_path / "b"), b"doc")
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    taken = tmp_path / "b"
    taken.mkdir()
    (taken / "inside").write_text("a non-empty folder cannot be replaced by a file")
    with pytest.raises(OSError):
        write_atomic_many((tmp_path / "a", taken), b"doc")
    assert leftovers(tmp_path) == []
    assert (tmp_path / "a").read_bytes() == b"doc"  # the first name was published, in order
