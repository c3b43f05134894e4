"""The run record's git state, cached (xpmstore.scheduler.gitcache): a checkout unchanged since
git last told its state starts no git; any change git's answer depends on is seen (real
repositories, real git: each state recorded is checked against git's own answer); what the
snapshot cannot watch, a racy file, a damaged cache or index: git is asked, as without a cache."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from xpmstore.scheduler import gitcache
from xpmstore.scheduler.runlog import RunRecord, read_run
from xpmstore.scheduler.runs import read_one

from ..githelpers import counting_git, git, needs_git, repository
from ..storehelpers import isolate, make_workspace
from .test_experiment import hang_guard, xp

pytestmark = needs_git


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files just written count as settled (the tests change them by size, by content git
    tracks, or by ``os.utime`` to times of their own: never twice alike within a clock tick)."""
    monkeypatch.setattr(gitcache, "RACY_WINDOW", 0.0)


class Runs:
    """Run records made in the working directory, with the git state cache in ``folder``, and
    the calls of a counting ``git``."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.experiments = tmp_path / "experiments"
        self.folder = tmp_path / "ws" / ".xpmstore" / "gitstate"
        self.calls = counting_git(tmp_path, monkeypatch)

    def record(self) -> tuple[object, list[dict[str, Any]]]:
        """One run: the git state it records (as readers see it), and its lines."""
        record = RunRecord(self.experiments, "exp", gitstates=self.folder)
        record.end("ok")
        run = read_one("exp", record.path)
        assert run is not None
        return run.header["git"], read_run(record.path)

    def statuses(self) -> int:
        """How many ``git status`` the run records started so far."""
        if not self.calls.exists():
            return 0
        return sum("--porcelain=v2" in line for line in self.calls.read_text().splitlines())

    def cache_files(self) -> list[Path]:
        return sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runs:
    return Runs(tmp_path, monkeypatch)


def truth(repo: Path) -> dict[str, object]:
    """The state git tells of ``repo`` (without touching its index)."""
    environ = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                            text=True, check=True, env=environ).stdout.strip()
    changes = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                             capture_output=True, text=True, check=True, env=environ).stdout
    return {"commit": commit, "dirty": bool(changes.strip())}


def settle(path: Path, seconds: int) -> None:
    """Give ``path`` a modification time of its own, far in the past."""
    os.utime(path, ns=(seconds * 10**9, seconds * 10**9))


# --- hits and misses -------------------------------------------------------------------------


def test_an_unchanged_checkout_starts_no_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             no_racy_window: None) -> None:
    repo, commit = repository(tmp_path)
    monkeypatch.chdir(repo)
    calls = counting_git(tmp_path, monkeypatch)
    ws = make_workspace(tmp_path / "ws")
    for name in ("first", "second", "third"):
        with hang_guard(), xp(ws, name):
            pass
    assert len(calls.read_text().splitlines()) == 1, calls.read_text()  # the first run's
    for name in ("first", "second", "third"):
        [path] = (ws.experiments / name).glob("*.jsonl")
        run = read_one(name, path)
        assert run is not None and run.header["git"] == {"commit": commit, "dirty": False}
    [path] = (ws.experiments / "third").glob("*.jsonl")
    assert [x["type"] for x in read_run(path)][:2] == ["header", "git"]  # written at once
    assert len(list(ws.gitstate.glob("*.json"))) == 1


def test_a_run_from_a_subfolder_uses_the_work_trees_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs: Runs,
        no_racy_window: None) -> None:
    repo, commit = repository(tmp_path)
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo)
    assert runs.record()[0] == {"commit": commit, "dirty": False}
    monkeypatch.chdir(repo / "sub")
    assert runs.record()[0] == {"commit": commit, "dirty": False}
    assert runs.statuses() == 1 and len(runs.cache_files()) == 1


def test_an_edit_that_keeps_size_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         runs: Runs, no_racy_window: None) -> None:
    repo, commit = repository(tmp_path)
    monkeypatch.chdir(repo)
    script = repo / "script.py"
    settle(script, 1_000_000)
    assert runs.record()[0] == truth(repo) == {"commit": commit, "dirty": False}
    script.write_text("print(2)\n")  # the same size
    settle(script, 2_000_000)  # a time of its own, far from the racy window
    assert runs.record()[0] == truth(repo) == {"commit": commit, "dirty": True}
    assert runs.statuses() == 2
    assert runs.record()[0] == {"commit": commit, "dirty": True}  # unchanged: cached
    assert runs.statuses() == 2


def test_each_change_of_the_index_or_head_is_seen(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, runs: Runs,
                                                  no_racy_window: None) -> None:
    repo, first = repository(tmp_path)
    monkeypatch.chdir(repo)
    git(repo, "branch", "-M", "main")
    script = repo / "script.py"

    def check(step: str) -> None:
        for _ in range(2):  # asked, then (nothing changed) cached
            assert runs.record()[0] == truth(repo), step
        assert runs.cache_files(), step

    check("committed")
    script.write_text("print('staged')\n")
    git(repo, "add", "script.py")
    script.write_text("print(1)\n")  # the work tree as committed: only the index differs
    settle(script, 1_000_000)
    check("a change staged")
    git(repo, "commit", "-q", "-m", "second")
    check("committed again, the work tree as before")
    git(repo, "checkout", "-q", "--", "script.py")
    check("the work tree as committed")
    git(repo, "checkout", "-q", "-b", "other")
    check("another branch")
    (repo / "other.py").write_text("x = 1\n")
    git(repo, "add", "other.py")
    git(repo, "commit", "-q", "-m", "on other")
    check("a commit on the other branch")
    git(repo, "checkout", "-q", "--detach", first)
    check("detached")
    git(repo, "checkout", "-q", "main")
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    check("packed refs")
    git(repo, "update-ref", "refs/heads/main", first)  # a loose ref again, over the packed one
    check("a loose ref over a packed one")
    git(repo, "pack-refs", "--all")
    git(repo, "reset", "-q", "--hard", "other")
    git(repo, "pack-refs", "--all")  # only packed-refs changed
    check("packed refs rewritten")
    assert runs.record()[0] == {"commit": git(repo, "rev-parse", "other"), "dirty": False}
    # Commits of one tree: the index and the work tree stay as they are, only refs move.
    git(repo, "commit", "-q", "--allow-empty", "-m", "empty")
    empty, before = git(repo, "rev-parse", "HEAD"), git(repo, "rev-parse", "HEAD~1")
    git(repo, "pack-refs", "--all")
    check("an empty commit, packed")
    git(repo, "update-ref", "refs/heads/main", before)
    git(repo, "pack-refs", "--all")  # only packed-refs changed
    check("the packed branch moved")
    git(repo, "checkout", "-q", "--detach", empty)
    check("detached at the empty commit")
    git(repo, "checkout", "-q", "--detach", before)  # only HEAD changed
    check("detached one commit earlier")
    staged = tmp_path / "staged.py"
    staged.write_text("print('only in the index')\n")
    blob = git(repo, "hash-object", "-w", str(staged))
    git(repo, "update-index", "--cacheinfo", f"100644,{blob},script.py")  # only the index
    check("a change staged, the work tree untouched")


@pytest.mark.parametrize("where", ["repository", "user", "environment"])
def test_a_configuration_change_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        runs: Runs, no_racy_window: None, where: str) -> None:
    """The tracked files' stat is not all git's answer depends on: core.fileMode decides
    whether a mode change is one."""
    repo, commit = repository(tmp_path)
    git(repo, "config", "--unset", "core.fileMode")  # (git init sets it for the repository)
    monkeypatch.chdir(repo)
    (repo / "script.py").chmod(0o755)
    assert runs.record()[0] == truth(repo) == {"commit": commit, "dirty": True}
    if where == "repository":
        git(repo, "config", "core.fileMode", "false")
    elif where == "user":
        Path(os.environ["HOME"], ".gitconfig").write_text("[core]\n\tfileMode = false\n")
    else:
        for name, value in (("COUNT", "1"), ("KEY_0", "core.fileMode"), ("VALUE_0", "false")):
            monkeypatch.setenv(f"GIT_CONFIG_{name}", value)
    assert runs.record()[0] == truth(repo) == {"commit": commit, "dirty": False}


def test_an_untracked_attributes_file_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              runs: Runs, no_racy_window: None) -> None:
    """A ``.gitattributes`` git does not track changes how it reads a file it does."""
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "sub" / "a.txt").write_bytes(b"x\r\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "crlf")
    settle(repo / "sub" / "a.txt", 1_000_000)  # stat-dirty: git reads it each time
    monkeypatch.chdir(repo)
    assert runs.record()[0] == truth(repo)
    assert runs.record()[0]["dirty"] is False  # type: ignore[index]
    (repo / "sub" / ".gitattributes").write_text("a.txt text eol=lf\n")
    assert runs.record()[0] == truth(repo)
    assert truth(repo)["dirty"] is True


def test_a_git_worktree_has_its_own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          runs: Runs, no_racy_window: None) -> None:
    repo, commit = repository(tmp_path)
    worktree = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "side", str(worktree))
    monkeypatch.chdir(worktree)
    assert (worktree / ".git").is_file()
    assert runs.record()[0] == runs.record()[0] == {"commit": commit, "dirty": False}
    assert runs.statuses() == 1
    (worktree / "side.py").write_text("side = 1\n")
    git(worktree, "add", "side.py")
    git(worktree, "commit", "-q", "-m", "side")
    assert runs.record()[0] == truth(worktree) != {"commit": commit, "dirty": False}
    monkeypatch.chdir(repo)
    assert runs.record()[0] == truth(repo) == {"commit": commit, "dirty": False}
    (worktree / "side.py").write_text("side = 22\n")
    monkeypatch.chdir(worktree)
    assert runs.record()[0] == truth(worktree)
    assert truth(worktree)["dirty"] is True
    assert len(runs.cache_files()) == 2


def test_a_sha256_repository_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       runs: Runs, no_racy_window: None) -> None:
    repo, _ = repository(tmp_path, "sha256")
    monkeypatch.chdir(repo)
    assert runs.record()[0] == runs.record()[0] == truth(repo)
    assert len(str(truth(repo)["commit"])) == 64 and runs.statuses() == 1


def test_index_version_4_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs: Runs,
                                   no_racy_window: None) -> None:
    repo, commit = repository(tmp_path)
    git(repo, "update-index", "--index-version", "4")
    monkeypatch.chdir(repo)
    assert runs.record()[0] == runs.record()[0] == {"commit": commit, "dirty": False}
    assert runs.statuses() == 1


# --- no cache: git is asked each time ----------------------------------------------------------


def test_a_file_changed_just_now_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               runs: Runs) -> None:
    repo, commit = repository(tmp_path)  # every file written just now: within the window
    monkeypatch.chdir(repo)
    assert runs.record()[0] == runs.record()[0] == {"commit": commit, "dirty": False}
    assert runs.statuses() == 2
    assert runs.cache_files() == []


def asked_each_time(runs: Runs, repo: Path) -> None:
    """Two runs record git's answer, and both asked git."""
    before = runs.statuses()
    for _ in range(2):
        assert runs.record()[0] == truth(repo)
    assert runs.statuses() == before + 2


def test_a_submodule_is_never_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     runs: Runs, no_racy_window: None) -> None:
    repo, commit = repository(tmp_path)
    monkeypatch.chdir(repo)
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{commit},vendored")
    git(repo, "commit", "-q", "-m", "a gitlink")
    asked_each_time(runs, repo)
    git(repo, "rm", "-q", "--cached", "vendored")
    git(repo, "commit", "-q", "-m", "no gitlink")
    (repo / ".gitmodules").write_text("")  # (untracked: still a sign of submodules)
    asked_each_time(runs, repo)
    assert runs.cache_files() == []


@pytest.mark.parametrize("setup", ["split index", "include", "includeIf", "core.worktree",
                                   "GIT_DIR", "too many files", "slow", "network",
                                   "replace refs", "inside .git"])
def test_what_the_snapshot_cannot_watch_is_never_cached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs: Runs, no_racy_window: None,
        setup: str) -> None:
    repo, commit = repository(tmp_path)
    monkeypatch.chdir(repo)
    if setup == "split index":
        git(repo, "update-index", "--split-index")
    elif setup == "include":
        (tmp_path / "more.gitconfig").write_text("[core]\n\tfileMode = false\n")
        git(repo, "config", "include.path", str(tmp_path / "more.gitconfig"))
    elif setup == "includeIf":
        with open(repo / ".git" / "config", "a") as config:
            config.write(f'[includeIf "gitdir:{repo}/"]\n\tpath = {tmp_path}/more.gitconfig\n')
    elif setup == "core.worktree":  # (on one line with its section, as git reads it too)
        with open(repo / ".git" / "config", "a") as config:
            config.write(f"[core] worktree = {repo}\n")
    elif setup == "GIT_DIR":
        monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    elif setup == "too many files":
        monkeypatch.setattr(gitcache, "MAX_TRACKED", 0)
    elif setup == "slow":
        monkeypatch.setattr(gitcache, "BUDGET", -1.0)
    elif setup == "network":  # (the mount table's answer for an NFS mount: none here)
        monkeypatch.setattr(gitcache, "is_network_fs", lambda path: (True, "nfs4"))
    elif setup == "replace refs":
        git(repo, "commit", "-q", "--allow-empty", "-m", "second")
        git(repo, "replace", commit, "HEAD")
    else:
        assert runs.record()[0] == {"commit": commit, "dirty": False}  # cached
        monkeypatch.chdir(repo / ".git")
        assert runs.record()[0] == {}  # (git tells no work tree's state from there)
        assert runs.statuses() == 2
        return
    asked_each_time(runs, repo)
    assert runs.cache_files() == []


# --- damaged files cost only the cache -------------------------------------------------------


DAMAGED = {
    "garbage": b"\x00\xff garbage",
    "truncated": b'{"key": "',
    "another key": b'{"key": "0", "git": {"commit": "' + b"a" * 40 + b'", "dirty": false}}',
    "a path as commit": b'{"key": "KEY", "git": {"commit": "../../x", "dirty": false}}',
    "a string flag": b'{"key": "KEY", "git": {"commit": "' + b"a" * 40 + b'", "dirty": "no"}}',
    "no answer": b'{"key": "KEY"}',
    "a list as answer": b'{"key": "KEY", "git": []}',
    "deep": b"[" * 100_000,
    "huge": b'{"key": "KEY", "pad": "' + b"x" * 100_000 + b'"}',
}


@pytest.mark.parametrize("kind", sorted(DAMAGED))
def test_a_damaged_cache_file_costs_only_the_cache(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, runs: Runs,
                                                   no_racy_window: None, kind: str) -> None:
    repo, commit = repository(tmp_path)
    monkeypatch.chdir(repo)
    assert runs.record()[0] == {"commit": commit, "dirty": False}
    [cache] = runs.cache_files()
    key = json.loads(cache.read_text())["key"]
    cache.write_bytes(DAMAGED[kind].replace(b"KEY", key.encode()))
    assert runs.record()[0] == {"commit": commit, "dirty": False}
    assert runs.statuses() == 2
    assert json.loads(cache.read_text()) == {"key": key, "git": {"commit": commit,
                                                                "dirty": False}}  # anew
    assert runs.record()[0] == {"commit": commit, "dirty": False}
    assert runs.statuses() == 2


def test_a_symlinked_cache_file_or_folder_is_not_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs: Runs,
        no_racy_window: None) -> None:
    repo, commit = repository(tmp_path)
    monkeypatch.chdir(repo)
    runs.record()
    [cache] = runs.cache_files()
    outside = tmp_path / "outside.json"
    outside.write_text(cache.read_text().replace(commit, "b" * 40))
    cache.unlink()
    cache.symlink_to(outside)
    assert runs.record()[0] == {"commit": commit, "dirty": False}
    assert not cache.is_symlink() and commit not in outside.read_text()
    assert runs.statuses() == 2


def test_a_damaged_index_costs_only_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              runs: Runs, no_racy_window: None) -> None:
    repo, commit = repository(tmp_path)
    monkeypatch.chdir(repo)
    assert runs.record()[0] == {"commit": commit, "dirty": False}
    index = repo / ".git" / "index"
    data = index.read_bytes()
    index.write_bytes(data[:len(data) // 2])  # git refuses it too: no state, as without cache
    assert runs.record()[0] == {}
    assert runs.record()[0] == {}
    assert runs.statuses() == 3
    index.unlink()
    index.symlink_to(tmp_path / "elsewhere")  # (git reads it as an empty index)
    assert runs.record()[0] == truth(repo) == {"commit": commit, "dirty": True}
    assert runs.statuses() == 4


def test_a_hostile_index_never_reads_outside_the_work_tree(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs: Runs,
        no_racy_window: None) -> None:
    """An index naming ``../`` paths is refused before any of them is looked at."""
    from ..gitindexfiles import Entry, index_bytes

    repo, _ = repository(tmp_path)
    monkeypatch.chdir(repo)
    (repo / ".git" / "index").write_bytes(index_bytes([Entry(b"../outside")]))
    assert runs.record()[0] == {}  # (git refuses it)
    assert runs.statuses() == 1 and runs.cache_files() == []
