"""``xpmstore table --remote`` against a directory remote and a real SeaweedFS S3 server: the
tasks another workspace pushed, their params through task references, their tags and their
metrics files, read from a workspace that holds none of them (and writes nothing)."""

from __future__ import annotations

import json

from xpmstore.remote import open_remote, push
from xpmstore.store import taskdirs

from ..clihelpers import invoke
from ..progresstasks import Hyper, Judged, Scored
from ..storehelpers import active
from .conftest import RemoteFactory


def test_the_table_of_a_remote_as_another_workspace_sees_it(workspaces: RemoteFactory) -> None:
    first, second = workspaces("first", push="manual"), workspaces("second", push="manual")
    scored = [Scored(hyper=Hyper(lr=lr), seed=1).tag("seed", 1) for lr in (0.1, 0.3)]
    judged = [Judged(scored=task, strict=task.hyper.lr > 0.2) for task in scored]
    with active(first):
        for task in [*scored, *judged]:
            taskdirs.run_here(first, task)
    remote = open_remote(first)
    assert remote is not None
    report = push(first, [t.__identifier__ for t in [*scored, *judged]], remote)
    assert len(report.pushed) == 4 and not report.failed
    here = json.loads(invoke(first, "table", "tests.progresstasks:Judged", "--json").stdout)

    result = invoke(second, "table", "tests.progresstasks:Judged", "--remote", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert sorted(rows, key=lambda r: r["id"]) == sorted(here, key=lambda r: r["id"])
    assert sorted((r["scored.hyper.lr"], r["judged"], r["tag:seed"]) for r in rows) == [
        (0.1, False, 1), (0.3, True, 1)]
    strict = json.loads(invoke(second, "table", "tests.progresstasks:Judged", "--remote",
                               "strict=true", "--json").stdout)
    assert [r["id"] for r in strict] == [judged[1].__identifier__]
    assert not any((second.root / "jobs").iterdir())  # nothing pulled: a read
