"""``@cache`` entries and the remote (docs/remote.md): an entry computed in one workspace is pulled,
verified, not computed, in another that shares the remote; ``pull_cache = false`` turns that off;
a tampered entry is rejected and computed; an unreachable remote is noticed once per process.
Against a directory remote and a real SeaweedFS server; computations are counted in files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xpmstore.core.identifier import cache_identifier
from xpmstore.remote import cachepull, cachepush, open_remote, push_one
from xpmstore.store.index import Index
from xpmstore.store.workspace import Workspace

from ..storehelpers import Terms, active, count_of, make_workspace
from .conftest import RemoteFactory, closed_port, damage


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    cachepull.reset()
    yield
    cachepull.reset()


def compute(workspace: Workspace, counters: Path, n: int = 5) -> str:
    with active(workspace):
        return str(Terms(n=n).load(str(counters)))


def entry_dir(workspace: Workspace, n: int = 5) -> Path:
    terms = Terms(n=n)
    identifier = cache_identifier(terms.__identifier__, "terms.txt")
    return workspace.root / "cache" / "tests.store.Terms" / identifier


def shared(workspaces: RemoteFactory, counters: Path, extra: str = "") -> Workspace:
    """A first workspace computes Terms(5) and pushes it; returns a second one."""
    first = workspaces("first", push="manual")
    assert compute(first, counters) == "terms of 5\n" * 3
    remote = open_remote(first)
    assert remote is not None and push_one(remote, entry_dir(first))
    return workspaces("second", push="manual", extra=extra)


def test_a_cache_entry_computed_in_one_workspace_is_pulled_in_another(
        workspaces: RemoteFactory, tmp_path: Path) -> None:
    counters = tmp_path / "counters"
    counters.mkdir()
    second = shared(workspaces, counters)
    assert compute(second, counters) == "terms of 5\n" * 3
    assert count_of(counters, "terms-5") == 1  # pulled, not computed
    directory = entry_dir(second)
    assert (directory / ".xpm" / "done").is_file()
    assert Index.for_workspace(second).get(directory.name) is not None
    assert compute(second, counters) == "terms of 5\n" * 3  # now a local hit
    assert compute(second, counters, n=6) == "terms of 6\n" * 3  # absent remotely: computed
    assert count_of(counters, "terms-5") == 1 and count_of(counters, "terms-6") == 1


def test_pull_cache_false_computes_the_entry(workspaces: RemoteFactory, tmp_path: Path) -> None:
    counters = tmp_path / "counters"
    counters.mkdir()
    second = shared(workspaces, counters, extra="pull_cache = false\n")
    assert compute(second, counters) == "terms of 5\n" * 3
    assert count_of(counters, "terms-5") == 2


def test_a_tampered_cache_entry_is_rejected_and_computed(
        workspaces: RemoteFactory, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    counters = tmp_path / "counters"
    counters.mkdir()
    second = shared(workspaces, counters)
    remote = open_remote(second)
    assert remote is not None
    digest = next(iter(remote.backend.list("cas/"))).rsplit("/", 1)[1]
    damage(remote, remote.blob_key(digest))
    capfd.readouterr()
    assert compute(second, counters) == "terms of 5\n" * 3
    err = capfd.readouterr().err
    assert count_of(counters, "terms-5") == 2
    lines = [line for line in err.splitlines() if "rejected" in line]
    assert len(lines) == 1 and entry_dir(second).name in lines[0], err
    assert not [p for p in entry_dir(second).parent.iterdir() if p.name.startswith(".")]


def test_an_entry_computed_after_a_refused_pull_repairs_the_remote(
        workspaces: RemoteFactory, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    counters = tmp_path / "counters"
    counters.mkdir()
    first = workspaces("first", push="manual")
    assert compute(first, counters) == "terms of 5\n" * 3
    remote = open_remote(first)
    assert remote is not None and push_one(remote, entry_dir(first))
    digest = next(iter(remote.backend.list("cas/"))).rsplit("/", 1)[1]
    damage(remote, remote.blob_key(digest))

    second = workspaces("second", push="auto")
    assert compute(second, counters) == "terms of 5\n" * 3  # refused, computed, pushed
    cachepush.wait()
    assert count_of(counters, "terms-5") == 2
    assert "push --verify" in capfd.readouterr().err
    third = workspaces("third", push="manual")
    assert compute(third, counters) == "terms of 5\n" * 3
    assert count_of(counters, "terms-5") == 2  # pulled: the push repaired the remote's copy


def test_an_unreachable_remote_is_noticed_once_per_process(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "xpmstore.toml").write_text(
        f'[remote]\nurl = "s3://nobody/here"\nendpoint_url = "http://127.0.0.1:{closed_port()}"\n')
    workspace = make_workspace(root)
    counters = tmp_path / "counters"
    counters.mkdir()
    for n in range(4):
        assert compute(workspace, counters, n) == f"terms of {n}\n" * 3
    err = capfd.readouterr().err
    assert [count_of(counters, f"terms-{n}") for n in range(4)] == [1, 1, 1, 1]
    assert len([line for line in err.splitlines() if "unreachable" in line]) == 1, err
