"""A remote copy damaged after its upload is repaired by ``xpmstore push --verify`` (and by the
push of an experiment that ran the job instead), against a directory remote and the real
SeaweedFS server.  A push deduplicates by key, so pushing again from a good copy used to answer
``present`` for ever: every teammate's pull refused the object and ran it again.

Damage is done through the remote's own storage (a key rewritten with a flipped byte); the
commands run as real processes.
"""

from __future__ import annotations

import os

import pytest
from blake3 import blake3

from xpmstore.remote import Remote, check_object, push_one
from xpmstore.store import taskdirs
from xpmstore.store.workspace import Workspace

from ..clihelpers import console, run_experiment, task_dir
from ..gctasks import Step
from .conftest import RemoteFactory, damage, flipped
from .test_hostile_remote import done_steps, no_traceback, remote_of, rewrite


def pushed_step(workspaces: RemoteFactory) -> tuple[Workspace, Workspace, Step, Remote]:
    """A Step done in a first workspace and pushed; (first, second, the step, the remote)."""
    first, second = workspaces("first", push="manual"), workspaces("second", push="manual")
    step = done_steps(first, 1)[0]
    remote = remote_of(first)
    assert push_one(remote, task_dir(first, step))
    return first, second, step, remote


def data_digest(workspace: Workspace, step: Step) -> str:
    return blake3((task_dir(workspace, step) / "data.bin").read_bytes()).hexdigest()


def refusal(workspace: Workspace, identifier: str) -> str:
    """The line of a pull that refuses ``identifier``."""
    result = console(workspace, "pull", identifier)
    no_traceback(result)
    assert result.returncode == 1, result.stderr
    line, summary = result.stderr.splitlines()
    assert summary == "xpmstore: 1 of 1 object(s) not pulled"
    return line


def test_push_verify_repairs_a_damaged_blob_that_every_pull_refuses(
        workspaces: RemoteFactory) -> None:
    first, second, step, remote = pushed_step(workspaces)
    identifier, digest = step.__identifier__, data_digest(first, step)
    damage(remote, remote.blob_key(digest))

    line = refusal(second, identifier)
    assert "is corrupt" in line and f"xpmstore push --verify {identifier[:12]}" in line, line
    plain = console(first, "push", identifier)  # deduplicated by key: no repair
    assert plain.returncode == 0 and plain.stdout == f"present\t{identifier}\n"

    repaired = console(first, "push", "--verify", identifier)
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stdout == f"repaired\t{identifier}\n"
    pulled = console(second, "pull", identifier)
    assert pulled.returncode == 0, pulled.stderr
    assert data_digest(second, step) == digest
    again = console(first, "push", "--verify", identifier)
    assert again.returncode == 0 and again.stdout == f"verified\t{identifier}\n"


def test_a_damaged_local_copy_is_never_pushed_over_the_remote_one(
        workspaces: RemoteFactory) -> None:
    first, _, step, remote = pushed_step(workspaces)
    identifier, digest = step.__identifier__, data_digest(first, step)
    key = remote.blob_key(digest)
    local = task_dir(first, step) / "data.bin"
    good = local.read_bytes()
    os.chmod(local, 0o644)
    local.write_bytes(flipped(good))  # damaged here, after it was pushed

    verified = console(first, "push", "--verify", identifier)
    assert verified.returncode == 0 and verified.stdout == f"verified\t{identifier}\n"
    assert remote.backend.get_bytes(key) == good

    damaged = damage(remote, key)  # both copies damaged: nothing to repair it from
    refused = console(first, "push", "--verify", identifier)
    no_traceback(refused)
    assert refused.returncode == 1
    assert refused.stdout.startswith(f"failed\t{identifier}\t"), refused.stdout
    assert "data.bin differs from its done manifest" in refused.stdout
    assert remote.backend.get_bytes(key) == damaged  # left as it was, not overwritten


def test_push_verify_replaces_a_damaged_remote_manifest(workspaces: RemoteFactory) -> None:
    first, second, step, remote = pushed_step(workspaces)
    identifier = step.__identifier__
    key = remote.object_key(identifier)
    remote.backend.delete(key)
    remote.backend.put_bytes(key, b'{"format": "not json')

    line = refusal(second, identifier)
    assert f"xpmstore push --verify {identifier[:12]}" in line, line
    repaired = console(first, "push", "--verify", identifier)
    assert repaired.returncode == 0 and repaired.stdout == f"repaired\t{identifier}\n"
    assert console(second, "pull", identifier).returncode == 0
    assert taskdirs.read_manifest(task_dir(second, step)) == \
        taskdirs.read_manifest(task_dir(first, step))


def test_push_verify_seals_a_manifest_pushed_before_checksums(
        workspaces: RemoteFactory) -> None:
    first, _, step, remote = pushed_step(workspaces)
    identifier = step.__identifier__
    rewrite(remote, identifier, lambda done: done.pop("checksum"))  # as it used to be
    assert not check_object(identifier, remote.get_object(identifier) or b"").manifest.sealed

    repaired = console(first, "push", "--verify", identifier)
    assert repaired.returncode == 0 and repaired.stdout == f"repaired\t{identifier}\n"
    assert check_object(identifier, remote.get_object(identifier) or b"").manifest.sealed


def test_a_remote_copy_that_lists_other_outputs_is_replaced_when_they_are_damaged(
        workspaces: RemoteFactory) -> None:
    # a task whose outputs differ from run to run: the remote lists a blob this copy lacks
    first, second, step, remote = pushed_step(workspaces)
    identifier = step.__identifier__
    damage(remote, remote.blob_key(data_digest(first, step)))
    other = workspaces("other", push="manual")
    directory = taskdirs.run_here(other, Step(i=step.i, variant=step.variant))  # its own run
    os.chmod(directory / "data.bin", 0o644)
    (directory / "data.bin").write_bytes(b"another run, other bytes\n")
    taskdirs.finish(directory, identifier, "task", Step.__xpmid__,
                    extra={"tags": {}, "dependencies": []})

    repaired = console(other, "push", "--verify", identifier)
    assert repaired.returncode == 0 and repaired.stdout == f"repaired\t{identifier}\n", \
        repaired.stderr
    assert console(second, "pull", identifier).returncode == 0
    assert (task_dir(second, step) / "data.bin").read_bytes() == b"another run, other bytes\n"


def test_an_experiment_that_reruns_a_refused_object_repairs_the_remote(
        workspaces: RemoteFactory, capfd: pytest.CaptureFixture[str]) -> None:
    first, _, step, remote = pushed_step(workspaces)
    identifier, digest = step.__identifier__, data_digest(first, step)
    damage(remote, remote.blob_key(digest))
    runner = workspaces("runner", push="auto")

    capfd.readouterr()
    run_experiment(runner, "exp", [step])  # refused, run here, then pushed (push = "auto")
    warnings = [line for line in capfd.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "rejected" in warnings[0], warnings
    assert taskdirs.is_done(task_dir(runner, step))
    assert blake3(remote.backend.get_bytes(remote.blob_key(digest)) or b"").hexdigest() == digest
    third = workspaces("third", push="manual")
    pulled = console(third, "pull", identifier)
    assert pulled.returncode == 0, pulled.stderr
    assert data_digest(third, step) == digest
