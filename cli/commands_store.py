"""Maintenance commands: gc, fsck, index rebuild."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .context import CliError, ask, one_line, open_workspace, user_errors, workspace_option
from .output import emit_json, short, size, table

if TYPE_CHECKING:
    from xpmstore.admin.gc import GcPlan
    from xpmstore.remote.collect import RemoteGcPlan

__all__ = ["fsck", "gc", "index"]


@click.command(short_help="Delete what no root reaches (--dry-run first).")
@click.option("--keep-runs", type=click.IntRange(min=0), default=1, show_default=True,
              metavar="N", help="Keep what the last N successful runs of each experiment used"
              " (the latest run is kept whatever its outcome; 0 keeps no ended run).")
@click.option("--older-than", metavar="AGE",
              help="Spare what was used within AGE (e.g. 30d, 12h); unrooted cache entries not"
                   " used within AGE go.")
@click.option("--max-size", metavar="SIZE",
              help="Then evict unrooted cache entries, least recently used first, until the"
                   " store takes at most SIZE (e.g. 50G; KB, MB... are decimal).")
@click.option("--dry-run", is_flag=True, help="Print what would go and the total; delete"
              " nothing.")
@click.option("-y", "--yes", is_flag=True, help="Delete without asking.")
@click.option("--json", "as_json", is_flag=True, help="Print the objects as JSON.")
@click.option("--remote", "remote", is_flag=True,
              help="Collect the remote instead: manifests no remote pin protects (nor a write"
                   " within --older-than), then unlisted blobs older than 24 h.")
@workspace_option()
@user_errors
def gc(keep_runs: int, older_than: str | None, max_size: str | None, dry_run: bool, yes: bool,
       as_json: bool, remote: bool) -> None:
    """Delete what no root reaches.

    \b
    Roots: what the latest run of each experiment used, whatever its outcome (failed, killed
    or interrupted too), and the last N successful runs (--keep-runs, default 1; 0: no ended
    run at all), what live runs use, pins (xpmstore pin), jobs whose launch record is live,
    cache entries a live process uses -- and everything these depend on. Other cache
    entries go only with --older-than or --max-size. --dry-run says which run roots what.

    \b
    xpmstore gc --dry-run              # what would go: identifier, kind, name, size, why
    xpmstore gc                        # the same, then asks
    xpmstore gc -y --older-than 30d --max-size 200G
    xpmstore gc --remote --older-than 90d --dry-run

    With --remote, the team's remote is collected (docs/remote.md): its roots are the remote
    pins (xpmstore pin --remote) and the manifests written within --older-than (required,
    except with --dry-run: 0s leaves pins alone as roots), with what they depend on; every other
    manifest goes, then every blob no manifest lists that is older than 24 h.

    Safe while experiments run: gc marks again under the workspace's exclusive gc lock (submits
    hold it shared while they record their jobs), skips objects whose lock is held, and moves
    objects to .xpmstore/trash/ before deleting them.
    """
    from xpmstore.admin.gc import GcOptions, parse_age, parse_size
    from xpmstore.admin.gc import gc as collect_garbage

    if remote:
        if max_size is not None:
            raise click.UsageError("--max-size applies to the local store, not to --remote")
        if older_than is None and not dry_run:  # the remote is the whole team's cache
            raise click.UsageError(
                "gc --remote deletes every manifest no remote pin protects: say how old with"
                " --older-than AGE (e.g. 90d; 0s for every unpinned one), or look first with"
                " --dry-run")
        _gc_remote(parse_age(older_than) if older_than is not None else None, dry_run, yes,
                   as_json)
        return
    options = GcOptions(keep_runs=keep_runs,
                        older_than=parse_age(older_than) if older_than is not None else None,
                        max_size=parse_size(max_size) if max_size is not None else None)

    def review(plan: GcPlan) -> bool:
        """Show the plan (on stderr when stdout holds the JSON of the result), then ask."""
        _show_plan(plan, dry_run=False, err=as_json)
        return bool(plan.candidates) and ask(f"delete these {len(plan.candidates)} objects?")

    outcome = collect_garbage(open_workspace(), options, dry_run=dry_run,
                              review=None if yes else review)
    if dry_run:
        if as_json:
            emit_json(outcome.plan.to_json())
        else:
            _show_plan(outcome.plan, dry_run=True, err=False)
        return
    result = outcome.result
    if result is None:
        click.echo("nothing deleted" if outcome.declined else "nothing to delete")
        return
    if as_json:
        emit_json(result.to_json())
        return
    table(["deleted", "kind", "name", "size"],
          [[short(c.identifier), c.kind, c.name, size(c.size)] for c in result.deleted])
    for candidate, why in result.skipped:
        click.echo(f"skipped {short(candidate.identifier)} {candidate.name}: {why}", err=True)
    click.echo(f"freed {size(result.freed)} in {len(result.deleted)} objects"
               f" ({len(result.skipped)} skipped)")
    if yes:  # without -y, it was said before the question
        _over_max_size(result.plan.over_max_size)


def _show_plan(plan: GcPlan, dry_run: bool, err: bool) -> None:
    """Print what gc would delete (``dry_run``) or is about to, after the roots, and the
    total (the roots and the total on stderr with ``err``)."""
    click.echo("roots:" if plan.sources else "roots: none", err=err)
    for source in plan.sources:
        click.echo(f"  {source.describe()}", err=err)
    table(["identifier", "kind", "name", "size", "why"],
          [[short(c.identifier), c.kind, c.name, size(c.size), c.why] for c in plan.candidates])
    click.echo(f"{'would free' if dry_run else 'to free'}: {size(plan.size)} in"
               f" {len(plan.candidates)} of {plan.objects} objects ({len(plan.roots)} roots,"
               f" {len(plan.reachable)} objects reached)", err=err)
    _over_max_size(plan.over_max_size)


def _over_max_size(over: int) -> None:
    """Say (on stderr) by how much the store stays above --max-size, if it does."""
    if over:
        click.echo(f"the store stays {size(over)} above --max-size: what remains is rooted (a"
                   " run's, a pin, or in use by a live process) or a task", err=True)


def _gc_remote(older_than: float | None, dry_run: bool, yes: bool, as_json: bool) -> None:
    """``gc --remote``: plan, show, ask (unless -y), collect."""
    from xpmstore.admin.remotes import gc_remote

    def review(plan: RemoteGcPlan, url: str) -> bool:
        """Show the plan (on stderr when stdout holds the JSON of the result), then ask."""
        _show_remote_plan(plan, url, dry_run=False, err=as_json)
        return bool(plan.manifests or plan.blobs) and ask(
            f"delete {len(plan.manifests)} manifests and {len(plan.blobs)} blobs from {url}?")

    outcome = gc_remote(open_workspace(), older_than, dry_run=dry_run,
                        review=None if yes else review)
    plan = outcome.plan
    if dry_run:
        if as_json:
            emit_json({"manifests": sorted(plan.manifests), "blobs": len(plan.blobs),
                       "size": plan.size, "kept_manifests": plan.kept_manifests,
                       "kept_blobs": plan.kept_blobs, "young_blobs": plan.young_blobs,
                       "roots": plan.roots})
        else:
            _show_remote_plan(plan, outcome.url, dry_run=True, err=False)
        return
    if not outcome.deleted:
        click.echo("nothing deleted" if outcome.declined else "nothing to delete")
        return
    if as_json:
        emit_json({"manifests": sorted(plan.manifests), "blobs": len(plan.blobs),
                   "freed": plan.size})
        return
    click.echo(f"freed {size(plan.size)}: {len(plan.manifests)} manifests and"
               f" {len(plan.blobs)} blobs deleted from {outcome.url}")


def _show_remote_plan(plan: RemoteGcPlan, url: str, dry_run: bool, err: bool) -> None:
    """One line: what gc --remote would delete (``dry_run``) or is about to, and what stays."""
    click.echo(f"{url}: {'would delete' if dry_run else 'to delete'}"
               f" {len(plan.manifests)} manifests and {len(plan.blobs)} blobs,"
               f" {size(plan.size)} ({plan.roots} roots, {plan.kept_manifests} manifests"
               f" kept, {plan.young_blobs} unlisted blobs within the grace period)", err=err)


@click.command(short_help="Re-hash every done object; --repair damaged ones.")
@click.option("--repair", is_flag=True, help="Mark damaged objects not done, so that the next"
              " submit computes them again.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@workspace_option()
@user_errors
def fsck(repair: bool, as_json: bool) -> None:
    """Verify every done object, and reconcile the index with the disk.

    Every listed file is re-hashed against the done manifest (size and blake3; links by
    target; no link followed on the way), the manifest must match its own checksum and list
    only paths inside the object, and a task's params.json must give back its identifier and
    the dependencies the manifest lists. Exit code 0 when no damage remains (none found, or all
    repaired), 1 otherwise. The index is always brought in line with the disk (it is a cache of
    it). --repair also seals intact manifests written without a checksum (older xpmstore).
    """
    from xpmstore.admin.fsck import check

    report = check(open_workspace(), repair=repair)
    if as_json:
        emit_json(report.to_json())
    else:
        repaired = set(report.repaired)
        table(["damaged", "kind", "name", "problem", "action"],
              [[short(d.identifier), d.kind, d.name, "; ".join(d.problems),
                "marked not done" if d.identifier in repaired
                else ("busy: left alone" if d.identifier in report.busy else "-")]
               for d in report.damaged])
        click.echo(f"checked {report.checked} done objects: {len(report.damaged)} damaged,"
                   f" {len(report.repaired)} repaired; index: {report.index_added} added,"
                   f" {report.index_removed} removed, {report.index_fixed} fixed")
        if report.unsealed:
            click.echo(f"{len(report.unsealed)} intact manifests written without a checksum: "
                       + (f"{len(report.sealed)} sealed" if repair else
                          "fsck --repair seals them"))
    if not report.clean:
        raise CliError(f"{report.left} damaged object(s) left: " + (
            "in use (their lock is held); run xpmstore fsck --repair again once they end"
            if repair else "xpmstore fsck --repair marks them not done, so that the next submit"
            " computes them again"))


@click.group(short_help="Index maintenance: index rebuild.")
def index() -> None:
    """The index: a per-host accelerator of the workspace, never the only copy."""


@index.command("rebuild")
@workspace_option()
@user_errors
def rebuild() -> None:
    """Rebuild the index from the task directories and cache entries.

    The new index is built beside the old one, which is never opened unless it is sound (a
    damaged one is simply replaced), then put in its place. Pins are kept (they live in
    WORKSPACE/.xpmstore/pins/). A done object whose manifest or params.json cannot be read is
    left out, with one warning line naming the file.
    """
    from xpmstore.store.reindex import rebuild as rebuild_index

    workspace = open_workspace()

    def skipped(directory: object, why: str) -> None:
        click.echo(f"xpmstore: warning: {one_line(why)}; left out of the index (xpmstore"
                   " fsck)", err=True)

    count, pins = rebuild_index(workspace, skipped)
    click.echo(f"rebuilt the index of {workspace.root}: {count} objects, {pins} pins")
