"""The transfer progress of ``push``/``pull``: a live line on a terminal (a real pty), nothing
but the plain per-object lines otherwise."""

from __future__ import annotations

import io
import os
import pty
import subprocess
from pathlib import Path

from xpmstore.remote.transferprogress import TransferProgress

from ..clihelpers import REPO_ROOT, XPMSTORE, invoke, run_experiment
from .conftest import RemoteFactory, environ_without_proxy
from .test_remote import tasks


def test_the_live_line_counts_objects_and_bytes() -> None:
    stream = io.StringIO()
    progress = TransferProgress("pull", stream=stream, live=True)
    progress.expect(objects=2, nbytes=3_000_000)
    progress.advance(1_500_000)
    progress.finished()
    assert progress.line().startswith("pull: 1/2 objects, 1.5 MB/3.0 MB,")
    progress.close()
    assert "\r\033[K" in stream.getvalue() and stream.getvalue().endswith("\r\033[K")
    quiet = io.StringIO()
    silent = TransferProgress("push", stream=quiet, live=False)
    silent.expect(objects=1)
    silent.finished()
    silent.close()
    assert quiet.getvalue() == ""


def _on_a_terminal(workspace: Path, *args: str) -> tuple[int, str, str]:
    """Run ``xpmstore ARGS`` with stderr on a pty; (exit code, stdout, the terminal's text)."""
    leader, follower = pty.openpty()
    environ = {k: v for k, v in environ_without_proxy().items()
               if not k.startswith(("PYTHON", "XPMSTORE"))}
    environ["XPMSTORE_WORKSPACE"] = str(workspace)
    with subprocess.Popen([XPMSTORE, *args], stdout=subprocess.PIPE, stderr=follower,
                          stdin=subprocess.DEVNULL, env=environ, cwd=REPO_ROOT) as process:
        os.close(follower)
        out = process.stdout.read() if process.stdout else b""
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = process.wait(timeout=120)
    os.close(leader)
    return code, out.decode(), b"".join(chunks).decode(errors="replace")


def test_push_and_pull_show_a_live_line_on_a_terminal_only(
        workspaces: RemoteFactory, tmp_path: Path) -> None:
    counters = tmp_path / "counters"
    counters.mkdir()
    first, second = workspaces("first", push="manual"), workspaces("second", push="manual")
    learn, evaluate = tasks(counters)
    run_experiment(first, "exp", [evaluate])
    code, out, terminal = _on_a_terminal(first.root, "push", "--all")
    assert code == 0, terminal
    assert sorted(line.split("\t")[0] for line in out.splitlines()) == ["pushed"] * 2
    assert "push: 2/2 objects" in terminal
    code, out, terminal = _on_a_terminal(second.root, "pull", learn.__identifier__)
    assert code == 0, terminal
    assert out.strip().endswith(learn.__identifier__)
    assert "pull: 1/1 objects" in terminal
    plain = invoke(second, "pull", evaluate.__identifier__)  # not a terminal: the path alone
    assert plain.exit_code == 0 and plain.stderr == ""
    assert plain.stdout.strip().endswith(evaluate.__identifier__)
