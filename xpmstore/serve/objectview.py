"""One object as its page shows it: ``xpmstore show`` (:func:`xpmstore.describe.describe`) plus
its params as a tree, its files and its logs.  Reads only; blocking (disk): the server calls it
on a worker thread.
"""

from __future__ import annotations

import json
from typing import Any

from ..describe import describe
from ..runs import read_runs
from ..workspace import Workspace
from .files import file_listing, log_names
from .params import params_tree
from .progress import job_progress

__all__ = ["object_view"]


def object_view(workspace: Workspace, text: str) -> dict[str, Any]:
    """Everything the object page shows of the object ``text`` names (identifier or unique
    prefix).  Raises InvalidIdentifierError, NotFound, AmbiguousPrefixError."""
    details = describe(workspace, text)
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
    if not data["dependencies"]:  # not done (not indexed): what its runs recorded
        for run in reversed(read_runs(workspace)):
            job = run.jobs.get(details.identifier)
            if job is not None and job.dependencies:
                data["dependencies"] = job.dependencies
                break
    return data
