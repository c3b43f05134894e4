"""Real git repositories for the tests of run records and their git cache, and a ``git``
first on PATH that runs a shell script (counting its calls, or hanging)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo: Path, *args: str) -> str:
    """The output of ``git ARGS`` run in ``repo`` (stripped; raises when git fails)."""
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org",
                           *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def repository(tmp_path: Path, object_format: str = "sha1") -> tuple[Path, str]:
    """A git repository with one commit (``script.py``) under ``tmp_path``, and that commit;
    ``object_format`` "sha256" makes one whose object names are SHA-256 digests."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", f"--object-format={object_format}")
    (repo / "script.py").write_text("print(1)\n")
    git(repo, "add", "script.py")
    git(repo, "commit", "-q", "-m", "first")
    return repo, git(repo, "rev-parse", "HEAD")


def fake_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    """A ``git`` first on PATH running the shell ``body`` (``$REAL``: the real git;
    ``$PIDFILE``: a file to write its pid to); returns that pid file."""
    real = shutil.which("git")
    assert real is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pidfile = tmp_path / "git-pid"
    fake = bin_dir / "git"
    fake.write_text(f"#!/bin/sh\nREAL={real}\nPIDFILE={pidfile}\n{body}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return pidfile


def counting_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``git`` first on PATH that appends a line to the returned file per call, then runs
    the real git."""
    calls = tmp_path / "git-calls"
    fake_git(tmp_path, monkeypatch, f'echo "$*" >> {calls}\nexec "$REAL" "$@"')
    return calls
