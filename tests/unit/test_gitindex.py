"""git's index file read back (xpmstore.system.gitindex): the paths of versions 2, 3 and 4 as git
lists them, gitlinks told apart, and anything it does not understand entirely refused with
GitIndexError (a split or sparse index, damage, hostile paths)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from xpmstore.errors import GitIndexError
from xpmstore.system.gitindex import parse_header, parse_index

from ..githelpers import git, needs_git, repository
from ..gitindexfiles import Entry, index_bytes, varint


def listed(repo: Path) -> list[bytes]:
    """Every entry's path as git lists them (one per stage)."""
    out = subprocess.run(["git", "ls-files", "-s", "-z"], cwd=repo, capture_output=True,
                         check=True).stdout
    return [line.split(b"\t", 1)[1] for line in out.split(b"\0") if line]


def index_of(repo: Path) -> bytes:
    return (repo / ".git" / "index").read_bytes()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose index holds a bit of everything a work tree may: folders, an
    executable, a symlink, a name with spaces and non-ASCII bytes, a path longer than 0xFFF
    bytes (its entry only), an intent-to-add entry (extended flags)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    for name in ("a.py", "b/c.txt", "b/d/e.txt", "sp ace/é.txt", ".gitignore"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(name)
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "link").symlink_to("a.py")
    git(repo, "add", ".")
    blob = git(repo, "hash-object", "-w", "a.py")
    long_path = "/".join(["x" * 200] * 21)  # longer than 0xFFF bytes (no file: too long for one)
    git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{long_path}")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "new.txt").write_text("new")
    git(repo, "add", "-N", "new.txt")
    return repo


@needs_git
@pytest.mark.parametrize("version", [2, 4])
def test_the_paths_are_the_ones_git_lists(repo: Path, version: int) -> None:
    git(repo, "rm", "-q", "--cached", "new.txt")  # (intent-to-add keeps an index at version 3)
    git(repo, "update-index", "--index-version", str(version))
    found = parse_index(index_of(repo))
    assert found.version == version
    assert found.paths == listed(repo)
    assert any(len(p) > 0xFFF for p in found.paths)
    assert found.gitlinks == []
    assert b"TREE" in found.extensions


@needs_git
@pytest.mark.parametrize("version", [3, 4])
def test_extended_flags_are_read(repo: Path, version: int) -> None:
    git(repo, "update-index", "--index-version", str(version))
    found = parse_index(index_of(repo))
    assert found.version == version  # (git writes version 2 when no entry has such flags)
    assert b"new.txt" in found.paths and found.paths == listed(repo)


@needs_git
def test_a_conflict_lists_a_path_per_stage(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "f").write_text("base\n")
    git(repo, "add", "f")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "f").write_text("other\n")
    git(repo, "commit", "-q", "-am", "other")
    git(repo, "checkout", "-q", "main")
    (repo / "f").write_text("main\n")
    git(repo, "commit", "-q", "-am", "main")
    subprocess.run(["git", "merge", "-q", "other"], cwd=repo, capture_output=True, check=False)
    assert parse_index(index_of(repo)).paths == listed(repo) == [b"f", b"f", b"f"]


@needs_git
def test_a_gitlink_is_told(repo: Path) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{commit},sub")
    found = parse_index(index_of(repo))
    assert found.gitlinks == [b"sub"] and b"sub" in found.paths


@needs_git
def test_a_sha256_repository_is_read_with_its_hash_size(tmp_path: Path) -> None:
    repo, _ = repository(tmp_path, "sha256")
    assert parse_index(index_of(repo), hash_size=32).paths == [b"script.py"]
    with pytest.raises(GitIndexError):
        parse_index(index_of(repo), hash_size=20)


@needs_git
def test_a_split_index_is_refused(repo: Path) -> None:
    git(repo, "update-index", "--split-index")
    with pytest.raises(GitIndexError):
        parse_index(index_of(repo))


@needs_git
def test_a_sparse_index_is_refused(repo: Path) -> None:
    git(repo, "sparse-checkout", "set", "--cone", "--sparse-index", "b")
    data = index_of(repo)
    assert b"sdir" in data  # (the index is sparse: sparse directory entries and their mark)
    with pytest.raises(GitIndexError):
        parse_index(data)


@needs_git
def test_a_truncated_index_never_reads_as_other_paths(repo: Path) -> None:
    """Each truncation is refused, but where only extensions were lost (the checksum is not
    verified: the file's bytes are the cache's key anyway, and git refuses it)."""
    for version in (3, 4):
        git(repo, "update-index", "--index-version", str(version))
        data = index_of(repo)
        whole = parse_index(data).paths
        refused = 0
        for length in range(len(data)):
            try:
                found = parse_index(data[:length])
            except GitIndexError:
                refused += 1
            else:
                assert found.paths == whole and found.extensions == []
        assert refused >= len(data) - 100


@pytest.mark.parametrize("path", [b"../outside", b"/etc/passwd", b"a/../../x", b".git/config",
                                  b"a/.GIT/config", b"a//b", b"a/", b"", b"./a", b"a/."])
@pytest.mark.parametrize("version", [2, 4])
def test_a_path_git_refuses_is_refused(path: bytes, version: int) -> None:
    data = index_bytes([Entry(b"a.py"), Entry(path)], version)
    with pytest.raises(GitIndexError):
        parse_index(data)


def test_dotted_names_that_git_allows_are_read() -> None:
    paths = [b".gitignore", b".github/x", b"...", b"a/.gitx", b"a/..b"]
    assert parse_index(index_bytes([Entry(p) for p in sorted(paths)], 4)).paths == sorted(paths)


@pytest.mark.parametrize(("entries", "version", "what"), [
    ([Entry(b"a", mode=0o100664)], 2, "mode"),  # a mode git never writes
    ([Entry(b"a", mode=0o040000)], 2, "mode"),  # a sparse index's folder
    ([Entry(b"a", extended=0x4000)], 2, "version 2"),  # extended flags in version 2
    ([Entry(b"a", extended=0x0001)], 3, "unknown flags"),
], ids=["mode 100664", "folder", "extended in v2", "unknown flag"])
def test_what_git_never_writes_is_refused(entries: list[Entry], version: int, what: str) -> None:
    with pytest.raises(GitIndexError, match=what):
        parse_index(index_bytes(entries, version))


def test_a_required_extension_is_refused_and_an_optional_one_skipped() -> None:
    entries = [Entry(b"a")]
    assert parse_index(index_bytes(entries, 2, extensions=[(b"ZZZZ", b"xyz")])).extensions == [
        b"ZZZZ"]
    for signature in (b"link", b"sdir", b"zzzz", b"\0\0\0\0"):
        with pytest.raises(GitIndexError):
            parse_index(index_bytes(entries, 2, extensions=[(signature, b"")]))


def test_absurd_counts_and_numbers_are_refused_at_once() -> None:
    header = b"DIRC" + (2).to_bytes(4, "big")
    with pytest.raises(GitIndexError):
        parse_index(header + (2**32 - 1).to_bytes(4, "big") + b"\0" * 100, max_entries=2**32)
    with pytest.raises(GitIndexError, match="at most"):
        parse_index(index_bytes([Entry(b"a"), Entry(b"b")]), max_entries=1)
    strip_too_much = index_bytes([Entry(b"ab"), Entry(b"ac")], 4).replace(
        varint(1) + b"c\0", varint(5) + b"c\0")
    with pytest.raises(GitIndexError, match="strips"):
        parse_index(strip_too_much)
    huge = index_bytes([Entry(b"ab")], 4).replace(varint(0) + b"ab\0", b"\xff" * 12 + b"\0")
    with pytest.raises(GitIndexError, match="64 bits"):
        parse_index(huge)


@pytest.mark.parametrize("data", [b"", b"DIRC", b"DIRX" + b"\0" * 8,
                                  b"DIRC\0\0\0\x05\0\0\0\0"])
def test_a_header_that_is_not_one_is_refused(data: bytes) -> None:
    with pytest.raises(GitIndexError):
        parse_header(data)
