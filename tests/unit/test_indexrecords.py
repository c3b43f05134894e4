"""The index's records (xpmstore.store.indexrecords): their fields and their bytes, one codec
that every reader uses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import xpmstore
from xpmstore.store.indexrecords import (
    checked_body,
    decode_record,
    decode_summary,
    encode_record,
    encode_value,
    task_listing_members,
)

KEY = bytes(range(32))

TASK: dict[str, Any] = {
    "kind": "task", "name": "pkg.Learn", "path": "jobs/pkg.Learn/" + "ab" * 32,
    "created": 1700000000.25, "last_access": 1700000100.5, "size": 12,
    "tags": {"model": "small", "seed": 1}, "dependencies": ["cd" * 32],
    "identity": {"name": "pkg.Learn", "fields": {"lr": 0.1}},
}
ENTRY: dict[str, Any] = {
    "kind": "cache", "name": "pkg.Terms", "path": "cache/pkg.Terms/" + "ef" * 32,
    "created": 1700000000.0, "last_access": 1700000000.0, "size": 3, "tags": {},
    "dependencies": [], "identity": None, "config": "01" * 32, "method": "Terms.load",
    "file": "terms.json",
}


def summary_of(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "identity"}


@pytest.mark.parametrize("record", [TASK, ENTRY])
def test_a_record_reads_back_as_it_was_written(record: dict[str, Any]) -> None:
    value = encode_value(KEY, record)  # type: ignore[arg-type]
    assert decode_record(KEY, value) == record
    body = checked_body(KEY, value)
    assert body is not None and json.loads(body) == record
    if record["identity"] is not None:
        assert decode_record(KEY, value, identity=False) == summary_of(record)
        assert decode_summary(body) == summary_of(record)
    assert decode_record(bytes(32), value) is None and checked_body(bytes(32), value) is None


def test_the_identity_section_is_written_last_whatever_the_order_given() -> None:
    shuffled = {"identity": TASK["identity"], **summary_of(TASK)}
    body = encode_record(shuffled)  # type: ignore[arg-type]
    assert list(json.loads(body)) == [*summary_of(TASK), "identity"]
    assert decode_summary(body) == summary_of(TASK)


def test_a_record_of_another_shape_is_parsed_whole() -> None:
    body = json.dumps({"identity": {"x": 1}, **summary_of(TASK)}).encode()  # identity first
    assert decode_summary(body) == {"identity": {"x": 1}, **summary_of(TASK)}
    with pytest.raises(ValueError, match="JSON object"):
        decode_summary(b"[1, 2]")


def test_a_body_that_is_not_utf8_is_damage() -> None:
    from xpmstore.store.indexrecords import seal

    assert checked_body(KEY, seal(KEY, b'{"name":"\xff"}')) is None
    assert decode_record(KEY, seal(KEY, b"not json")) is None


@pytest.mark.parametrize("root", ["/ws/", '/odd "ws" \\ été/', "/tmp/\u2603/"])
def test_a_task_record_gives_its_listing_fields_without_being_parsed(root: str) -> None:
    found = task_listing_members(encode_record(TASK), root)  # type: ignore[arg-type]
    assert found is not None
    created, members = found
    assert created == TASK["created"]
    assert json.loads("{" + members + "}") == {**summary_of(TASK), "path": root + TASK["path"]}


def test_anything_but_a_task_record_is_left_to_the_decoder() -> None:
    assert task_listing_members(encode_record(ENTRY), "/ws/") is None  # type: ignore[arg-type]
    no_identity = json.dumps(summary_of(TASK), separators=(",", ":")).encode()
    assert task_listing_members(no_identity, "/ws/") is None


def test_no_other_module_knows_the_bytes_of_a_record() -> None:
    """Listings and every other reader go through the codec: no module but indexrecords spells
    out a record's JSON."""
    package = Path(xpmstore.__file__).parent
    layout = re.compile(r"""['"](,?\{?"(identity|path|created|kind)":)""")
    spelled = [str(path.relative_to(package)) for path in package.rglob("*.py")
               if path.name != "indexrecords.py" and layout.search(path.read_text())]
    assert spelled == []
