"""The Hydra side of ``hydra/launcher=batched``: its config schema and a thin Launcher that
groups a launch's jobs and hands each group to a worker process (joblib's loky pool)."""

# No `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence  # noqa: UP035

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.ablate_launcher.batched_launcher.BatchedLauncher"
    n_jobs: int = 2  # worker processes, each training one group at a time
    group_size: int = 8  # trials per stacked model (README, "Throughput")
    # A group's largest hidden size at most this times its smallest (padding costs compute)
    max_padding: float = 1.25
    timeout: Optional[float] = None  # noqa: UP045 - seconds per group; null: none


ConfigStore.instance().store(
    group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="ablate"
)


class BatchedLauncher(Launcher):
    def __init__(
        self, n_jobs: int = 2, group_size: int = 8, max_padding: float = 1.25, timeout: Any = None
    ) -> None:
        if not isinstance(n_jobs, int) or n_jobs <= 0:
            raise ValueError(f"hydra.launcher.n_jobs must be a positive integer, got {n_jobs}")
        if not isinstance(group_size, int) or group_size <= 0:
            raise ValueError(
                f"hydra.launcher.group_size must be a positive integer, got {group_size}"
            )
        if not isinstance(max_padding, int | float) or max_padding < 1:
            raise ValueError(f"hydra.launcher.max_padding must be >= 1, got {max_padding}")
        self.n_jobs = n_jobs
        self.group_size = group_size
        self.max_padding = float(max_padding)
        self.timeout = timeout
        self.config: Optional[DictConfig] = None  # noqa: UP045
        self.hydra_context: Optional[HydraContext] = None  # noqa: UP045
        self.task_function: Optional[TaskFunction] = None  # noqa: UP045

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from joblib import Parallel, delayed

        from ablate.stack.launch import execute_group, group_jobs

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        groups = group_jobs(job_overrides, self.group_size, self.max_padding)
        log.info(
            "Batched launcher: %d jobs in %d groups of up to %d, %d worker(s); sweep output "
            "dir: %s",
            len(job_overrides),
            len(groups),
            self.group_size,
            self.n_jobs,
            sweep_dir,
        )
        for idx, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        singleton_state = Singleton.get_state()
        # One group per worker call; a job's number is its place in the launch, as Hydra's
        # other launchers number them.
        per_group = Parallel(n_jobs=self.n_jobs, backend="loky", timeout=self.timeout)(
            delayed(execute_group)(
                initial_job_idx,
                [job_overrides[k] for k in group],
                group,
                self.hydra_context,
                self.config,
                singleton_state,
            )
            for group in groups
        )
        returns: List[Optional[JobReturn]] = [None] * len(job_overrides)  # noqa: UP006, UP045
        for group, group_returns in zip(groups, per_group, strict=True):
            for k, ret in zip(group, group_returns, strict=True):
                returns[k] = ret
        assert all(isinstance(r, JobReturn) for r in returns)
        return returns  # type: ignore[return-value]
