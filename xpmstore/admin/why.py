"""Why is an object not here: ``xpmstore why ID|module:Class [k=v…]`` (docs/store.md, docs/cli.md).

Either an identifier (or prefix) whose directory exists, done or not (its config is rebuilt from
its params.json, importing its classes as a job's process does: the recorded script or module,
with the current directory and the scripts' folders importable), or a Task class and ``k=v``
assignments parsed with the declared types of its fields (:mod:`xpmstore.core.fromtext`).  If the
task is done there is nothing to explain; otherwise
:meth:`xpmstore.store.lookup.Store.explain` gives the nearest prior tasks of its class and the
fields in which they differ.  Reads only; imports user code (the class, or the one params.json
names).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.config import Task, class_spec
from ..core.fromtext import build_config, import_class, importable
from ..errors import CorruptObjectError, FormatVersionError, TextValueError
from ..store.locate import locate
from ..store.lookup import Explanation, Store
from ..store.workspace import Workspace

__all__ = ["WhyReport", "why"]


@dataclass
class WhyReport:
    """The task asked about, its status, and the nearest prior tasks of its class."""

    identifier: str
    name: str
    status: str
    path: Path
    explanations: list[Explanation] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return {"identifier": self.identifier, "name": self.name, "status": self.status,
                "path": str(self.path),
                "nearest": [{**e.record.to_json(), "differences": e.differences}
                            for e in self.explanations]}


def _script_folders(document: dict[str, Any]) -> list[str]:
    """The folders of the scripts whose classes a params.json records (a job's process has
    them on ``sys.path``: it inherits its experiment's)."""
    values = document.get("values")
    objects = values.get("objects") if isinstance(values, dict) else None
    scripts = {entry.get("script") for entry in objects.values() if isinstance(entry, dict)} \
        if isinstance(objects, dict) else set()
    return sorted({os.path.dirname(s) for s in scripts if isinstance(s, str) and os.path.isabs(s)})


def why(workspace: Workspace, target: str, assignments: list[str] | None = None,
        limit: int = 5) -> WhyReport:
    """Explain ``target`` (see the module doc).

    Raises InvalidIdentifierError, NotFound, AmbiguousPrefixError, CorruptObjectError (its
    params.json cannot be read) (an identifier), TextValueError and the config's own errors (a
    class and assignments), ClassNotFoundError.
    """
    store = Store(workspace)
    if ":" in target:
        cls = import_class(target)
        if not issubclass(cls, Task):
            raise TextValueError(f"{target} is a Config, not a Task: only tasks are stored")
        config = build_config(cls, list(assignments or []))
    else:
        if assignments:
            raise TextValueError("name=value assignments go with module:Class, not with an"
                                 " identifier")
        ident, directory = locate(workspace, target)
        from ..core.params import load, read_params

        try:
            importable(*_script_folders(read_params(directory)))
            config = load(directory)
        except FormatVersionError as exc:  # the object's own params.json: damage, not input
            raise CorruptObjectError(f"{exc} (xpmstore fsck)", ident) from None
        if not isinstance(config, Task):
            raise TextValueError(f"{target}: not a task")
    name = class_spec(type(config)).identity_name
    identifier = config.__identifier__
    status = store.status(config)
    report = WhyReport(identifier, name, status, workspace.task_dir(name, identifier))
    if status != "done":
        report.explanations = store.explain(config, limit=limit)
    return report
