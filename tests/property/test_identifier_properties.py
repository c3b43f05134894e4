"""Properties of identifiers (hypothesis): deterministic across processes, independent of dict and
set order, injective on distinct values, kept by params.json, load() and from_params() — the last
also in a process that cannot import the classes.

Two long-lived child processes answer every example (one spawn each): one with another
PYTHONHASHSEED that unpickles configs and identifies them, and one started with ``python -I``
that only sees identity sections.
"""

from __future__ import annotations

import base64
import json
import math
import os
import pickle
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from xpmstore import load
from xpmstore.core.identifier import check_identifier, from_params
from xpmstore.core.params import params_of, to_json_bytes

from ..helpers import PYTHON, REPO_ROOT
from .strategies import (
    OTHER_NANS,
    Leaf,
    LeafWithExtra,
    leaves,
    reordered,
    structural_key,
    values,
)

BOUNDED = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(BOUNDED, max_examples=40)

_IDENTIFY_WORKER = """
import base64, json, pickle, sys
for line in sys.stdin:
    configs = pickle.loads(base64.b64decode(line))
    print(json.dumps([c.__identifier__ for c in configs]), flush=True)
"""

_FROM_PARAMS_WORKER = """
import importlib, json, sys
from xpmstore.core.identifier import from_params

def importable(name):
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True

print(json.dumps({"strategies": importable("tests.property.strategies"),
                  "golden": importable("tests.golden_configs"),
                  "path": sys.path, "isolated": sys.flags.isolated}), flush=True)
for line in sys.stdin:
    print(json.dumps([from_params(identity) for identity in json.loads(line)]), flush=True)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("tests"))), flush=True)
"""


class Worker:
    """A child process that answers one line per request line."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: str):
        self.process = subprocess.Popen(
            [PYTHON, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
        )

    def ask(self, line: str) -> object:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, f"worker died: {self.process.stderr.read() if self.process.stderr else ''}"
        return json.loads(answer)

    def close(self) -> tuple[str, str, int]:
        out, err = self.process.communicate(timeout=60)
        return out, err, self.process.returncode


def _environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def identify_worker(tmp_path_factory):
    """A process with another hash seed that can import the strategies' classes."""
    seed = "12345" if os.environ.get("PYTHONHASHSEED") != "12345" else "54321"
    worker = Worker(["-c", _IDENTIFY_WORKER],
                    _environ(PYTHONHASHSEED=seed, PYTHONPATH=str(REPO_ROOT)),
                    str(tmp_path_factory.mktemp("identify")))
    yield worker
    _, err, code = worker.close()
    assert code == 0, err


@pytest.fixture(scope="module")
def from_params_worker(tmp_path_factory):
    """An isolated process (``python -I``) that cannot import the classes, only xpmstore."""
    worker = Worker(["-I", "-c", _FROM_PARAMS_WORKER], _environ(PYTHONHASHSEED="7"),
                    str(tmp_path_factory.mktemp("isolated")))
    assert worker.process.stdout is not None
    worker.status = json.loads(worker.process.stdout.readline())
    yield worker
    out, err, code = worker.close()
    assert code == 0, err
    assert json.loads(out) == [], "the isolated process imported test modules"


# --- deterministic across processes -------------------------------------------------------------


@FEW
@given(st.lists(leaves, min_size=1, max_size=12))
def test_identifiers_are_the_same_in_another_process(identify_worker, configs):
    line = base64.b64encode(pickle.dumps(configs)).decode()  # before identifying (no caches)
    theirs = identify_worker.ask(line)
    assert theirs == [c.__identifier__ for c in configs]


def test_the_other_process_really_has_another_hash_seed(identify_worker):
    line = base64.b64encode(pickle.dumps([Leaf(value=frozenset(map(str, range(50))))])).decode()
    assert identify_worker.ask(line) == [Leaf(value=frozenset(map(str, range(50)))).__identifier__]
    probe = subprocess.run(
        [PYTHON, "-c", "print(hash('xpmstore'))"], capture_output=True, text=True, check=True,
        env=_environ(PYTHONHASHSEED="12345"),
    )
    assert int(probe.stdout) != hash("xpmstore") or os.environ.get("PYTHONHASHSEED") == "12345"


# --- order independence -------------------------------------------------------------------------


@BOUNDED
@given(values, st.randoms(use_true_random=False))
def test_identifiers_do_not_depend_on_dict_or_set_order(value, random):
    assert Leaf(value=reordered(value, random.shuffle)).__identifier__ == (
        Leaf(value=value).__identifier__
    )


@BOUNDED
@given(st.dictionaries(st.text(max_size=4), values, max_size=6), st.randoms())
def test_dict_insertion_order_never_matters(mapping, random):
    items = list(mapping.items())
    random.shuffle(items)
    assert Leaf(value=dict(items)).__identifier__ == Leaf(value=mapping).__identifier__


# --- injective ----------------------------------------------------------------------------------


@BOUNDED
@given(st.lists(values, min_size=2, max_size=10))
@example([1, 1.0, True, "a", b"a", [1, 2], (1, 2), [[1]], [[[1]]], [1, [2]], [[1], 2], None,
          0, 0.0, -0.0, False, "", b"", [], (), {}, frozenset(), math.nan, [math.nan],
          *OTHER_NANS, [OTHER_NANS[0]]])
@example([{"a": 1}, {"a": 1.0}, {"a": True}, {"b": 1}, frozenset({1}), frozenset({(1,)}),
          ["a", "b"], ["ab"], ("a", "b"), "ab", [b"a"], [[]], [[], []], [[[]]]])
def test_distinct_values_have_distinct_identifiers(candidates):
    by_key: dict[object, str] = {}
    by_identifier: dict[str, object] = {}
    for value in candidates:
        config = Leaf(value=value)
        key = structural_key(config.value)
        identifier = config.__identifier__
        assert by_key.setdefault(key, identifier) == identifier, f"{value!r}: not deterministic"
        assert by_identifier.setdefault(identifier, key) == key, (
            f"collision: {value!r} shares {identifier} with {by_identifier[identifier]!r}"
        )


@BOUNDED
@given(values)
def test_a_field_added_with_a_default_keeps_identifiers(value):
    assert LeafWithExtra(value=value).__identifier__ == Leaf(value=value).__identifier__
    assert LeafWithExtra(value=value, extra=None).__identifier__ != (
        Leaf(value=value).__identifier__
    )


# --- params.json, load, from_params -------------------------------------------------------------


@BOUNDED
@given(leaves)
def test_from_params_recomputes_the_identifier(config):
    document = params_of(config)
    identifier = config.__identifier__
    assert check_identifier(identifier) == identifier and len(identifier) == 64
    assert document["identifier"] == identifier
    assert from_params(document["identity"]) == identifier
    # the identity section survives its own JSON bytes
    assert from_params(json.loads(to_json_bytes(document))["identity"]) == identifier


@FEW
@given(leaves)
def test_load_gives_back_the_identifier(config):
    with tempfile.TemporaryDirectory() as directory:
        target = Path(directory) / "params.json"
        target.write_bytes(to_json_bytes(params_of(config)))
        loaded = load(target)
    assert type(loaded) is Leaf
    assert loaded.__identifier__ == config.__identifier__
    assert structural_key(loaded.value) == structural_key(config.value)


def test_the_isolated_process_cannot_import_the_classes(from_params_worker):
    status = from_params_worker.status
    assert status["isolated"] == 1
    assert status["strategies"] is False and status["golden"] is False
    assert str(REPO_ROOT) not in status["path"]


@FEW
@given(st.lists(leaves, min_size=1, max_size=12))
def test_from_params_in_a_process_without_the_classes(from_params_worker, configs):
    identities = [params_of(c)["identity"] for c in configs]
    theirs = from_params_worker.ask(json.dumps(identities))
    assert theirs == [c.__identifier__ for c in configs]
