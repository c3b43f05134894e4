"""The trivial task of ``benchmarks/scheduler.py``, once per system: write one small file.

``XWrite`` (xpmstore) and ``EWrite`` (experimaestro) are defined on first access (PEP 562
module ``__getattr__``), so a process that runs one system never imports the other: the
scheduler process, xpmstore's zygote and experimaestro's job processes import only their own
library.  A process that imported xpmstore before this module (xpmstore's zygote) gets
``XWrite`` at import, as from any task module: otherwise each job forked from the zygote would
define the class anew, a cost of this file's laziness, not of running a task.  Both have one
``int`` param and write ``out.txt`` (a few bytes) in the task directory.
No ``from __future__ import annotations`` here: both libraries read the field annotations, which
must be evaluated where the classes are defined (inside the functions).
"""

import sys
from typing import Any

__all__ = ["EWrite", "XWrite"]  # noqa: F822 - made on first access (__getattr__)


def _xpmstore_task() -> type:
    from pathlib import Path
    from typing import Annotated

    import xpmstore

    class XWrite(xpmstore.Task):
        """xpmstore: write ``out.txt``."""

        __qualname__ = "XWrite"
        __module__ = __name__
        __xpmid__ = "bench.scheduler.Write"
        index: xpmstore.Param[int]
        out: Annotated[Path, xpmstore.pathgenerator("out.txt")]

        def execute(self) -> None:
            self.out.write_text(f"{self.index}\n")

    return XWrite


def _experimaestro_task() -> type:
    from pathlib import Path

    import experimaestro

    class EWrite(experimaestro.Task):
        """experimaestro: write ``out.txt``."""

        __qualname__ = "EWrite"
        __module__ = __name__
        __xpmid__ = "bench.scheduler.Write"
        index: experimaestro.Param[int]
        out: experimaestro.Meta[Path] = experimaestro.field(
            default_factory=experimaestro.PathGenerator("out.txt")
        )

        def execute(self) -> None:
            self.out.write_text(f"{self.index}\n")

    return EWrite


_MAKERS = {"XWrite": _xpmstore_task, "EWrite": _experimaestro_task}


def __getattr__(name: str) -> Any:
    maker = _MAKERS.get(name)
    if maker is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = maker()
    globals()[name] = cls
    return cls


if "xpmstore" in sys.modules:  # xpmstore's zygote: define it now (module doc)
    __getattr__("XWrite")
