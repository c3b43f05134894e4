"""Hypothesis strategies of the values a config may hold, and a structural key of those values.

The classes here live at module level with an explicit ``__xpmid__``, so that a child process can
unpickle generated values (and so that identifiers do not depend on this module's path).

``structural_key(v)`` is a hashable description of a stored value that tells apart exactly what
the identifier must tell apart: types (1, 1.0, True; "a", b"a"; list, tuple), float bits (one
NaN; -0.0 and 0.0), set elements as a multiset, dict items in any order, configs by class, marks
and fields (a field equal to its default counts as absent).
"""

from __future__ import annotations

import enum
import math
import struct
from pathlib import Path
from typing import Annotated, Any

from hypothesis import strategies as st

from xpmstore import Config, Param, Task, pathgenerator
from xpmstore.core.config import TaskPath, class_spec


class Color(enum.Enum):
    __xpmid__ = "prop.Color"
    RED = 1
    GREEN = 2


class Leaf(Config):
    __xpmid__ = "prop.Leaf"
    value: Param[Any] = None


class LeafWithExtra(Config):
    """``Leaf`` with one more field that has a default: identifiers must not change."""

    __xpmid__ = "prop.Leaf"
    value: Param[Any] = None
    extra: Param[Any] = ("default", 1.5)


class Pair(Config):
    __xpmid__ = "prop.Pair"
    left: Param[Any] = None
    right: Param[Any] = 0


class Producer(Task):
    __xpmid__ = "prop.Producer"
    value: Param[Any] = None
    out: Annotated[Path, pathgenerator("out.bin")]

    def task_outputs(self, dep):
        return dep(Leaf(value=self.value))


# --- values -------------------------------------------------------------------------------------

OTHER_NANS = [struct.unpack(">d", bytes.fromhex(h))[0]
              for h in ("fff8000000000000", "7ff8000000000001", "7ff0000000000001")]
"""NaNs with other sign and payload bits: every NaN is one NaN in identifiers."""

texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
"""Strings without lone surrogates (those are refused, see test_identifier)."""

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 255, 256, -128, -129, 2**31, 2**63, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, math.nan, math.inf, -math.inf, 5e-324, *OTHER_NANS]),
    texts,
    st.binary(max_size=8),
    st.sampled_from(list(Color)),
)

hashables = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.tuples(inner) | st.tuples(inner, inner),
        st.frozensets(inner, max_size=3),
    ),
    max_leaves=6,
)


def _configs(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(lambda v: Leaf(value=v), inner),
        st.builds(lambda a, b: Pair(left=a, right=b), inner, inner),
        st.builds(lambda v: Producer(value=v), inner),
        st.builds(lambda v: Producer(value=v).out, inner),
        st.builds(lambda v: Producer(value=v).__xpm_outputs__(), inner),
    )


values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(texts, inner, max_size=4),
        st.frozensets(hashables, max_size=4),
        st.sets(hashables, max_size=3),
        _configs(inner),
    ),
    max_leaves=12,
)
"""Every kind of value a ``Param[Any]`` accepts, nested (configs, tasks, marks, task paths)."""

leaves = values.map(lambda v: Leaf(value=v))
"""A config holding a generated value (not identified yet, so it can still be pickled raw)."""


# --- the structural key -------------------------------------------------------------------------


def _float_key(number: float) -> tuple[str, bytes]:
    return ("float", b"nan" if math.isnan(number) else struct.pack(">d", number))


def structural_key(value: Any) -> Any:
    """A hashable description of a stored value: equal exactly when identifiers must be equal."""
    if value is None:
        return ("none",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, enum.Enum):
        return ("enum", type(value).__xpmid__, value.name)
    if isinstance(value, int):
        return ("int", int(value))
    if isinstance(value, float):
        return _float_key(value)
    if isinstance(value, str):
        return ("str", str(value))
    if isinstance(value, bytes):
        return ("bytes", bytes(value))
    if isinstance(value, list):
        return ("list", tuple(structural_key(v) for v in value))
    if isinstance(value, tuple):
        return ("tuple", tuple(structural_key(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted((structural_key(v) for v in value), key=repr)))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, structural_key(v)) for k, v in value.items())))
    if isinstance(value, TaskPath):
        task, rel = value.task_and_relpath()
        return ("taskpath", structural_key(task), rel)
    if isinstance(value, Config):
        return _config_key(value)
    raise TypeError(f"no structural key for {type(value).__qualname__}")


def _config_key(config: Config) -> Any:
    spec = class_spec(type(config))
    fields = []
    for field_spec in spec.identity_fields:
        key = structural_key(config.__dict__[field_spec.name])
        if field_spec.has_default and key == structural_key(field_spec.make_default()):
            continue
        fields.append((field_spec.name, key))
    producer = config.__dict__.get("_xpm_producer")
    mark = None if producer is None or producer is config else structural_key(producer)
    return ("config", spec.identity_name, tuple(sorted(spec.pathgens)), mark, tuple(fields))


# --- reordering ---------------------------------------------------------------------------------


def reordered(value: Any, shuffle: Any) -> Any:
    """The same value with every dict and set rebuilt in another insertion order.  The elements
    of a set are visited in the order of their structural keys, not in the set's own: a NaN is
    hashed by identity, so equal sets may iterate differently, and the shuffles asked of
    Hypothesis must not change when it replays an example (tests/property/test_reordering.py)."""
    if isinstance(value, dict):
        items = [(k, reordered(v, shuffle)) for k, v in value.items()]
        shuffle(items)
        return dict(items)
    if isinstance(value, (set, frozenset)):
        canonical = sorted(value, key=lambda v: repr(structural_key(v)))
        elements = [reordered(v, shuffle) for v in canonical]
        shuffle(elements)
        return type(value)(elements) if isinstance(value, frozenset) else set(elements)
    if isinstance(value, list):
        return [reordered(v, shuffle) for v in value]
    if isinstance(value, tuple):
        return tuple(reordered(v, shuffle) for v in value)
    return value
