"""Which packages the distribution holds, found rather than listed, so that no subpackage (nor a
folder of data files) can be left out of the wheel: every folder under ``xpmstore/``, and every
folder under ``cli/`` installed as ``xpmstore_cli`` (the ``package-dir`` of pyproject.toml maps
that name to the folder).  Everything else is in pyproject.toml; pyproject.toml alone cannot
rename a discovered package, hence this file.

Folders count as packages (namespace discovery), so that data folders such as ``static/`` are
shipped by the ``package-data`` globs of pyproject.toml without warnings.
"""

from setuptools import find_namespace_packages, setup

_SKIP = ["*.__pycache__", "*.__pycache__.*"]


def _packages(folder: str, installed_as: str) -> list[str]:
    """Every package under ``folder``, named as installed."""
    found = find_namespace_packages(include=[folder, f"{folder}.*"], exclude=_SKIP)
    return [installed_as + name[len(folder):] for name in found]


setup(packages=[*_packages("xpmstore", "xpmstore"), *_packages("cli", "xpmstore_cli")])
