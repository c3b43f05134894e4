"""gc's candidates in columns (xpmstore.admin.candidates): read back as the Candidate objects
that went in, in (kind, name, identifier) order; identifier sets held as raw bytes."""

from __future__ import annotations

import random

from xpmstore.admin.candidates import Candidate, Candidates, IdentifierSet


def raw(number: int) -> bytes:
    return random.Random(number).randbytes(32)


def test_candidates_read_back_in_kind_name_identifier_order() -> None:
    added = []
    column = Candidates("/ws")
    for number in range(200):
        kind, name = (("task", "b.Learn"), ("cache", "a.Terms"), ("task", "a.Eval"))[number % 3]
        why = ("unreachable", "older", "max-size")[number % 3]
        path = f"/elsewhere/{number}" if number == 7 else None
        column.add(raw(number), kind, name, number * 10, number / 2, number % 2 == 0, why, path)
        added.append(Candidate(raw(number).hex(), kind, name, number * 10, number / 2,
                               path or f"/ws/{'jobs' if kind == 'task' else 'cache'}/{name}/"
                               f"{raw(number).hex()}", number % 2 == 0, why))
    assert list(column) == added  # insertion order until finish()
    column.finish()
    expected = sorted(added, key=lambda c: (c.kind, c.name, c.identifier))
    assert list(column) == expected
    assert column == expected and column[3] == expected[3] and column[-1] == expected[-1]
    assert column[5:8] == expected[5:8]
    assert len(column) == 200 and column.total_size() == sum(c.size for c in added)


def test_an_empty_column_equals_an_empty_list() -> None:
    column = Candidates("/ws").finish()
    assert column == [] and len(column) == 0 and column.total_size() == 0


def test_identifier_sets_answer_hex_text() -> None:
    found = IdentifierSet({raw(1), raw(2)})
    assert raw(1).hex() in found and raw(3).hex() not in found
    assert "not hex" not in found and 12 not in found and ("zz" * 32) not in found
    assert set(found) == {raw(1).hex(), raw(2).hex()} and len(found) == 2
