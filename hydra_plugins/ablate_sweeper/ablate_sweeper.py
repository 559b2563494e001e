"""The Hydra side of ablate's Optuna sweeper: its config schema and a thin Sweeper that hands
the work to :mod:`ablate.search.sweep`."""

# No `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations; OmegaConf needs typing's Optional/Dict.
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Optional  # noqa: UP035

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


@dataclass
class AblateSweeperConf:
    _target_: str = "hydra_plugins.ablate_sweeper.ablate_sweeper.AblateSweeper"
    n_trials: int = 10  # per study, in total: a rerun runs only what is missing
    n_jobs: int = 1  # trials run at once (with a parallel launcher)
    batch_size: Optional[int] = None  # noqa: UP045 - trials per launch; null: see auto_batch_size
    sampler: Dict[str, Any] = field(default_factory=lambda: {"name": "random", "seed": 0})  # noqa: UP006
    pruner: Dict[str, Any] = field(default_factory=lambda: {"name": "none"})  # noqa: UP006
    storage: Optional[str] = None  # noqa: UP045 - null: sqlite optuna.db beside mlflow.db
    study_name: Optional[str] = None  # noqa: UP045 - null: "<study>/<cell>/<task>[/...]"
    params: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006 - the search space
    grid: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006 - a study per combination
    max_failure_rate: float = 0.5
    heartbeat_interval: float = 30.0
    grace_period: float = 120.0


ConfigStore.instance().store(
    group="hydra/sweeper", name="ablate", node=AblateSweeperConf, provider="ablate"
)


class AblateSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        super().__init__()
        self.settings = settings
        self.runner: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        from ablate.errors import AblateError
        from ablate.search.sweep import Sweep, SweepSettings
        from ablate.train.app import check

        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        plain = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in self.settings.items()
        }
        try:
            self.runner = Sweep(SweepSettings(**plain), config, hydra_context, launcher, check)
        except AblateError as err:
            _fail(err)

    def sweep(self, arguments: list[str]) -> Any:  # type: ignore[override]
        from ablate.errors import AblateError

        try:
            return self.runner.run(arguments)
        except AblateError as err:
            _fail(err)


def _fail(err: Exception) -> None:
    print(f"ablate train: error: {err}", file=sys.stderr)
    raise SystemExit(1)
