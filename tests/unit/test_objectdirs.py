"""The object directories of a workspace (xpmstore.store.objectdirs): the one walk that every
reader of them shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from xpmstore.errors import NotFound
from xpmstore.store import objectdirs, taskdirs
from xpmstore.store.locate import locate
from xpmstore.store.lookup import Store
from xpmstore.store.reindex import record_of
from xpmstore.store.workspace import Workspace

from ..storehelpers import Tiny, isolate


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def test_every_reader_of_the_object_directories_sees_the_same_ones(ws: Workspace,
                                                                   tmp_path: Path) -> None:
    """Listings, gc, ``locate``, ``Store.get`` and the index's heal walk the object directories
    in one place: a link, a hidden class folder or a file named by an identifier is no object
    for any of them."""
    done = taskdirs.run_here(ws, Tiny(i=1))
    elsewhere = taskdirs.run_here(Workspace.at(tmp_path / "other"), Tiny(i=2))
    linked = ws.jobs / "tests.store.Tiny" / elsewhere.name
    linked.symlink_to(elsewhere)  # a done object, but outside: never followed
    (ws.jobs / ".hidden" / ("b" * 64)).mkdir(parents=True)
    (ws.jobs / "tests.store.Tiny" / ("d" * 64)).write_text("a file, not a directory")
    assert [Path(d.path) for d in objectdirs.scan_objects(ws)] == [done]
    assert objectdirs.list_object_dirs(ws) == [done]
    for text in (done.name, done.name[:6]):
        assert objectdirs.find_object_dirs(ws, text) == [(done.name, done)]
        assert locate(ws, text) == (done.name, done)
    for ident in (elsewhere.name, "b" * 64, "d" * 64):
        assert objectdirs.find_object_dirs(ws, ident) == []
        assert objectdirs.find_object_dirs(ws, ident[:8]) == []
        assert record_of(ws, ident) is None
        with pytest.raises(NotFound):
            locate(ws, ident[:8])
        with pytest.raises(NotFound, match="no object"):
            Store(ws).get(ident)
