"""Config and Task: construction, type rules, declarations, tags, sealing, generated paths,
task outputs and dependencies (docs/concepts.md)."""

from __future__ import annotations

import enum
import os
import textwrap
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import pytest

from xpmstore import Config, Constant, Meta, Option, Param, Task, field, pathgenerator
from xpmstore.core.config import Dep, class_spec, dependencies, identity_name, tags_of
from xpmstore.core.identifier import check_identifier
from xpmstore.core.typecheck import FrozenDict, FrozenList
from xpmstore.errors import (
    ConfigError,
    ConfigTypeError,
    ConfigValueError,
    ConstantFieldError,
    MissingFieldError,
    SealedConfigError,
    TagConflictError,
    UnboundPathError,
    UnknownFieldError,
    UnsupportedValueError,
)

from ..helpers import refused, run_python


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Model(Config):
    hidden: Param[int] = 128


class BigModel(Model):
    layers: Param[int] = 2


class Other(Config):
    size: Param[int] = 1


class Typed(Config):
    """One field per type rule; every field is optional so tests set one at a time."""

    i: Param[int] = 0
    f: Param[float] = 0.0
    b: Param[bool] = False
    s: Param[str] = ""
    raw: Param[bytes] = b""
    color: Param[Color] = Color.RED
    level: Param[Level] = Level.LOW
    model: Param[Optional[Model]] = None  # noqa: UP045 (typing.Optional is supported)
    opt: Param[int | None] = None
    union: Param[Union[int, str]] = 0  # noqa: UP007 (typing.Union is supported)
    pipe: Param[int | float | bool] = 0
    anything: Param[Any] = None
    ints: Param[list[int]] = field(default_factory=list)
    table: Param[dict[str, float]] = field(default_factory=dict)
    pair: Param[tuple[int, str]] = (0, "")
    many: Param[tuple[int, ...]] = ()
    tags: Param[set[str]] = field(default_factory=set)
    nested: Param[list[dict[str, list[int]]]] = field(default_factory=list)
    models: Param[list[Model]] = field(default_factory=list)
    path: Param[Path | None] = None
    mode: Param[Literal["a", "b"]] = "a"


class Learn(Task):
    model: Param[Model]
    epochs: Param[int] = 10
    version: Constant[int] = 2
    verbose: Meta[bool] = False
    parameters: Annotated[Path, pathgenerator("parameters.pth")]


class Evaluate(Task):
    learned: Param[Learn]


class Holder(Config):
    value: Param[Any] = None
    note: Meta[Any] = None


# --- construction -------------------------------------------------------------------------------


def test_construction_is_keyword_only():
    with refused(ConfigTypeError, TypeError, "Model", "keyword"):
        Model(64)
    assert Model(hidden=64).hidden == 64


def test_defaults_fill_unset_fields():
    model = Model()
    assert model.hidden == 128
    learn = Learn(model=model)
    assert (learn.epochs, learn.version, learn.verbose) == (10, 2, False)


def test_unknown_field_at_construction():
    with refused(UnknownFieldError, TypeError, "Model", "'width'"):
        Model(width=3)


def test_unknown_field_by_assignment():
    model = Model()
    with refused(UnknownFieldError, TypeError, "Model", "'width'"):
        model.width = 3
    model._private = 1  # attributes starting with '_' are free
    assert model._private == 1


def test_assignment_is_checked():
    model = Model()
    model.hidden = 3
    assert model.hidden == 3
    with refused(ConfigTypeError, TypeError, "Model.hidden", "bool"):
        model.hidden = True
    assert model.hidden == 3


def test_unset_required_field_reads_as_attribute_error():
    learn = Learn()
    with pytest.raises(AttributeError, match=r"Learn\.model has no value"):
        _ = learn.model


def test_option_is_meta():
    class WithOption(Config):
        __xpmid__ = "test.WithOption"
        quiet: Option[bool] = False

    assert WithOption(quiet=True).__identifier__ == WithOption().__identifier__


# --- type rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None, b"1"])
def test_int_refuses_non_int(value):
    with refused(ConfigTypeError, TypeError, "Typed.i"):
        Typed(i=value)


def test_int_accepts_int_and_big_int():
    assert Typed(i=-(10**40)).i == -(10**40)
    assert type(Typed(i=Level.HIGH).i) is int


def test_float_stores_float_of_int():
    typed = Typed(f=3)
    assert typed.f == 3.0 and type(typed.f) is float
    assert Typed(f=3).__identifier__ == Typed(f=3.0).__identifier__


@pytest.mark.parametrize("value", [True, "1.0", None, [1.0]])
def test_float_refuses_non_number(value):
    with refused(ConfigTypeError, TypeError, "Typed.f"):
        Typed(f=value)


def test_float_refuses_int_too_large_for_a_float():
    with refused(ConfigTypeError, TypeError, "Typed.f"):
        Typed(f=10**400)


@pytest.mark.parametrize("value", [1, 0, "true", None, 1.0])
def test_bool_accepts_only_bool(value):
    with refused(ConfigTypeError, TypeError, "Typed.b"):
        Typed(b=value)
    assert Typed(b=True).b is True


@pytest.mark.parametrize("value", [b"x", 1, None])
def test_str_refuses_non_str(value):
    with refused(ConfigTypeError, TypeError, "Typed.s"):
        Typed(s=value)


def test_bytes_accepts_bytearray_as_bytes():
    typed = Typed(raw=bytearray(b"ab"))
    assert typed.raw == b"ab" and type(typed.raw) is bytes
    with refused(ConfigTypeError, TypeError, "Typed.raw"):
        Typed(raw="ab")


def test_enum_refuses_raw_value():
    assert Typed(color=Color.GREEN).color is Color.GREEN
    with refused(ConfigTypeError, TypeError, "Typed.color", "Color"):
        Typed(color="green")
    with refused(ConfigTypeError, TypeError, "Typed.level", "Level"):
        Typed(level=2)


def test_config_field_accepts_class_or_subclass():
    big = BigModel(layers=3)
    assert Typed(model=big).model is big
    assert Typed(model=Model()).model.hidden == 128
    with refused(ConfigTypeError, TypeError, "Typed.model", "Other"):
        Typed(model=Other())
    with refused(ConfigTypeError, TypeError, "Learn.model", "Other"):
        Learn(model=Other())


def test_task_field_accepts_only_that_task():
    learn = Learn(model=Model())
    assert Evaluate(learned=learn).learned is learn
    with refused(ConfigTypeError, TypeError, "Evaluate.learned", "Model"):
        Evaluate(learned=Model())


def test_optional():
    assert Typed(opt=None).opt is None
    assert Typed(opt=3).opt == 3
    with refused(ConfigTypeError, TypeError, "Typed.opt"):
        Typed(opt="3")


def test_unions_pick_the_exact_branch():
    assert Typed(union="a").union == "a"
    with refused(ConfigTypeError, TypeError, "Typed.union"):
        Typed(union=1.5)
    for value in (1, 1.0, True):
        assert type(Typed(pipe=value).pipe) is type(value)
    with refused(ConfigTypeError, TypeError, "Typed.pipe"):
        Typed(pipe="1")


def test_literal():
    assert Typed(mode="b").mode == "b"
    with refused(ConfigTypeError, TypeError, "Typed.mode"):
        Typed(mode="c")


def test_list_checked_element_by_element():
    assert Typed(ints=[1, 2]).ints == [1, 2]
    with refused(ConfigTypeError, TypeError, "Typed.ints[1]", "bool"):
        Typed(ints=[1, True])
    with refused(ConfigTypeError, TypeError, "Typed.ints", "tuple"):
        Typed(ints=(1, 2))


def test_dict_checked_element_by_element():
    assert Typed(table={"a": 1}).table == {"a": 1.0}
    assert type(Typed(table={"a": 1}).table["a"]) is float
    with refused(ConfigTypeError, TypeError, "Typed.table['a']", "str"):
        Typed(table={"a": "x"})
    with refused(ConfigTypeError, TypeError, "Typed.table", "keys"):
        Typed(table={1: 1.0})


def test_tuple_checked_item_by_item():
    assert Typed(pair=(1, "a")).pair == (1, "a")
    with refused(ConfigTypeError, TypeError, "Typed.pair[1]"):
        Typed(pair=(1, 2))
    with refused(ConfigTypeError, TypeError, "Typed.pair", "2 items"):
        Typed(pair=(1,))
    with refused(ConfigTypeError, TypeError, "Typed.pair"):
        Typed(pair=[1, "a"])
    assert Typed(many=(1, 2, 3)).many == (1, 2, 3)
    with refused(ConfigTypeError, TypeError, "Typed.many[2]"):
        Typed(many=(1, 2, "3"))


def test_set_checked_element_by_element():
    assert Typed(tags={"a", "b"}).tags == frozenset({"a", "b"})
    with refused(ConfigTypeError, TypeError, "Typed.tags"):
        Typed(tags={"a", 1})
    with refused(ConfigTypeError, TypeError, "Typed.tags"):
        Typed(tags=["a"])


def test_nested_containers_checked_to_the_leaves():
    typed = Typed(nested=[{"a": [1, 2]}, {}])
    assert typed.nested == [{"a": [1, 2]}, {}]
    with refused(ConfigTypeError, TypeError, "Typed.nested[0]['a'][1]"):
        Typed(nested=[{"a": [1, 2.0]}])
    with refused(ConfigTypeError, TypeError, "Typed.models[0]", "Other"):
        Typed(models=[Other()])


def test_containers_are_copied_into_immutable_forms_that_keep_their_type():
    ints = [1, 2]
    table = {"a": 1.0}
    tags = {"x"}
    typed = Typed(ints=ints, table=table, tags=tags, anything=[[1], {"k": [2]}, (3,), {4}])
    ints.append(3)
    table["b"] = 2.0
    tags.add("y")
    assert typed.ints == [1, 2] and isinstance(typed.ints, list)
    assert isinstance(typed.ints, FrozenList)
    assert typed.table == {"a": 1.0} and isinstance(typed.table, FrozenDict)
    assert typed.tags == frozenset({"x"}) and isinstance(typed.tags, frozenset)
    inner_list, inner_dict, inner_tuple, inner_set = typed.anything
    assert isinstance(inner_list, FrozenList) and isinstance(inner_dict, FrozenDict)
    assert isinstance(inner_dict["k"], FrozenList)
    assert type(inner_tuple) is tuple and type(inner_set) is frozenset
    for change in (lambda: typed.ints.append(3), lambda: typed.table.update(b=1.0),
                   lambda: typed.ints.__setitem__(0, 5), lambda: inner_dict.pop("k"),
                   lambda: inner_list.extend([1])):
        with pytest.raises(TypeError, match="immutable"):
            change()
    assert typed.ints == [1, 2] and typed.table == {"a": 1.0}


def test_path_field_makes_paths_absolute(tmp_path):
    typed = Typed(path=str(tmp_path / "x"))
    assert typed.path == tmp_path / "x" and isinstance(typed.path, Path)
    relative = Typed(path="rel/file")
    assert relative.path == Path(os.getcwd(), "rel/file")
    with refused(ConfigTypeError, TypeError, "Typed.path"):
        Typed(path=3)


def test_any_field_refuses_unsupported_value():
    with refused(UnsupportedValueError, TypeError, "Holder.value", "object"):
        Holder(value=object())
    with refused(UnsupportedValueError, TypeError, "Holder.value[1]", "complex"):
        Holder(value=[1, 2j])
    with refused(ConfigTypeError, TypeError, "Holder.value", "keys"):
        Holder(value={1: "a"})


def test_meta_field_is_checked_too():
    with refused(UnsupportedValueError, TypeError, "Holder.note"):
        Holder(note=object())


def test_lone_surrogates_are_refused():
    with refused(ConfigTypeError, TypeError, "Typed.s", "surrogate"):
        Typed(s="a\udc80")
    with refused(ConfigTypeError, TypeError, "Holder.value", "surrogate"):
        Holder(value={"\ud800": 1})


# --- declarations -------------------------------------------------------------------------------


def test_default_of_wrong_type_is_refused_at_class_definition():
    with refused(ConfigTypeError, TypeError, "BadDefault.n", "default"):
        class BadDefault(Config):
            __xpmid__ = "test.BadDefault"
            n: Param[int] = "3"


def test_bool_default_for_int_is_refused():
    with refused(ConfigTypeError, TypeError, "BoolDefault.n", "bool"):
        class BoolDefault(Config):
            __xpmid__ = "test.BoolDefault"
            n: Param[int] = True


def test_wrong_factory_default_is_refused_at_class_definition():
    with refused(ConfigTypeError, TypeError, "BadFactory.n"):
        class BadFactory(Config):
            __xpmid__ = "test.BadFactory"
            n: Param[list[int]] = field(default_factory=lambda: ["a"])


@pytest.mark.parametrize("default", [[], {}, set()])
def test_mutable_default_needs_a_factory(default):
    with refused(ConfigValueError, ValueError, "Mutable.items", "default_factory"):
        class Mutable(Config):
            __xpmid__ = "test.Mutable"
            items: Param[Any] = default


def test_factory_gives_each_instance_its_default():
    class WithFactory(Config):
        __xpmid__ = "test.WithFactory"
        items: Param[list[int]] = field(default_factory=lambda: [1])
        value: Param[int] = field(default=3)

    first, second = WithFactory(), WithFactory()
    assert first.items == [1] and isinstance(first.items, FrozenList)
    assert (first.value, second.value) == (3, 3)


def test_field_needs_exactly_one_default():
    with refused(ConfigValueError, ValueError, "field()", "exactly one"):
        field()
    with refused(ConfigValueError, ValueError, "field()", "exactly one"):
        field(default=1, default_factory=list)


def test_unsupported_field_type_is_refused_at_class_definition():
    with refused(ConfigTypeError, TypeError, "Complex.z", "complex"):
        class Complex(Config):
            __xpmid__ = "test.Complex"
            z: Param[complex]
    with refused(ConfigTypeError, TypeError, "IntKeys.table", "keys"):
        class IntKeys(Config):
            __xpmid__ = "test.IntKeys"
            table: Param[dict[int, str]]


def test_constant_needs_a_value():
    with refused(ConfigValueError, ValueError, "NoConstant.version", "Constant"):
        class NoConstant(Config):
            __xpmid__ = "test.NoConstant"
            version: Constant[int]


@pytest.mark.parametrize("name", ["tag", "submit", "execute", "task_outputs", "_hidden"])
def test_reserved_field_names(name):
    namespace = {"__xpmid__": "test.Reserved", "__annotations__": {name: Param[int]}}
    with refused(ConfigValueError, ValueError, f"Reserved.{name}", "reserved"):
        type("Reserved", (Config,), namespace)


def test_pathgenerator_must_be_a_path_without_default():
    with refused(ConfigTypeError, TypeError, "StrGen.out", "Path"):
        class StrGen(Task):
            __xpmid__ = "test.StrGen"
            out: Annotated[str, pathgenerator("out.txt")]
    with refused(ConstantFieldError, TypeError, "DefaultGen.out", "default"):
        class DefaultGen(Task):
            __xpmid__ = "test.DefaultGen"
            out: Annotated[Path, pathgenerator("out.txt")] = Path("x")


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", ".."])
def test_pathgenerator_name_is_relative(name):
    with refused(ConfigValueError, ValueError, f"pathgenerator({name!r})", "relative"):
        pathgenerator(name)


def test_plain_annotations_are_not_fields():
    class Plain(Config):
        __xpmid__ = "test.Plain"
        counter: int = 0
        hidden: Param[int] = 1

    assert list(class_spec(Plain).fields) == ["hidden"]
    with refused(UnknownFieldError, TypeError, "Plain", "'counter'"):
        Plain(counter=1)


class Outer(Config):
    inner: Param[Later]  # defined below: resolved on first use


class Later(Config):
    x: Param[int] = 1


def test_forward_reference_resolved_on_first_use():
    assert Outer(inner=Later()).inner.x == 1
    with refused(ConfigTypeError, TypeError, "Outer.inner", "Later"):
        Outer(inner=Model())


# --- setting a Constant or a generated path -----------------------------------------------------


def test_setting_a_constant_is_refused():
    with refused(ConstantFieldError, TypeError, "Learn.version", "constant"):
        Learn(model=Model(), version=3)
    learn = Learn(model=Model())
    with refused(ConstantFieldError, TypeError, "Learn.version", "constant"):
        learn.version = 3
    assert learn.version == 2


def test_setting_a_generated_path_is_refused():
    with refused(ConstantFieldError, TypeError, "Learn.parameters", "generated"):
        Learn(model=Model(), parameters=Path("/tmp/x"))
    learn = Learn(model=Model())
    with refused(ConstantFieldError, TypeError, "Learn.parameters", "generated"):
        learn.parameters = Path("/tmp/x")


# --- __xpmid__ and classes of __main__ ----------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "1abc", "a-b", "a/b", "a b", "é", "a.b/c", 3])
def test_xpmid_must_be_a_name(bad):
    with refused(ConfigValueError, ValueError, "Named.__xpmid__"):
        type("Named", (Config,), {"__xpmid__": bad})


@pytest.mark.parametrize("good", ["a", "_a", "pkg.Model_2", "A.b.c"])
def test_xpmid_names_the_class(good):
    named = type("Named", (Config,), {"__xpmid__": good})
    assert identity_name(named) == good
    assert class_spec(named).identity_name == good


def test_identity_name_defaults_to_module_and_qualname():
    assert identity_name(Model) == f"{__name__}.Model"


def test_xpmid_is_not_inherited():
    class Base(Config):
        __xpmid__ = "test.Base"

    class Derived(Base):
        __xpmid__ = "test.Derived"

    assert identity_name(Derived) == "test.Derived"
    assert Base().__identifier__ != Derived().__identifier__


def test_local_class_without_xpmid_is_refused():
    with refused(ConfigValueError, ValueError, "Local", "__xpmid__"):
        class Local(Config):
            x: Param[int] = 1


_MAIN_SCRIPT = """
from xpmstore import Config, Param

class Script(Config):
{xpmid}    hidden: Param[int] = 128

print(Script(hidden=3).__identifier__)
"""


class ScriptTwin(Config):
    __xpmid__ = "scripts.Script"
    hidden: Param[int] = 128


def test_class_in_main_needs_xpmid(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(_MAIN_SCRIPT.format(xpmid=""))
    result = run_python([str(script)], cwd=tmp_path)
    assert result.returncode == 1
    assert "ConfigValueError" in result.stderr
    assert "Script is defined in __main__" in result.stderr
    assert "__xpmid__" in result.stderr
    assert result.stdout == ""


def test_class_in_main_with_xpmid_has_a_module_independent_identifier(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(_MAIN_SCRIPT.format(xpmid='    __xpmid__ = "scripts.Script"\n'))
    result = run_python([str(script)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ScriptTwin(hidden=3).__identifier__


# --- missing fields, sealing --------------------------------------------------------------------


def test_missing_required_field_at_identifier():
    learn = Learn()  # allowed until identified
    with refused(MissingFieldError, ValueError, "Learn.model", "required"):
        _ = learn.__identifier__


def test_missing_field_of_nested_config_names_it():
    class Needs(Config):
        __xpmid__ = "test.Needs"
        size: Param[int]

    with refused(MissingFieldError, ValueError, "Needs.size"):
        _ = Holder(value=[Needs()]).__identifier__


def test_identification_seals_the_config_and_its_children():
    model = Model()
    learn = Learn(model=model)
    learn.epochs = 5  # not sealed yet
    ident = learn.__identifier__
    with refused(SealedConfigError, AttributeError, "Learn.epochs", "sealed"):
        learn.epochs = 6
    with refused(SealedConfigError, AttributeError, "Model.hidden", "sealed"):
        model.hidden = 1
    with refused(SealedConfigError, AttributeError, "Learn.verbose", "sealed"):
        learn.verbose = True
    assert learn.epochs == 5 and model.hidden == 128
    assert learn.__identifier__ == ident
    check_identifier(ident)
    assert len(ident) == 64


def test_sealed_error_is_a_config_error():
    assert issubclass(SealedConfigError, ConfigError)


# --- tags ---------------------------------------------------------------------------------------


def test_tag_returns_the_config_and_is_not_identity():
    model = Model()
    assert model.tag("size", "big") is model
    assert tags_of(model) == {"size": "big"}
    assert model.__identifier__ == Model().__identifier__


@pytest.mark.parametrize("value", [None, [1], b"x", Path("/x")])
def test_tag_values_are_scalars(value):
    with refused(ConfigTypeError, TypeError, "Model.tag('lr')"):
        Model().tag("lr", value)


def test_tag_name_must_be_a_nonempty_str():
    with refused(ConfigTypeError, TypeError, "Model.tag()", "name"):
        Model().tag("", 1)


def test_tags_propagate_through_subconfigs_and_task_references():
    model = Model().tag("hidden", 128)
    learn = Learn(model=model).tag("lr", 0.1)
    evaluate = Evaluate(learned=learn).tag("split", "test")
    holder = Holder(value={"x": [evaluate]}, note=Model().tag("meta", True))
    assert learn.__tags__ == {"hidden": 128, "lr": 0.1}
    assert tags_of(evaluate) == {"hidden": 128, "lr": 0.1, "split": "test"}
    assert tags_of(holder) == {"hidden": 128, "lr": 0.1, "split": "test", "meta": True}


def test_tags_propagate_through_dep_marked_outputs():
    learn = Learn(model=Model()).tag("lr", 0.5)
    marked = Dep(learn)(Model(hidden=3))
    assert tags_of(marked) == {"lr": 0.5}


def test_same_tag_twice_with_one_value_is_fine():
    model = Model().tag("k", 1)
    learn = Learn(model=model).tag("k", 1)
    assert tags_of(learn) == {"k": 1}


def test_tag_conflict_with_tag_names_both_values():
    learn = Learn(model=Model().tag("lr", 0.1))
    with refused(TagConflictError, ValueError, "Learn", "'lr'", "lr=0.1", "lr=0.2"):
        learn.tag("lr", 0.2)


@pytest.mark.parametrize(("first", "second"), [(1, 2), (1, 1.0), (1, True), ("1", 1)])
def test_tag_conflict_in_tree_names_both_values(first, second):
    left = Model().tag("k", first)
    right = Other().tag("k", second)
    holder = Holder(value=[left, right])
    with refused(TagConflictError, ValueError, "'k'", repr(first), repr(second), "Model",
                 "Other"):
        tags_of(holder)


def test_tag_conflict_across_a_task_reference():
    learn = Learn(model=Model()).tag("seed", 1)
    evaluate = Evaluate(learned=learn)
    with refused(TagConflictError, ValueError, "Evaluate", "'seed'", "seed=1", "seed=2"):
        evaluate.tag("seed", 2)


# --- generated paths ----------------------------------------------------------------------------


class Weights(Config):
    weights: Annotated[Path, pathgenerator("weights.pt")]
    size: Param[int] = 1


class Wrapper(Config):
    inner: Param[Weights]


class Train(Task):
    model: Param[Weights]
    wrapped: Param[Wrapper | None] = None
    log: Annotated[Path, pathgenerator("logs/train.log")]


def test_generated_path_before_binding_raises():
    train = Train(model=Weights())
    with refused(UnboundPathError, ValueError, "Train", "'logs/train.log'", "not bound"):
        os.fspath(train.log)
    with refused(UnboundPathError, ValueError, "Train", "'out/model/weights.pt'"):
        os.fspath(train.model.weights)
    with refused(UnboundPathError, ValueError, "Train"):
        _ = train.__taskdir__
    assert "TaskPath" in str(train.log)  # str() of an unbound path does not raise


def test_generated_path_of_a_config_outside_any_task_raises():
    weights = Weights()
    with refused(UnboundPathError, ValueError, "Weights", "'weights.pt'", "not inside any task"):
        os.fspath(weights.weights)


def test_generated_paths_resolve_once_bound(tmp_path):
    train = Train(model=Weights(), wrapped=Wrapper(inner=Weights(size=2)))
    train._xpm_bind(tmp_path)
    assert os.fspath(train.log) == str(tmp_path / "logs/train.log")
    assert train.__taskdir__ == tmp_path
    assert train.log.path == tmp_path / "logs" / "train.log"
    assert os.fspath(train.model.weights) == str(tmp_path / "out/model/weights.pt")
    assert os.fspath(train.wrapped.inner.weights) == str(
        tmp_path / "out/wrapped/inner/weights.pt"
    )
    assert train.model.__maintaskdir__ == tmp_path
    assert train.wrapped.inner.__maintaskdir__ == tmp_path


def test_generated_path_forwards_path_methods(tmp_path):
    train = Train(model=Weights())
    train._xpm_bind(tmp_path)
    (tmp_path / "logs").mkdir()
    assert not train.log.exists()
    train.log.write_text("ok")
    assert train.log.read_text() == "ok"
    assert (train.log / "x") == tmp_path / "logs/train.log/x"
    assert Path(train.log) == tmp_path / "logs/train.log"


def test_generated_paths_are_not_identity(tmp_path):
    first, second = Train(model=Weights()), Train(model=Weights())
    first._xpm_bind(tmp_path / "a")
    second._xpm_bind(tmp_path / "b")
    assert first.__identifier__ == second.__identifier__


def test_pathgenerator_names_enter_the_identity():
    class GenA(Task):
        __xpmid__ = "test.Gen"
        out: Annotated[Path, pathgenerator("a.txt")]

    class GenB(Task):
        __xpmid__ = "test.Gen"
        out: Annotated[Path, pathgenerator("b.txt")]

    class GenA2(Task):
        __xpmid__ = "test.Gen"
        renamed: Annotated[Path, pathgenerator("a.txt")]

    assert GenA().__identifier__ != GenB().__identifier__
    assert GenA().__identifier__ == GenA2().__identifier__


def test_maintaskdir_outside_a_task_raises():
    with refused(UnboundPathError, ValueError, "Weights"):
        _ = Weights().__maintaskdir__


# --- task outputs and dependencies (the seed's RandomFold) --------------------------------------


class Topics(Config):
    path: Param[Path]


class Documents(Config):
    name: Param[str]


class Dataset(Config):
    topics: Param[Topics]
    documents: Param[Documents]


class RandomFold(Task):
    dataset: Param[Dataset]
    topics: Annotated[Path, pathgenerator("topics.tsv")]

    def task_outputs(self, dep):
        return dep(Dataset(
            topics=dep(Topics(path=self.topics)),
            documents=self.dataset.documents,
        ))


class UseDataset(Task):
    dataset: Param[Dataset]


class UseDocuments(Task):
    documents: Param[Documents]


class UseTopics(Config):
    topics: Param[Topics]


class UsePath(Config):
    path: Param[Path]
    extra: Meta[Any] = None


@pytest.fixture
def fold(tmp_path):
    source = tmp_path / "topics.tsv"
    source.write_text("q1\tquery\n")
    documents = Documents(name="msmarco")
    return RandomFold(dataset=Dataset(topics=Topics(path=source), documents=documents))


def test_random_fold_outputs_are_marked(fold):
    output = fold.__xpm_outputs__()
    assert isinstance(output, Dataset)
    assert output.__dict__["_xpm_producer"] is fold
    assert output.topics.__dict__["_xpm_producer"] is fold
    assert "_xpm_producer" not in output.documents.__dict__
    assert output.documents is fold.dataset.documents
    assert output.topics.path.task_and_relpath() == (fold, "topics.tsv")


def test_random_fold_dependencies(fold):
    output = fold.__xpm_outputs__()
    assert dependencies(UseDataset(dataset=output)) == [fold]
    assert dependencies(UseTopics(topics=output.topics)) == [fold]
    # the documents are not an output of RandomFold: no dependency
    assert dependencies(UseDocuments(documents=output.documents)) == []
    assert dependencies(fold) == []


def test_marked_outputs_differ_from_unmarked_configs(fold):
    output = fold.__xpm_outputs__()
    unmarked = Dataset(topics=Topics(path=fold.topics), documents=fold.dataset.documents)
    assert output.__identifier__ != unmarked.__identifier__
    assert output.topics.__identifier__ != unmarked.topics.__identifier__
    assert output.documents.__identifier__ == fold.dataset.documents.__identifier__
    assert fold.__xpm_outputs__().__identifier__ == output.__identifier__


def test_generated_path_in_a_param_is_a_dependency(fold):
    assert dependencies(UsePath(path=fold.topics)) == [fold]


def test_meta_fields_make_dependencies_but_not_identity(tmp_path, fold):
    source = tmp_path / "topics.tsv"
    with_meta = UsePath(path=source, extra=[fold])
    assert dependencies(with_meta) == [fold]
    assert with_meta.__identifier__ == UsePath(path=source).__identifier__


def test_task_references_are_dependencies_without_entering_them():
    learn = Learn(model=Model())
    evaluate = Evaluate(learned=learn)
    assert dependencies(evaluate) == [learn]
    again = Holder(value={"e": evaluate}, note=None)
    assert dependencies(again) == [evaluate]
    assert dependencies(Holder(value=[Holder(value=learn)])) == [learn]


def test_default_outputs_are_the_task_itself():
    learn = Learn(model=Model())
    assert learn.__xpm_outputs__() is learn
    assert (Evaluate(learned=learn.__xpm_outputs__()).__identifier__
            == Evaluate(learned=learn).__identifier__)


def test_dep_refuses_non_configs():
    learn = Learn(model=Model())
    with refused(ConfigTypeError, TypeError, "Learn.task_outputs", "dep()", "int"):
        Dep(learn)(3)


def test_dep_of_a_task_is_the_task():
    learn = Learn(model=Model())
    other = Learn(model=Model(hidden=1))
    assert Dep(learn)(other) is other


def test_execute_must_be_defined():
    with pytest.raises(NotImplementedError, match="Learn"):
        Learn(model=Model()).execute()


def test_repr_shows_values_not_generated_paths():
    shown = repr(Learn(model=Model(hidden=3)))
    assert shown.startswith("Learn(")
    assert "hidden=3" in shown and "epochs=10" in shown and "parameters" not in shown


def test_class_of_main_loaded_under_another_name_keeps_its_identifier(tmp_path):
    # A class of __main__ may be loaded again by the job's runner under another module name: the
    # identifier depends only on __xpmid__.
    script = tmp_path / "two.py"
    script.write_text(textwrap.dedent("""
        import importlib.util, sys
        from xpmstore import Config, Param

        class Script(Config):
            __xpmid__ = "scripts.Script"
            hidden: Param[int] = 128

        if __name__ == "__main__":
            spec = importlib.util.spec_from_file_location("renamed", sys.argv[0])
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            print(Script(hidden=3).__identifier__, module.Script(hidden=3).__identifier__)
    """))
    result = run_python([str(script)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split()
    assert first == second == ScriptTwin(hidden=3).__identifier__
