"""A task's progress file is input: whatever its bytes, :func:`parse_progress` returns None or
well-formed levels, and never raises (hypothesis over bytes and over JSON documents)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from xpmstore.store.taskprogress import MAX_LEVELS, parse_progress

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)
level_entries = st.fixed_dictionaries({}, optional={
    "level": st.integers(-2, MAX_LEVELS + 1) | json_values,
    "fraction": st.floats() | json_values,
    "step": st.integers(-5, 2**65) | json_values,
    "total": st.integers(-5, 2**65) | json_values,
    "desc": st.text(max_size=300) | json_values,
})
documents = st.fixed_dictionaries({}, optional={
    "version": st.sampled_from([1, 2, True, "1", None]),
    "updated": st.floats() | json_values,
    "pid": json_values,
    "levels": st.lists(level_entries, max_size=MAX_LEVELS + 2) | json_values,
})


def check(found: Any) -> None:
    if found is None:
        return
    assert isinstance(found, list) and 0 < len(found) <= MAX_LEVELS
    numbers = [level["level"] for level in found]
    assert numbers == sorted(set(numbers)) and all(0 <= n < MAX_LEVELS for n in numbers)
    for level in found:
        fraction = level["fraction"]
        assert fraction is None or (math.isfinite(fraction) and 0.0 <= fraction <= 1.0)
        assert level["step"] is None or 0 <= level["step"] < 2**63
        assert level["total"] is None or 1 <= level["total"] < 2**63
        assert level["desc"] is None or (len(level["desc"]) <= 200
                                         and all(c.isprintable() for c in level["desc"]))
        assert math.isfinite(level["updated"])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes(data: bytes) -> None:
    check(parse_progress(data))


@settings(max_examples=500, deadline=None)
@given(documents)
def test_any_document(document: dict[str, Any]) -> None:
    check(parse_progress(json.dumps(document).encode()))
