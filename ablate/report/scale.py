"""Whether a report's runs are its protocol in full, so that nobody reads a pipeline check as
evidence: a *smoke* experiment (one whose overlay starts from another experiment and plans
fewer trials or epochs, e.g. greff2017_smoke from greff2017) is labelled with what it shrinks;
an overlay that only extends another (modern from jozefowicz2015) is a protocol of its own; a
full experiment whose sweep has not yet run all its trials is labelled *partial*.

The planned scale is read from the experiment overlays (trials per study, epochs, minibatches
per epoch, the grid of studies); what ran, from the runs' own parameters in MLflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import yaml

from ablate.paths import experiments_dir

# Job states that have used up their trial (a running or killed job has not).
DONE = ("finished", "pruned", "diverged", "failed")


@dataclass(frozen=True)
class Scale:
    label: str | None  # "at smoke scale", "partial", or None: the protocol in full
    detail: str  # what was run against what the protocol plans
    partial_search: bool = False  # the label counts a search's trials, not the whole protocol

    def prefix(self, verdict: str, from_search: bool = True) -> str:
        """A smoke label goes on every verdict; a partial search's only on those read off
        the search (a finished counting grid beside it is evidence of its own)."""
        if self.label is None or (self.partial_search and not from_search):
            return verdict
        return f"{self.label}: {verdict}"


def _overlay(name: str) -> dict[str, Any] | None:
    path = experiments_dir() / f"{name}.yaml"
    if not path.is_file():
        return None
    loaded = yaml.safe_load(path.read_text())
    return loaded if isinstance(loaded, dict) else None


def _get(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _parent(config: dict[str, Any]) -> str | None:
    """The experiment an overlay starts from (its first default that is an experiment)."""
    for entry in config.get("defaults") or []:
        if isinstance(entry, str) and entry != "_self_" and _overlay(entry) is not None:
            return entry
    return None


def _smaller(mine: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Fewer trials or epochs, or minibatches capped where they were not (or more tightly)."""

    def less(key: str) -> bool:
        return mine.get(key) is not None and theirs.get(key) is not None and mine[key] < theirs[key]

    capped = mine.get("trainer.max_batches") is not None
    return (
        less("hydra.sweeper.n_trials")
        or less("trainer.max_epochs")
        or (capped and (theirs.get("trainer.max_batches") is None or less("trainer.max_batches")))
    )


def _shrinks(name: str) -> str | None:
    """The experiment that ``name`` is a smaller version of, if any."""
    config = _overlay(name)
    parent = _parent(config) if config else None
    if parent is None or not _smaller(planned(name), planned(parent)):
        return None
    return parent


def _grid_size(config: dict[str, Any]) -> int:
    size = 1
    for values in (_get(config, "hydra.sweeper.grid") or {}).values():
        size *= len(values) if isinstance(values, list) else len(str(values).split(","))
    return size


def planned(name: str) -> dict[str, Any]:
    """An experiment's planned scale, its own settings over those of what it starts from."""
    chain, config = [], _overlay(name)
    while config is not None:
        chain.append(config)
        parent = _parent(config)
        config = _overlay(parent) if parent else None
    plan: dict[str, Any] = {}
    params: dict[str, Any] = {}  # a plain multirun's sweep, each overlay's keys over its parent's
    for config in reversed(chain):
        for key in ("hydra.sweeper.n_trials", "trainer.max_epochs", "trainer.max_batches"):
            value = _get(config, key)
            if value is not None:
                plan[key] = value
        if _get(config, "hydra.sweeper.grid"):
            plan["studies"] = _grid_size(config)
        params.update(_get(config, "hydra.sweeper.params") or {})
    grid = _choices(params)
    if grid and "hydra.sweeper.n_trials" not in plan:
        plan["grid"] = grid
    return plan


def _choices(params: dict[str, Any]) -> dict[str, list[str]] | None:
    """A basic sweep's comma lists as choices per key; None for a search space (ranges, or
    Hydra's sweep functions such as range(...), which this does not expand)."""
    grid = {}
    for key, values in params.items():
        if isinstance(values, dict | list) or "(" in str(values):
            return None
        grid[key] = [v.strip() for v in str(values).split(",")]
    return grid


def _largest(jobs: pd.DataFrame, column: str) -> float:
    values = jobs[column].dropna() if column in jobs else pd.Series(dtype=float)
    return float(values.max()) if len(values) else math.nan


def measure(experiment: str, jobs: pd.DataFrame) -> Scale:
    """The scale of ``jobs``, the runs of ``experiment`` (an experiments/NAME.yaml, else taken
    as its own protocol)."""
    config = _overlay(experiment)
    if config is None:
        return Scale(None, "")
    trials = (
        jobs[jobs["study"] != ""].groupby("study")["state"].apply(lambda s: int(s.isin(DONE).sum()))
    )
    full = _shrinks(experiment)
    if full is not None:
        plan = planned(full)
        parts = []
        if "hydra.sweeper.n_trials" in plan and len(trials):
            parts.append(
                f"{int(trials.max())} of {plan['hydra.sweeper.n_trials']} trials per study"
            )
        epochs = _largest(jobs, "trainer.max_epochs")
        if "trainer.max_epochs" in plan and epochs < plan["trainer.max_epochs"]:
            parts.append(f"at most {epochs:g} of {plan['trainer.max_epochs']} epochs")
        batches = _largest(jobs, "trainer.max_batches")
        if not math.isnan(batches) and plan.get("trainer.max_batches") is None:
            parts.append(f"at most {batches:g} minibatches per epoch")
        shrunk = "; ".join(parts) or "a smaller setting"
        return Scale(
            "at smoke scale",
            f"`{experiment}` shrinks `{full}` ({shrunk}): a check of the pipeline, not evidence "
            "for or against the papers' findings",
        )
    plan = planned(experiment)
    n_trials, studies = plan.get("hydra.sweeper.n_trials"), plan.get("studies", 1)
    if n_trials is None:
        return Scale(None, "")
    done = int(trials.clip(upper=n_trials).sum()) if len(trials) else 0  # no search run yet
    target = int(n_trials) * int(studies)
    if done < target:
        return Scale(
            f"partial ({done:,} of {target:,} trials)",
            f"`{experiment}`'s sweep has run {done:,} of its {target:,} trials ({n_trials} per "
            f"study, {studies} studies); the verdicts read off the search are on what has run "
            "so far",
            partial_search=True,
        )
    return Scale(None, f"`{experiment}` in full: {target:,} trials ({n_trials} per study)")
