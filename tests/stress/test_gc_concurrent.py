"""gc while an experiment runs: 20 rounds of ``xpmstore gc -y`` (a real process) against another
process that submits a chain of tasks, each reading its predecessor's output.

The experiment of round k submits the chain of variant k % 2: the same objects as two rounds
before, which are no longer a root (``--keep-runs 1`` keeps only the previous run's) — so gc may
be deleting exactly what the submit is deciding to reuse.  The submit holds the gc lock shared
while it records its jobs, gc holds it exclusively while it marks and moves, and a live run's
jobs are roots: nothing the experiment uses may go, and it must succeed.  Each run also submits
an object of its own (variant 1000 + k), garbage two rounds later: every gc from the third round
on must really delete it.

Even rounds start gc together with the experiment (racing its submit); odd rounds start it once
the chain is submitted and its first job waits for a release file.  In every round the run's own
object waits for the release file, which the test creates once gc has returned: the run is live
while gc marks, so what is garbage in round k does not depend on the schedule — the objects of
run k-2 that neither run k-1 nor the live run k uses (its extra object always; in even rounds,
the chain too, until the submit records it).  Without that wait, an even round's experiment
could end before its gc marked: run k, then the latest and only kept run, left the extra object
of run k-1 unrooted and that gc deleted it, a round early.  Nothing waits on a clock.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from xpmstore.store import taskdirs

from ..clihelpers import console
from ..gctasks import Step, chain, touch
from ..helpers import PYTHON, REPO_ROOT
from ..storehelpers import check_done_objects, isolate, make_workspace

ROUNDS = 20
LENGTH = 4
DRIVER = "from tests.gctasks import drive; drive()"


@pytest.mark.slow
def test_gc_never_deletes_what_a_running_experiment_uses(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)
    ws = make_workspace(tmp_path / "ws")
    deleted_total = 0
    for k in range(ROUNDS):
        variant = k % 2
        release = tmp_path / f"release-{k}"
        args = [PYTHON, "-c", DRIVER, "chain", str(ws.root), "stress", str(LENGTH),
                str(variant), str(1000 + k), str(release)]
        if not k % 2:
            args.append("extra-only")  # the chain runs at once, racing gc; the run stays live
        experiment = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
        try:
            if k % 2:
                assert experiment.stdout is not None
                assert experiment.stdout.readline().strip() == "submitted"
            gc = console(ws, "gc", "-y", "--keep-runs", "1")
            touch(release)
            _, err = experiment.communicate(timeout=240)
        finally:
            if experiment.poll() is None:
                experiment.kill()
                experiment.wait()
        assert gc.returncode == 0, gc.stderr
        assert experiment.returncode == 0, f"round {k}: {err[-3000:]}"
        deleted = {line.split("\t")[0] for line in gc.stdout.splitlines() if "\t" in line}
        # Roots while gc marks: run k-1 (the latest ended run) and the live run k.  Garbage: the
        # extra object of run k-2, and in even rounds the chain of run k-2 if gc marked before
        # the submit recorded it (the submit then runs it again).
        garbage = {Step(i=0, variant=1000 + k - 2).__identifier__} if k >= 2 else set()
        assert garbage <= deleted, f"round {k}: {gc.stdout}"
        may_go = garbage | ({s.__identifier__ for s in chain(LENGTH, variant)} if k % 2 == 0
                            else set())
        assert deleted <= may_go, f"round {k}: deleted what a run uses: {gc.stdout}"
        for ident in garbage:
            assert not ws.task_dir("tests.gc.Step", ident).exists(), f"round {k}: {gc.stdout}"
        deleted_total += len(deleted)
        steps = chain(LENGTH, variant)
        for step in steps:
            directory = ws.task_dir("tests.gc.Step", step.__identifier__)
            assert taskdirs.is_done(directory), f"round {k}: {directory} was deleted"
        last = ws.task_dir("tests.gc.Step", steps[-1].__identifier__)
        expected = "".join(f"{variant}:{i}\n" for i in range(LENGTH))
        assert (last / "out.txt").read_text() == expected
    check_done_objects(ws)
    assert deleted_total > 0
    final = console(ws, "gc", "-y")
    assert final.returncode == 0, final.stderr
    present = {d.name for d in taskdirs.list_object_dirs(ws)}
    kept = {s.__identifier__ for s in chain(LENGTH, (ROUNDS - 1) % 2)}
    kept.add(Step(i=0, variant=1000 + ROUNDS - 1).__identifier__)
    assert present == kept
