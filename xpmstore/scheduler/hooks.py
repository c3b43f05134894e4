"""SubmitHooks: change a job's environment or launcher options when it is submitted.

```python
class needs_java(SubmitHook):
    def __init__(self, version: int):
        self.version = version

    def spec(self):
        return self.version                      # hooks with equal (type, spec) apply once

    def process(self, job, launcher):
        job.environ["JAVA_HOME"] = f"/opt/java{self.version}"

@needs_java(11)                                  # as a class decorator...
class IndexCollection(Config): ...

task.submit(hooks=[needs_java(17)])              # ...or per submission
```

``submit_hook_decorator(hook)`` is the same class decorator spelled as in experimaestro (whose
documentation imports it): ``@submit_hook_decorator(needs_java(11))``.

Hooks are gathered from the task's config tree without crossing into other tasks, deduplicated
by ``(type, spec())``, and applied once per job, before it is launched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.config import Config, Task, iter_configs
from ..errors import ConfigTypeError

__all__ = ["Job", "SubmitHook", "gather_hooks", "submit_hook_decorator"]


@dataclass
class Job:
    """What a SubmitHook may change: ``environ`` (added on top of the inherited environment) and
    ``launcher_options``; ``taskdir`` and ``config`` are for reading."""

    config: Task
    taskdir: Path
    environ: dict[str, str] = field(default_factory=dict)
    launcher_options: dict[str, Any] = field(default_factory=dict)


class SubmitHook:
    """Base class of submit hooks; subclasses define :meth:`spec` and :meth:`process`."""

    def spec(self) -> Any:
        """A hashable value: two hooks of one type with equal specs are applied once."""
        return ()

    def process(self, job: Job, launcher: Any) -> None:
        """Change ``job`` (its ``environ``, its ``launcher_options``) for ``launcher``."""

    def __call__(self, cls: type) -> type:
        """Use the hook as a class decorator of a Config or Task (ConfigTypeError otherwise)."""
        if not (isinstance(cls, type) and issubclass(cls, Config)):
            raise ConfigTypeError(
                f"{type(self).__qualname__}(...) decorates a Config or Task class, not"
                f" {_what(cls)}")
        own = list(cls.__dict__.get("__xpm_hooks__", ()))
        own.append(self)
        type.__setattr__(cls, "__xpm_hooks__", tuple(own))
        return cls


def submit_hook_decorator(hook: SubmitHook) -> Callable[[type], type]:
    """The class decorator that attaches ``hook`` to a Config or Task class (what applying the
    hook itself does: ``@submit_hook_decorator(needs_java(11))`` is ``@needs_java(11)``).

    Raises ConfigTypeError when ``hook`` is not a SubmitHook instance (a SubmitHook class is
    told to be instantiated first).
    """
    if isinstance(hook, type) and issubclass(hook, SubmitHook):
        raise ConfigTypeError(f"submit_hook_decorator() takes a hook, not the class"
                              f" {hook.__qualname__}: instantiate it ({hook.__qualname__}(...))")
    if not isinstance(hook, SubmitHook):
        raise ConfigTypeError(f"submit_hook_decorator() takes a SubmitHook, got {_what(hook)}")
    return lambda cls: SubmitHook.__call__(hook, cls)


def _what(value: object) -> str:
    if isinstance(value, type):
        return f"the class {value.__qualname__}"
    return type(value).__qualname__


def _class_hooks(cls: type) -> list[SubmitHook]:
    found: list[SubmitHook] = []
    for klass in reversed(cls.__mro__):
        found.extend(klass.__dict__.get("__xpm_hooks__", ()))
    return found


def gather_hooks(task: Task, extra: Iterable[SubmitHook] = ()) -> list[SubmitHook]:
    """The hooks of ``task``: its class's, its sub-configs' (not entering other tasks) and
    ``extra``, deduplicated by (type, spec()), in that order."""
    hooks = _class_hooks(type(task))
    seen: set[int] = {id(task)}
    stack: list[Config] = [c for _, c in iter_configs(task)]
    while stack:
        current = stack.pop()
        if id(current) in seen or isinstance(current, Task):
            continue
        seen.add(id(current))
        hooks.extend(_class_hooks(type(current)))
        stack.extend(c for _, c in iter_configs(current))
    hooks.extend(extra)
    unique: dict[tuple[type, Any], SubmitHook] = {}
    for hook in hooks:
        unique.setdefault((type(hook), hook.spec()), hook)
    return list(unique.values())
