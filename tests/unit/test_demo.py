"""The README's demonstration, as a real process: the first run of its experiment runs every
task, the second reuses every one, and the lookups find the results."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from ..helpers import PYTHON, REPO_ROOT


def _demo(workspace: Path) -> str:
    env = {**os.environ, "XPMSTORE_WORKSPACE": str(workspace)}
    done = subprocess.run([PYTHON, str(REPO_ROOT / "examples" / "demo.py")], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_demo_runs_then_reuses_and_looks_results_up(tmp_path: Path) -> None:
    out = _demo(tmp_path / "ws")
    assert "first run: 12 task(s) ran, 0 reused" in out
    assert "second run: 0 task(s) ran, 12 reused" in out
    assert "Store.status(ModelLearn(hidden=64, epochs=10)) -> done" in out
    assert "-> absent" in out
    assert re.search(r"Store.get\('[0-9a-f]{10}'\) -> demo.Evaluate done, score 0\.\d{3}", out)
    assert out.count("  computed ") == 1  # the @cache entry: computed once, then read back
    table = out.split("Store.table(Evaluate), best score first ---\n")[1].splitlines()
    assert table[0].split() == ["id", "learned.model.hidden", "learned.epochs", "tag:hidden",
                                "score", "size.weights"]
    rows = [line.split() for line in table[1:7]]
    assert sorted((int(r[1]), int(r[2])) for r in rows) == [
        (hidden, epochs) for hidden in (32, 64, 128) for epochs in (10, 100)]
    scores = [float(r[4]) for r in rows]
    assert scores == sorted(scores, reverse=True) and scores[0] == 0.928  # 128 / (128 + 10)

    again = _demo(tmp_path / "ws")  # a second invocation: everything was done by the first
    assert "first run: 0 task(s) ran, 12 reused" in again
    assert "an earlier run of the demo did the work" in again
    assert "  computed " not in again
