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
the chain is submitted and its first job waits for a release file, then release it.  Nothing
waits on a clock.
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
                str(variant), str(1000 + k)]
        if k % 2:
            args.append(str(release))
        experiment = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
        try:
            if k % 2:
                assert experiment.stdout is not None
                assert experiment.stdout.readline().strip() == "submitted"
            gc = console(ws, "gc", "-y", "--keep-runs", "1")
            if k % 2:
                touch(release)
            _, err = experiment.communicate(timeout=240)
        finally:
            if experiment.poll() is None:
                experiment.kill()
                experiment.wait()
        assert gc.returncode == 0, gc.stderr
        assert experiment.returncode == 0, f"round {k}: {err[-3000:]}"
        deleted = {line.split("\t")[0] for line in gc.stdout.splitlines() if "\t" in line}
        if k >= 2:  # garbage since round k-1 ended: gone now (this gc or, in a race, the last)
            old = Step(i=0, variant=1000 + k - 2)
            assert not ws.task_dir("tests.gc.Step", old.__identifier__).exists(), gc.stdout
            assert k % 2 == 0 or old.__identifier__ in deleted, gc.stdout
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
