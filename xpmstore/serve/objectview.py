"""One object as its page shows it: ``xpmstore show`` (:func:`xpmstore.admin.show.describe`) plus
its params as a tree, its files and its logs.  Reads only; blocking (disk): the server calls it
on a worker thread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..admin.show import describe
from ..store.taskstate import object_status, read_state
from ..store.workspace import Workspace
from .files import file_listing, log_names
from .paramsview import params_tree
from .progressview import job_progress
from .runcache import RunCache

__all__ = ["object_live", "object_view"]


def object_view(workspace: Workspace, text: str, runs: RunCache) -> dict[str, Any]:
    """Everything the object page shows of the object ``text`` names (identifier or unique
    prefix).  Raises InvalidIdentifierError, NotFound, AmbiguousPrefixError."""
    everyone = runs.runs()  # parsed once per changed record, not at each page
    details = describe(workspace, text, everyone)
    data = details.to_json()
    directory = details.path
    try:
        document = json.loads((directory / "params.json").read_bytes())
    except (OSError, ValueError, RecursionError):
        document = None
    data["tree"] = params_tree(document)
    data["files"] = file_listing(directory)
    data["log_names"] = log_names(directory)
    data.pop("logs", None)  # absolute paths: the page names logs by log_names
    data["progress"] = job_progress(directory) if details.status == "running" else None
    if not data["dependencies"] and details.status != "done":  # not indexed: its runs say
        for run in reversed(everyone):
            job = run.jobs.get(details.identifier)
            if job is not None and job.dependencies:
                data["dependencies"] = job.dependencies
                break
    return data


def object_live(directory: Path) -> dict[str, Any]:
    """What changes while an object's page is open, cheap to read: its status, state, the
    progress it reports and its logs (the page fetches the whole object again when its status
    or its logs change)."""
    status = object_status(directory)
    return {"identifier": directory.name, "status": status, "state": read_state(directory),
            "progress": job_progress(directory) if status == "running" else None,
            "log_names": log_names(directory)}
