"""Remote objects are input, and a remote may be missing or read-only (issue 16, items 6, 7, 8,
9, 9c, 9d) — against a directory remote and the real SeaweedFS server the suite starts.

Tampering goes through the remote's own storage (a key rewritten); the CLI runs as a real
process where the test is about what a user sees (no traceback, one line, the exit code).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from xpmstore.errors import CorruptObjectError
from xpmstore.remote import Remote, open_remote, push_one
from xpmstore.store import taskdirs
from xpmstore.store.workspace import Workspace

from ..clihelpers import console, invoke, run_experiment, task_dir
from ..gctasks import Step
from ..storehelpers import make_workspace
from .conftest import RemoteFactory


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if "proxy" in n.lower()]:
        monkeypatch.delenv(name)  # the server listens on loopback


def remote_of(workspace: Workspace) -> Remote:
    remote = open_remote(workspace)
    assert remote is not None
    return remote


def done_steps(workspace: Workspace, count: int = 3) -> list[Step]:
    steps = [Step(i=i, variant=17) for i in range(count)]
    for step in steps:
        taskdirs.run_here(workspace, step)
    return steps


def rewrite(remote: Remote, identifier: str, change: Callable[[dict[str, Any]], None],
            reseal: bool = False) -> None:
    """Rewrite the remote object's done manifest through the remote's own storage."""
    key = remote.object_key(identifier)
    document = json.loads(remote.backend.get_bytes(key) or b"")
    done = json.loads(document["done"])
    change(done)
    text = json.dumps(done, separators=(",", ":"), sort_keys=True)
    if reseal:  # an edit on purpose: the checksum of the new content (docs/store.md)
        body = {k: v for k, v in done.items() if k != "checksum"}
        done["checksum"] = blake3(json.dumps(body, separators=(",", ":"), sort_keys=True)
                                  .encode()).hexdigest()
        text = json.dumps(done, separators=(",", ":"), sort_keys=True)
    document["done"] = text
    remote.backend.delete(key)
    remote.backend.put_bytes(key, json.dumps(document).encode())


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr


# --- 7: a flipped byte in a remote manifest ---------------------------------------------------


def test_a_renamed_file_in_a_remote_manifest_is_refused(workspaces: RemoteFactory) -> None:
    first, second = workspaces("first", push="manual"), workspaces("second", push="manual")
    step = done_steps(first, 1)[0]
    remote = remote_of(first)
    assert push_one(remote, task_dir(first, step))
    key = remote.object_key(step.__identifier__)
    data = remote.backend.get_bytes(key) or b""
    assert data.count(b"out.txt") == 1  # the blob stays valid: only the name changes
    remote.backend.delete(key)
    remote.backend.put_bytes(key, data.replace(b"out.txt", b"nut.txt"))

    result = console(second, "pull", step.__identifier__)
    no_traceback(result)
    assert result.returncode == 1 and "checksum" in result.stderr, result.stderr
    assert not taskdirs.is_done(task_dir(second, step))
    assert not task_dir(second, step).exists()


def test_a_manifest_pushed_before_checksums_is_pulled_and_sealed_here(
        workspaces: RemoteFactory) -> None:
    first, second = workspaces("first", push="manual"), workspaces("second", push="manual")
    step = done_steps(first, 1)[0]
    remote = remote_of(first)
    assert push_one(remote, task_dir(first, step))
    rewrite(remote, step.__identifier__, lambda done: done.pop("checksum"))  # as it used to be

    pulled = invoke(second, "pull", step.__identifier__)
    assert pulled.exit_code == 0, pulled.output
    local = taskdirs.read_manifest(task_dir(second, step))
    assert local is not None and local.sealed
    assert local == taskdirs.read_manifest(task_dir(first, step))


# --- 8: a tampered dependency list --------------------------------------------------------------


def test_a_remote_manifest_whose_dependencies_disagree_with_params_is_refused(
        workspaces: RemoteFactory) -> None:
    first, second = workspaces("first", push="manual"), workspaces("second", push="manual")
    before = Step(i=1, variant=18)
    after = Step(i=2, variant=18, previous=before)
    taskdirs.run_here(first, before)
    taskdirs.run_here(first, after)
    remote = remote_of(first)
    for step in (before, after):
        assert push_one(remote, task_dir(first, step))
    rewrite(remote, after.__identifier__,
            lambda done: done["extra"].update(dependencies=[]), reseal=True)

    result = invoke(second, "pull", after.__identifier__)
    assert result.exit_code == 1
    assert "dependencies differ from params.json" in result.output
    assert not taskdirs.is_done(task_dir(second, after))


# --- 6: what is pushed stays inside the object ------------------------------------------------


def test_push_refuses_a_manifest_that_reaches_outside(workspaces: RemoteFactory,
                                                      tmp_path: Path) -> None:
    first = workspaces("first", push="manual")
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(b"not for the team\n")
    steps = done_steps(first, 2)
    listing, linking = (task_dir(first, s) for s in steps)
    done = json.loads((listing / ".xpm" / "done").read_bytes())
    done["files"].append([str(secret), secret.stat().st_size, False,
                          blake3(secret.read_bytes()).hexdigest()])
    body = {k: v for k, v in done.items() if k != "checksum"}
    done["checksum"] = blake3(json.dumps(body, separators=(",", ":"), sort_keys=True)
                              .encode()).hexdigest()
    (listing / ".xpm" / "done").write_text(json.dumps(done))
    (linking / "data").symlink_to(secret.parent)  # a task may link outside; not shared
    taskdirs.finish(linking, steps[1].__identifier__, "task", Step.__xpmid__)

    remote = remote_of(first)
    with pytest.raises(CorruptObjectError, match="refused path"):
        push_one(remote, listing)
    with pytest.raises(CorruptObjectError, match="leaves the object"):
        push_one(remote, linking)
    assert remote.identifiers() == set()
    assert not remote.has_blob(blake3(secret.read_bytes()).hexdigest())


# --- 9: pull A BAD C ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["absent", "corrupt"])
def test_pull_goes_on_after_a_refusal_and_fails_at_the_end(workspaces: RemoteFactory,
                                                           bad: str) -> None:
    first, second = workspaces("first", push="manual"), workspaces("second", push="manual")
    steps = done_steps(first)
    remote = remote_of(first)
    for step in steps:
        assert push_one(remote, task_dir(first, step))
    ids = [s.__identifier__ for s in steps]
    if bad == "absent":
        middle = "ef" * 32
    else:
        middle = ids[1]
        remote.backend.delete(remote.object_key(middle))
        remote.backend.put_bytes(remote.object_key(middle), b'{"format": "not json')

    result = console(second, "pull", ids[0], middle, ids[2])
    no_traceback(result)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [str(task_dir(second, steps[0])),
                                          str(task_dir(second, steps[2]))]
    refusal, summary = result.stderr.splitlines()
    assert middle in refusal and summary == "xpmstore: 1 of 3 object(s) not pulled"
    assert not taskdirs.is_done(task_dir(second, steps[1]))


def test_pull_refuses_a_malformed_identifier_before_pulling_anything(
        workspaces: RemoteFactory) -> None:
    first, second = workspaces("first", push="manual"), workspaces("second", push="manual")
    step = done_steps(first, 1)[0]
    assert push_one(remote_of(first), task_dir(first, step))
    result = console(second, "pull", step.__identifier__, "../x")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert not task_dir(second, step).exists()


# --- 9c: a file:// remote whose directory is missing --------------------------------------------


def missing_remote_workspace(tmp_path: Path, push: str = "auto") -> tuple[Workspace, Path]:
    root = tmp_path / "ws"
    root.mkdir()
    share = tmp_path / "nfs" / "team"  # not mounted: its parent is not there either
    (root / "xpmstore.toml").write_text(f'[remote]\nurl = "file://{share}"\npush = "{push}"\n')
    return make_workspace(root), share


def test_a_push_never_creates_a_missing_remote_directory(tmp_path: Path) -> None:
    workspace, share = missing_remote_workspace(tmp_path, push="manual")
    step = done_steps(workspace, 1)[0]
    result = console(workspace, "push", step.__identifier__)
    no_traceback(result)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "does not exist" in result.stderr and "remote init" in result.stderr
    assert not share.exists() and not share.parent.exists()

    made = console(workspace, "remote", "init")
    assert made.returncode == 0 and "created" in made.stdout, made.stderr
    again = console(workspace, "push", step.__identifier__)
    assert again.returncode == 0 and again.stdout.startswith("pushed"), again.stderr
    assert (share / "objects" / step.__identifier__[:2] / step.__identifier__).is_file()


def test_an_experiment_finds_a_missing_remote_directory_unreachable_once(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    workspace, share = missing_remote_workspace(tmp_path)
    run_experiment(workspace, "exp", [Step(i=i, variant=19) for i in range(6)])
    warnings = [line for line in capfd.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "unreachable" in warnings[0], warnings
    assert not share.parent.exists()


def test_remote_init_creates_a_bucket(s3_server: Any, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    bucket = f"xpm-init-{os.getpid()}"
    (root / "xpmstore.toml").write_text(f'[remote]\nurl = "s3://{bucket}/team"\n'
                                        f'endpoint_url = "{s3_server.endpoint}"\n')
    workspace = make_workspace(root)
    client: Any = s3_server.client()
    assert bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}
    made = console(workspace, "remote", "init")
    assert made.returncode == 0 and "created the bucket" in made.stdout, made.stderr
    assert bucket in {b["Name"] for b in client.list_buckets()["Buckets"]}
    assert console(workspace, "remote", "init").stdout.strip().endswith("exists)")
    step = done_steps(workspace, 1)[0]
    assert console(workspace, "push", step.__identifier__).returncode == 0


def missing_bucket_workspace(s3_server: Any, tmp_path: Path,
                             push: str = "auto") -> tuple[Workspace, str]:
    """A workspace whose remote names a bucket nobody created (a typo in the settings)."""
    root = tmp_path / "ws"
    root.mkdir()
    bucket = f"xpm-typo-{os.getpid()}-{os.urandom(3).hex()}"
    (root / "xpmstore.toml").write_text(f'[remote]\nurl = "s3://{bucket}/team"\n'
                                        f'endpoint_url = "{s3_server.endpoint}"\n'
                                        f'push = "{push}"\n')
    return make_workspace(root), bucket


def buckets(s3_server: Any) -> set[str]:
    client: Any = s3_server.client()
    return {b["Name"] for b in client.list_buckets()["Buckets"]}


def test_a_push_never_creates_a_missing_bucket(s3_server: Any, tmp_path: Path) -> None:
    # SeaweedFS creates a bucket on the first PUT into it: a typo in the bucket's name used to
    # push every result into a new bucket nobody else reads, and say "pushed"
    workspace, bucket = missing_bucket_workspace(s3_server, tmp_path, push="manual")
    step = done_steps(workspace, 1)[0]
    result = console(workspace, "push", step.__identifier__)
    no_traceback(result)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert f"bucket {bucket} does not exist" in result.stderr
    assert "remote init" in result.stderr
    assert bucket not in buckets(s3_server)
    pulled = console(workspace, "pull", step.__identifier__)
    assert pulled.returncode == 1 and "does not exist" in pulled.stderr, pulled.stderr


def test_an_experiment_finds_a_missing_bucket_unreachable_once(
        s3_server: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    workspace, bucket = missing_bucket_workspace(s3_server, tmp_path)
    steps = [Step(i=i, variant=22) for i in range(6)]
    run_experiment(workspace, "exp", steps)
    warnings = [line for line in capfd.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "does not exist" in warnings[0], warnings
    assert all(taskdirs.is_done(task_dir(workspace, s)) for s in steps)
    assert bucket not in buckets(s3_server)


# --- 9d: an unwritable remote -----------------------------------------------------------------


def unwritable(tmp_path: Path, how: str) -> str:
    """The URL of a remote that refuses writes."""
    if how == "url is a file":
        target = tmp_path / "a-file"
        target.write_text("not a directory")
        return f"file://{target}"
    target = tmp_path / "remote"  # a remote whose folders cannot be made (cas is a file)
    target.mkdir()
    (target / "cas").write_text("in the way")
    (target / "objects").write_text("in the way")
    return f"file://{target}"


@pytest.mark.parametrize("how", ["url is a file", "folders cannot be made"])
def test_an_unwritable_remote_is_judged_down_once(tmp_path: Path, how: str,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "xpmstore.toml").write_text(
        f'[remote]\nurl = "{unwritable(tmp_path, how)}"\npush = "auto"\n')
    workspace = make_workspace(root)
    steps = [Step(i=i, variant=20) for i in range(8)]
    run_experiment(workspace, "exp", steps)
    warnings = [line for line in capfd.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1, warnings
    assert all(taskdirs.is_done(task_dir(workspace, s)) for s in steps)


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount needs root")
def test_a_read_only_mount_is_judged_down_once(tmp_path: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    source, target = tmp_path / "source", tmp_path / "ro"
    source.mkdir()
    target.mkdir()
    subprocess.run(["mount", "--bind", "-o", "ro", str(source), str(target)], check=True)
    try:
        root = tmp_path / "ws"
        root.mkdir()
        (root / "xpmstore.toml").write_text(f'[remote]\nurl = "file://{target}"\n'
                                            'push = "auto"\n')
        workspace = make_workspace(root)
        run_experiment(workspace, "exp", [Step(i=i, variant=21) for i in range(8)])
    finally:
        subprocess.run(["umount", str(target)], check=True)
    warnings = [line for line in capfd.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "not writable" in warnings[0], warnings
