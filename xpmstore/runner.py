"""``python -m xpmstore.runner TASKDIR [ENVIRON_JSON]``, the command of the job scripts written
before the modules moved: runs :mod:`xpmstore.scheduler.runner` (which new scripts name)."""

from __future__ import annotations

import sys

__all__: list[str] = []

if __name__ == "__main__":
    from xpmstore.scheduler import runner

    sys.exit(runner.main())
