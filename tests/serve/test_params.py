"""The params of a params.json document as a tree and as dotted leaves (pure), including
documents that are damaged or hostile."""

from __future__ import annotations

from typing import Any

import pytest

from xpmstore.serve.paramsview import param_leaves, params_tree

DOCUMENT: dict[str, Any] = {
    "identity": {"fields": {"epochs": 4, "model": {"$config": {"fields": {"hidden": 32}}},
                            "learned": {"$task": "a" * 64}}},
    "values": {"root": "0", "objects": {
        "0": {"class": "m:Learn", "fields": {"epochs": 4, "model": {"$ref": "1"},
                                             "learned": {"$ref": "2"}, "verbose": True,
                                             "out": {"$path": "/x/y"}},
              "defaults": {"lr": 0.1}},
        "1": {"class": "m:Model", "fields": {"hidden": 32}, "defaults": {"act": "relu"}},
        "2": {"class": "m:Pre", "task": True, "id": "a" * 64, "fields": {"steps": 3},
              "defaults": {}},
    }},
}


def test_fields_are_marked_param_default_or_meta() -> None:
    tree = params_tree(DOCUMENT)
    assert tree is not None
    shown = {node["name"]: node for node in tree}
    assert [node["name"] for node in tree] == ["epochs", "learned", "lr", "model", "out",
                                               "verbose"]
    assert (shown["epochs"]["kind"], shown["epochs"]["value"]) == ("param", 4)
    assert (shown["lr"]["kind"], shown["lr"]["value"]) == ("default", 0.1)
    assert shown["verbose"]["kind"] == "meta" and shown["out"]["value"] == "/x/y"
    model = shown["model"]
    assert model["class"] == "m:Model" and model["task"] is False
    assert {(n["name"], n["kind"]) for n in model["children"]} == {("hidden", "param"),
                                                                   ("act", "default")}
    assert shown["learned"]["task"] is True and shown["learned"]["id"] == "a" * 64


def test_leaves_hold_params_with_defaults_through_configs_and_tasks() -> None:
    assert param_leaves(DOCUMENT) == {"epochs": 4, "lr": 0.1, "model.hidden": 32,
                                      "model.act": "relu", "learned.steps": 3}


@pytest.mark.parametrize("document", [
    None, [], "text", {"values": 3}, {"values": {"root": "0"}},
    {"values": {"root": "9", "objects": {}}},
    {"values": {"root": "0", "objects": {"0": "not an object"}}},
])
def test_a_damaged_document_gives_nothing(document: Any) -> None:
    assert params_tree(document) is None
    assert param_leaves(document) == {}


def test_a_reference_cycle_ends() -> None:
    cyclic = {"values": {"root": "0", "objects": {
        "0": {"class": "a", "fields": {"me": {"$ref": "1"}}},
        "1": {"class": "b", "fields": {"back": {"$ref": "0"}, "bad": {"$ref": 5}}},
    }}}
    tree = params_tree(cyclic)
    assert tree is not None
    (child,) = tree
    back, bad = sorted(child["children"], key=lambda n: n["name"])
    assert "children" not in back  # the cycle is cut: shown as a value
    assert bad["value"] == "?"  # a reference to nothing
    assert param_leaves(cyclic)["me.bad"] == "?"
