"""Commands on the remote: push, pull, remote init (``get`` and ``ls --remote`` use
:func:`need_remote`).

Thin layers over :mod:`xpmstore.remote` (imported inside the commands).  The remote is the one
configured for the workspace (``[remote] url`` in xpmstore.toml or the user settings;
``$XPMSTORE_REMOTE`` overrides); see docs/remote.md.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .context import CliError, one_line, open_workspace, user_errors, workspace_option

__all__ = ["need_remote", "pull", "push", "remote"]


def need_remote(workspace: Any) -> Any:
    """The workspace's remote; RemoteError (exit code 1) when none is configured."""
    from xpmstore.errors import RemoteError
    from xpmstore.remote import open_remote

    remote = open_remote(workspace)
    if remote is None:
        raise RemoteError("no remote configured: set [remote] url in xpmstore.toml or the user"
                          " settings, or $XPMSTORE_REMOTE (see docs/remote.md)")
    return remote


def _check_identifiers(identifiers: tuple[str, ...]) -> None:
    """InvalidIdentifierError (exit code 2) for the first malformed one, before the workspace
    or the remote is opened: bad input is exit 2 whatever they hold."""
    from xpmstore.core.identifier import check_identifier

    for text in identifiers:
        check_identifier(text)


@click.command(short_help="Push done objects to the remote.")
@click.argument("identifiers", metavar="[ID|PREFIX]...", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Push every done object of the workspace.")
@workspace_option()
@user_errors
def push(identifiers: tuple[str, ...], every: bool) -> None:
    """Push done objects (their files, then their manifests) to the remote.

    \b
    xpmstore push 3fa9c1 77ab02
    xpmstore push --all

    Files the remote already holds (same blake3) are not sent again. Prints one line per
    object as it finishes: pushed, present (already there) or failed with why; on a terminal,
    a live line counts objects and bytes. Exit code 1 when one failed.
    """
    from xpmstore.remote import push as push_objects
    from xpmstore.remote.transferprogress import TransferProgress

    if bool(identifiers) == every:
        raise click.UsageError("give identifiers or --all (not both)")
    _check_identifiers(identifiers)
    workspace = open_workspace()
    remote = need_remote(workspace)
    if every:
        from xpmstore.store.objectdirs import scan_objects

        identifiers = tuple(o.identifier for o in scan_objects(workspace) if o.done)
    progress = TransferProgress("push")

    def show(outcome: str, name: str, why: str) -> None:
        progress.echo("\t".join([outcome, name] + ([why] if why else [])))

    try:
        report = push_objects(workspace, list(identifiers), remote, progress, show)
    finally:
        progress.close()
    if report.failed:
        raise CliError(f"{len(report.failed)} object(s) not pushed")


@click.command(short_help="Pull objects from the remote, verified.")
@click.argument("identifiers", metavar="ID|PREFIX...", nargs=-1, required=True)
@workspace_option()
@user_errors
def pull(identifiers: tuple[str, ...]) -> None:
    """Pull objects from the remote into the workspace; prints each one's local path.

    Every file is checked (size and blake3), the done manifest against its own checksum, and
    the identifier recomputed from the object's identity before anything is published; a
    corrupt object is refused and nothing of it is kept. Each object is pulled even when one
    before it failed: a failure is one line on stderr, and the exit code is 1 when one failed.
    On a terminal, a live line counts objects and bytes.
    """
    from xpmstore.errors import RemoteUnavailableError, XpmstoreError
    from xpmstore.remote import pull as pull_object
    from xpmstore.remote.transferprogress import TransferProgress

    _check_identifiers(identifiers)  # bad input first: nothing is pulled
    workspace = open_workspace(new=True)
    remote = need_remote(workspace)
    progress = TransferProgress("pull")
    progress.expect(objects=len(identifiers))
    failed = 0
    try:
        for text in identifiers:
            try:
                path = pull_object(workspace, remote.resolve(text), remote, progress=progress)
            except RemoteUnavailableError:
                raise  # the others would fail the same way: one line, exit 1
            except (XpmstoreError, OSError) as exc:
                failed += 1
                progress.echo(f"xpmstore: {one_line(str(exc) or type(exc).__name__)}",
                              sys.stderr)
            else:
                progress.echo(str(path))
            progress.finished()
    finally:
        progress.close()
    if failed:
        raise CliError(f"{failed} of {len(identifiers)} object(s) not pulled")


@click.group(short_help="The remote itself: remote init.")
def remote() -> None:
    """The remote shared by a team's machines (see docs/remote.md)."""


@remote.command("init")
@click.argument("url", required=False)
@workspace_option()
@user_errors
def init(url: str | None) -> None:
    """Create the remote on purpose: its directory (file://) or its bucket (s3://).

    \b
    xpmstore remote init                         # the workspace's configured remote
    xpmstore remote init file:///nfs/team/xpmstore

    Nothing else creates it: a push to a file:// remote whose directory is missing (a share
    that is not mounted) finds the remote unreachable instead of writing to the local disk.
    """
    from xpmstore.errors import NotFound
    from xpmstore.remote import open_remote
    from xpmstore.store.workspace import Workspace

    if url is None:
        target = need_remote(open_workspace())
    else:
        try:
            workspace = open_workspace()
        except NotFound:  # a URL needs no workspace (its endpoint may come from the settings)
            workspace = Workspace.at(None)
        target = open_remote(workspace, url)
    click.echo(target.backend.init())
