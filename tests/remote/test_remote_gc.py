"""``xpmstore gc --remote`` (docs/remote.md), against a directory remote and SeaweedFS: manifests no
team root protects go — roots are remote pins (with what they depend on) and manifests younger
than --older-than — then blobs no manifest lists, once older than the 24 h grace; a push that
deduplicates against an old blob refreshes it.  Ages are measured from a ``now`` given to the
library (the future), never by waiting."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from xpmstore.core.identifier import cache_identifier
from xpmstore.remote import cachepush, open_remote, push_one
from xpmstore.remote.collect import GRACE, collect_remote, plan_remote, remote_pins
from xpmstore.remote.layout import Remote
from xpmstore.store import taskdirs
from xpmstore.store.workspace import Workspace

from ..clihelpers import invoke, run_experiment
from ..storehelpers import Terms, active, count_of
from .conftest import RemoteFactory
from .test_remote import reasons, taskdir, tasks


def remote_of(workspace: Workspace) -> Remote:
    remote = open_remote(workspace)
    assert remote is not None
    return remote


def blobs_of(directory: Path) -> set[str]:
    done = taskdirs.read_manifest(directory)
    assert done is not None
    return {f.blake3 for f in done.files}


def populated(workspaces: RemoteFactory, tmp_path: Path) -> tuple[Workspace, dict[str, str],
                                                                    Path]:
    """A first workspace that pushed two tasks (evaluate depends on learn) and a @cache entry;
    returns it, the identifiers by role, and the counters folder."""
    counters = tmp_path / "counters"
    counters.mkdir()
    first = workspaces("first", push="auto")
    learn, evaluate = tasks(counters)
    run_experiment(first, "exp", [evaluate])
    terms = Terms(n=7)
    with active(first):
        terms.load(str(counters))
    cachepush.wait()  # push = "auto": the entry was pushed in the background
    entry = cache_identifier(terms.__identifier__, "terms.txt")
    assert not push_one(remote_of(first), first.root / "cache" / "tests.store.Terms" / entry)
    ids = {"learn": learn.__identifier__, "evaluate": evaluate.__identifier__, "entry": entry}
    assert remote_of(first).identifiers() == set(ids.values())
    return first, ids, counters


def test_unprotected_manifests_go_then_their_old_blobs(
        workspaces: RemoteFactory, tmp_path: Path) -> None:
    first, ids, counters = populated(workspaces, tmp_path)
    remote = remote_of(first)
    pinned = invoke(first, "pin", "--remote", ids["evaluate"][:12])
    assert pinned.exit_code == 0, pinned.output
    assert remote_pins(remote) == {ids["evaluate"]}
    entry_blobs = blobs_of(first.root / "cache" / "tests.store.Terms" / ids["entry"])
    kept_blobs = blobs_of(taskdir(first, tasks(counters)[0])) | blobs_of(
        taskdir(first, tasks(counters)[1]))
    before = set(remote.backend.scan("cas/"))

    young = plan_remote(remote, older_than=3600.0)  # everything was written just now
    assert young.manifests == {} and young.blobs == {}
    plan = plan_remote(remote)  # pins alone: the entry goes; evaluate and (its dependency) learn
    assert set(plan.manifests) == {ids["entry"]} and plan.blobs == {}  # blobs: within grace
    assert plan.young_blobs == len(entry_blobs - kept_blobs)
    assert remote.identifiers() == set(ids.values())  # a plan deletes nothing

    later = time.time() + GRACE + 60  # a day later
    result = collect_remote(remote, now=later)
    assert set(result.manifests) == {ids["entry"]}
    assert set(result.blobs) == entry_blobs - kept_blobs
    assert remote.identifiers() == {ids["learn"], ids["evaluate"]}
    after = set(remote.backend.scan("cas/"))
    assert after == before - {remote.blob_key(d) for d in entry_blobs - kept_blobs}
    assert collect_remote(remote, now=later).size == 0  # nothing left to take

    second = workspaces("second", push="manual")  # what stayed is whole: pulled, not run
    run_experiment(second, "exp", [tasks(counters)[1]])
    assert set(reasons(second, "exp").values()) == {"reused:remote"}
    assert count_of(counters, "learn-3") == 1

    unpinned = invoke(first, "unpin", "--remote", ids["evaluate"][:8])
    assert unpinned.exit_code == 0, unpinned.output
    assert set(collect_remote(remote, now=later).manifests) == {ids["learn"], ids["evaluate"]}
    assert remote.identifiers() == set() and remote.backend.scan("cas/") == {}


def test_the_command_line(workspaces: RemoteFactory, tmp_path: Path) -> None:
    first, ids, _counters = populated(workspaces, tmp_path)
    dry = invoke(first, "gc", "--remote", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert set(json.loads(dry.stdout)["manifests"]) == set(ids.values())
    kept = invoke(first, "gc", "--remote", "--older-than", "1d", "-y")
    assert kept.exit_code == 0, kept.output
    assert "0 manifests" in kept.stdout
    assert invoke(first, "gc", "--remote", "-y").exit_code == 2  # no age: refused, not guessed
    asked = invoke(first, "gc", "--remote", "--older-than", "0s", stdin="n\n")
    assert asked.exit_code == 0 and "nothing deleted" in asked.stdout
    assert len(remote_of(first).identifiers()) == 3
    assert invoke(first, "gc", "--remote", "--max-size", "1G").exit_code == 2
    assert invoke(first, "pin", "--remote", "ab" * 32).exit_code == 1
    assert invoke(first, "unpin", "--remote", "ab").exit_code == 1
    gone = invoke(first, "gc", "--remote", "--older-than", "0s", "-y")
    assert gone.exit_code == 0, gone.output
    assert remote_of(first).identifiers() == set()


def test_a_push_refreshes_an_old_blob_it_deduplicates_against(
        workspaces: RemoteFactory, tmp_path: Path, remote_kind: str) -> None:
    first, ids, _counters = populated(workspaces, tmp_path)
    remote = remote_of(first)
    directory = first.root / "cache" / "tests.store.Terms" / ids["entry"]
    digest = next(iter(blobs_of(directory)))
    key = remote.blob_key(digest)
    remote.delete_object(ids["entry"])  # the blob stays, listed by nothing
    if remote_kind == "dir":  # 13 h old: past half the grace
        old = time.time() - 13 * 3600
        os.utime(Path(remote.backend.url.removeprefix("file://")) / key, (old, old))
        assert remote.backend.mtime(key) == old
    before = remote.backend.mtime(key)
    assert before is not None
    assert push_one(remote, directory)
    after = remote.backend.mtime(key)
    assert after is not None and after >= before
    if remote_kind == "dir":
        assert after > time.time() - 3600  # refreshed: gc's grace starts again
    # gc 13 h later (the old age + 13 h is past the grace) keeps it: listed again and refreshed
    assert digest not in collect_remote(remote, now=time.time() + 13 * 3600).blobs
    assert remote.backend.get_bytes(key) == (directory / "terms.txt").read_bytes()
    remote.backend.refresh(key, directory / "terms.txt")  # each backend's own way: bytes kept
    assert remote.backend.get_bytes(key) == (directory / "terms.txt").read_bytes()
