"""build_task and the conf/task YAMLs that document every task's options."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ablate.tasks import TASKS, TaskDataError, build_task, task_options
from ablate.tasks.registry import _check_type

CONF = Path(__file__).resolve().parents[2] / "conf" / "task"


def test_every_task_has_a_yaml_with_every_option_and_its_default():
    # Besides one file per task, presets of a task start from its file (anbn: counting).
    presets = {p.stem for p in CONF.glob("*.yaml")} - set(TASKS)
    for preset in presets:
        defaults = yaml.safe_load((CONF / f"{preset}.yaml").read_text())["defaults"]
        assert defaults[0] in TASKS, f"{preset}.yaml is neither a task nor a preset of one"
    assert set(TASKS) <= {p.stem for p in CONF.glob("*.yaml")}
    for name, cls in TASKS.items():
        text = (CONF / f"{name}.yaml").read_text()
        assert text.startswith("#"), f"{name}.yaml: document the task in a leading comment"
        cfg = yaml.safe_load(text)
        assert cfg.pop("name") == name
        assert cfg == task_options(cls), name


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(TaskDataError, match=r"task.name: unknown task 'timit'; valid: jsb, vowels"):
        build_task({"name": "timit"}, seed=0)


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(
        TaskDataError,
        match=r"task.digit: not an option of task 'arith'; valid: train_examples, .*data_seed",
    ):
        build_task({"name": "arith", "digit": 3}, seed=0)
    with pytest.raises(TaskDataError, match="task.cache_dir: not an option"):
        build_task({"name": "jsb", "cache_dir": "/tmp"}, seed=0)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"name": "digits", "layout": "columns"}, "task.layout: 'columns' is not one of rows"),
        ({"name": "digits", "test_fraction": 0.85}, "empty split"),
        ({"name": "counting", "n_train": "5x"}, "task.n_train: expected int, got '5x'"),
        ({"name": "counting", "threshold": True}, "task.threshold: expected float, got True"),
        ({"name": "jsb", "max_chorales": 2.5}, "task.max_chorales: expected int or None"),
        ({"name": "text", "bptt": 0}, "task.bptt: must be positive"),
        ({"name": "counting", "n_max": 10}, "task.n_max: must be at least 2 x n_train"),
        ({"name": "counting", "language": "dyck"}, "task.language: 'dyck' is not one of"),
        ({"name": "counting", "threshold": 1.5}, "task.threshold"),
        ({"name": "arith", "train_examples": 0}, "task.train_examples: must be positive"),
        ({"name": "arith", "max_digits": 19}, "task.max_digits: must lie in 1..18"),
        ({"name": "jsb", "max_chorales": 2}, "task.max_chorales"),
    ],
)
def test_invalid_values(cfg, message, tmp_path):
    with pytest.raises(TaskDataError) as err:
        build_task(cfg, seed=0, cache_dir=str(tmp_path))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_ints_pass_for_floats_and_null_for_optionals():
    _check_type("threshold", 1, float)
    _check_type("max_chorales", None, int | None)
    with pytest.raises(TaskDataError, match="expected int, got None"):
        _check_type("n_train", None, int)


def test_task_data_error_is_a_value_error():
    assert issubclass(TaskDataError, ValueError)
