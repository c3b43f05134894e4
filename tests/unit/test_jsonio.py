"""xpmstore.system.jsonio: every way a JSON file read back can be unreadable is one
MalformedFileError (a ValueError) naming the file — never a RecursionError, never a wait on a
fifo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from xpmstore.errors import MalformedFileError
from xpmstore.system import jsonio

from ..helpers import refused


def nested(depth: int, opening: str = "[", closing: str = "]") -> str:
    return opening * depth + closing * depth


@pytest.mark.parametrize("text", [nested(100_000), '{"a":' * 100_000 + "1" + "}" * 100_000,
                                  nested(jsonio.MAX_DEPTH + 1), "not json", "\xff\xfe", ""])
def test_unreadable_documents_are_one_error_naming_the_file(text: str) -> None:
    with refused(MalformedFileError, ValueError, "the/file.json"):
        jsonio.loads(text.encode("latin-1"), "the/file.json")


def test_documents_up_to_the_limit_are_read() -> None:
    assert jsonio.loads(nested(jsonio.MAX_DEPTH), "x") == json.loads(nested(jsonio.MAX_DEPTH))
    wide = {"files": [[f"f{n}", n, False, "00" * 32] for n in range(10_000)]}
    assert jsonio.loads(json.dumps(wide), "x") == wide


def test_read_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    folder = tmp_path / "done"
    folder.mkdir()
    with refused(MalformedFileError, ValueError, str(folder), "not a regular file"):
        jsonio.read(folder)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes it: opening it for reading must not wait
    with refused(MalformedFileError, ValueError, str(fifo), "not a regular file"):
        jsonio.read(fifo)
    with pytest.raises(FileNotFoundError):
        jsonio.read(tmp_path / "absent")


def test_read_gives_the_document(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text('{"state": "done"}')
    assert jsonio.read(target) == {"state": "done"}
    target.write_text(nested(100_000))
    with refused(MalformedFileError, ValueError, str(target), "nested deeper"):
        jsonio.read(target)
