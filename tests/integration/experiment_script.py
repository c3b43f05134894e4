"""A small experiment, copied to a folder outside the repository and run there by the Python of
a fresh virtual environment where xpmstore is installed from its wheel (tests/integration).

Two tasks (one depends on the other) run as jobs of the local launcher (forked from its zygote);
the first calls an ``@cache`` method.  Each job records which process ran it and where it
imported xpmstore from.  The script then looks the results up with ``Store`` and prints one
JSON document.  Usage: ``python experiment_script.py WORKSPACE``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import xpmstore
from xpmstore import Config, Param, Store, Task, cache, experiment, pathgenerator
from xpmstore.launchers import LocalLauncher

TEXT = "the cat saw the dog and the dog saw the cat"


def whoami() -> dict[str, object]:
    """This process: its pid, its parent's command line, where xpmstore was imported from."""
    parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    return {"pid": os.getpid(), "parent": [part.decode() for part in parent if part],
            "xpmstore": xpmstore.__file__}


class Words(Config):
    """The distinct words of a text, kept by ``@cache``."""

    __xpmid__ = "installed.Words"
    text: Param[str]

    @cache("words.txt")
    def words(self, path: Path) -> list[str]:
        if not path.is_file():
            path.write_text(" ".join(sorted(set(self.text.split()))))
            with open(path.parent / "computed-by", "w") as handle:
                json.dump(whoami(), handle)
        return path.read_text().split()


class Count(Task):
    """How many distinct words the text holds."""

    __xpmid__ = "installed.Count"
    words: Param[Words]
    counted: Annotated[Path, pathgenerator("count.txt")]

    def execute(self) -> None:
        self.counted.write_text(str(len(self.words.words())))
        Path("process.json").write_text(json.dumps(whoami()))


class Report(Task):
    """A task that depends on Count and reads its output."""

    __xpmid__ = "installed.Report"
    count: Param[Count]
    line: Annotated[Path, pathgenerator("report.txt")]

    def execute(self) -> None:
        self.line.write_text(f"{Path(self.count.counted).read_text()} distinct words\n")
        Path("process.json").write_text(json.dumps(whoami()))


def main(workspace: Path) -> None:
    count = Count(words=Words(text=TEXT))
    report = Report(count=count)
    with experiment(workspace, "installed", launcher=LocalLauncher(workers=2)) as xp:
        report.submit()
    store = Store(workspace)
    print(json.dumps({
        "script": whoami(),
        "reasons": sorted(job.reason.split(":")[0] for job in xp.order),
        "tasks": {"count": count.__identifier__, "report": report.__identifier__},
        "status": store.status(report),
        "found": [record.identifier for record in store.find(Count, words__text=TEXT)],
        "report_path": str(store.get(report.__identifier__).path),
    }))


if __name__ == "__main__":  # job processes import this script: the experiment runs only here
    main(Path(sys.argv[1]))
