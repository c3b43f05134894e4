"""Locks (xpmstore.system.locks) between real processes: object locks, the gc lock, a holder's
death."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xpmstore.system.locks import (
    LockTimeout,
    LockUnavailableError,
    gc_lock,
    object_lock,
    path_lock,
    try_object_lock,
)

from ..storehelpers import fork_context


def _hold(kind: str, path: str, ready: Any, release: Any) -> None:
    """In a child: take the lock ``kind`` on ``path``, set ``ready``, wait for ``release``."""
    if kind == "object":
        manager: Any = object_lock(Path(path))
    elif kind == "path":
        manager = path_lock(Path(path))
    else:
        manager = gc_lock(Path(path), exclusive=kind == "gc-exclusive")
    with manager:
        ready.set()
        release.wait()


class Holder:
    """A child process holding a lock until released or killed."""

    def __init__(self, kind: str, path: Path):
        context = fork_context()
        self.ready = context.Event()
        self.release_event = context.Event()
        self.process = context.Process(target=_hold,
                                       args=(kind, str(path), self.ready, self.release_event))
        self.process.start()
        assert self.ready.wait(60), "the holder never took its lock"

    def release(self) -> None:
        self.release_event.set()
        self.process.join()
        assert self.process.exitcode == 0

    def kill(self) -> None:
        assert self.process.pid is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.join()
        assert self.process.exitcode == -signal.SIGKILL


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    made: list[Holder] = []
    yield made
    for holder in made:
        if holder.process.is_alive():
            holder.kill()


def test_object_lock_excludes_another_process(tmp_path: Path, holders: list[Holder]) -> None:
    lock = tmp_path / "locks" / "ab" / "abcd"
    holder = Holder("object", lock)
    holders.append(holder)
    assert lock.exists()  # parents created by the holder
    with pytest.raises(LockTimeout) as info, object_lock(lock, timeout=0):
        pytest.fail("acquired a lock held by another process")
    assert isinstance(info.value, TimeoutError)
    assert str(lock) in str(info.value)
    with pytest.raises(LockTimeout), object_lock(lock, timeout=0.05):
        pytest.fail("acquired a lock held by another process")
    with try_object_lock(lock) as acquired:
        assert acquired is False
    holder.release()
    with object_lock(lock, timeout=0), try_object_lock(lock) as again:
        assert again is False  # each call has its own descriptor: excluded in-process too
    with try_object_lock(lock) as acquired:
        assert acquired is True


def test_lock_of_a_killed_holder_is_free_at_once(tmp_path: Path, holders: list[Holder]) -> None:
    lock = tmp_path / "lock"
    holder = Holder("object", lock)
    holders.append(holder)
    with try_object_lock(lock) as acquired:
        assert not acquired
    holder.kill()
    with object_lock(lock, timeout=0):  # no waiting at all: the kernel freed it with the holder
        pass
    with try_object_lock(lock) as acquired:
        assert acquired


def test_try_object_lock_lets_errors_of_the_body_through(tmp_path: Path,
                                                         holders: list[Holder]) -> None:
    other = tmp_path / "other"
    holders.append(Holder("object", other))
    with pytest.raises(LockTimeout), try_object_lock(tmp_path / "mine") as acquired:
        assert acquired
        with object_lock(other, timeout=0):
            pytest.fail("acquired a held lock")
    with pytest.raises(KeyError), try_object_lock(tmp_path / "mine") as acquired:
        raise KeyError("body")
    with try_object_lock(tmp_path / "mine") as acquired:
        assert acquired  # released after each failed body


def test_object_lock_is_released_on_exception(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    with pytest.raises(RuntimeError), object_lock(lock):
        raise RuntimeError("boom")
    with try_object_lock(lock) as acquired:
        assert acquired


def test_gc_lock_shared_holders_coexist(tmp_path: Path, holders: list[Holder]) -> None:
    lock = tmp_path / ".xpmstore" / "gc.lock"
    holder = Holder("gc-shared", lock)
    holders.append(holder)
    with gc_lock(lock, exclusive=False, blocking=False) as shared:
        assert shared is True
    with gc_lock(lock, exclusive=True, blocking=False) as exclusive:
        assert exclusive is False
    holder.release()
    with gc_lock(lock, exclusive=True, blocking=False) as exclusive:
        assert exclusive is True


def test_gc_lock_exclusive_excludes_shared(tmp_path: Path, holders: list[Holder]) -> None:
    lock = tmp_path / "gc.lock"
    holder = Holder("gc-exclusive", lock)
    holders.append(holder)
    with gc_lock(lock, exclusive=False, blocking=False) as shared:
        assert shared is False
    with gc_lock(lock, exclusive=True, blocking=False) as exclusive:
        assert exclusive is False
    holder.kill()
    with gc_lock(lock, exclusive=False, blocking=True) as shared:
        assert shared is True
        with gc_lock(lock, exclusive=True, blocking=False) as exclusive:
            assert exclusive is False  # our own shared hold excludes an exclusive one too


def test_path_lock_excludes_another_process(tmp_path: Path, holders: list[Holder]) -> None:
    lock = tmp_path / "index.lock"
    holder = Holder("path", lock)
    holders.append(holder)
    with gc_lock(lock, exclusive=True, blocking=False) as acquired:
        assert acquired is False
    holder.kill()
    with path_lock(lock) as acquired:
        assert acquired is True


def test_object_lock_is_never_a_soft_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/scheduler.md: no silent fallback to a soft (marker file) lock when flock is missing."""
    import errno
    import fcntl

    def refuse(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    with pytest.raises(LockUnavailableError) as info, object_lock(tmp_path / "lock"):
        pytest.fail("a lock was taken without flock")
    assert "does not support locks" in str(info.value)


def test_object_lock_waits_for_its_holder_and_imports_no_filelock(
        tmp_path: Path, holders: list[Holder]) -> None:
    import subprocess
    import sys

    lock = tmp_path / "lock"
    holder = Holder("object", lock)
    holders.append(holder)
    with pytest.raises(LockTimeout), object_lock(lock, timeout=0.2):
        pytest.fail("acquired a lock held by another process")
    holder.release()
    with object_lock(lock, timeout=0.2):
        pass
    code = ("import sys, pathlib; from xpmstore.system.locks import object_lock\n"
            f"with object_lock(pathlib.Path({str(tmp_path / 'other')!r})): pass\n"
            "assert 'filelock' not in sys.modules, 'filelock imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
