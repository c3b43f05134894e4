"""The checks of the index's files (xpmstore.store.indexfiles), the checked records
(xpmstore.store.indexrecords) and the in-memory twin of LMDB (xpmstore.store.memenv), on real LMDB
files."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import lmdb
import pytest

from xpmstore.store.indexfiles import (
    KEPT_DAMAGED,
    IndexDamaged,
    allocate_lock_file,
    data_file_problem,
    dead_readers,
    file_identity,
    is_damage,
    move_aside,
)
from xpmstore.store.indexrecords import decode_record, encode_record, seal, unseal
from xpmstore.store.memenv import MemoryEnv


def open_env(path: Path) -> Any:
    return lmdb.open(str(path), max_dbs=8, max_readers=1024, map_size=1 << 26)


def churn(path: Path, steps: int, seed: int) -> None:
    """Random puts and deletes of values of many sizes, one transaction each."""
    rng = random.Random(seed)
    env = open_env(path)
    db = env.open_db(b"objects")
    keys: list[bytes] = []
    for _ in range(steps):
        with env.begin(write=True) as txn:
            for _ in range(rng.randrange(1, 20)):
                if keys and rng.random() < 0.4:
                    txn.delete(keys.pop(rng.randrange(len(keys))), db=db)
                else:
                    keys.append(rng.randbytes(rng.randrange(8, 60)))
                    txn.put(keys[-1], rng.randbytes(rng.choice([10, 500, 3000, 9000])), db=db)
    env.close()


def test_a_sound_file_passes_even_with_a_short_free_tail(tmp_path: Path) -> None:
    """LMDB may leave free pages at the end unwritten: the size check alone would call such a
    file damaged; the walk that follows it does not."""
    rng = random.Random(1)
    env = open_env(tmp_path)
    dbs = [env.open_db(b"a"), env.open_db(b"b")]
    keys: list[tuple[Any, bytes]] = []
    short = 0
    for _ in range(300):
        with env.begin(write=True) as txn:
            for _ in range(rng.randrange(1, 30)):
                db = rng.choice(dbs)
                choice = rng.random()
                if choice < 0.55 or not keys:
                    keys.append((db, rng.randbytes(rng.randrange(8, 64))))
                    txn.put(keys[-1][1], rng.randbytes(rng.choice([10, 100, 1000, 3000, 9000])),
                            db=db)
                elif choice < 0.95:
                    where, key = keys.pop(rng.randrange(len(keys)))
                    txn.delete(key, db=where)
                else:
                    txn.drop(db, delete=False)
                    keys = [k for k in keys if k[0] is not db]
        needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        if os.path.getsize(tmp_path / "data.mdb") < needed:
            short += 1
            assert data_file_problem(env, tmp_path) is None
    env.close()
    assert short > 0, "no step left a short free tail: the case is not exercised"


def test_a_truncated_file_is_found_before_any_page_is_read(tmp_path: Path) -> None:
    path = tmp_path / "env"
    churn(path, 60, 1)
    size = os.path.getsize(path / "data.mdb")
    os.truncate(path / "data.mdb", size // 2)
    env = open_env(path)  # reads the meta pages only
    problem = data_file_problem(env, path)
    env.close()
    assert problem is not None and "data.mdb holds" in problem


def test_a_reader_that_died_is_seen_in_the_lock_file(tmp_path: Path) -> None:
    path = tmp_path / "env"
    churn(path, 2, 2)
    assert dead_readers(path) == []
    child = subprocess.Popen(
        [sys.executable, "-c", "import lmdb, sys, time; e = lmdb.open(sys.argv[1],"
         " max_dbs=8, max_readers=1024); t = e.begin(); print('in', flush=True);"
         " time.sleep(120)", str(path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "in"
    assert dead_readers(path) == []  # alive: not dead
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert dead_readers(path) == [child.pid]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "lock.mdb").write_bytes(os.urandom(4096))
    assert dead_readers(tmp_path / "other") == []  # not LMDB's layout: nothing claimed


def test_the_lock_file_is_allocated(tmp_path: Path) -> None:
    allocate_lock_file(tmp_path, 1024)
    stat = os.stat(tmp_path / "lock.mdb")
    assert stat.st_size == 1023 * 64 + 192
    assert stat.st_blocks * 512 >= stat.st_size  # no hole left
    env = open_env(tmp_path)  # LMDB takes the file as it is
    assert os.path.getsize(tmp_path / "lock.mdb") == stat.st_size
    env.close()


@pytest.mark.parametrize(("error", "damage"), [
    (lmdb.CorruptedError("x"), True), (lmdb.BadTxnError("x"), True),
    (lmdb.PageNotFoundError("x"), True), (lmdb.InvalidError("x"), True),
    (IndexDamaged("short"), True), (lmdb.DiskError("x"), False),
    (lmdb.ReadersFullError("x"), False), (lmdb.MapResizedError("x"), False),
    (lmdb.ReadonlyError("x"), False), (OSError(errno.ENOSPC, "full"), False),
])
def test_what_counts_as_damage(error: BaseException, damage: bool) -> None:
    assert is_damage(error) is damage


def test_move_aside_never_overwrites(tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    (index / "data.mdb").write_bytes(b"one")
    before = file_identity(index)
    first = move_aside(index)
    (index / "data.mdb").write_bytes(b"two")
    second = move_aside(index)
    assert first != second and (first / "data.mdb").read_bytes() == b"one"
    assert (second / "data.mdb").read_bytes() == b"two"
    assert index.is_dir() and list(index.iterdir()) == []
    assert file_identity(index) is None and before == file_identity(first)


def test_move_aside_keeps_the_newest_damaged_copies_only(tmp_path: Path) -> None:
    """Damaged copies do not accumulate: the newest KEPT_DAMAGED stay (the one just made among
    them), older ones go; other folders beside the index are never touched."""
    index = tmp_path / "index"
    index.mkdir()
    for stamp in ("20260101T000000", "20260102T000000", "20260102T000000-2",
                  "20260102T000000-10", "20260103T000000"):
        (tmp_path / f"index.damaged-{stamp}").mkdir()
    (tmp_path / "index.damaged-note.txt").write_text("a file, not a copy")
    (tmp_path / "other").mkdir()
    newest = move_aside(index)
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("index.damaged-"))
    assert len([k for k in kept if k != "index.damaged-note.txt"]) == KEPT_DAMAGED == 3
    assert newest.name in kept
    assert "index.damaged-20260103T000000" in kept and "index.damaged-20260102T000000-10" in kept
    assert "index.damaged-note.txt" in kept and (tmp_path / "other").is_dir()
    assert index.is_dir()


def test_a_record_check_sees_every_flipped_bit() -> None:
    key = bytes(range(32))
    value = seal(key, encode_record({"kind": "task", "name": "a.B", "identity": {"x": 1}}))
    assert decode_record(key, value) == {"kind": "task", "name": "a.B", "identity": {"x": 1}}
    for position in range(len(value)):
        for bit in range(8):
            flipped = bytearray(value)
            flipped[position] ^= 1 << bit
            assert decode_record(key, bytes(flipped)) is None
    assert unseal(bytes(32), value) is None  # the record of another key
    assert unseal(key, b"ab") is None


def test_the_memory_twin_answers_as_lmdb_does(tmp_path: Path) -> None:
    """The same random transactions (some failing half-way) on LMDB and on MemoryEnv."""
    rng = random.Random(7)
    real, twin = open_env(tmp_path), MemoryEnv()
    dbs = [(real.open_db(n), twin.open_db(n)) for n in (b"a", b"b")]
    keys = [bytes([k]) * rng.randrange(1, 4) for k in range(40)]
    for step in range(300):
        fail = step % 7 == 0
        for env, side in ((real, 0), (twin, 1)):
            ops = random.Random(step)
            try:
                with env.begin(write=True) as txn:
                    for _ in range(5):
                        db = dbs[ops.randrange(2)][side]
                        key = ops.choice(keys)
                        choice = ops.random()
                        if choice < 0.6:
                            txn.put(key, ops.randbytes(4), db=db)
                        elif choice < 0.95:
                            txn.delete(key, db=db)
                        else:
                            txn.drop(db, delete=False)
                    if fail:
                        raise RuntimeError("undo")
            except RuntimeError:
                pass
        start = rng.choice(keys)
        seen = []
        for env, side in ((real, 0), (twin, 1)):
            with env.begin() as txn:
                found = []
                for pair in dbs:
                    cursor = txn.cursor(db=pair[side])
                    found.append(list(cursor))
                    if cursor.set_range(start):
                        found.append(list(cursor.iternext(keys=True, values=False)))
                    found.append(txn.stat(pair[side])["entries"])
                    found.append(txn.get(start, db=pair[side]))
                seen.append(found)
        assert seen[0] == seen[1], step
    real.close()
