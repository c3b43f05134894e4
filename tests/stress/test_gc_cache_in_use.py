"""gc never deletes a ``@cache`` entry a live process uses (docs/cli.md): a real experiment whose
jobs read ``@cache`` entries in a loop, while ``xpmstore gc --older-than 0 -y`` and ``--max-size
0 -y`` (real processes) run again and again; zero job failures, and once the experiment has
ended gc deletes the entries.

Before leases, every such gc moved the entries away under the readers (their hits take no lock):
most readers failed.  Synchronisation is on the readers' counter files and the processes' output
lines; nothing waits on a clock.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from xpmstore.core.identifier import cache_identifier
from xpmstore.store import taskdirs

from ..clihelpers import console
from ..gctasks import touch
from ..helpers import PYTHON, REPO_ROOT
from ..storehelpers import DEADLINE, Terms, count_of, isolate, make_workspace, wait_for

READERS = 4
ENTRIES = 3
ROUNDS = 6
DRIVER = "from tests.gctasks import drive; drive()"


@pytest.mark.slow
def test_gc_never_deletes_cache_entries_running_jobs_read(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)
    ws = make_workspace(tmp_path / "ws")
    counters = tmp_path / "counters"
    counters.mkdir()
    stop = tmp_path / "stop"
    log = tmp_path / "experiment.log"
    with open(log, "w") as err:
        readers = subprocess.Popen(
            [PYTHON, "-c", DRIVER, "readers", str(ws.root), str(counters), str(READERS),
             str(stop)], cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=err, text=True)
    entries = {cache_identifier(Terms(n=n).__identifier__, "terms.txt") for n in range(ENTRIES)}
    try:
        assert readers.stdout is not None
        assert readers.stdout.readline().strip() == "submitted", log.read_text()
        wait_for(lambda: all(count_of(counters, f"reader-{i}") > 0 for i in range(READERS)),
                 "every reader to read every entry once")
        for _ in range(ROUNDS):
            for option in (["--older-than", "0s"], ["--max-size", "0"]):
                gc = console(ws, "gc", "-y", *option)
                assert gc.returncode == 0, gc.stderr
                assert not entries & {line.split("\t")[0] for line in gc.stdout.splitlines()
                                      if "\t" in line}, gc.stdout
        before = {i: count_of(counters, f"reader-{i}") for i in range(READERS)}
        touch(stop)
        readers.communicate(timeout=DEADLINE)
    finally:
        if readers.poll() is None:
            readers.kill()
        readers.communicate()
    assert readers.returncode == 0, log.read_text()[-3000:]
    # every reader read every entry once more after the last gc (a round begun after "stop")
    assert all(count_of(counters, f"reader-{i}") > before[i] for i in range(READERS))
    assert {n: count_of(counters, f"terms-{n}") for n in range(ENTRIES)} == \
        {n: 1 for n in range(ENTRIES)}, "an entry was deleted and computed again"

    present = {d.name for d in taskdirs.list_object_dirs(ws)}
    assert entries <= present
    after = console(ws, "gc", "-y", "--older-than", "0s")  # no live process uses them any more
    assert after.returncode == 0, after.stderr
    assert not entries & {d.name for d in taskdirs.list_object_dirs(ws)}
    assert not any((ws.private / "leases").glob("*")), "a lease of a dead process was left"
