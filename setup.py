"""Which packages the distribution holds, found rather than listed, so that no subpackage (nor a
folder of data files) can be left out of the wheel: every folder under ``xpmstore/``, and every
folder under ``cli/`` installed as ``xpmstore_cli`` (the ``package-dir`` of pyproject.toml maps
that name to the folder).  Everything else is in pyproject.toml; pyproject.toml alone cannot
rename a discovered package, hence this file.

Folders count as packages (namespace discovery), so that data folders such as ``static/`` are
shipped by the ``package-data`` globs of pyproject.toml without warnings.

The packages are built into emptied folders: setuptools keeps in ``build/lib`` what an earlier
build left there, so a wheel built in a used tree would ship modules moved or deleted since.
"""

import os
import shutil

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

_INSTALLED = ("xpmstore", "xpmstore_cli")

_SKIP = ["*.__pycache__", "*.__pycache__.*"]


def _packages(folder: str, installed_as: str) -> list[str]:
    """Every package under ``folder``, named as installed."""
    found = find_namespace_packages(include=[folder, f"{folder}.*"], exclude=_SKIP)
    return [installed_as + name[len(folder):] for name in found]


class FreshBuildPy(build_py):
    """``build_py`` into emptied package folders (see the module doc)."""

    def run(self) -> None:
        for name in _INSTALLED:
            shutil.rmtree(os.path.join(self.build_lib, name), ignore_errors=True)
        super().run()


setup(packages=[*_packages("xpmstore", "xpmstore"), *_packages("cli", "xpmstore_cli")],
      cmdclass={"build_py": FreshBuildPy})
