"""params.json: its two sections, read_params, and load() (docs/identifiers.md)."""

from __future__ import annotations

import enum
import json
import math
import os
import textwrap
import warnings
from pathlib import Path
from typing import Annotated, Any

import pytest

from xpmstore import Config, Constant, Meta, Param, Task, field, load, pathgenerator
from xpmstore.core.config import dependencies, tags_of
from xpmstore.core.identifier import from_params
from xpmstore.core.params import (
    PARAMS_VERSION,
    from_params_file,
    params_of,
    read_params,
    refresh_values,
    to_json_bytes,
)
from xpmstore.core.params import load as load_file
from xpmstore.errors import (
    ClassNotFoundError,
    FormatVersionError,
    NotFound,
    UnsupportedValueError,
)

from ..helpers import run_python


class Flavor(enum.Enum):
    SWEET = "sweet"
    SOUR = "sour"


class Model(Config):
    hidden: Param[int] = 128
    layers: Param[list[int]] = field(default_factory=lambda: [64, 64])
    weights: Annotated[Path, pathgenerator("weights.pt")]


class Learn(Task):
    model: Param[Model]
    epochs: Param[int] = 100
    lr: Param[float] = 1e-3
    version: Constant[int] = 1
    verbose: Meta[bool] = False
    flavor: Param[Flavor] = Flavor.SWEET
    parameters: Annotated[Path, pathgenerator("parameters.pth")]

    def task_outputs(self, dep):
        return {"model": dep(self.model), "task": dep(self)}


class Everything(Config):
    value: Param[Any] = None
    note: Meta[Any] = None
    path: Param[Path | None] = None
    where: Meta[Path | None] = None


def write(config: Config, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "params.json"
    target.write_bytes(to_json_bytes(params_of(config)))
    return target


def roundtrip(config: Config, directory: Path) -> Config:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load(write(config, directory))
    assert type(loaded) is type(config)
    assert loaded.__identifier__ == config.__identifier__
    return loaded


# --- the document -------------------------------------------------------------------------------


def test_document_sections():
    learn = Learn(model=Model(hidden=64), epochs=10, verbose=True).tag("size", "small")
    document = params_of(learn)
    assert document["format"] == "xpmstore.params"
    assert document["version"] == PARAMS_VERSION
    assert document["identifier"] == learn.__identifier__
    identity = document["identity"]
    assert identity["name"] == f"{__name__}.Learn"
    assert identity["pathgens"] == ["parameters.pth"]
    assert identity["fields"]["epochs"] == 10
    assert identity["fields"]["version"] == 1
    assert "lr" not in identity["fields"] and "verbose" not in identity["fields"]
    model_identity = identity["fields"]["model"]["$config"]
    assert model_identity == {"name": f"{__name__}.Model", "pathgens": ["weights.pt"],
                              "fields": {"hidden": 64}}
    root = document["values"]["objects"][document["values"]["root"]]
    assert root["class"] == f"{__name__}:Learn"
    assert root["task"] is True
    assert root["fields"]["verbose"] is True
    assert root["tags"] == {"size": "small"}
    assert set(root["defaults"]) == {"lr", "flavor"}
    assert from_params(identity) == learn.__identifier__


def test_refresh_values_writes_todays_values_and_keeps_the_identity(tmp_path):
    made = Learn(model=Model(), verbose=False).tag("run", "a")
    target = write(made, tmp_path)
    today = Learn(model=Model(), verbose=True).tag("run", "b")
    assert refresh_values(tmp_path, today) is True
    loaded = load(target)
    assert loaded.verbose is True and tags_of(loaded) == {"run": "b"}
    assert json.loads(target.read_bytes())["identity"] == params_of(made)["identity"]
    before = os.stat(target)
    assert refresh_values(tmp_path, Learn(model=Model(), verbose=True).tag("run", "b")) is False
    assert os.stat(target).st_ino == before.st_ino  # nothing written when nothing changed


def test_refresh_values_keeps_a_valid_identity_written_otherwise(tmp_path):
    made = Learn(model=Model(), epochs=5)
    target = write(made, tmp_path)
    document = json.loads(target.read_bytes())
    document["identity"]["note"] = "written by another version"  # not hashed
    assert from_params(document["identity"]) == made.__identifier__
    target.write_text(json.dumps(document))
    assert refresh_values(tmp_path, Learn(model=Model(), epochs=5, verbose=True)) is True
    after = json.loads(target.read_bytes())
    assert load(target).verbose is True
    assert after["identity"] == document["identity"]


@pytest.mark.parametrize("damage", [b"", b"{not json", b"[1, 2]", b'{"identity": {"name": 3}}'])
def test_refresh_values_replaces_a_damaged_params_json(tmp_path, damage):
    made = Learn(model=Model(), epochs=7, verbose=True)
    (tmp_path / "params.json").write_bytes(damage)
    assert refresh_values(tmp_path, made) is True
    assert (tmp_path / "params.json").read_bytes() == to_json_bytes(params_of(made))


@pytest.mark.parametrize("values", [
    None, [], {"root": "0"}, {"root": "9", "objects": {}}, {"root": "0", "objects": []},
    {"root": "0", "objects": {"0": []}}, {"root": "0", "objects": {"0": {"fields": {}}}},
    {"root": "0", "objects": {"0": {"class": f"{__name__}:Model", "fields": []}}},
    {"root": "0", "objects": {"0": {"class": f"{__name__}:Learn",
                                    "fields": {"model": {"$ref": "0"}}}}},  # a cycle
    {"root": "0", "objects": {"0": {"class": f"{__name__}:Model",
                                    "fields": {"hidden": {"$float": "many"}}}}},
])
def test_load_of_a_damaged_values_section_is_one_clear_error(tmp_path, values):
    document = params_of(Model())
    document["values"] = values
    if values is None:
        del document["values"]
    (tmp_path / "params.json").write_text(json.dumps(document))
    with pytest.raises(FormatVersionError, match=r"values section is damaged|refers to itself"):
        load(tmp_path)


def test_identity_section_forms(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("x")
    learn = Learn(model=Model())
    value = {
        "float": 1.5, "nan": math.nan, "inf": -math.inf, "bytes": b"\x00\xff", "tuple": (1,),
        "set": {2, 1}, "enum": Flavor.SOUR, "task": learn, "file": learn.parameters,
        "path": source, "list": [None, True, "s"], "config": Model(hidden=1),
    }
    identity = params_of(Everything(value=value))["identity"]["fields"]["value"]["$dict"]
    assert identity["float"] == 1.5
    assert identity["nan"] == {"$float": "nan"} and identity["inf"] == {"$float": "-inf"}
    assert identity["bytes"] == {"$bytes": "AP8="}
    assert identity["tuple"] == {"$tuple": [1]}
    assert identity["set"] == {"$set": [1, 2]}
    assert identity["enum"] == {"$enum": f"{__name__}.Flavor", "member": "SOUR"}
    assert identity["task"] == {"$task": learn.__identifier__, "name": f"{__name__}.Learn"}
    assert identity["file"] == {"$file": learn.__identifier__, "rel": "parameters.pth"}
    assert set(identity["path"]) == {"$digest"} and identity["path"]["$digest"].startswith("01")
    assert identity["list"] == [None, True, "s"]
    assert identity["config"]["$config"]["fields"] == {"hidden": 1}


def test_json_bytes_are_stable_and_utf8():
    config = Everything(value={"b": "é", "a": [1.0, -0.0]})
    first = to_json_bytes(params_of(config))
    assert first == to_json_bytes(params_of(Everything(value={"a": [1.0, -0.0], "b": "é"})))
    assert "é".encode() in first
    document = json.loads(first)
    assert document["identity"]["fields"]["value"] == {"$dict": {"a": [1.0, -0.0], "b": "é"}}
    assert math.copysign(1, document["identity"]["fields"]["value"]["$dict"]["a"][1]) == -1


# --- load ---------------------------------------------------------------------------------------


def test_load_rebuilds_values_tags_and_meta(tmp_path):
    model = Model(hidden=64, layers=[1, 2, 3]).tag("arch", "mlp")
    learn = Learn(model=model, epochs=7, verbose=True, flavor=Flavor.SOUR).tag("lr", 0.5)
    loaded = roundtrip(learn, tmp_path)
    assert loaded.model.hidden == 64 and loaded.model.layers == [1, 2, 3]
    assert (loaded.epochs, loaded.verbose, loaded.flavor) == (7, True, Flavor.SOUR)
    assert tags_of(loaded) == {"arch": "mlp", "lr": 0.5}
    loaded._xpm_bind(tmp_path)
    assert os.fspath(loaded.model.weights) == str(tmp_path / "out/model/weights.pt")


def test_load_from_a_directory(tmp_path):
    learn = Learn(model=Model())
    write(learn, tmp_path / "taskdir")
    assert load(tmp_path / "taskdir").__identifier__ == learn.__identifier__
    assert from_params_file(tmp_path / "taskdir") == learn.__identifier__


def test_load_keeps_every_value_type(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("x")
    learn = Learn(model=Model())
    value = {
        "float": 1.5, "neg0": -0.0, "nan": math.nan, "inf": math.inf, "big": 10**30,
        "bytes": b"\x00\xff", "tuple": (1, (2, [3])), "set": frozenset({2, "a", (1, 2)}),
        "nested_set": {frozenset({1}), frozenset()}, "enum": Flavor.SOUR, "task": learn,
        "file": learn.parameters, "list": [None, True, "s", []], "config": Model(hidden=1),
        "dict": {"$float": 1, "$ref": "x"},
    }
    config = Everything(value=value, note={"meta": [1]}, path=source, where=tmp_path / "x")
    loaded = roundtrip(config, tmp_path / "out")
    got = loaded.value
    assert got["float"] == 1.5 and math.copysign(1, got["neg0"]) == -1
    assert math.isnan(got["nan"]) and got["inf"] == math.inf and got["big"] == 10**30
    assert got["bytes"] == b"\x00\xff" and got["tuple"] == (1, (2, [3]))
    assert got["set"] == frozenset({2, "a", (1, 2)})
    assert got["nested_set"] == {frozenset({1}), frozenset()}
    assert got["enum"] is Flavor.SOUR
    assert got["task"].__identifier__ == learn.__identifier__
    assert got["file"].task_and_relpath()[1] == "parameters.pth"
    assert got["dict"] == {"$float": 1, "$ref": "x"}
    assert loaded.note == {"meta": [1]} and loaded.path == source
    assert loaded.where == tmp_path / "x"


def test_load_keeps_shared_subconfigs_shared(tmp_path):
    shared = Model(hidden=3)
    config = Everything(value=[shared, shared], note=shared)
    loaded = roundtrip(config, tmp_path)
    assert loaded.value[0] is loaded.value[1] is loaded.note


def test_load_keeps_dep_marks(tmp_path):
    learn = Learn(model=Model(hidden=5))
    outputs = learn.__xpm_outputs__()
    config = Everything(value=outputs)
    loaded = roundtrip(config, tmp_path)
    marked = loaded.value["model"]
    assert marked.__dict__["_xpm_producer"].__identifier__ == learn.__identifier__
    assert marked.__identifier__ == outputs["model"].__identifier__
    assert [t.__identifier__ for t in dependencies(loaded)] == [learn.__identifier__]
    # a config built from a loaded output has the identifier of one built from the original
    assert (Everything(value=marked).__identifier__
            == Everything(value=outputs["model"]).__identifier__)


def test_load_warns_once_when_a_default_changed(tmp_path):
    target = write(Learn(model=Model()), tmp_path)
    document = json.loads(target.read_bytes())
    root = document["values"]["objects"][document["values"]["root"]]
    root["defaults"]["lr"] = 0.5
    target.write_text(json.dumps(document))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load(target)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert "Learn.lr" in messages[0] and "default changed" in messages[0]
    assert "Constant" in messages[0]
    assert loaded.__identifier__ == document["identifier"]


@pytest.mark.parametrize("loader", [load, load_file], ids=["xpmstore.load", "params.load"])
def test_load_warns_at_the_callers_line_when_the_class_changed(tmp_path, loader):
    target = write(Everything(value=1), tmp_path)
    document = json.loads(target.read_bytes())
    document["identifier"] = "0" * 64  # what the class gave when the file was written
    target.write_text(json.dumps(document))
    with pytest.warns(UserWarning, match="Everything: the class changed since") as caught:
        loader(target)
    assert [w.filename for w in caught] == [__file__]  # the line that called load


def test_load_warns_when_a_field_disappeared(tmp_path):
    target = write(Everything(value=1), tmp_path)
    document = json.loads(target.read_bytes())
    root = document["values"]["objects"][document["values"]["root"]]
    root["fields"]["gone"] = 3
    target.write_text(json.dumps(document))
    with pytest.warns(UserWarning, match="Everything.gone"):
        loaded = load(target)
    assert loaded.value == 1


def test_load_of_a_missing_class(tmp_path):
    target = write(Everything(value=1), tmp_path)
    document = json.loads(target.read_bytes())
    document["values"]["objects"]["0"]["class"] = "no_such_module_xyz:Thing"
    target.write_text(json.dumps(document))
    with pytest.raises(ClassNotFoundError, match="no_such_module_xyz:Thing") as info:
        load(target)
    assert isinstance(info.value, LookupError)
    document["values"]["objects"]["0"]["class"] = f"{__name__}:Nothing"
    target.write_text(json.dumps(document))
    with pytest.raises(ClassNotFoundError, match="Nothing"):
        load(target)
    document["values"]["objects"]["0"]["class"] = f"{__name__}:write"
    target.write_text(json.dumps(document))
    with pytest.raises(ClassNotFoundError, match="no longer a class"):
        load(target)


def test_load_of_a_class_whose_code_fails_to_import(tmp_path):
    script = tmp_path / "broken_script.py"
    script.write_text("raise RuntimeError('broken on purpose')\n")
    target = write(Everything(value=1), tmp_path)
    document = json.loads(target.read_bytes())
    document["values"]["objects"]["0"].update({"class": "__main__:Thing", "script": str(script)})
    target.write_text(json.dumps(document))
    with pytest.raises(ClassNotFoundError, match="RuntimeError: broken on purpose") as info:
        load(target)
    assert "__main__:Thing" in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)  # a job's stderr shows where
    with pytest.raises(ClassNotFoundError, match="RuntimeError"):  # not a half-run module kept
        load(target)


# --- read_params --------------------------------------------------------------------------------


def test_read_params_refuses_a_newer_version(tmp_path):
    target = write(Everything(), tmp_path)
    document = json.loads(target.read_bytes())
    document["version"] = PARAMS_VERSION + 1
    target.write_text(json.dumps(document))
    with pytest.raises(FormatVersionError, match="newer") as info:
        read_params(target)
    assert isinstance(info.value, ValueError)
    assert "upgrade xpmstore" in str(info.value) and str(target) in str(info.value)


@pytest.mark.parametrize("content", ["not json", "[]", '{"format": "other"}', "\xff",
                                     '{"format": "xpmstore.params", "version": "1"}'])
def test_read_params_refuses_other_files(tmp_path, content):
    target = tmp_path / "params.json"
    target.write_bytes(content.encode("latin-1"))
    with pytest.raises(FormatVersionError, match=str(target)) as info:
        read_params(target)
    assert isinstance(info.value, ValueError)


def test_read_params_of_a_missing_file(tmp_path):
    with pytest.raises(NotFound, match=r"no params\.json") as info:
        read_params(tmp_path)
    assert isinstance(info.value, LookupError)
    with pytest.raises(NotFound):
        load(tmp_path / "nothing.json")


@pytest.mark.parametrize(
    "identity",
    [{}, {"name": "x"}, {"name": "x", "fields": {"a": {"$unknown": 1}}},
     {"name": "x", "fields": {"a": {}}}, {"name": "x", "fields": {"a": {"$task": "XYZ"}}},
     {"name": "x", "fields": {"a": {"$bytes": "!!"}}}, {"name": 3, "fields": {}}],
)
def test_from_params_refuses_malformed_identities(identity):
    with pytest.raises(UnsupportedValueError) as info:
        from_params(identity)
    assert isinstance(info.value, TypeError)


# --- classes of __main__ ------------------------------------------------------------------------


_SCRIPT = """
import enum
import sys
from xpmstore import Config, Param
from xpmstore.core.params import params_of, to_json_bytes

class Flavor(enum.Enum):
    __xpmid__ = "scripts.Flavor"
    SWEET = 1
    SOUR = 2

class Script(Config):
    __xpmid__ = "scripts.{name}"
    hidden: Param[int] = 128
    flavor: Param[Flavor] = Flavor.SWEET

if __name__ == "__main__":
    config = Script(hidden={hidden}, flavor=Flavor.SOUR)
    open(sys.argv[1], "wb").write(to_json_bytes(params_of(config)))
    print(config.__identifier__)
"""

_LOADER = """
import sys
from xpmstore import load
for path in sys.argv[1:]:
    config = load(path)
    print(type(config).__module__, config.flavor.name, config.hidden, config.__identifier__)
"""


def test_load_imports_the_script_of_a_main_class(tmp_path):
    written = []
    for name, hidden in (("one", 3), ("two", 4)):
        script = tmp_path / f"{name}.py"
        script.write_text(_SCRIPT.format(name=name, hidden=hidden))
        result = run_python([str(script), str(tmp_path / f"{name}.json")], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        written.append(result.stdout.strip())
    document = json.loads((tmp_path / "one.json").read_bytes())
    entry = document["values"]["objects"]["0"]
    assert entry["class"] == "__main__:Script" and entry["script"] == str(tmp_path / "one.py")
    loader = tmp_path / "elsewhere" / "loader.py"
    loader.parent.mkdir()
    loader.write_text(textwrap.dedent(_LOADER))
    result = run_python([str(loader), str(tmp_path / "one.json"), str(tmp_path / "two.json")],
                        cwd=loader.parent)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1:] for line in lines] == [["SOUR", "3", written[0]],
                                                     ["SOUR", "4", written[1]]]
