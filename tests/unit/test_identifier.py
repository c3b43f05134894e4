"""Identifier rules (docs/identifiers.md): the canonical encoding and what enters it."""

from __future__ import annotations

import enum
import math
import os
import struct
from pathlib import Path
from typing import Annotated, Any

import pytest
from blake3 import blake3

from xpmstore import Config, Constant, Meta, Param, Task, field, pathgenerator
from xpmstore.core import config as config_module
from xpmstore.core import identifier as ident
from xpmstore.core.config import Dep
from xpmstore.core.identifier import check_identifier, encode_value, from_params
from xpmstore.core.params import params_of
from xpmstore.errors import (
    ConfigValueError,
    InputPathError,
    InvalidIdentifierError,
    UnsupportedValueError,
)

from ..helpers import refused


def _no_digest(path):
    raise AssertionError(f"unexpected input path {path}")


def enc(value: Any) -> bytes:
    return encode_value(value, _no_digest)


class Any1(Config):
    __xpmid__ = "test.Any1"
    value: Param[Any] = None


class Num(Config):
    __xpmid__ = "test.Num"
    value: Param[int | float | bool] = 0


class Learn(Task):
    __xpmid__ = "test.Learn"
    epochs: Param[int] = 10
    parameters: Annotated[Path, pathgenerator("parameters.pth")]


class Model(Config):
    __xpmid__ = "test.Model"
    hidden: Param[int] = 128
    weights: Annotated[Path, pathgenerator("weights.pt")]


class Train(Task):
    __xpmid__ = "test.Train"
    model: Param[Model]


class Evaluate(Task):
    __xpmid__ = "test.Evaluate"
    learned: Param[Learn]


class UsePath(Config):
    __xpmid__ = "test.UsePath"
    path: Param[Any]


def same(a: Config, b: Config) -> bool:
    """Whether two configs share an identifier; checks from_params agrees on both."""
    for config in (a, b):
        assert from_params(params_of(config)["identity"]) == config.__identifier__
    return a.__identifier__ == b.__identifier__


# --- the bytes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (None, "00"),
        (False, "01"),
        (True, "02"),
        (0, "030000000100"),
        (1, "030000000101"),
        (-1, "0300000001ff"),
        (128, "03000000020080"),
        (-129, "0300000002ff7f"),
        (1.0, "043ff0000000000000"),
        (-0.0, "048000000000000000"),
        (math.inf, "047ff0000000000000"),
        (math.nan, "047ff8000000000000"),
        ("", "0500000000"),
        ("é", "0500000002c3a9"),
        (b"a", "060000000161"),
        ([1], "0700000001030000000101"),
        ((1,), "0800000001030000000101"),
        (frozenset({True, None}), "09000000020002"),
        ({"b": None, "a": True}, "0a00000002" "050000000161" "02" "050000000162" "00"),
        ({"b": 1, "aa": 2}, "0a00000002" "050000000162" "030000000101"
                            "05000000026161" "030000000102"),  # by key length first
        (127, "03000000017f"),
        (-128, "0300000002ff80"),
    ],
)
def test_encoding_bytes(value, encoded):
    assert enc(value).hex() == encoded


def test_an_empty_config_is_hashed_by_hand():
    class Empty(Config):
        __xpmid__ = "e"

    body = bytes([0x20]) + b"\x05\x00\x00\x00\x01e" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
    assert Empty().__identifier__ == blake3(b"\x01" + body).hexdigest()


def test_a_config_with_fields_and_pathgens_is_hashed_by_hand():
    learn = Learn(epochs=3)
    header = (bytes([0x20]) + enc("test.Learn") + struct.pack(">I", 1) + enc("parameters.pth"))
    fields = struct.pack(">I", 1) + enc("epochs") + enc(3)
    assert learn.__identifier__ == blake3(b"\x01" + header + fields).hexdigest()
    assert ident.SCHEME == 1


def test_a_marked_output_is_hashed_by_hand():
    learn = Learn()
    marked = Dep(learn)(Any1(value=1))
    body = ident.object_header("test.Any1", []) + struct.pack(">I", 1) + enc("value") + enc(1)
    expected = blake3(b"\x01\x11" + bytes.fromhex(learn.__identifier__) + body).hexdigest()
    assert marked.__identifier__ == expected


def test_identifier_is_64_lowercase_hex():
    value = Any1(value=[1, "a"]).__identifier__
    assert len(value) == 64 and check_identifier(value) == value


def test_cache_identifier():
    config = Any1().__identifier__
    first = ident.cache_identifier(config, "terms.npy")
    assert first == blake3(b"\x01\x30" + bytes.fromhex(config) + enc("terms.npy")).hexdigest()
    assert first != ident.cache_identifier(config, "terms2.npy")
    assert first != config
    with refused(InvalidIdentifierError, ValueError, "'XYZ'"):
        ident.cache_identifier("XYZ", "terms.npy")


# --- 1 / 1.0 / True, floats, strings ------------------------------------------------------------


def test_one_one_point_zero_and_true_differ_in_an_any_field():
    ids = {Any1(value=v).__identifier__ for v in (1, 1.0, True)}
    assert len(ids) == 3
    assert len({Any1(value=v).__identifier__ for v in (0, 0.0, False, None, "", b"")}) == 6


def test_one_one_point_zero_and_true_differ_in_a_union_field():
    assert len({Num(value=v).__identifier__ for v in (1, 1.0, True)}) == 3
    # the default 0 is left out; 0.0 and False are not the default
    assert Num(value=0).__identifier__ == Num().__identifier__
    assert len({Num(value=v).__identifier__ for v in (0, 0.0, False)}) == 3


def test_a_float_field_stores_ints_as_floats():
    class F(Config):
        __xpmid__ = "test.F"
        x: Param[float] = 0.5

    assert same(F(x=2), F(x=2.0))
    assert same(F(x=0.5), F())


def test_floats_are_exact():
    assert not same(Any1(value=0.0), Any1(value=-0.0))
    assert not same(Any1(value=0.1 + 0.2), Any1(value=0.3))
    assert not same(Any1(value=math.inf), Any1(value=-math.inf))
    nan_payload = struct.unpack(">d", bytes.fromhex("7ff8000000000123"))[0]
    negative_nan = struct.unpack(">d", bytes.fromhex("fff8000000000000"))[0]
    assert math.isnan(nan_payload) and math.isnan(negative_nan)
    assert same(Any1(value=math.nan), Any1(value=nan_payload))
    assert same(Any1(value=math.nan), Any1(value=negative_nan))
    assert same(Any1(value=[math.nan]), Any1(value=[float("nan")]))


def test_lone_surrogates_are_refused_by_the_encoder():
    with refused(UnsupportedValueError, TypeError, "surrogate"):
        enc("a\ud800")
    with refused(UnsupportedValueError, TypeError, "surrogate"):
        enc({"\udfff": 1})


def test_values_that_cannot_be_encoded_are_refused():
    with refused(UnsupportedValueError, TypeError, "complex"):
        enc(1j)
    with refused(UnsupportedValueError, TypeError, "not a str"):
        enc({1: 2})


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("a", b"a"),
        ([1, 2], (1, 2)),
        ([1, 2], [2, 1]),
        ([[1], [2]], [[1, 2]]),
        ([[]], []),
        ([None], []),
        ("ab", ["a", "b"]),
        ({"a": 1}, {"a": 1.0}),
        ({"a": 1}, [("a", 1)]),
        (frozenset({1}), [1]),
        (frozenset({1}), (1,)),
        (frozenset({"a"}), {"a": None}),
        (2**64, 2**64 + 1),
        (-1, 2**8 - 1),
        (255, -1),
    ],
)
def test_different_values_have_different_identifiers(a, b):
    assert not same(Any1(value=a), Any1(value=b))


def test_sets_and_dicts_do_not_depend_on_order():
    assert same(Any1(value={"a": 1, "b": [2]}), Any1(value={"b": [2], "a": 1}))
    assert same(Any1(value={"x", "y", "zz"}), Any1(value={"zz", "y", "x"}))
    assert same(Any1(value={1, "a", (2,)}), Any1(value=frozenset([(2,), "a", 1])))


# --- enums --------------------------------------------------------------------------------------


class Color(enum.Enum):
    __xpmid__ = "test.Color"
    RED = 1
    BLUE = 2


class Colour(enum.Enum):
    __xpmid__ = "test.Color"
    RED = "red"  # the value does not enter the identifier, only the class and member name
    BLUE = "blue"


class Shade(enum.Enum):
    RED = 1


def test_enums_enter_by_class_name_and_member_name():
    assert same(Any1(value=Color.RED), Any1(value=Colour.RED))
    assert not same(Any1(value=Color.RED), Any1(value=Color.BLUE))
    assert not same(Any1(value=Color.RED), Any1(value=Shade.RED))
    assert not same(Any1(value=Color.RED), Any1(value=1))
    assert ident.enum_identity_name(Shade) == f"{__name__}.Shade"
    assert ident.enum_identity_name(Color) == "test.Color"


# --- what enters: defaults, Meta, tags, Constants -----------------------------------------------


class V1(Config):
    __xpmid__ = "test.Versioned"
    size: Param[int] = 1


class V2(Config):
    __xpmid__ = "test.Versioned"
    size: Param[int] = 1
    depth: Param[int] = 4
    names: Param[list[str]] = field(default_factory=lambda: ["a"])
    mode: Param[str | None] = None
    verbose: Meta[bool] = False


class V3(Config):
    __xpmid__ = "test.Versioned"
    size: Param[int] = 1
    version: Constant[int] = 2


class V4(Config):
    __xpmid__ = "test.Versioned"
    size: Param[int] = 1
    version: Constant[int] = 3


class Defaulted(Config):
    __xpmid__ = "test.Defaulted"
    x: Param[Any] = 1


def test_adding_a_field_with_a_default_keeps_identifiers():
    assert same(V1(), V2())
    assert same(V1(size=5), V2(size=5, depth=4, names=["a"], mode=None))
    assert not same(V1(), V2(depth=5))
    assert not same(V1(), V2(names=[]))
    assert not same(V1(), V2(mode="x"))


def test_a_value_equal_to_its_default_is_left_out():
    assert same(V2(size=1), V2())
    assert "size" not in params_of(V2(size=1))["identity"]["fields"]
    assert params_of(V2(size=2))["identity"]["fields"] == {"size": 2}


def test_defaults_are_compared_by_encoding():
    assert same(Defaulted(x=1), Defaulted())
    assert not same(Defaulted(x=1.0), Defaulted())
    assert not same(Defaulted(x=True), Defaulted())


def test_meta_and_tags_are_left_out():
    assert same(V2(verbose=True), V2())
    assert same(V2().tag("lr", 0.1), V2())


def test_constants_enter():
    assert not same(V3(), V1())
    assert not same(V3(), V4())
    assert params_of(V3())["identity"]["fields"] == {"version": 2}


def test_class_identity_name_enters():
    class Same1(Config):
        __xpmid__ = "test.Same1"
        x: Param[int] = 0

    class Same2(Config):
        __xpmid__ = "test.Same2"
        x: Param[int] = 0

    assert not same(Same1(x=1), Same2(x=1))


# --- the memo of identities (a class remembers the identifiers of plain values) -----------------


class Plain(Config):
    __xpmid__ = "test.Plain"
    value: Param[Any] = None
    nested: Param[Any] = None


def test_the_memo_gives_the_encoders_identifier_for_values_that_compare_equal():
    plain = [1, 1.0, True, 0, 0.0, -0.0, False, None, "", "1", math.nan, -math.nan, 2**70,
             V1(size=2), V2(size=2), V1(size=3)]
    memo = config_module.class_spec(Plain).identities
    memo.clear()
    expected = {}
    for value in plain:  # every identifier computed once, memo warm in between
        for nested in (None, 1, True, 1.0):
            config = Plain(value=value, nested=nested)
            expected[(repr(value), repr(nested))] = config.__identifier__
            assert from_params(params_of(config)["identity"]) == config.__identifier__
    assert memo  # the memo was filled
    for value in reversed(plain):  # again, through the memo: the same identifier each time
        for nested in (1.0, True, 1, None):
            config = Plain(value=value, nested=nested)
            assert config.__identifier__ == expected[(repr(value), repr(nested))]
            assert config.__dict__["_xpm_sealed"]
    assert len(set(expected.values())) == len(expected) - 4  # V1(size=2) and V2(size=2) agree


def test_the_memo_is_not_used_for_outputs_and_stays_bounded(monkeypatch):
    task = Outputs(size=2)
    assert V1(size=2).__identifier__  # the memo knows the plain config
    assert not same(task.__xpm_outputs__()["model"], V1(size=2))
    monkeypatch.setattr(config_module, "_IDENTITIES_MAX", 8)
    for size in range(20):
        assert V1(size=size).__identifier__
    assert len(config_module.class_spec(V1).identities) <= 8


# --- nested configs, tasks, marks ---------------------------------------------------------------


def test_nested_configs_enter_by_identifier():
    assert same(Any1(value=V1(size=2)), Any1(value=V2(size=2)))
    assert not same(Any1(value=V1(size=2)), Any1(value=V1(size=3)))
    assert not same(Any1(value=V1()), Any1(value=[V1()]))


def test_a_task_enters_by_identifier_marked_or_not():
    learn = Learn(epochs=3)
    output = learn.__xpm_outputs__()
    assert same(Evaluate(learned=output), Evaluate(learned=learn))
    assert same(Evaluate(learned=Learn(epochs=3)), Evaluate(learned=learn))
    assert not same(Evaluate(learned=Learn(epochs=4)), Evaluate(learned=learn))


class Outputs(Task):
    __xpmid__ = "test.Outputs"
    size: Param[int] = 1

    def task_outputs(self, dep):
        return {"model": dep(V1(size=self.size)), "plain": V1(size=self.size)}


def test_dep_marked_outputs_differ_from_the_unmarked_config():
    task = Outputs(size=2)
    outputs = task.__xpm_outputs__()
    assert not same(outputs["model"], outputs["plain"])
    assert same(outputs["plain"], V1(size=2))
    assert not same(Any1(value=outputs["model"]), Any1(value=V1(size=2)))
    again = Outputs(size=2).__xpm_outputs__()["model"]
    assert same(Any1(value=outputs["model"]), Any1(value=again))
    assert not same(outputs["model"], Outputs(size=3).__xpm_outputs__()["model"])
    identity = params_of(outputs["model"])["identity"]
    assert identity["output"] == task.__identifier__


def test_marking_copies_and_does_not_touch_the_original():
    task = Outputs()
    original = V1(size=7)
    marked = Dep(task)(original)
    assert marked is not original and marked.size == 7
    assert "_xpm_producer" not in original.__dict__
    assert not same(marked, original)


# --- generated paths and paths inside workspace objects -----------------------------------------


def _object_dir(workspace: Path, kind: str, name: str, identifier: str) -> Path:
    root = workspace / kind / name / identifier
    (root / ".xpm").mkdir(parents=True)
    return root


def test_a_task_path_enters_as_task_and_relative_path(tmp_path):
    learn = Learn(epochs=3)
    other = Learn(epochs=4)
    assert not same(UsePath(path=learn.parameters), UsePath(path=other.parameters))
    root = _object_dir(tmp_path / "ws", "jobs", "test.Learn", learn.__identifier__)
    plain = UsePath(path=root / "parameters.pth")  # need not exist yet
    assert same(UsePath(path=learn.parameters), plain)
    assert params_of(plain)["identity"]["fields"]["path"] == {
        "$file": learn.__identifier__, "rel": "parameters.pth"}


def test_a_nested_task_path_equals_the_plain_path_under_out(tmp_path):
    train = Train(model=Model())
    root = _object_dir(tmp_path / "ws", "jobs", "any-name", train.__identifier__)
    assert same(UsePath(path=train.model.weights),
                UsePath(path=root / "out" / "model" / "weights.pt"))


def test_paths_in_workspace_objects_do_not_depend_on_the_workspace(tmp_path):
    entry = "ab" * 32
    first = _object_dir(tmp_path / "one", "cache", "terms", entry)
    second = _object_dir(tmp_path / "two" / "deeper", "cache", "other-name", entry)
    assert same(UsePath(path=first / "terms.npy"), UsePath(path=second / "terms.npy"))
    assert not same(UsePath(path=first / "terms.npy"), UsePath(path=first / "other.npy"))
    assert same(UsePath(path=first), UsePath(path=second))


def test_a_folder_without_xpm_is_an_ordinary_input(tmp_path):
    identifier = "cd" * 32
    lookalike = tmp_path / "jobs" / "name" / identifier
    lookalike.mkdir(parents=True)
    with refused(InputPathError, ValueError, "UsePath.path", "does not exist"):
        _ = UsePath(path=lookalike / "x.txt").__identifier__
    (lookalike / "x.txt").write_text("content")
    elsewhere = tmp_path / "copy.txt"
    elsewhere.write_text("content")
    assert same(UsePath(path=lookalike / "x.txt"), UsePath(path=elsewhere))


# --- input files --------------------------------------------------------------------------------


def test_input_files_enter_by_content(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.bin"
    first.write_bytes(b"same content")
    second.write_bytes(b"same content")
    assert same(UsePath(path=first), UsePath(path=second))
    before = UsePath(path=first).__identifier__
    first.write_bytes(b"SAME content")  # same size, new content
    assert UsePath(path=first).__identifier__ != before
    first.write_bytes(b"same content")
    assert UsePath(path=first).__identifier__ == before


def test_input_paths_at_any_depth(tmp_path):
    source = tmp_path / "a.txt"
    source.write_text("x")
    copy = tmp_path / "b.txt"
    copy.write_text("x")
    assert same(UsePath(path={"k": [source]}), UsePath(path={"k": [copy]}))
    assert not same(UsePath(path={"k": [source]}), UsePath(path={"k": [str(source)]}))


def test_an_input_file_differs_from_a_directory_holding_it(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    (tmp_path / "f").write_text("x")
    assert not same(UsePath(path=tmp_path / "d"), UsePath(path=tmp_path / "f"))


def test_input_directories_by_name_exec_bit_and_content(tmp_path):
    def tree(root: Path, name: str = "f.txt", content: str = "x", mode: int = 0o644) -> Path:
        (root / "sub").mkdir(parents=True)
        target = root / "sub" / name
        target.write_text(content)
        target.chmod(mode)
        (root / "empty").mkdir()
        return root

    base = UsePath(path=tree(tmp_path / "base")).__identifier__
    assert UsePath(path=tree(tmp_path / "same", mode=0o600)).__identifier__ == base
    assert UsePath(path=tree(tmp_path / "renamed", name="g.txt")).__identifier__ != base
    assert UsePath(path=tree(tmp_path / "changed", content="y")).__identifier__ != base
    assert UsePath(path=tree(tmp_path / "exec", mode=0o755)).__identifier__ != base


def test_input_directories_follow_symlinks(tmp_path):
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "sub" / "f.txt").write_text("x")
    linked = tmp_path / "linked"
    (linked / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere.txt").write_text("x")
    (linked / "sub" / "f.txt").symlink_to(tmp_path / "elsewhere.txt")
    assert same(UsePath(path=real), UsePath(path=linked))
    dirlink = tmp_path / "dirlink"
    dirlink.mkdir()
    (dirlink / "sub").symlink_to(real / "sub", target_is_directory=True)
    assert same(UsePath(path=real), UsePath(path=dirlink))


def test_a_symlink_cycle_is_an_input_path_error(tmp_path):
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "loop").symlink_to(top, target_is_directory=True)
    with refused(InputPathError, ValueError, "UsePath.path", "cycle"):
        _ = UsePath(path=top).__identifier__


def test_a_missing_input_path_is_an_error(tmp_path):
    with refused(InputPathError, ValueError, "UsePath.path", "does not exist", "Meta[Path]"):
        _ = UsePath(path=tmp_path / "missing").__identifier__


def test_a_special_file_is_an_input_path_error(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with refused(InputPathError, ValueError, "UsePath.path", "not a regular file"):
        _ = UsePath(path=fifo).__identifier__
    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(folder / "fifo")
    with refused(InputPathError, ValueError, "UsePath.path", "not a regular file"):
        _ = UsePath(path=folder).__identifier__


def test_input_path_error_is_a_config_value_error():
    assert issubclass(InputPathError, ConfigValueError)


# --- check_identifier ---------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["0", "abc", "0123456789abcdef" * 4])
def test_check_identifier_accepts_lowercase_hex(good):
    assert check_identifier(good) == good


@pytest.mark.parametrize(
    "bad",
    ["", "ABC", "abcg", "../x", "a/b", "0x12", " ab", "ab\n", "a" * 65, "é", None, 12, b"ab"],
)
def test_check_identifier_refuses_anything_else(bad):
    with refused(InvalidIdentifierError, ValueError, repr(bad)[:20], "hexadecimal"):
        check_identifier(bad)
