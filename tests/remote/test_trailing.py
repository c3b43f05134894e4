"""Pulls from a directory remote check each blob by hashing the local copy while the kernel
copies the next piece (:mod:`xpmstore.remote.trailing`): a blob of several pieces arrives
intact, and a byte flipped in its first, a middle or its last piece is caught — nothing of the
object is published.  The pieces copied and the regions hashed at a time (16 MiB) are made
1 MiB here, so that a small blob goes through every path: several pieces, several regions
hashed by the thread, a short last piece hashed inline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from blake3 import blake3

from xpmstore.core.identifier import cache_identifier
from xpmstore.errors import CorruptObjectError
from xpmstore.remote import Remote, backends, open_backend, pull, push_one, trailing
from xpmstore.remote.trailing import TrailingHash

from ..storehelpers import active, make_workspace
from .cachetasks import BigBlob

PIECE = 1 << 20
SIZE = 3 * PIECE + 12_345  # four pieces, the last one short


@pytest.fixture(autouse=True)
def _small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "COPY_CHUNK", PIECE)
    monkeypatch.setattr(trailing, "_REGION", PIECE)


def pushed(tmp_path: Path) -> tuple[Remote, str, Path]:
    """A directory remote holding a BigBlob entry of SIZE bytes; (remote, entry id, local file)."""
    first = make_workspace(tmp_path / "first")
    blob = BigBlob(size=SIZE)
    with active(first):
        local = blob.file()
    identifier = cache_identifier(blob.__identifier__, "blob.bin")
    (tmp_path / "remote").mkdir()
    remote = Remote(open_backend(f"file://{tmp_path / 'remote'}"))
    assert push_one(remote, local.parent)
    return remote, identifier, local


def test_a_blob_of_several_pieces_arrives_intact(tmp_path: Path) -> None:
    remote, identifier, local = pushed(tmp_path)
    pulled = pull(make_workspace(tmp_path / "second"), identifier, remote)
    assert (pulled / "blob.bin").read_bytes() == local.read_bytes()


@pytest.mark.parametrize("where", [0, PIECE + 7, SIZE - 1])
def test_a_byte_flipped_in_any_piece_is_caught(tmp_path: Path, where: int) -> None:
    remote, identifier, local = pushed(tmp_path)
    digest = blake3(local.read_bytes()).hexdigest()
    path = tmp_path / "remote" / remote.blob_key(digest)
    with open(path, "r+b") as handle:  # damaged in place, on the remote's own storage
        handle.seek(where)
        byte = handle.read(1)
        handle.seek(where)
        handle.write(bytes([byte[0] ^ 0x40]))
    second = make_workspace(tmp_path / "second")
    with pytest.raises(CorruptObjectError, match="blake3 differs"):
        pull(second, identifier, remote)
    assert os.listdir(second.cache / "tests.remote.BigBlob") == []  # nothing, not even temp


def test_the_trailing_hash_is_the_hash_of_the_file(tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    target = tmp_path / "out"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with TrailingHash(target) as trailing:
        offset = 0
        for size in (1, 1 << 20, 5, 2 << 20, len(data)):
            piece = data[offset:offset + size]
            if not piece:
                break
            os.write(fd, piece)
            trailing.written(offset, len(piece))
            offset += len(piece)
        with pytest.raises(ValueError):
            trailing.written(0, 1)  # pieces come in order
        assert trailing.hexdigest(len(data)) == blake3(data).hexdigest()
    os.close(fd)
