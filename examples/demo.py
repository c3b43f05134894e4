"""The demonstration: a few configs, their identifiers and their params.json identity.

Run it with ``scripts/demo`` (the README's first command).  The workspace is
``$XPMSTORE_WORKSPACE`` (``./demo-workspace`` by default).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

from xpmstore import Config, Constant, Meta, Param, Store, Task, cache, field, load, pathgenerator
from xpmstore.identifier import from_params
from xpmstore.serialize import params_of, to_json_bytes


class Model(Config):
    """A model family with one hyper-parameter."""

    __xpmid__ = "demo.Model"  # classes of a script (__main__) name themselves

    hidden: Param[int] = 128
    layers: Param[list[int]] = field(default_factory=lambda: [64, 64])


class ModelLearn(Task):
    """Learn a model: its parameters go to a generated path inside its task directory."""

    __xpmid__ = "demo.ModelLearn"

    model: Param[Model]
    epochs: Param[int] = 100
    lr: Param[float] = 1e-3
    version: Constant[int] = 1
    verbose: Meta[bool] = False
    parameters: Annotated[Path, pathgenerator("parameters.pth")]

    def execute(self) -> None:
        self.parameters.write_text(f"{self.model.hidden} {self.epochs}\n")


class Vocabulary(Config):
    """The sorted distinct words of a text, cached in the workspace."""

    __xpmid__ = "demo.Vocabulary"
    text: Param[str]

    @cache("words.txt")
    def words(self, path: Path) -> list[str]:
        if path.is_file():
            print(f"  reused   {path}")
            return path.read_text().split()
        print(f"  computed {path}")
        words = sorted(set(self.text.split()))
        path.write_text(" ".join(words))
        return words


class Evaluate(Task):
    """Evaluate what a ModelLearn produced."""

    __xpmid__ = "demo.Evaluate"

    learned: Param[ModelLearn]


def main() -> None:
    workspace = Path(os.environ.get("XPMSTORE_WORKSPACE", "demo-workspace"))
    workspace.mkdir(parents=True, exist_ok=True)
    small = ModelLearn(model=Model(hidden=64), epochs=10).tag("size", "small")
    default = ModelLearn(model=Model())
    same_as_default = ModelLearn(model=Model(hidden=128), epochs=100, verbose=True)
    evaluation = Evaluate(learned=small)

    print(f"workspace: {workspace.resolve()}")
    for label, config in [("small", small), ("default", default),
                          ("default, spelled out, verbose", same_as_default),
                          ("evaluate(small)", evaluation)]:
        print(f"{config.__identifier__}  {type(config).__name__:<10} {label}")
    assert default.__identifier__ == same_as_default.__identifier__, "defaults are left out"

    document = params_of(evaluation)
    print("\nidentity section of Evaluate's params.json:")
    print(json.dumps(document["identity"], indent=1))
    assert from_params(document["identity"]) == evaluation.__identifier__
    target = workspace / "demo-params.json"
    target.write_bytes(to_json_bytes(document))
    again = load(target)
    print(f"\nreloaded from {target}: {again!r}")
    print(f"same identifier after load: {again.__identifier__ == evaluation.__identifier__}")

    print("\n@cache: the first call computes (on a first run of the demo), the next ones reuse")
    vocabulary = Vocabulary(text="the cat saw the dog and the dog saw the cat")
    for _ in range(2):
        print(f"  words: {vocabulary.words()}")

    store = Store(workspace)
    record = store.get(_entry_id(vocabulary)[:8])
    print(f"\nStore(ws).get(prefix) -> {record.kind} {record.name} {record.status},"
          f" {record.size} bytes at {record.path}")
    print(f"objects in the store: {len(store.records())}")


def _entry_id(config: Config) -> str:
    from xpmstore.identifier import cache_identifier

    return cache_identifier(config.__identifier__, "words.txt")


if __name__ == "__main__":
    main()
