"""An experiment whose progress stream breaks (its reader went away) still runs to the end."""

from __future__ import annotations

import os

from xpmstore import experiment
from xpmstore.launchers import LocalLauncher
from xpmstore.scheduler.progress import Progress
from xpmstore.store.workspace import Workspace

from ..schedtasks import Counted
from ..storehelpers import count_of


def test_a_broken_progress_stream_never_stops_the_experiment(ws: Workspace,
                                                             counters: str) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with BrokenPipeError
    stream = os.fdopen(write_end, "w")
    try:
        with experiment(ws, "broken", launcher=LocalLauncher(workers=2),
                        progress=Progress("broken", stream=stream, live=False)):
            for n in range(5):
                Counted(n=n, counters=counters).submit()
    finally:
        try:
            stream.close()
        except OSError:
            pass
    assert [count_of(counters, f"counted-{n}") for n in range(5)] == [1] * 5
