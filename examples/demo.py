"""The demonstration: a small experiment run twice (the second run reuses everything), then
lookups of its results with ``Store``, a ``@cache`` entry computed once, and the results as a
table (``Store.table``).

Run it with ``scripts/demo`` (the README's first command).  The workspace is
``$XPMSTORE_WORKSPACE`` (``./demo-workspace`` by default); delete it to see the tasks run again.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

from xpmstore import (
    Config,
    Constant,
    Meta,
    Param,
    Store,
    Task,
    cache,
    experiment,
    load,
    pathgenerator,
    progress,
)
from xpmstore.launchers import LocalLauncher
from xpmstore.scheduler.progress import Progress


class Model(Config):
    """A model family with one hyper-parameter."""

    __xpmid__ = "demo.Model"  # classes of a script (__main__) name themselves

    hidden: Param[int] = 128


class ModelLearn(Task):
    """Learn a model: its parameters go to a generated path inside its task directory."""

    __xpmid__ = "demo.ModelLearn"

    model: Param[Model]
    epochs: Param[int] = 100
    version: Constant[int] = 1
    verbose: Meta[bool] = False  # not part of the identity
    parameters: Annotated[Path, pathgenerator("parameters.pth")]

    def execute(self) -> None:
        print(f"learning hidden={self.model.hidden} for {self.epochs} epochs")  # -> its stdout
        for _ in progress.track(range(self.epochs), desc="epoch"):  # `xpmstore jobs` shows it
            pass
        self.parameters.write_text(f"{self.model.hidden} {self.epochs}\n")


class Evaluate(Task):
    """Evaluate what a ModelLearn produced; the score goes to ``score.txt`` and, with the
    model's size, to ``metrics.json`` (what ``Store.table`` reads)."""

    __xpmid__ = "demo.Evaluate"

    learned: Param[ModelLearn]

    def execute(self) -> None:
        hidden, epochs = map(int, Path(self.learned.parameters).read_text().split())
        score = round(hidden / (hidden + epochs), 3)
        Path("score.txt").write_text(f"{score:.3f}\n")  # cwd: the task directory
        metrics = {"score": score, "size": {"weights": hidden * 10}}  # nested: size.weights
        Path("metrics.json").write_text(json.dumps(metrics))


class Vocabulary(Config):
    """The sorted distinct words of a text, cached in the workspace."""

    __xpmid__ = "demo.Vocabulary"
    text: Param[str]

    @cache("words.txt")
    def words(self, path: Path) -> list[str]:
        if path.is_file():
            return path.read_text().split()
        print(f"  computed {path}")
        words = sorted(set(self.text.split()))
        path.write_text(" ".join(words))
        return words


def plan() -> list[Evaluate]:
    """Six learners (3 sizes × 2 lengths), each evaluated: 12 tasks."""
    return [Evaluate(learned=ModelLearn(model=Model(hidden=hidden), epochs=epochs)
                     .tag("hidden", hidden))
            for hidden in (32, 64, 128) for epochs in (10, 100)]


def run(workspace: Path, label: str) -> None:
    """One run of the experiment; prints what ran and what was reused."""
    print(f"\n--- {label} run of the experiment 'demo' ---", flush=True)
    with experiment(workspace, "demo", launcher=LocalLauncher(workers=2),
                    progress=Progress("demo", stream=sys.stdout)) as xp:
        for evaluation in plan():
            evaluation.submit()
    reasons = [job.reason for job in xp.order]
    ran = sum(r.startswith("ran:") for r in reasons)
    reused = sum(r.startswith("reused:") for r in reasons)
    print(f"{label} run: {ran} task(s) ran, {reused} reused", flush=True)
    if label == "first" and not ran:
        print(f"  (an earlier run of the demo did the work: delete {workspace} to see it run)")


def main() -> None:
    workspace = Path(os.environ.get("XPMSTORE_WORKSPACE", "demo-workspace")).resolve()
    print(f"workspace: {workspace}")
    small = ModelLearn(model=Model(hidden=64), epochs=10)
    print(f"ModelLearn(hidden=64, epochs=10) is {small.__identifier__}")
    print("  (the same identifier on every machine: blake3 of its parameters; `verbose` is Meta"
          " and left out)")
    assert small.__identifier__ == ModelLearn(model=Model(hidden=64), epochs=10,
                                              verbose=True).__identifier__

    run(workspace, "first")
    run(workspace, "second")

    print("\n--- looking results up without running anything ---")
    store = Store(workspace)
    print(f"Store.status(ModelLearn(hidden=64, epochs=10)) -> {store.status(small)}")
    print(f"Store.status(ModelLearn(hidden=999))           -> "
          f"{store.status(ModelLearn(model=Model(hidden=999)))}")
    learned = store.find(ModelLearn, model__hidden=64)
    print(f"Store.find(ModelLearn, model__hidden=64) -> {len(learned)} record(s):")
    for record in learned:
        print(f"  {record.identifier[:12]} epochs={load(record.path).epochs:<4} at {record.path}")
    evaluation = plan()[0]
    record = store.get(evaluation.__identifier__[:10])
    score = (record.path / "score.txt").read_text().strip()
    print(f"Store.get('{evaluation.__identifier__[:10]}') -> {record.name} {record.status},"
          f" score {score}")

    print("\n--- @cache: computed once, then read back ---")
    vocabulary = Vocabulary(text="the cat saw the dog and the dog saw the cat")
    for _ in range(2):
        print(f"  words: {vocabulary.words()}")

    print("\n--- the results as a table: Store.table(Evaluate), best score first ---")
    rows = sorted(store.table(Evaluate, metrics="metrics.json"), key=lambda r: -r["score"])
    print_table(rows)
    print("  (pandas.DataFrame(rows) takes them as they are; from the shell:"
          " xpmstore table examples.demo:Evaluate --sort -score)")


def print_table(rows: list[dict[str, object]]) -> None:
    """``rows`` as aligned columns, identifiers shortened."""
    headers = list(rows[0])
    cells = [[str(row[h])[:12] if h == "id" else str(row[h]) for h in headers] for row in rows]
    widths = [max(len(h), *(len(line[i]) for line in cells)) for i, h in enumerate(headers)]
    for line in [headers, *cells]:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
