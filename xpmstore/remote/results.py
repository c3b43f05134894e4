"""Results as a table from the remote's objects (``xpmstore table --remote``).

The remote holds done objects only: one listing, every object document fetched and checked on a
thread pool (:func:`xpmstore.remote.verify.check_object`: its identifier recomputed from its
identity section), then the tasks of the asked class matched as ``Store.find`` matches them
(task references followed through the other remote tasks).  Params and tags come from the
object; the metrics come from the metrics file its manifest lists, downloaded alone and checked
(size and blake3) before it is parsed.  Nothing is written locally.  Objects that do not check
out, and metrics blobs that are missing or corrupt, are left out with one warning line.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core.config import Task, class_spec
from ..core.query import matches, wanted
from ..errors import ConfigTypeError, RemoteUnavailableError, XpmstoreError
from ..store.table import (
    MAX_METRICS_BYTES,
    TaskRow,
    UnreadableMetrics,
    build_rows,
    check_metrics_path,
    check_status,
    check_task_class,
    flatten_identity,
    parse_metrics,
    tag_filter,
    warn,
)
from .layout import Remote
from .transfer import stream_blob
from .verify import RemoteObject, check_object

__all__ = ["remote_table"]

_THREADS = 16


def _fetch_all(remote: Remote) -> tuple[dict[str, RemoteObject], int]:
    """Every remote object that checks out, by identifier, and how many did not."""

    def fetch(identifier: str) -> RemoteObject | None:
        try:
            return check_object(identifier, remote.get_object(identifier) or b"")
        except RemoteUnavailableError:
            raise
        except XpmstoreError:
            return None

    identifiers = sorted(remote.identifiers())
    with ThreadPoolExecutor(_THREADS) as pool:
        fetched = list(pool.map(fetch, identifiers))
    found = {i: o for i, o in zip(identifiers, fetched, strict=True) if o is not None}
    return found, len(identifiers) - len(found)


def _metrics_of(remote: Remote, item: RemoteObject, relative: str) -> dict[str, Any] | None:
    """The flattened metrics of the file ``relative`` that ``item`` lists (None when it lists
    none); raises UnreadableMetrics for a file too large, missing or corrupt in the remote, or not a
    JSON object."""
    entry = next((f for f in item.manifest.files if f.path == relative), None)
    if entry is None:
        return None
    if entry.size > MAX_METRICS_BYTES:
        raise UnreadableMetrics(f"larger than {MAX_METRICS_BYTES // (1024 * 1024)} MiB")
    buffer = io.BytesIO()
    try:
        got, digest = stream_blob(remote, entry.blake3, entry.size, buffer, None)
    except RemoteUnavailableError:
        raise
    except XpmstoreError as exc:
        raise UnreadableMetrics(str(exc)) from None
    if got != entry.size or digest != entry.blake3:
        raise UnreadableMetrics("its blob in the remote is corrupt")
    return parse_metrics(buffer.getvalue())


def remote_table(remote: Remote, cls: type[Task], *, metrics: str | None = "metrics.json",
                 status: str | None = "done", all_params: bool = False,
                 tags: dict[str, Any] | None = None,
                 tag_filters: list[tuple[str, list[Any]]] | None = None,
                 **filters: Any) -> list[dict[str, Any]]:
    """The table of the tasks of ``cls`` that the remote holds (see :mod:`xpmstore.store.table` for
    the columns), newest first.  ``metrics`` is a file's path relative to the task directory
    (a callable cannot run on the remote).  Raises as ``Store.table`` does, and
    RemoteUnavailableError when the remote cannot be reached."""
    cls = check_task_class(cls)
    check_status(status)
    if metrics is not None and not isinstance(metrics, str):
        raise ConfigTypeError("table --remote: metrics must be a file name (a callable cannot"
                              " run on the remote)")
    if metrics is not None:
        check_metrics_path(metrics)
    asked = wanted(cls, filters)
    if status not in ("done", None):
        return []  # the remote holds done objects only
    objects, corrupt = _fetch_all(remote)
    identities = {i: o.identity for i, o in objects.items() if o.identity is not None}
    resolve = identities.get
    name = class_spec(cls).identity_name
    rows: list[tuple[TaskRow, RemoteObject]] = []
    for identifier, item in objects.items():
        if item.manifest.kind != "task" or item.manifest.name != name:
            continue
        row_tags = item.manifest.extra.get("tags")
        row_tags = row_tags if isinstance(row_tags, dict) else {}
        if matches(cls, item.identity, row_tags, asked, tags, resolve) \
                and tag_filter(row_tags, tag_filters):
            rows.append((TaskRow(identifier, item.identity, row_tags, "done",
                                 item.manifest.created), item))
    rows.sort(key=lambda pair: pair[0].created, reverse=True)
    memo: dict[int, Any] = {}
    for row, _ in rows:
        row.params = flatten_identity(cls, row.identity, resolve, memo)
    bad: list[str] = []
    if metrics is not None:

        def fill(pair: tuple[TaskRow, RemoteObject]) -> None:
            row, item = pair
            try:
                row.metrics = _metrics_of(remote, item, metrics)
            except UnreadableMetrics as exc:
                bad.append(f"{row.identifier[:12]}/{metrics}: {exc}")

        with ThreadPoolExecutor(_THREADS) as pool:
            list(pool.map(fill, rows))
    if corrupt:
        warn(f"xpmstore: warning: {corrupt} remote object(s) left out: they do not check out"
              " (xpmstore ls --remote lists them as corrupt)")
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        warn(f"xpmstore: warning: metrics not read from the remote: {bad[0]}{more}")
    return build_rows([row for row, _ in rows], status_column=status is None,
                      all_params=all_params)
