"""How transfers stop (xpmstore.remote.interrupt) and how a damaged key is replaced, on a real
directory remote: an interrupted write publishes nothing, a failing call stops its siblings
and is the error raised, an interrupt made with a parent stops with it, and a replacing write
swaps the bytes whole."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from xpmstore.errors import TransferInterrupted
from xpmstore.remote import DirectoryBackend
from xpmstore.remote.interrupt import Interrupt, InterruptibleReader, run_all

from ..storehelpers import wait_for


def test_a_child_interrupt_stops_with_its_parent_but_not_the_other_way() -> None:
    parent = Interrupt()
    child = Interrupt(parent)
    child.set()
    assert child.is_set() and not parent.is_set()
    other = Interrupt(parent)
    parent.set()
    with pytest.raises(TransferInterrupted):
        other.check()


def test_a_reader_stops_at_its_next_read_once_interrupted() -> None:
    interrupt = Interrupt()
    reader = InterruptibleReader(io.BytesIO(b"abcdef"), interrupt)
    assert reader.read(2) == b"ab"
    reader.seek(0)
    assert reader.tell() == 0
    interrupt.set()
    with pytest.raises(TransferInterrupted):
        reader.read(2)


def test_a_failing_call_stops_the_others_and_is_the_error_raised() -> None:
    interrupt = Interrupt()
    started = threading.Event()
    stopped: list[int] = []

    def call(item: int) -> None:
        if item == 0:  # a transfer in flight until the failure interrupts it
            started.set()
            wait_for(interrupt.is_set, "the failure to interrupt the others")
            stopped.append(item)
            interrupt.check()
        started.wait()
        raise ValueError(f"item {item} failed")

    with pytest.raises(ValueError, match="item 1 failed"):  # not item 0's TransferInterrupted
        run_all(call, [0, 1], 2, interrupt)
    assert interrupt.is_set() and stopped == [0]


def test_an_interrupted_write_publishes_nothing(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path / "remote")
    backend.init()
    source = tmp_path / "big"
    source.write_bytes(os.urandom(3 << 20))  # three chunks
    interrupt = Interrupt()
    interrupt.set()
    with pytest.raises(TransferInterrupted):
        backend.put_file("cas/ab/big", source, interrupt=interrupt)
    assert os.listdir(tmp_path / "remote" / "cas" / "ab") == []  # no key, no temporary file


def test_a_replacing_write_swaps_the_bytes_whole(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path / "remote")
    backend.init()
    assert backend.put_bytes("cas/ab/key", b"damaged")
    assert not backend.put_bytes("cas/ab/key", b"good")  # create-only: kept
    with backend.open_read("cas/ab/key") as reader:  # a reader of the old bytes...
        assert backend.put_bytes("cas/ab/key", b"good", replace=True)
        assert reader.read() == b"damaged"  # ...reads them whole
    assert backend.get_bytes("cas/ab/key") == b"good"
    assert os.listdir(tmp_path / "remote" / "cas" / "ab") == ["key"]
