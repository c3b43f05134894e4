"""kill -9 of a push at random moments, against a directory remote and a real SeaweedFS server:
after each kill, every manifest the remote holds lists only blobs it holds (blobs go first), and
a last, complete push lets another workspace pull every object, verified."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from xpmstore.remote import check_object, open_remote, pull, push_one
from xpmstore.store import taskdirs
from xpmstore.store.workspace import Workspace

from ..storehelpers import Tiny, make_workspace

ITERATIONS = 15  # per remote kind: 30 kills in all
NEW_PER_ITERATION = 4
LONGEST_DELAY = 0.15  # seconds before the kill, drawn from a seeded RNG (the crash moment)


def _push_all(workspace: Workspace) -> None:
    remote = open_remote(workspace)  # the child's own connections
    assert remote is not None
    for directory in sorted(taskdirs.list_object_dirs(workspace)):
        push_one(remote, directory)


def _consistent(workspace: Workspace) -> int:
    """Check that no remote manifest lists a missing blob; returns how many manifests."""
    remote = open_remote(workspace)
    assert remote is not None
    identifiers = remote.identifiers()
    for identifier in identifiers:
        checked = check_object(identifier, remote.get_object(identifier) or b"")
        for entry in checked.manifest.files:
            assert remote.has_blob(entry.blake3), f"{identifier} lists a missing blob"
    return len(identifiers)


@pytest.mark.slow
def test_a_killed_push_never_leaves_a_manifest_without_its_blobs(
        tmp_path: Path, remote_section: str) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "xpmstore.toml").write_text(f"[remote]\n{remote_section}")
    workspace = make_workspace(root)
    rng = random.Random(20261202)
    number = 0
    for _ in range(ITERATIONS):
        for _ in range(NEW_PER_ITERATION):
            number += 1
            taskdirs.run_here(workspace, Tiny(i=number))
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, killed or done
            try:
                _push_all(workspace)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0, LONGEST_DELAY))  # the crash moment, not a synchronisation
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        _consistent(workspace)
    _push_all(workspace)
    assert _consistent(workspace) == number
    other = make_workspace(tmp_path / "other")
    (other.root / "xpmstore.toml").write_text((root / "xpmstore.toml").read_text())
    remote = open_remote(Workspace.at(other.root))
    assert remote is not None
    for directory in taskdirs.list_object_dirs(workspace):
        pulled = pull(other, directory.name, remote)
        assert taskdirs.is_done(pulled)
        assert (pulled / "out.txt").read_bytes() == (directory / "out.txt").read_bytes()
        assert os.readlink(pulled / "latest") == os.readlink(directory / "latest")
