"""Building a task from its config node: the name picks the class, the other keys are its
options, checked against the class's signature so a typo fails with one clear line."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping

from ablate.tasks.arith import Arith
from ablate.tasks.base import Task, TaskDataError
from ablate.tasks.counting import Counting
from ablate.tasks.digits import Digits
from ablate.tasks.framewise import Framewise
from ablate.tasks.jsb import JSB
from ablate.tasks.ptb import PTB
from ablate.tasks.text import Text
from ablate.tasks.vowels import Vowels
from ablate.tasks.xml import XML

TASKS: dict[str, type[Task]] = {
    cls.name: cls for cls in (JSB, Vowels, Digits, Arith, XML, Text, PTB, Framewise, Counting)
}

# Passed by build_task, not by the config.
_INJECTED = ("cache_dir",)


def task_options(cls: type[Task]) -> dict[str, object]:
    """A task class's config options and their defaults."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {
        p.name: p.default
        for p in parameters
        if p.kind is p.KEYWORD_ONLY and p.name not in _INJECTED
    }


def task_class(cfg: Mapping[str, object]) -> tuple[type[Task], dict[str, object]]:
    """The task class ``cfg["name"]`` and its checked options, without building any data."""
    options = dict(cfg)
    name = options.pop("name", None)
    if name not in TASKS:
        raise TaskDataError(f"task.name: unknown task {name!r}; valid: {', '.join(TASKS)}")
    cls = TASKS[str(name)]
    valid = task_options(cls)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TaskDataError(
            f"task.{unknown[0]}: not an option of task {name!r}; valid: {', '.join(valid)}"
        )
    hints = typing.get_type_hints(cls.__init__)
    for key, value in options.items():
        if not (key == "data_seed" and value is None):
            _check_type(key, value, hints[key])
    seed = options.get("data_seed")
    if isinstance(seed, int) and seed < 0:  # numpy's generators refuse it mid-build
        raise TaskDataError(f"task.data_seed: must be a non-negative integer or null, got {seed}")
    return cls, options


def build_task(cfg: Mapping[str, object], *, seed: int, cache_dir: str | None = None) -> Task:
    """The task ``cfg["name"]`` with the other keys as options. ``data_seed: null`` takes the
    run's ``seed`` (by default a task's data and split are fixed, the same for every run)."""
    cls, options = task_class(cfg)
    if "data_seed" in options and options["data_seed"] is None:
        options["data_seed"] = seed
    if "cache_dir" in inspect.signature(cls.__init__).parameters:
        options["cache_dir"] = cache_dir
    return cls(**options)


def _check_type(key: str, value: object, annotation: object) -> None:
    """Options are plain config values: int, float (an int will do), str, or None where the
    default allows it."""
    is_union = isinstance(annotation, types.UnionType)
    allowed = typing.get_args(annotation) if is_union else (annotation,)
    if not any(_is_a(value, kind) for kind in allowed):
        names = " or ".join(
            "None" if k is type(None) else getattr(k, "__name__", str(k)) for k in allowed
        )
        raise TaskDataError(f"task.{key}: expected {names}, got {value!r}")


def _is_a(value: object, kind: object) -> bool:
    if isinstance(value, bool):  # no number here, though Python says it is one
        return kind is bool
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(kind, type) and isinstance(value, kind)
