"""How commands print: a tidy table on a terminal, stable tab-separated text otherwise, JSON on
request.

* :func:`table`: on a terminal, aligned columns under a header and short identifiers; otherwise
  one line per row, fields separated by a tab, no header, full identifiers, sizes in bytes and
  times in UTC ISO 8601 — the same columns in the same order, so scripts can rely on them.
* :func:`emit_json`: one JSON document; lists print one item per line.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

import click

__all__ = ["emit_json", "fields", "on_terminal", "short", "size", "table", "when"]


def on_terminal() -> bool:
    """Whether stdout is a terminal (then output is for a person)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def short(identifier: str) -> str:
    """The identifier as shown: 12 characters on a terminal, all 64 otherwise."""
    return identifier[:12] if on_terminal() else identifier


def size(count: int) -> str:
    """Bytes as shown: ``1.5 MiB`` on a terminal, the integer otherwise."""
    if not on_terminal():
        return str(count)
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(count)  # pragma: no cover


def when(timestamp: float | None) -> str:
    """A time as shown: local ``YYYY-MM-DD HH:MM`` on a terminal, UTC ISO 8601 otherwise."""
    if not timestamp:
        return "-"
    if on_terminal():
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _clean(value: Any) -> str:
    text = " ".join(str(value).split()) or "-"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print rows (see the module doc)."""
    cells = [[_clean(v) for v in row] for row in rows]
    if not on_terminal():
        out = "".join("\t".join(row) + "\n" for row in cells)
        click.echo(out, nl=False)
        return
    if not cells:
        return
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
              for row in cells]
    click.echo("\n".join(lines))


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """Print ``key value`` lines: aligned on a terminal, tab-separated otherwise."""
    items = [(k, _clean(v)) for k, v in pairs]
    if not items:
        return
    if on_terminal():
        width = max(len(k) for k, _ in items)
        click.echo("\n".join(f"{k.ljust(width)}  {v}" for k, v in items))
    else:
        click.echo("".join(f"{k}\t{v}\n" for k, v in items), nl=False)


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON; a list prints one item per line."""
    if isinstance(data, list):
        if not data:
            click.echo("[]")
            return
        encode = json.JSONEncoder(separators=(",", ":")).encode
        click.echo("[\n" + ",\n".join(map(encode, data)) + "\n]")
    else:
        click.echo(json.dumps(data, indent=1))
