"""The tasks of the studies: data, batching, loss and metrics behind one interface."""

from ablate.tasks.base import Batch, Head, Pattern, Task, TaskDataError
from ablate.tasks.registry import TASKS, build_task, task_class, task_options

__all__ = [
    "TASKS",
    "Batch",
    "Head",
    "Pattern",
    "Task",
    "TaskDataError",
    "build_task",
    "task_class",
    "task_options",
]
