"""The search catalog's value keys match exactly as ``ls --tag`` does (a property test against
:func:`xpmstore.core.fromtext.tag_matches`, the rule they index)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from xpmstore.core.fromtext import parse_tag_filter, tag_matches
from xpmstore.serve.catalog import value_key

VALUES = st.one_of(st.booleans(), st.integers(-5, 5), st.floats(allow_infinity=False),
                   st.sampled_from(["0", "1", "1.0", "true", "True", "x", "", " 1"]),
                   st.lists(st.integers(), max_size=2))
TEXTS = st.one_of(st.sampled_from(["0", "1", "1.0", "-0.0", "true", "false", "x", "", " 1",
                                   "nan", "1e0"]), st.text(max_size=4))


@given(VALUES, TEXTS)
def test_value_keys_match_as_tag_filters_do(value: Any, text: str) -> None:
    _, candidates = parse_tag_filter(f"k={text}")
    keys = {value_key(c) for c in candidates} - {None}
    assert (value_key(value) in keys) == tag_matches({"k": value}, "k", candidates)
