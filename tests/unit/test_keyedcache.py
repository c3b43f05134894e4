"""Small keyed cache files (xpmstore.system.keyedcache): read back only under their key, never
through a symlink; a folder that refuses the write costs only the cache.  (The packages' hash
of run records, tests/unit/test_envfacts.py, checks damaged and hostile files through them.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xpmstore.system.keyedcache import read_keyed, write_keyed


def test_a_value_is_read_back_under_its_key_only(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "one.json"
    write_keyed(path, "k1", {"value": [1, 2]})
    assert read_keyed(path, "k1", 4096) == {"key": "k1", "value": [1, 2]}
    assert read_keyed(path, "k2", 4096) is None
    assert read_keyed(path, "k1", 10) is None  # larger than the limit
    assert read_keyed(tmp_path / "absent.json", "k1", 4096) is None


@pytest.mark.parametrize("data", [b"", b"{", b"[1]", b'"k1"', b"\xff\xfe", b"[" * 10_000])
def test_a_damaged_file_reads_as_absent(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "one.json"
    path.write_bytes(data)
    assert read_keyed(path, "k1", 1 << 20) is None


def test_a_symlinked_file_or_folder_is_never_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "one.json").write_text(json.dumps({"key": "k1", "value": 1}))
    linked = tmp_path / "linked"
    linked.symlink_to(elsewhere)
    write_keyed(linked / "two.json", "k1", {"value": 2})
    assert sorted(p.name for p in elsewhere.iterdir()) == ["one.json"]  # not written through
    own = tmp_path / "own"
    own.mkdir()
    (own / "one.json").symlink_to(elsewhere / "one.json")
    assert read_keyed(own / "one.json", "k1", 4096) is None
