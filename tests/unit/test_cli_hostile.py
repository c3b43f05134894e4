"""Files read back are input (issue 16, items 6, 8, 9b): a done manifest or params.json that
is damaged or hostile — paths outside the object, a tampered dependency list, non-hex
identifiers, JSON nested 100,000 deep, a directory or a fifo where a file should be — through
the real ``xpmstore`` command in a subprocess: never a traceback, one line naming the file,
damage that fsck lists, nothing read or written outside the workspace.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from xpmstore.admin.gc import mark
from xpmstore.store import taskdirs
from xpmstore.store.pins import pin
from xpmstore.store.workspace import Workspace

from ..clihelpers import console, task_dir
from ..gctasks import Step
from ..storehelpers import isolate

SECRET = b"a secret outside the workspace\n"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def chain(ws: Workspace) -> tuple[Step, Step]:
    """Two done Steps, the second made from the first."""
    first = Step(i=1, variant=16)
    second = Step(i=2, variant=16, previous=first)
    taskdirs.run_here(ws, first)
    taskdirs.run_here(ws, second)
    return first, second


def edit_done(directory: Path, change: Callable[[dict[str, Any]], None],
              reseal: bool = True) -> None:
    """Edit the done manifest; ``reseal``: give it the checksum of its new content (an edit on
    purpose, which only the checks of its content can catch)."""
    done = directory / ".xpm" / "done"
    document = json.loads(done.read_bytes())
    change(document)
    document.pop("checksum", None)
    if reseal:  # blake3 of the canonical body (docs/store.md)
        document["checksum"] = blake3(json.dumps(document, separators=(",", ":"),
                                                 sort_keys=True).encode()).hexdigest()
    done.write_text(json.dumps(document))


def no_traceback(result: Any) -> None:
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr, result.stderr


def fsck_damaged(ws: Workspace) -> dict[str, list[str]]:
    result = console(ws, "fsck", "--json")
    no_traceback(result)
    damaged = {d["identifier"]: d["problems"] for d in json.loads(result.stdout)["damaged"]}
    assert result.returncode == (1 if damaged else 0)
    assert len(result.stderr.splitlines()) == (1 if damaged else 0), result.stderr
    return damaged


# --- 9b: malformed files ----------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


def damage(directory: Path, kind: str) -> None:
    done = directory / ".xpm" / "done"
    if kind == "non-hex dependency":
        edit_done(directory, lambda d: d["extra"]["dependencies"].append("zz" * 32))
    elif kind == "deep done":
        done.write_text(DEEP)
    elif kind == "deep params":
        (directory / "params.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    elif kind == "done is a directory":
        done.unlink()
        done.mkdir()
    elif kind == "done is a fifo":
        done.unlink()
        os.mkfifo(done)


KINDS = ["non-hex dependency", "deep done", "deep params", "done is a directory",
         "done is a fifo"]


@pytest.mark.parametrize("kind", KINDS)
def test_fsck_lists_a_malformed_object_and_goes_on(ws: Workspace, chain: tuple[Step, Step],
                                                   kind: str) -> None:
    _first, second = chain
    damage(task_dir(ws, second), kind)
    damaged = fsck_damaged(ws)
    assert list(damaged) == [second.__identifier__]  # the other one was checked, and is fine
    assert all("\n" not in p for p in damaged[second.__identifier__])


@pytest.mark.parametrize("kind", KINDS)
def test_index_rebuild_leaves_it_out_with_one_warning(ws: Workspace, chain: tuple[Step, Step],
                                                      kind: str) -> None:
    _first, second = chain
    damage(task_dir(ws, second), kind)
    result = console(ws, "index", "rebuild")
    no_traceback(result)
    assert result.returncode == 0 and "1 objects" in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "warning" in lines[0], result.stderr
    assert str(task_dir(ws, second)) in lines[0]  # names the file


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["get --to", "push"])
def test_commands_that_read_the_manifest_refuse_in_one_line(
        ws: Workspace, chain: tuple[Step, Step], kind: str, command: str,
        tmp_path: Path) -> None:
    _, second = chain
    damage(task_dir(ws, second), kind)
    remote = tmp_path / "remote"
    remote.mkdir()
    args = ["get", second.__identifier__, "--to", str(tmp_path / "copy")] \
        if command == "get --to" else ["push", second.__identifier__]
    result = console(ws, *args, env={"XPMSTORE_REMOTE": f"file://{remote}"})
    no_traceback(result)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    if command == "push":
        assert result.stdout.startswith(f"failed\t{second.__identifier__}")
        assert len(result.stdout.splitlines()) == 1
        assert not (remote / "objects").exists()
    else:
        assert second.__identifier__[:12] in result.stderr
        assert not (tmp_path / "copy").exists()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["show", "why", "get"])
def test_commands_that_show_it_say_what_they_can(ws: Workspace, chain: tuple[Step, Step],
                                                  kind: str, command: str) -> None:
    _, second = chain
    damage(task_dir(ws, second), kind)
    console(ws, "index", "rebuild")  # so that get must read the disk
    result = console(ws, command, second.__identifier__)
    no_traceback(result)
    if result.returncode != 0:
        assert len(result.stderr.splitlines()) == 1, result.stderr
    if command == "get":  # done, but unreadable: the file named, not "not done (it is done)"
        assert result.returncode == 1 and "fsck" in result.stderr
    if command == "why" and kind == "deep params":
        assert result.returncode == 1 and "params.json" in result.stderr


# --- 6: paths outside the object ---------------------------------------------------------------


@pytest.mark.parametrize("listed", ["../../../outside/secret.txt", "ABSOLUTE",
                                    "via-link/secret.txt"])
def test_a_manifest_listing_a_file_outside_the_object(ws: Workspace, chain: tuple[Step, Step],
                                                      listed: str, tmp_path: Path) -> None:
    first, _ = chain
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    directory = task_dir(ws, first)
    if listed == "ABSOLUTE":
        listed = str(outside / "secret.txt")
    if listed.startswith("via-link/"):  # a folder link on disk, a file listed through it
        (directory / "via-link").symlink_to(outside)
    entry = [listed, len(SECRET), False, blake3(SECRET).hexdigest()]
    edit_done(directory, lambda d: d["files"].append(entry))

    assert list(fsck_damaged(ws)) == [first.__identifier__]

    remote = tmp_path / "remote"
    remote.mkdir()
    pushed = console(ws, "push", first.__identifier__, env={"XPMSTORE_REMOTE": f"file://{remote}"})
    no_traceback(pushed)
    assert pushed.returncode == 1 and pushed.stdout.startswith("failed")
    assert not [p for p in remote.rglob("*") if p.is_file() and p.read_bytes() == SECRET]

    copied = console(ws, "get", first.__identifier__, "--to", str(tmp_path / "copy"))
    no_traceback(copied)
    assert copied.returncode == 1 and len(copied.stderr.splitlines()) == 1
    assert not (tmp_path / "copy").exists()


# --- 8: a tampered dependency list -------------------------------------------------------------


@pytest.mark.parametrize("reseal", [True, False])
@pytest.mark.parametrize("then", ["", "index rebuild"])
def test_a_tampered_dependency_list_is_damage_and_rm_keeps_the_dependency(
        ws: Workspace, chain: tuple[Step, Step], reseal: bool, then: str) -> None:
    first, second = chain
    edit_done(task_dir(ws, second), lambda d: d["extra"]["dependencies"].clear(), reseal)
    if then:
        no_traceback(console(ws, *then.split()))
    damaged = fsck_damaged(ws)
    assert list(damaged) == [second.__identifier__]
    if reseal:
        assert any("dependencies differ from params.json" in p
                   for p in damaged[second.__identifier__])
    removed = console(ws, "rm", first.__identifier__)
    no_traceback(removed)
    assert removed.returncode == 1 and second.__identifier__[:12] in removed.stderr
    assert taskdirs.is_done(task_dir(ws, first))


def test_gc_keeps_what_a_pinned_object_was_made_from_whatever_its_manifest_says(
        ws: Workspace, chain: tuple[Step, Step]) -> None:
    first, second = chain
    pin(ws, second.__identifier__)
    for reseal in (True, False):  # indexed with params.json's edges; too damaged to be indexed
        edit_done(task_dir(ws, second), lambda d: d["extra"].update(dependencies=[]), reseal)
        console(ws, "index", "rebuild")
        assert first.__identifier__ in mark(ws).reachable


# --- 7: manifests written before the checksum -----------------------------------------------


def test_fsck_repair_seals_the_manifests_written_without_a_checksum(
        ws: Workspace, chain: tuple[Step, Step]) -> None:
    first, _second = chain
    for step in chain:
        edit_done(task_dir(ws, step), lambda d: None, reseal=False)  # as an older xpmstore
    before = taskdirs.read_manifest(task_dir(ws, first))
    assert before is not None and not before.sealed
    result = console(ws, "fsck")
    assert result.returncode == 0 and "2 intact manifests written without a checksum" \
        in result.stdout
    repaired = console(ws, "fsck", "--repair", "--json")
    assert sorted(json.loads(repaired.stdout)["sealed"]) == sorted(s.__identifier__
                                                                   for s in chain)
    after = taskdirs.read_manifest(task_dir(ws, first))
    assert after == before and after is not None and after.sealed
    assert json.loads(console(ws, "fsck", "--json").stdout)["unsealed"] == []
