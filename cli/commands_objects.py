"""Commands on objects: get, ls, show, rm, pin, unpin, why, du.

Each is a thin layer over the library (imported inside the command, so that start-up stays
short: ``xpmstore get`` imports only the lookup it needs).
"""

from __future__ import annotations

from pathlib import Path

import click

from .context import open_workspace, user_errors, workspace_option
from .output import emit_json, fields, short, size, table, when

__all__ = ["du", "get", "ls", "pin", "rm", "show", "unpin", "why"]

_ID_HELP = "ID is a full identifier or a unique prefix of one (1 to 64 lowercase hex)."


@click.command(short_help="Print the path of a done object (or copy it out).")
@click.argument("identifier", metavar="ID|PREFIX")
@click.option("--to", "to", metavar="DIR", type=click.Path(path_type=Path),
              help="Copy the object's files (without .xpm/) to DIR, or into DIR/<id> when DIR"
                   " exists, and check the copy against the done manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print every field of the object's record.")
@workspace_option()
@user_errors
def get(identifier: str, to: Path | None, as_json: bool) -> None:
    """Print the local path of a done object (task directory or cache entry).

    \b
    xpmstore get 3fa9c1              # /ws/jobs/my.Learn/3fa9c1…
    xpmstore get 3fa9c1 --to out/    # a verified copy in out/3fa9c1…
    cd "$(xpmstore get 3fa9c1)"

    ID is a full identifier or a unique prefix of one. An object absent here is pulled
    (verified) from the remote when one is configured. Exit code 1 when no done object
    matches, 2 when ID is not 1 to 64 lowercase hex or the prefix is ambiguous.
    """
    from xpmstore.admin.get import get as get_object
    from xpmstore.core.identifier import check_identifier

    check_identifier(identifier)  # bad input is exit 2, whatever the workspace
    found = get_object(open_workspace(), identifier, to=to, with_record=as_json)
    if as_json:
        emit_json(found.to_json())
    else:
        click.echo(str(found.path))


@click.command(short_help="List objects, filtered by kind, name, status, tags.")
@click.option("--kind", type=click.Choice(["task", "cache"]), help="Only tasks, or only cache"
              " entries.")
@click.option("--name", metavar="NAME", help="Only objects of this identity name (the folder"
              " under jobs/ or cache/, e.g. my.module.Learn).")
@click.option("--status", type=click.Choice(["done", "failed", "running", "queued", "absent"]),
              help="Only objects in this state (absent: a task directory that never finished).")
@click.option("--tag", "tags", metavar="K=V", multiple=True,
              help="Only objects tagged K=V (repeatable: all must match). V matches a string"
                   " tag and the number or bool it spells.")
@click.option("--json", "as_json", is_flag=True, help="Print every field of each Record.")
@click.option("--remote", "remote", is_flag=True, help="List the objects of the remote instead"
              " (identifier, kind, name, size, created; --kind and --name apply).")
@workspace_option()
@user_errors
def ls(kind: str | None, name: str | None, status: str | None, tags: tuple[str, ...],
       as_json: bool, remote: bool) -> None:
    """List objects, newest first.

    \b
    xpmstore ls --name my.Learn --tag lr=0.1
    xpmstore ls --status failed
    xpmstore ls --json | jq '.[].path'

    Columns: identifier, kind, name, status, size, created. On a terminal identifiers are
    shortened and sizes human-readable; piped, each line holds the full identifier, the size in
    bytes and the UTC time, separated by tabs.
    """
    if remote:
        from xpmstore.admin.ls import list_remote

        found = list_remote(open_workspace(), kind=kind, name=name)
        if as_json:
            emit_json(found)
        else:
            table(["identifier", "kind", "name", "size", "created"],
                  ([short(e["identifier"]), e["kind"], e["name"], size(e["size"]),
                    when(e["created"])] for e in found))
        return
    from xpmstore.admin.ls import list_entries, list_json
    from xpmstore.core.fromtext import parse_tag_filter
    from xpmstore.store.lookup import Store

    filters = [parse_tag_filter(text) for text in tags]
    if as_json:  # the index's own JSON text for done tasks, not encoded again
        lines = list_json(Store(open_workspace()), kind=kind, name=name, status=status,
                          tags=filters)
        click.echo("[\n" + ",\n".join(lines) + "\n]" if lines else "[]")
        return
    entries = list_entries(Store(open_workspace()), kind=kind, name=name, status=status,
                           tags=filters)
    table(["identifier", "kind", "name", "status", "size", "created"],
          ([short(e["identifier"]), e["kind"], e["name"], e["status"], size(e["size"]),
            when(e["created"])] for e in entries))


@click.command(short_help="Everything known of one object.")
@click.argument("identifier", metavar="ID|PREFIX")
@click.option("--json", "as_json", is_flag=True, help="Print every detail as JSON.")
@workspace_option()
@user_errors
def show(identifier: str, as_json: bool) -> None:
    """Show everything known of one object, done or not.

    Params (the identity section of params.json), values (the Meta fields it was made with,
    or will run with), tags, dependencies, dependents, status and state, the progress its task
    last reported, earlier attempts, the
    reasons recorded by the runs that submitted it, size, pin and the paths of its logs. ID is
    a full identifier or a unique prefix of one.
    """
    import json

    from xpmstore.admin.show import describe
    from xpmstore.errors import NotFound

    workspace = open_workspace()
    try:
        details = describe(workspace, identifier)
    except NotFound as exc:  # show never reaches the remote: say who does
        from xpmstore.remote.layout import remote_settings

        if remote_settings(workspace) is None:
            raise
        raise NotFound(f"{exc} (show looks here only: `xpmstore get {identifier}` pulls it"
                       " from the remote when it is there)") from None
    if as_json:
        emit_json(details.to_json())
        return
    state = details.state
    latest = details.reasons[-1] if details.reasons else None
    pairs: list[tuple[str, object]] = [
        ("identifier", details.identifier), ("kind", details.kind), ("name", details.name),
        ("status", details.status), ("path", details.path), ("size", size(details.size)),
        ("created", when(details.created)), ("pinned", "yes" if details.pinned else "no"),
        ("tags", ", ".join(f"{k}={v}" for k, v in sorted(details.tags.items()))),
        ("reason", f"{latest['reason']} ({latest['experiment']}/{latest['run']})"
         if latest else "-"),
        ("state", " ".join(str(state.get(k)) for k in ("state", "reason") if state.get(k))),
    ]
    if details.progress:
        from xpmstore.store.taskprogress import progress_text

        pairs.append(("progress", f"{progress_text(details.progress)} (reported"
                                  f" {when(details.progress[0]['updated'])})"))
    if details.config:
        pairs.append(("config", details.config))
    pairs += [("dependency", d) for d in details.dependencies]
    pairs += [("dependent", d) for d in details.dependents]
    for a in details.attempts:
        ran_with = a.get("values")
        differs = ran_with is not None and ran_with != details.values
        pairs.append((f"attempt {a['attempt']}",
                      f"{a['state']} {a['reason'] or ''} {a['stderr']}"
                      + (f" values {json.dumps(ran_with, sort_keys=True)}" if differs else "")))
    pairs += [(name, path) for name, path in details.logs.items()]
    if details.params is not None:
        pairs.append(("params", json.dumps(details.params.get("fields", {}), sort_keys=True)))
    if details.damaged is not None:
        pairs.append(("damaged", details.damaged))
    if details.values is not None:
        pairs.append(("values", json.dumps(details.values, sort_keys=True)))
    fields(pairs)


@click.command(short_help="Invalidate a result (--cascade: its dependents too).")
@click.argument("identifier", metavar="ID|PREFIX")
@click.option("--cascade", is_flag=True, help="Also remove every done object that depends on"
              " it, directly or not.")
@workspace_option()
@user_errors
def rm(identifier: str, cascade: bool) -> None:
    """Invalidate one result: delete the object so that the next submit runs it again.

    Refused (exit 1) for a running job, and for an object on which done objects depend unless
    --cascade. Prints the removed objects, dependents first.
    """
    from xpmstore.admin.rm import remove

    removed = remove(open_workspace(), identifier, cascade=cascade)
    table(["removed", "name", "path"], [[short(i), p.parent.name, p] for i, p in removed])


@click.command(short_help="Make an object a gc root.")
@click.argument("identifier", metavar="ID|PREFIX")
@click.option("--remote", "remote", is_flag=True,
              help="Pin the object in the remote: a root of gc --remote for the whole team.")
@workspace_option()
@user_errors
def pin(identifier: str, remote: bool) -> None:
    """Pin an object: a gc root that gc never deletes (nor what it depends on).

    Pins live in WORKSPACE/.xpmstore/pins/, so they survive an index rebuild. With --remote,
    the pin is written in the remote (pins/ID) and protects the remote object from
    gc --remote.
    """
    from xpmstore.admin.pin import pin as pin_object

    pinned = pin_object(open_workspace(), identifier, remote=remote)
    click.echo(f"{'pinned' if pinned.added else 'already pinned'} {short(pinned.identifier)}"
               f" {'in the remote' if remote else pinned.name}")


@click.command(short_help="Remove a pin.")
@click.argument("identifier", metavar="ID|PREFIX")
@click.option("--remote", "remote", is_flag=True, help="Remove a pin of the remote.")
@workspace_option()
@user_errors
def unpin(identifier: str, remote: bool) -> None:
    """Remove a pin (ID may be a prefix of a pinned identifier)."""
    from xpmstore.admin.pin import unpin as unpin_object
    from xpmstore.core.identifier import check_identifier

    if not remote:
        check_identifier(identifier)  # bad input is exit 2, whatever the workspace
    chosen = unpin_object(open_workspace(), identifier, remote=remote)
    click.echo(f"unpinned {short(chosen)}{' in the remote' if remote else ''}")


@click.command(short_help="Explain a miss: nearest prior tasks, differing fields.")
@click.argument("target", metavar="ID|module:Class")
@click.argument("assignments", metavar="[NAME=VALUE]...", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@workspace_option()
@user_errors
def why(target: str, assignments: tuple[str, ...], as_json: bool) -> None:
    """Explain a miss: the nearest prior tasks of the same class and how they differ.

    \b
    xpmstore why mypkg.tasks:Learn epochs=10 lr=0.1 model.hidden=64
    xpmstore why 3fa9c1          # a task directory that exists but is not done

    Each VALUE is read as its field's declared type (int, float, bool as true/false, str,
    paths, Enum members by name, none for Optional, JSON for lists and dicts); a dotted NAME
    sets a field of a nested config. The module is imported from the current directory or
    the installed packages.
    """
    from xpmstore.admin.why import why as explain

    report = explain(open_workspace(), target, list(assignments))
    if as_json:
        emit_json(report.to_json())
        return
    if report.status == "done":
        click.echo(f"{report.name} {short(report.identifier)} is done: {report.path}")
        return
    click.echo(f"{report.name} {short(report.identifier)} is {report.status} here")
    if not report.explanations:
        click.echo(f"no prior task of {report.name} in this workspace")
        return
    click.echo("nearest prior tasks of its class:")
    for item in report.explanations:
        record = item.record
        click.echo(f"  {short(record.identifier)} {record.status} {when(record.created)}:"
                   f" {len(item.differences)} field(s) differ")
        for line in item.differences:
            click.echo(f"    {line}")


@click.command(short_help="Disk usage by kind or name.")
@click.option("--by", type=click.Choice(["kind", "name"]), default="kind", show_default=True,
              help="Group by kind (task, cache) or by identity name.")
@click.option("--json", "as_json", is_flag=True, help="Print the groups as JSON.")
@workspace_option()
@user_errors
def du(by: str, as_json: bool) -> None:
    """Disk usage of the done objects, grouped, largest first, with the total."""
    from xpmstore.admin.du import usage
    from xpmstore.store.lookup import Store

    groups = usage(Store(open_workspace()), by)
    if as_json:
        emit_json([{"key": g.key, "count": g.count, "size": g.size} for g in groups])
        return
    total = [("total", sum(g.count for g in groups), sum(g.size for g in groups))]
    table([by, "objects", "size"],
          [[k, c, size(s)] for k, c, s in [*((g.key, g.count, g.size) for g in groups), *total]])
