"""The results table of a task class: one row per done task, the params that differ across the
rows, the tags, and the metrics read from a JSON file of each task directory.

:func:`table_rows` is the one place that gathers the rows.  It works from the identity name
alone (the page has no class object): the done tasks of that name in the catalog's listing,
their Params from params.json (defaults filled in, dotted names through nested configs and
referenced tasks), their tags from the index, and the metrics file, which must be a file listed
by the task's done manifest (it is opened as the file views open files: nothing outside the task
directory).  Blocking (disk).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from ..errors import PathRefusedError
from .catalog import Catalog
from .files import open_listed, read_chunk

__all__ = ["METRICS_LIMIT", "Column", "results_table", "table_csv", "table_rows"]

METRICS_LIMIT = 1 << 20
"""Bytes read at most from one metrics file."""

Column = dict[str, str]
"""``key`` (unique), ``group`` (identifier, param, tag, metric) and ``label``."""


def _flat(value: Any, prefix: str, out: dict[str, Any], depth: int = 0) -> None:
    if isinstance(value, dict) and depth < 8:
        for key, inner in value.items():
            _flat(inner, f"{prefix}{key}.", out, depth + 1)
    elif isinstance(value, (str, int, float, bool)) or value is None:
        out[prefix[:-1]] = value
    else:
        out[prefix[:-1]] = json.dumps(value)


def read_metrics(directory: str, metrics: str) -> dict[str, Any] | str:
    """The metrics file of a task as flat dotted names (nested objects flattened), or a short
    reason why there are none (not listed, not JSON, not an object)."""
    try:
        handle = open_listed(Path(directory), metrics)
    except PathRefusedError:
        return "no such file"
    except OSError as exc:
        return exc.strerror or "unreadable"
    try:
        data, size = read_chunk(handle, 0, METRICS_LIMIT)
    finally:
        os.close(handle)
    if size > METRICS_LIMIT:
        return "too large"
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return "not JSON"
    if not isinstance(document, dict):
        return "not a JSON object"
    out: dict[str, Any] = {}
    _flat(document, "", out)
    return out


def table_rows(catalog: Catalog, name: str, metrics: str) -> list[dict[str, Any]]:
    """One dict per done task named ``name``, newest first: ``identifier``, ``created``,
    ``params`` (every Param, dotted), ``tags``, ``metrics`` (flat) or ``missing`` (why not)."""
    rows = []
    for entry in catalog.listing().by_name.get(name, []):
        if entry["kind"] != "task" or entry["status"] != "done":
            continue
        found = read_metrics(entry["path"], metrics)
        rows.append({"identifier": entry["identifier"], "created": entry["created"],
                     "params": catalog.params_of(entry), "tags": entry["tags"],
                     "metrics": found if isinstance(found, dict) else {},
                     "missing": None if isinstance(found, dict) else found})
    return rows


def _differing(rows: list[dict[str, Any]]) -> list[str]:
    """The params whose values are not the same in every row (all of them for one row)."""
    names = sorted({k for row in rows for k in row["params"]})
    if len(rows) <= 1:
        return names
    return [n for n in names
            if len({json.dumps(row["params"].get(n), sort_keys=True) for row in rows}) > 1]


def results_table(catalog: Catalog, name: str, metrics: str = "metrics.json",
                  sort: str | None = None, descending: bool = False) -> dict[str, Any]:
    """``columns`` (see :data:`Column`) and ``rows`` (one list of cells per task, in column
    order) of the results table, sorted by the column ``sort`` (newest first without)."""
    rows = table_rows(catalog, name, metrics)
    params = _differing(rows)
    tags = sorted({k for row in rows for k in row["tags"]})
    measures = sorted({k for row in rows for k in row["metrics"]})
    columns: list[Column] = [{"key": "identifier", "group": "identifier", "label": "identifier"}]
    columns += [{"key": f"param:{n}", "group": "param", "label": n} for n in params]
    columns += [{"key": f"tag:{n}", "group": "tag", "label": n} for n in tags]
    columns += [{"key": f"metric:{n}", "group": "metric", "label": n} for n in measures]
    cells = [[row["identifier"], *(row["params"].get(n) for n in params),
              *(row["tags"].get(n) for n in tags), *(row["metrics"].get(n) for n in measures)]
             for row in rows]
    keys = [c["key"] for c in columns]
    if sort in keys:
        at = keys.index(sort)
        filled = [cell for cell in cells if cell[at] is not None]
        filled.sort(key=lambda cell: _order(cell[at]), reverse=descending)
        cells = filled + [cell for cell in cells if cell[at] is None]  # empty cells last
    return {"name": name, "metrics": metrics, "columns": columns, "rows": cells,
            "missing": sum(1 for row in rows if row["missing"])}


def _order(value: Any) -> tuple[int, Any]:
    """A sort key for mixed cells: numbers before text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def table_csv(table: dict[str, Any]) -> str:
    """The table as CSV: a header of column keys (``param:lr``, ``tag:seed``,
    ``metric:loss``), then a line per row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c["key"] for c in table["columns"]])
    for row in table["rows"]:
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()
