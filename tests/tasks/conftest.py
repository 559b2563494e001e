"""Fixtures for the task tests: small built tasks (built once per session) and the files
of the tasks that read user data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ablate.tasks import Task, build_task
from tests.tasks.helpers import SMALL, TinyModel, write_framewise, write_ptb


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and do not fight other processes for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {"ptb": write_ptb(root / "ptb"), "framewise": write_framewise(root / "framewise")}


@pytest.fixture(scope="session")
def make_task(cache_dir: Path, data_dirs: dict[str, Path]) -> Callable[..., Task]:
    """Builds a task with the small options (plus overrides); one build per distinct call."""
    built: dict[tuple, Task] = {}

    def make(name: str, **overrides: object) -> Task:
        options = {**SMALL[name], **overrides}
        if name in data_dirs:
            options.setdefault("data_dir", str(data_dirs[name]))
        key = (name, tuple(sorted(options.items())))
        if key not in built:
            built[key] = build_task({"name": name, **options}, seed=0, cache_dir=str(cache_dir))
        return built[key]

    return make


@pytest.fixture
def tiny_model() -> Callable[[Task], TinyModel]:
    def make(task: Task) -> TinyModel:
        torch.manual_seed(0)
        return TinyModel(task)

    return make
