"""Ctrl-C during the push or the pull of a big object, the command a real process: the transfer
in flight stops within a chunk instead of running to its end (a user waited 17 s for a 1.5 GB
upload to end, and a 600 MB push said ``pushed`` after the Ctrl-C), nothing of it is published
or kept, the command says what was not done (exit code 1), and the next push (pull) completes
and is verified.

Against a directory remote (the push's temporary file in the remote is the sign that the upload
is under way; the process is frozen there while the test checks it) and the real SeaweedFS
server, reached through a relay that counts the bytes and holds the transfer in its middle.  An
experiment interrupted while it pushes a job's result in the background stops the push too.
Whether the transfer went to its end is judged by the bytes that went, never by a duration.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xpmstore.core.digests import hash_file
from xpmstore.core.identifier import cache_identifier
from xpmstore.store import taskdirs
from xpmstore.store.workspace import Workspace
from xpmstore.system.atomic import TEMP_MARK

from ..clihelpers import XPMSTORE, console
from ..helpers import PYTHON, REPO_ROOT
from ..storehelpers import active, make_workspace, wait_for
from .cachetasks import BigBlob
from .conftest import new_bucket
from .relay import Relay

SIZE = 192 << 20
"""The big object's one file: 192 MiB of random bytes."""
HELD_AFTER = 16 << 20
"""The relay holds the transfer once this much went through: it is under way."""
RATE = 8 << 20
"""Bytes a second the relay lets through after the Ctrl-C: the rest would take 20 s."""


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if "proxy" in n.lower()]:
        monkeypatch.delenv(name)  # the servers listen on loopback


@pytest.fixture
def relay(s3_server: Any) -> Iterator[Relay]:
    """A relay to the suite's SeaweedFS server."""
    forwarding = Relay(int(s3_server.endpoint.rsplit(":", 1)[1]))
    yield forwarding
    forwarding.close()


def workspace_with(root: Path, remote: str) -> Workspace:
    """A workspace at ``root`` whose xpmstore.toml holds the ``[remote]`` lines ``remote``."""
    root.mkdir()
    (root / "xpmstore.toml").write_text(f"[remote]\n{remote}")
    return make_workspace(root)


def big_entry(workspace: Workspace) -> tuple[str, str]:
    """A BigBlob entry of SIZE bytes made in ``workspace``; (its identifier, its file's
    blake3)."""
    blob = BigBlob(size=SIZE)
    with active(workspace):
        local = blob.file()
    return cache_identifier(blob.__identifier__, "blob.bin"), hash_file(local).hex()


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C's default action (a background shell ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(workspace: Workspace, *args: str) -> subprocess.Popen[str]:
    """``xpmstore ARGS`` as a real process of ``workspace``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "XPMSTORE"))}
    environ["XPMSTORE_WORKSPACE"] = str(workspace.root)
    return subprocess.Popen([XPMSTORE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=environ, cwd=REPO_ROOT,
                            preexec_fn=_default_sigint)


def ended(process: subprocess.Popen[str]) -> tuple[int, str, str, int]:
    """Wait for ``process`` to end; (exit code, stdout, stderr, the bytes it wrote — its
    /proc/PID/io ``wchar``, read while it is a zombie, before it is reaped)."""
    wait_for(lambda: os.waitid(os.P_PID, process.pid,
                               os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None,
             f"xpmstore (pid {process.pid}) to end")
    io = dict(line.split(": ") for line in Path(f"/proc/{process.pid}/io").read_text()
              .splitlines())
    out, err = process.communicate()
    return process.returncode, out, err, int(io["wchar"])


def stop(process: subprocess.Popen[str]) -> None:
    """Kill ``process`` if a failed test left it running."""
    if process.poll() is None:
        process.kill()
        process.communicate()


def only_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def pulled_digest(workspace: Workspace, identifier: str) -> str:
    directory = workspace.cache / "tests.remote.BigBlob" / identifier
    assert taskdirs.is_done(directory)
    return hash_file(directory / "blob.bin").hex()


def upload_started(folder: Path, digest: str) -> bool:
    """Whether the temporary file of blob ``digest`` is in the remote's ``folder``."""
    try:
        return any(n.startswith(f".{digest}{TEMP_MARK}") for n in os.listdir(folder))
    except FileNotFoundError:
        return False


def s3_workspaces(s3_server: Any, relay: Relay,
                  tmp_path: Path) -> tuple[str, Workspace, Workspace]:
    """A new bucket, and two workspaces whose remote is it, reached through ``relay``."""
    bucket = new_bucket(s3_server)
    section = f'url = "s3://{bucket}/team"\nendpoint_url = "{relay.endpoint}"\n'
    return bucket, workspace_with(tmp_path / "first", section), \
        workspace_with(tmp_path / "second", section)


def remote_keys(s3_server: Any, bucket: str) -> list[str]:
    """The keys stored in ``bucket``."""
    client: Any = s3_server.client()
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def start_held_pull(relay: Relay, workspace: Workspace,
                    identifier: str) -> subprocess.Popen[str]:
    """``xpmstore pull identifier`` in ``workspace``, once its download is held mid-way by the
    relay."""
    before = relay.count("down")
    relay.hold("down", after=before + HELD_AFTER)
    process = start(workspace, "pull", identifier)
    try:
        wait_for(lambda: relay.count("down") >= before + HELD_AFTER,
                 "the download to reach the relay's hold")
    except BaseException:
        stop(process)
        raise
    return process


def pulls_whole(workspace: Workspace, identifier: str, digest: str) -> None:
    """A pull of ``identifier`` into ``workspace`` succeeds and gives the object whole."""
    pulled = console(workspace, "pull", identifier)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled_digest(workspace, identifier) == digest


def push_was_interrupted(code: int, out: str, err: str, identifier: str) -> None:
    """What a push stopped by Ctrl-C says: the object interrupted, one line, exit 1."""
    assert code == 1, err
    assert out.splitlines() == [f"interrupted\t{identifier}"]
    assert only_line(err).startswith("xpmstore: interrupted: 1 of 1 object(s) not pushed")


def push_and_pull_again(first: Workspace, second: Workspace, identifier: str,
                        digest: str) -> None:
    """After the interruption: a push from ``first`` completes and ``second`` pulls the
    object whole."""
    again = console(first, "push", identifier)
    assert again.returncode == 0 and again.stdout == f"pushed\t{identifier}\n", again.stderr
    pulls_whole(second, identifier, digest)


def test_ctrl_c_stops_a_push_to_a_directory_remote_within_a_chunk(tmp_path: Path) -> None:
    share = tmp_path / "remote"
    share.mkdir()
    first = workspace_with(tmp_path / "first", f'url = "file://{share}"\n')
    second = workspace_with(tmp_path / "second", f'url = "file://{share}"\n')
    identifier, digest = big_entry(first)
    folder = share / "cas" / digest[:2]

    process = start(first, "push", identifier)
    try:
        wait_for(lambda: upload_started(folder, digest), "the blob's upload to start")
        os.kill(process.pid, signal.SIGSTOP)  # frozen in the middle of its upload
        assert upload_started(folder, digest) and not (folder / digest).exists()
        os.kill(process.pid, signal.SIGINT)
        os.kill(process.pid, signal.SIGCONT)
        code, out, err, written = ended(process)
    finally:
        stop(process)

    push_was_interrupted(code, out, err, identifier)
    assert written < SIZE  # the upload did not go to its end: it stopped within a chunk
    assert os.listdir(folder) == []  # nothing half-present: neither the blob nor its temp file
    assert not (share / "objects").exists()

    push_and_pull_again(first, second, identifier, digest)


def test_ctrl_c_stops_a_push_to_s3_within_a_chunk(s3_server: Any, relay: Relay,
                                                   tmp_path: Path) -> None:
    bucket, first, second = s3_workspaces(s3_server, relay, tmp_path)
    identifier, digest = big_entry(first)

    relay.hold("up", after=HELD_AFTER)
    process = start(first, "push", identifier)
    try:
        wait_for(lambda: relay.count("up") >= HELD_AFTER, "the upload to reach the relay's hold")
        os.kill(process.pid, signal.SIGINT)
        relay.release("up", rate=RATE)  # the rest of the upload would take 20 s
        code, out, err, _ = ended(process)
    finally:
        stop(process)
    sent = relay.count("up")

    push_was_interrupted(code, out, err, identifier)
    assert sent < SIZE  # the PUT's body never went whole: the server stored nothing of it
    keys = remote_keys(s3_server, bucket)
    assert not [key for key in keys if key.startswith(("team/cas/", "team/objects/"))], keys

    relay.release("up")
    push_and_pull_again(first, second, identifier, digest)


def test_ctrl_c_stops_a_pull_from_s3_within_a_chunk(s3_server: Any, relay: Relay,
                                                     tmp_path: Path) -> None:
    _, first, second = s3_workspaces(s3_server, relay, tmp_path)
    identifier, digest = big_entry(first)
    assert console(first, "push", identifier).returncode == 0

    before = relay.count("down")
    process = start_held_pull(relay, second, identifier)
    try:
        os.kill(process.pid, signal.SIGINT)
        relay.release("down", rate=RATE)  # the rest of the download would take 20 s
        code, out, err, _ = ended(process)
    finally:
        stop(process)
    received = relay.count("down") - before

    assert code == 1, err
    assert out == ""
    assert only_line(err).startswith("xpmstore: interrupted: 1 of 1 object(s) not pulled")
    assert received < SIZE
    assert os.listdir(second.cache / "tests.remote.BigBlob") == []  # not even the temp folder

    relay.release("down")
    pulls_whole(second, identifier, digest)


def test_an_interrupted_experiment_stops_its_pushes_within_a_chunk(
        s3_server: Any, relay: Relay, tmp_path: Path) -> None:
    bucket = new_bucket(s3_server)
    runner = workspace_with(tmp_path / "runner", f'url = "s3://{bucket}/team"\n'
                            f'endpoint_url = "{relay.endpoint}"\npush = "auto"\n')
    relay.hold("up", after=HELD_AFTER)
    code = "from tests.remote.cachetasks import interrupted_run; interrupted_run()"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "XPMSTORE"))}
    process = subprocess.Popen(
        [PYTHON, "-c", code, str(runner.root), str(SIZE), str(tmp_path / "never")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=environ, cwd=REPO_ROOT, preexec_fn=_default_sigint)
    try:  # the big job is done and its push under way; the other job still runs
        wait_for(lambda: relay.count("up") >= HELD_AFTER, "the job's push to be under way")
        os.kill(process.pid, signal.SIGINT)
        relay.release("up", rate=RATE)  # the rest of the push would take 20 s
        code, _, err, _ = ended(process)
    finally:
        stop(process)

    assert code != 0, err
    assert "1 push(es) not done (the run was interrupted)" in err, err
    assert relay.count("up") < SIZE
    keys = remote_keys(s3_server, bucket)
    assert not [key for key in keys if key.startswith("team/objects/")], keys


def test_a_connection_cut_during_a_pull_is_a_failed_transfer_not_a_damaged_blob(
        s3_server: Any, relay: Relay, tmp_path: Path) -> None:
    _, first, second = s3_workspaces(s3_server, relay, tmp_path)
    identifier, digest = big_entry(first)
    assert console(first, "push", identifier).returncode == 0

    process = start_held_pull(relay, second, identifier)
    try:
        relay.cut()  # the network drops the download in its middle
        relay.release("down")
        code, out, err, _ = ended(process)
    finally:
        stop(process)

    assert code == 1 and out == "", err
    assert "Traceback" not in err and len(err.splitlines()) == 2, err  # the failure, the count
    failure, count = err.splitlines()
    assert f"GET cas/{digest[:2]}/{digest}" in failure, failure  # a transfer that failed...
    assert "corrupt" not in failure and "push --verify" not in failure, failure  # ...not damage
    assert count == "xpmstore: 1 of 1 object(s) not pulled"
    assert os.listdir(second.cache / "tests.remote.BigBlob") == []
    pulls_whole(second, identifier, digest)
