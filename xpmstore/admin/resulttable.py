"""Results of a task class as a table: ``xpmstore table module:Class [NAME=VALUE]...``
(docs/cli.md).

A :class:`TableQuery` is read from the command's text (the class imported, each ``NAME=VALUE``
read with its field's declared type, dotted names through nested configs and task references);
:func:`results_table` runs it on the workspace (:func:`xpmstore.store.table.tabulate`) or on its
remote (:func:`xpmstore.remote.results.remote_table`).  Reads only; safe across processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.config import Task
from ..core.fromtext import import_class, parse_as, parse_tag_filter, split_assignment
from ..core.query import field_for
from ..errors import NotFound, TextValueError
from ..store.lookup import Store
from ..store.table import check_task_class, sort_rows, tabulate
from ..store.workspace import Workspace

__all__ = ["TableQuery", "query_filters", "results_table"]


def query_filters(cls: type[Task], assignments: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` assignments (dotted names through nested configs and task references)
    read with the declared types of their fields, as ``find`` keywords (``a__b``).  Raises
    TextValueError (naming the field), UnknownFieldError."""
    found = {}
    for text in assignments:
        name, value = split_assignment(text)
        path = name.split(".")
        owner, spec = field_for(cls, path)
        try:
            found["__".join(path)] = parse_as(value, spec.annotation)
        except TextValueError as exc:
            raise TextValueError(f"{owner.__qualname__}.{path[-1]}: {exc}") from None
    return found


@dataclass(frozen=True)
class TableQuery:
    """A results table asked for: the tasks of ``cls`` (named ``target``, ``module:Class``)
    whose params match ``filters`` and tags match ``tag_filters``, in state ``status`` (None:
    any), with the values of their ``metrics`` file (None: no metrics columns), every param with
    ``all_params``, sorted by the column ``sort_by`` (``-COLUMN``: descending)."""

    target: str
    cls: type[Task]
    filters: dict[str, Any] = field(default_factory=dict)
    tag_filters: list[tuple[str, list[Any]]] = field(default_factory=list)
    metrics: str | None = "metrics.json"
    status: str | None = "done"
    all_params: bool = False
    sort_by: str | None = None

    @classmethod
    def parse(cls, target: str, assignments: Sequence[str] = (), *, tags: Sequence[str] = (),
              metrics: str | None = "metrics.json", status: str = "done",
              all_params: bool = False, sort_by: str | None = None) -> TableQuery:
        """The query the command line says: ``target`` a ``module:Class`` (imported),
        ``assignments`` and ``tags`` ``K=V`` texts, ``status`` one of
        :data:`xpmstore.store.table.STATUSES` or ``"any"`` (every status, with a status
        column).

        Raises TextValueError, ClassNotFoundError, ConfigTypeError (not a Task class),
        UnknownFieldError; reads no workspace.
        """
        tag_filters = [parse_tag_filter(text) for text in tags]
        task_class = check_task_class(import_class(target))
        return cls(target, task_class, query_filters(task_class, assignments), tag_filters,
                   metrics, None if status == "any" else status, all_params, sort_by)


def results_table(workspace: Workspace, asked: TableQuery, *,
                  remote: bool = False) -> list[dict[str, Any]]:
    """The rows of the table ``asked`` (one dict per task: id, the params that differ across
    the rows, the tags, the metrics; see :mod:`xpmstore.store.table`), newest first unless
    ``sort_by``; of the workspace's remote with ``remote`` (its metrics files downloaded and
    checked).

    Raises NotFound when no task matches, the errors of :func:`xpmstore.store.table.tabulate`,
    RemoteError with ``remote``.
    """
    options: dict[str, Any] = {"metrics": asked.metrics, "status": asked.status,
                               "all_params": asked.all_params, "tag_filters": asked.tag_filters}
    if remote:
        from ..remote.results import remote_table
        from .remotes import need_remote

        rows = remote_table(need_remote(workspace), asked.cls, **options, **asked.filters)
    else:
        rows = tabulate(Store(workspace), asked.cls, **options, **asked.filters)
    if not rows:
        where = "the remote" if remote else str(workspace.root)
        state = "" if asked.status is None else f"{asked.status} "
        raise NotFound(f"no {state}task of {asked.target} matches in {where}")
    return sort_rows(rows, asked.sort_by) if asked.sort_by else rows
