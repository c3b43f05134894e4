"""Malicious input on the command line: hypothesis over ``st.text()`` for identifiers, prefixes
and tag filters.  Anything that is not 1–64 lowercase hex is refused with exit code 2 before any
path is built; a well-formed identifier that names nothing exits 1; a well-formed tag filter
lists what matches (nothing).  Nothing outside the workspace is touched, and nothing inside it
but the index."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpmstore.store import taskdirs
from xpmstore.store.workspace import Workspace

from ..clihelpers import invoke, one_error_line
from ..gctasks import Step
from ..storehelpers import isolate, make_workspace, tree

_HEX = re.compile(r"[0-9a-f]{1,64}")
_SETTINGS = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Workspace, Path]:
    """A workspace with a few objects, inside a folder whose other content must not change."""
    isolate(monkeypatch, tmp_path)
    ws = make_workspace(tmp_path / "ws")
    for i in range(3):
        taskdirs.run_here(ws, Step(i=i, variant=90))
    (tmp_path / "bait").mkdir()
    (tmp_path / "bait" / "precious.txt").write_text("keep me")
    return ws, tmp_path


def _snapshot(ws: Workspace, outside: Path) -> tuple[set[str], set[str]]:
    inside = {p for p in tree(ws.root) if not p.startswith(".xpmstore")}
    return inside, tree(outside) - {p for p in tree(outside) if p.startswith("ws")}


def _expected(text: str, known: set[str]) -> set[int]:
    if not _HEX.fullmatch(text):
        return {2}
    matching = [k for k in known if k.startswith(text)]
    if not matching:
        return {1}
    return {0} if len(matching) == 1 else {2}


@_SETTINGS
@given(text=st.text())
def test_identifiers_and_prefixes(guarded: tuple[Workspace, Path], text: str) -> None:
    ws, outside = guarded
    known = {d.name for d in taskdirs.list_object_dirs(ws)}
    before = _snapshot(ws, outside)
    for command in ("get", "show", "logs", "kill", "pin", "unpin", "rm"):
        if command == "rm" and _HEX.fullmatch(text):
            continue  # a valid prefix would remove an object (as asked)
        result = invoke(ws, command, "--", text)
        if command in ("get", "show"):
            assert result.exit_code in _expected(text, known), (command, text, result.output)
        elif not _HEX.fullmatch(text):
            assert result.exit_code == 2, (command, text, result.output)
        else:
            assert result.exit_code in (0, 1, 2), (command, text, result.output)
        if result.exit_code:
            one_error_line(result.stderr)
    assert _snapshot(ws, outside)[1] == before[1]
    for ident in known:
        invoke(ws, "unpin", ident)
    assert _snapshot(ws, outside) == before


@_SETTINGS
@given(text=st.text())
def test_tag_filters(guarded: tuple[Workspace, Path], text: str) -> None:
    ws, outside = guarded
    before = _snapshot(ws, outside)
    result = invoke(ws, "ls", f"--tag={text}")
    name, sep, _ = text.partition("=")
    if sep and name.strip():
        assert result.exit_code == 0 and result.stdout == "", (text, result.output)
    else:
        assert result.exit_code == 2, (text, result.output)
        one_error_line(result.stderr)
    assert _snapshot(ws, outside) == before


@_SETTINGS
@given(text=st.text())
def test_why_targets(guarded: tuple[Workspace, Path], text: str) -> None:
    ws, outside = guarded
    before = _snapshot(ws, outside)
    result = invoke(ws, "why", "--", text)
    if ":" not in text and not _HEX.fullmatch(text):
        assert result.exit_code == 2, (text, result.output)
    assert result.exit_code in (0, 1, 2)
    if result.exit_code:
        one_error_line(result.stderr)
    assert _snapshot(ws, outside) == before
