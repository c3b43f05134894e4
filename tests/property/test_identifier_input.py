"""Crafted identifiers (hypothesis over arbitrary text): anything that is not 1–64 lowercase hex
characters is refused with InvalidIdentifierError before any path is built, and nothing appears
on disk outside the workspace."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from xpmstore.errors import InvalidIdentifierError, NotFound
from xpmstore.store.index import Index
from xpmstore.store.lookup import Store
from xpmstore.store.workspace import Workspace

from ..storehelpers import tree

HEX = re.compile(r"[0-9a-f]{1,64}")

CRAFTED = st.one_of(
    st.text(),
    st.text(alphabet="0123456789abcdefABCDEF./\\\x00\n \uff10\uff41\u0660", max_size=70),
    st.sampled_from(["../x", "/etc", "/etc/passwd", "..", ".", "~", "a/../b", "\x00", "ABC",
                     "\uff10" * 64, "\u0661\u0662", "a" * 65, "a" * 64 + "\n", " " + "a" * 63]),
)

BOUNDED = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def place() -> Iterator[dict[str, Any]]:
    """A folder holding a workspace with one done-looking object; the cwd is another folder."""
    folder = Path(tempfile.mkdtemp(prefix="xpmstore-crafted-"))
    root = folder / "ws"
    workspace = Workspace.at(root)
    workspace.ensure()
    cwd = folder / "cwd"
    cwd.mkdir()
    previous = os.getcwd()
    os.chdir(cwd)
    store = Store(workspace)
    store.index.count()  # the index exists before any crafted input
    try:
        yield {"folder": folder, "workspace": workspace, "store": store, "cwd": cwd,
               "index": Index.open(folder / "ws" / ".xpmstore" / "index"),
               "before": tree(folder)}
    finally:
        os.chdir(previous)
        shutil.rmtree(folder, ignore_errors=True)


def refused_or_valid(text: str, call: Callable[[str], Any], full: bool) -> None:
    valid = HEX.fullmatch(text) is not None and (not full or len(text) == 64)
    if valid:
        try:
            call(text)
        except NotFound:
            pass
        return
    with pytest.raises(InvalidIdentifierError) as info:
        call(text)
    assert "\n" not in str(info.value)


def nothing_created(place: dict[str, Any]) -> None:
    assert os.listdir(place["cwd"]) == []
    assert tree(place["folder"]) == place["before"]


@given(text=CRAFTED)
@example(text="../x")
@example(text="/etc")
@example(text="\uff11\uff12")
@example(text="DEADBEEF")
@BOUNDED
def test_store_get(place: dict[str, Any], text: str) -> None:
    refused_or_valid(text, place["store"].get, full=False)
    nothing_created(place)


@given(text=CRAFTED)
@example(text="../../../../tmp/owned")
@BOUNDED
def test_workspace_paths(place: dict[str, Any], text: str) -> None:
    workspace: Workspace = place["workspace"]
    refused_or_valid(text, workspace.lock_path, full=False)
    refused_or_valid(text, lambda t: workspace.object_dir("task", "pkg.X", t), full=True)
    refused_or_valid(text, lambda t: workspace.object_dir("cache", "pkg.X", t), full=True)
    if HEX.fullmatch(text):
        assert workspace.lock_path(text).parent.parent == workspace.private / "locks"
    nothing_created(place)


@given(text=CRAFTED)
@example(text="a" * 63)
@BOUNDED
def test_index_get(place: dict[str, Any], text: str) -> None:
    index: Index = place["index"]
    refused_or_valid(text, index.get, full=True)
    refused_or_valid(text, index.dependents, full=True)
    refused_or_valid(text, lambda t: index.with_prefix(t), full=False)
    nothing_created(place)
