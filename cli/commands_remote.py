"""Commands on the remote: push, pull, remote init.

Thin layers over :mod:`xpmstore.admin` (imported inside the commands: ``push``, ``pull``,
``remotes``).  The remote is the one configured for the workspace (``[remote] url`` in
xpmstore.toml or the user settings; ``$XPMSTORE_REMOTE`` overrides); see docs/remote.md.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .context import CliError, one_line, open_workspace, user_errors, workspace_option

if TYPE_CHECKING:
    from xpmstore.remote.upload import PushReport

__all__ = ["pull", "push", "remote"]


def _check_identifiers(identifiers: tuple[str, ...]) -> None:
    """InvalidIdentifierError (exit code 2) for the first malformed one, before the workspace
    or the remote is opened: bad input is exit 2 whatever they hold."""
    from xpmstore.core.identifier import check_identifier

    for text in identifiers:
        check_identifier(text)


@click.command(short_help="Push done objects to the remote (--verify: repair its copies).")
@click.argument("identifiers", metavar="[ID|PREFIX]...", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Push every done object of the workspace.")
@click.option("--verify", is_flag=True, help="Read the remote's copy of each object back and"
              " replace what is damaged in it from this one (checked first): the repair a"
              " refused pull asks for.")
@workspace_option()
@user_errors
def push(identifiers: tuple[str, ...], every: bool, verify: bool) -> None:
    """Push done objects (their files, then their manifests) to the remote.

    \b
    xpmstore push 3fa9c1 77ab02
    xpmstore push --all
    xpmstore push --verify 3fa9c1      # repair the remote's copy that pulls refuse

    Files the remote already holds (same blake3) are not sent again. Prints one line per
    object as it finishes: pushed, present (already there), verified (--verify: the remote's
    copy is intact), repaired (--verify: its damaged files or manifest replaced) or failed
    with why; on a terminal, a live line counts objects and bytes. A local copy that differs
    from its manifest is never uploaded. Ctrl-C stops the uploads in flight within a chunk
    (nothing half-pushed is left in the remote) and says how many objects were not pushed.
    Exit code 1 when one failed or on Ctrl-C.
    """
    from xpmstore.admin.push import push as push_objects
    from xpmstore.remote.transferprogress import TransferProgress
    from xpmstore.remote.upload import PushReport

    if bool(identifiers) == every:
        raise click.UsageError("give identifiers or --all (not both)")
    _check_identifiers(identifiers)
    workspace = open_workspace()
    progress = TransferProgress("push")
    report = PushReport()

    def show(outcome: str, name: str, why: str) -> None:
        progress.echo("\t".join([outcome, name] + ([why] if why else [])))

    try:
        push_objects(workspace, None if every else identifiers, verify=verify,
                     progress=progress, on_result=show, report=report)
    except KeyboardInterrupt:
        raise CliError(_push_interrupted(report, verify)) from None
    finally:
        progress.close()
    if report.failed:
        raise CliError(f"{len(report.failed)} object(s) not pushed")


def _push_interrupted(report: PushReport, verify: bool) -> str:
    """The line of a push stopped by Ctrl-C: what was done, what was not."""
    undone = report.expected - report.in_remote() - len(report.failed)
    failed = f", {len(report.failed)} failed" if report.failed else ""
    return (f"interrupted: {undone} of {report.expected} object(s) not"
            f" {'verified' if verify else 'pushed'}, {report.in_remote()} in the remote{failed};"
            " run the push again for the rest (no object is left half-pushed)")


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
    A refusal says how to repair the remote's copy (push --verify, from a machine that has a
    good one). On a terminal, a live line counts objects and bytes. Ctrl-C stops the downloads
    in flight within a chunk, keeps nothing of the object being pulled, and says how many
    objects were not pulled (exit code 1).
    """
    from xpmstore.admin.pull import PullReport
    from xpmstore.admin.pull import pull as pull_objects
    from xpmstore.remote.transferprogress import TransferProgress

    _check_identifiers(identifiers)  # bad input first: nothing is pulled
    workspace = open_workspace(new=True)
    progress = TransferProgress("pull")

    def show(text: str, directory: Path | None, why: str) -> None:
        if directory is None:
            progress.echo(f"xpmstore: {one_line(why)}", sys.stderr)
        else:
            progress.echo(str(directory))

    report = PullReport()
    try:
        pull_objects(workspace, identifiers, progress=progress, on_result=show, report=report)
    except KeyboardInterrupt:
        undone = len(identifiers) - len(report.pulled) - len(report.failed)
        raise CliError(f"interrupted: {undone} of {len(identifiers)} object(s) not pulled"
                       f" (nothing of them is kept); {len(report.pulled)} pulled") from None
    finally:
        progress.close()
    if report.failed:
        raise CliError(f"{len(report.failed)} of {len(identifiers)} object(s) not pulled")


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
    from xpmstore.admin.remotes import init_remote
    from xpmstore.errors import NotFound
    from xpmstore.store.workspace import Workspace

    try:
        workspace = open_workspace()
    except NotFound:  # a URL needs no workspace (its endpoint may come from the settings)
        if url is None:
            raise
        workspace = Workspace.at(None)
    click.echo(init_remote(workspace, url))
