"""The ``table`` command: results of a task class as a table
(:func:`xpmstore.admin.resulttable.results_table`), printed aligned, tab-separated, CSV or JSON."""

from __future__ import annotations

import csv
import json
import math
import sys
from typing import Any

import click

from .context import open_workspace, user_errors, workspace_option
from .output import emit_json, on_terminal, table

__all__ = ["table_command"]

_STATUSES = ("done", "failed", "running", "queued", "absent", "any")
"""The statuses of --status: :data:`xpmstore.store.table.STATUSES` and ``any``."""


def _cell(value: Any, terminal: bool) -> str:
    """A cell as text: numbers in full (6 significant digits on a terminal), lists and dicts
    as JSON, nothing as "" (``-`` on a terminal)."""
    if value is None:
        return "-" if terminal else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if terminal and math.isfinite(value):
            return f"{value:.6g}"
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


@click.command("table", short_help="Results of a task class as a table (params, tags, metrics).")
@click.argument("target", metavar="module:Class")
@click.argument("assignments", metavar="[NAME=VALUE]...", nargs=-1)
@click.option("--metrics", default="metrics.json", show_default=True, metavar="FILE",
              help="The JSON file of each task directory whose values are columns.")
@click.option("--no-metrics", is_flag=True, help="No metrics columns.")
@click.option("--sort", "sort_by", metavar="[-]COLUMN",
              help="Sort by COLUMN (-COLUMN: descending); rows without a value last.")
@click.option("--status", type=click.Choice(_STATUSES), default="done", show_default=True,
              help="Only tasks in this state (any: all of them, with a status column).")
@click.option("--tag", "tags", metavar="K=V", multiple=True,
              help="Only tasks tagged K=V (repeatable: all must match).")
@click.option("--all-params", is_flag=True,
              help="Every param, not only those that differ across the rows.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON (one object each).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV with a header line.")
@click.option("--remote", "remote", is_flag=True,
              help="The tasks of the remote instead (its metrics files downloaded and checked).")
@workspace_option()
@user_errors
def table_command(target: str, assignments: tuple[str, ...], metrics: str, no_metrics: bool,
                  sort_by: str | None, status: str, tags: tuple[str, ...], all_params: bool,
                  as_json: bool, as_csv: bool, remote: bool) -> None:
    """Results of the task class module:Class as a table, one row per task, newest first.

    \b
    xpmstore table mypkg.tasks:Evaluate --sort -accuracy
    xpmstore table mypkg.tasks:Evaluate model.lr=0.1 --csv > results.csv
    xpmstore table mypkg.tasks:Evaluate --json | jq '.[0]'

    Columns: id, the params that differ across the rows (model.lr; a task reference is
    followed: learned.epochs), the tags (tag:NAME), then the values of each task's metrics
    file (nested objects flattened with dots). NAME=VALUE filters are read with the declared
    types of the fields, as with `xpmstore why`. On a terminal the table is aligned; piped, it
    is tab-separated with a header line. Exit code 1 when no task matches.
    """
    from xpmstore.admin.resulttable import TableQuery, results_table
    from xpmstore.errors import TextValueError

    if as_json and as_csv:
        raise TextValueError("--json and --csv: choose one")
    asked = TableQuery.parse(target, assignments, tags=tags,
                             metrics=None if no_metrics else metrics, status=status,
                             all_params=all_params, sort_by=sort_by)
    rows = results_table(open_workspace(), asked, remote=remote)
    if as_json:
        emit_json(rows)
        return
    headers = list(rows[0])
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows([_cell(row[h], False) for h in headers] for row in rows)
        return
    terminal = on_terminal()
    if not terminal:
        click.echo("\t".join(headers))  # the columns depend on the rows: name them
    cells = [[_cell(row[h], terminal) for h in headers] for row in rows]
    if terminal:
        for line in cells:
            line[0] = line[0][:12]
    table(headers, cells)
