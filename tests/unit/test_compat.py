"""What outlives the move of the modules into layered subpackages (docs/architecture.md): the
public names of the façade, and the old paths that users, job scripts and pickles name."""

from __future__ import annotations

import types

from ..helpers import run_python


def test_the_facade_names_stay_the_public_objects_once_their_modules_are_imported():
    code = ("import inspect, xpmstore, xpmstore.scheduler.cache, xpmstore.scheduler.experiment; "
            "print(inspect.isfunction(xpmstore.cache), inspect.isclass(xpmstore.experiment))")
    result = run_python(["-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_no_public_name_is_a_module():
    import xpmstore

    for name in xpmstore.__all__:
        assert not isinstance(getattr(xpmstore, name), types.ModuleType), name
