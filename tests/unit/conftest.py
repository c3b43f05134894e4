"""Fixtures shared by the unit tests: a fresh workspace and a folder of counter files."""

from __future__ import annotations

from pathlib import Path

import pytest

from xpmstore.store.workspace import Workspace

from ..storehelpers import make_workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """A new, empty workspace in the test's temporary folder."""
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def counters(tmp_path: Path) -> str:
    """A folder where tasks append lines to count what they did (see tests/schedtasks.py)."""
    folder = tmp_path / "counters"
    folder.mkdir()
    return str(folder)
