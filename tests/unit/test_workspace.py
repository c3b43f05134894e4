"""The workspace (xpmstore.store.workspace): layout, the default workspace, where the index
lives."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from blake3 import blake3

from xpmstore.errors import InvalidIdentifierError, XpmstoreError
from xpmstore.store.index import index_location
from xpmstore.store.workspace import (
    DONE,
    Workspace,
    current_workspace,
    default_workspace,
    is_network_fs,
    set_active_workspace,
    user_settings,
)

from ..storehelpers import isolate

ID = "0123456789abcdef" * 4


@pytest.fixture(autouse=True)
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolate(monkeypatch, tmp_path)


def write_settings(folder: Path, text: str) -> Path:
    path = folder / "xpmstore" / "settings.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- the default workspace -------------------------------------------------------------------


def test_default_is_under_home_local_share(home: Path) -> None:
    assert default_workspace() == home / ".local" / "share" / "xpmstore"


def test_default_honours_xdg_data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_workspace() == tmp_path / "data" / "xpmstore"


def test_settings_file_in_home_config(home: Path, tmp_path: Path) -> None:
    write_settings(home / ".config", f'workspace = "{tmp_path / "from-settings"}"\n')
    assert default_workspace() == tmp_path / "from-settings"


def test_settings_file_via_xdg_config_home(monkeypatch: pytest.MonkeyPatch, home: Path,
                                          tmp_path: Path) -> None:
    write_settings(home / ".config", 'workspace = "/not/this/one"\n')
    write_settings(tmp_path / "xdg", 'workspace = "~/in-home"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert default_workspace() == home / "in-home"
    assert user_settings() == {"workspace": "~/in-home"}


def test_environment_variable_wins(monkeypatch: pytest.MonkeyPatch, home: Path,
                                   tmp_path: Path) -> None:
    write_settings(home / ".config", f'workspace = "{tmp_path / "from-settings"}"\n')
    monkeypatch.setenv("XPMSTORE_WORKSPACE", "~/from-env")
    assert default_workspace() == home / "from-env"
    monkeypatch.setenv("XPMSTORE_WORKSPACE", "")  # empty: as if unset
    assert default_workspace() == tmp_path / "from-settings"


def test_invalid_settings_file_is_a_clear_error(home: Path) -> None:
    path = write_settings(home / ".config", "workspace = [unclosed\n")
    with pytest.raises(XpmstoreError) as info:
        default_workspace()
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_current_workspace_follows_the_environment_and_the_active_one(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XPMSTORE_WORKSPACE", str(tmp_path / "a"))
    assert current_workspace().root == tmp_path / "a"
    monkeypatch.setenv("XPMSTORE_WORKSPACE", str(tmp_path / "b"))
    assert current_workspace().root == tmp_path / "b"
    active = Workspace.at(tmp_path / "active")
    previous = set_active_workspace(active)
    try:
        assert current_workspace() is active
    finally:
        assert set_active_workspace(previous) is active
    assert current_workspace().root == tmp_path / "b"


# --- layout --------------------------------------------------------------------------------------


def test_layout(tmp_path: Path) -> None:
    workspace = Workspace.at(tmp_path / "ws")
    assert workspace.jobs == tmp_path / "ws" / "jobs"
    assert workspace.cache == tmp_path / "ws" / "cache"
    assert workspace.experiments == tmp_path / "ws" / "experiments"
    assert workspace.private == tmp_path / "ws" / ".xpmstore"
    assert workspace.task_dir("pkg.Learn", ID) == tmp_path / "ws" / "jobs" / "pkg.Learn" / ID
    assert workspace.object_dir("cache", "pkg.T", ID) == tmp_path / "ws" / "cache" / "pkg.T" / ID
    assert workspace.lock_path(ID) == tmp_path / "ws" / ".xpmstore" / "locks" / "01" / ID
    assert workspace.gc_lock_path == tmp_path / "ws" / ".xpmstore" / "gc.lock"
    assert DONE == ".xpm/done"
    assert not (tmp_path / "ws").exists()  # pure path arithmetic
    workspace.ensure()
    workspace.ensure()
    assert sorted(os.listdir(tmp_path / "ws")) == [".xpmstore", "cache", "experiments", "jobs"]


def test_object_path_is_object_dir_as_text_and_follows_the_root(tmp_path: Path) -> None:
    """The str form of an object's directory (the scheduler's planning) names the same
    directory as the Path; a workspace whose root is changed names directories under its new
    root (the class folders it remembers are its old root's)."""
    workspace = Workspace.at(tmp_path / "ws")
    for kind in ("task", "cache"):
        path = workspace.object_dir(kind, "pkg.T", ID)
        assert workspace.object_path(kind, "pkg.T", ID) == str(path)
    workspace.root = tmp_path / "other"
    assert workspace.task_dir("pkg.T", ID) == tmp_path / "other" / "jobs" / "pkg.T" / ID
    moved = tmp_path / "other" / "jobs" / "pkg.T" / ID
    assert workspace.object_path("task", "pkg.T", ID) == str(moved)
    for bad in ("", "a/b", ".hidden"):
        with pytest.raises(XpmstoreError):
            workspace.object_path("task", bad, ID)
    with pytest.raises(InvalidIdentifierError):
        workspace.object_path("task", "pkg.T", ID[:12])


def test_at_is_absolute_and_reads_the_workspace_settings(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "xpmstore.toml").write_text('index_path = "/somewhere"\n')
    monkeypatch.chdir(tmp_path)
    workspace = Workspace.at("ws")
    assert workspace.root == tmp_path / "ws"
    assert workspace.settings == {"index_path": "/somewhere"}
    assert Workspace.at(workspace) is workspace


@pytest.mark.parametrize("bad", ["", "../x", "/etc", "ABCDEF", "12g4", "a" * 65, "é",
                                 "\uff10\uff11", "00\x00", "ab\n"])
def test_bad_identifiers_are_refused(tmp_path: Path, bad: str) -> None:
    workspace = Workspace.at(tmp_path)
    with pytest.raises(InvalidIdentifierError):
        workspace.lock_path(bad)
    with pytest.raises(InvalidIdentifierError):
        workspace.object_dir("task", "pkg.Learn", bad)
    assert os.listdir(tmp_path) == ["home"]


def test_object_dir_needs_a_full_identifier_and_a_name(tmp_path: Path) -> None:
    workspace = Workspace.at(tmp_path)
    with pytest.raises(InvalidIdentifierError):
        workspace.object_dir("task", "pkg.Learn", ID[:12])
    for name in ("", "a/b", ".hidden", "..", "../etc"):
        with pytest.raises(ValueError):
            workspace.object_dir("task", name, ID)


# --- locality and the index location -----------------------------------------------------------


def test_a_temporary_directory_is_local(tmp_path: Path) -> None:
    network, fstype = is_network_fs(tmp_path)
    assert network is False
    assert fstype  # the mount was found


def _key(root: Path) -> str:
    return f"{socket.gethostname()}-{blake3(os.path.realpath(root).encode()).hexdigest()[:16]}"


def test_index_location_local_default(tmp_path: Path) -> None:
    workspace = Workspace.at(tmp_path / "ws")
    assert index_location(workspace) == tmp_path / "ws" / ".xpmstore" / "index"


def test_index_location_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XPMSTORE_INDEX_DIR", str(tmp_path / "indexes"))
    one, two = Workspace.at(tmp_path / "one"), Workspace.at(tmp_path / "two")
    assert index_location(one) == tmp_path / "indexes" / _key(one.root)
    assert index_location(one) != index_location(two)  # never two workspaces in one index
    # the key is computed from the real path: a symlink to the workspace finds the same index
    (tmp_path / "one").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "one")
    assert index_location(Workspace.at(tmp_path / "alias")) == index_location(one)


def test_index_location_from_user_settings(monkeypatch: pytest.MonkeyPatch, home: Path,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("XPMSTORE_INDEX_DIR", str(tmp_path / "indexes"))
    write_settings(home / ".config", 'index_path = "~/my-index"\n')
    assert index_location(Workspace.at(tmp_path / "ws")) == home / "my-index"


def test_index_location_from_workspace_settings_wins(monkeypatch: pytest.MonkeyPatch,
                                                     home: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("XPMSTORE_INDEX_DIR", str(tmp_path / "indexes"))
    write_settings(home / ".config", 'index_path = "~/my-index"\n')
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "xpmstore.toml").write_text(f'index_path = "{tmp_path / "ws-index"}"\n')
    assert index_location(Workspace.at(tmp_path / "ws")) == tmp_path / "ws-index"


def test_relative_index_path_in_the_workspace_is_relative_to_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "xpmstore.toml").write_text('index_path = "local-index"\n')
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # not the workspace: the cwd must not matter
    assert index_location(Workspace.at(tmp_path / "ws")) == tmp_path / "ws" / "local-index"
