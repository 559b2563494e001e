"""``ablate train``: one Hydra job = one cell on one task, tracked as one MLflow run.

Everything that can be wrong with the config or the data is checked before the first write
to the tracking store, so a refused job leaves no half-made run behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ablate.cells import CellSpec
from ablate.errors import AblateError
from ablate.model import ModelConfig, SequenceModel, count_parameters
from ablate.paths import config_dir
from ablate.search import components
from ablate.search.trial import JobOutcome, Pruned, TrialReporter
from ablate.tasks import Task, build_task, task_class
from ablate.tracking import (
    PARENT_RUN_ENV,
    TrackedRun,
    ensure_experiment,
    flatten,
    git_commit,
    tracking_uri,
)
from ablate.train.checkpoint import Checkpoint
from ablate.train.curves import plot_learning_curve
from ablate.train.loop import Diverged, EpochRecord, Trainer, TrainerConfig, TrainResult
from ablate.train.memory import check_fits
from ablate.train.optim import OptimConfig

log = logging.getLogger("ablate")

# Keys that change where or how a job reports, never its numbers.
_NOT_FINGERPRINTED = (
    "tracking",
    "sweep",
    "threads",
    "trainer.progress",
    "trainer.checkpoint",
    "trainer.resume",
)


@dataclass(frozen=True)
class Job:
    """A validated job: everything built, nothing written yet."""

    spec: CellSpec
    task: Task
    model: SequenceModel
    trainer: Trainer
    config: dict[str, Any]
    fingerprint: str
    job_dir: Path


def fingerprint(config: dict[str, Any]) -> str:
    flat = flatten(config)
    kept = {
        k: v
        for k, v in flat.items()
        if not any(k == p or k.startswith(p + ".") for p in _NOT_FINGERPRINTED)
    }
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AblateError(f"device: unknown device {name!r} (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AblateError(f"device={name}: CUDA is not available on this machine")
    return device


def _threads(cfg: DictConfig) -> int | None:
    """One thread per job when a parallel launcher runs several jobs side by side."""
    if cfg.threads is not None:
        if int(cfg.threads) <= 0:
            raise AblateError(f"threads must be a positive integer or null, got {cfg.threads}")
        return int(cfg.threads)
    if HydraConfig.initialized():
        target = str(OmegaConf.select(HydraConfig.get(), "launcher._target_", default=""))
        if any(pool in target.lower() for pool in ("joblib", "batched")):
            return 1
    return None


@dataclass(frozen=True)
class Settings:
    """A job's config, checked: everything but the data and the weights."""

    spec: CellSpec
    model: ModelConfig
    optim: OptimConfig
    trainer: TrainerConfig
    device: torch.device
    seed: int


# numpy's generators take non-negative seeds, torch's manual_seed at most 64 bits.
_SEED_LIMIT = 2**64


def check(config: dict[str, Any]) -> Settings:
    """Refuse a bad config in one line before anything is built or written."""
    seed = config.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise AblateError(f"seed must be an integer, got {seed!r}")
    if not 0 <= seed < _SEED_LIMIT:
        raise AblateError(f"seed must be a non-negative integer below 2**64, got {seed}")
    task_class(config["task"])
    if not isinstance(config.get("cell"), dict):
        raise AblateError(f"cell spec file {_group_file('cell')!r} must hold a mapping of fields")
    return Settings(
        spec=CellSpec.from_dict(config["cell"]),
        model=ModelConfig(**config["model"]),
        optim=OptimConfig.from_mapping(config["optim"]),
        trainer=TrainerConfig(**{k: v for k, v in config["trainer"].items() if k != "resume"}),
        device=_device(str(config["device"])),
        seed=int(config["seed"]),
    )


def _group_file(group: str) -> str:
    """The file Hydra read for config group ``group`` (as ``ablate cells show`` names it)."""
    if not HydraConfig.initialized():
        return group
    runtime = HydraConfig.get().runtime
    name = f"{group}/{runtime.choices.get(group)}.yaml"
    for source in runtime.config_sources:
        if source.schema == "file" and (Path(source.path) / name).is_file():
            return str(Path(source.path) / name)
    return name


def job_config(cfg: DictConfig) -> dict[str, Any]:
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    config.pop("hydra", None)  # present when composed with return_hydra_config
    if config.get("components") and isinstance(config.get("cell"), dict):
        config["cell"] = components.apply_token(config["cell"], config["components"])
    return config


def prepare(cfg: DictConfig) -> Job:
    config = job_config(cfg)
    threads = _threads(cfg)
    if threads is not None:
        torch.set_num_threads(threads)
    settings = check(config)
    task = build_task(config["task"], seed=settings.seed, cache_dir=config.get("cache_dir"))
    task.check_batch_sizes(settings.trainer.batch_size, settings.trainer.eval_batch_size)
    check_fits(
        settings.spec, task, settings.model, settings.optim, settings.trainer, settings.device
    )
    torch.manual_seed(settings.seed)
    model = SequenceModel(settings.spec, task, settings.model)
    job_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(".")
    digest = fingerprint(config)
    trainer = Trainer(
        model,
        task,
        settings.optim,
        settings.trainer,
        seed=settings.seed,
        device=settings.device,
        checkpoint_path=job_dir / "checkpoint.pt",
        fingerprint=digest,
    )
    return Job(settings.spec, task, model, trainer, config, digest, job_dir)


def _job_tags(job: Job, cfg: DictConfig) -> dict[str, str]:
    tags = {
        "cell": job.spec.name,
        "task": job.task.name,
        "seed": str(cfg.seed),
        "study": str(cfg.study),
        "git_commit": git_commit(),
        "metric": job.task.metric,
        "direction": "maximize" if job.task.higher_is_better else "minimize",
        "ablate.kind": "job",
        "ablate.fingerprint": job.fingerprint,
        "job_dir": str(job.job_dir.resolve()),
    }
    if job.config.get("components"):
        tags["cell.components"] = components.describe(job.spec)
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        tags["hydra.sweep_dir"] = str(OmegaConf.select(hc, "sweep.dir", default=""))
        tags["hydra.job_num"] = str(OmegaConf.select(hc, "job.num", default=0))
        tags["hydra.overrides"] = " ".join(hc.overrides.task)
    return tags


def _params(job: Job) -> dict[str, Any]:
    config = {k: v for k, v in job.config.items() if k not in ("tracking", "sweep")}
    params = flatten(config)
    params["cell.preset"] = job.spec.name
    params.update({f"task.{k}": v for k, v in job.task.describe().items()})
    return params


def _open_run(job: Job, cfg: DictConfig, uri: str, experiment_id: str) -> tuple[TrackedRun, bool]:
    """The run of an earlier attempt at this job (to continue), or a new one."""
    marker = job.job_dir / "mlflow_run.json"
    if marker.is_file():
        try:
            saved = json.loads(marker.read_text())
        except (OSError, ValueError):
            saved = {}
        if saved.get("fingerprint") == job.fingerprint and saved.get("uri") == uri:
            run = TrackedRun(uri, str(saved.get("run_id")))
            if run.exists():
                return run, True
    tags = _job_tags(job, cfg)
    run = TrackedRun.create(
        uri,
        experiment_id,
        # A search's trials share a seed: they are told apart by their trial number.
        name=f"{tags.get('cell.components', job.spec.name)}/{job.task.name}/"
        + (f"trial{cfg.sweep.trial}" if cfg.sweep.trial is not None else f"seed{cfg.seed}"),
        tags=tags,
        parent_run_id=cfg.sweep.parent_run_id or os.environ.get(PARENT_RUN_ENV),
    )
    job.job_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(
        json.dumps({"run_id": run.run_id, "uri": uri, "fingerprint": job.fingerprint})
    )
    return run, False


def _epoch_metrics(record: EpochRecord) -> dict[str, float]:
    return {
        "train_loss": record.train_loss,
        **{f"valid_{k}": v for k, v in record.valid.items()},
        "epoch_seconds": record.seconds,
        "lr": record.lr,
    }


def trial_reporter(cfg: DictConfig) -> TrialReporter | None:
    """The Optuna trial this job is, when ablate's sweeper launched it."""
    if cfg.sweep.trial is None:
        return None
    pruner = None
    if HydraConfig.initialized():
        pruner = OmegaConf.to_container(HydraConfig.get().sweeper.get("pruner") or {})
    return TrialReporter(str(cfg.sweep.storage), str(cfg.sweep.study), int(cfg.sweep.trial), pruner)


def run_job(cfg: DictConfig) -> JobOutcome:
    """Train, track, and return the best validation value of the task's metric. A trial of
    ablate's sweeper ends with it (a job that raises is recorded by the sweeper)."""
    job = prepare(cfg)
    reporter = trial_reporter(cfg)
    tracked = open_tracking(cfg, job, reporter)
    if isinstance(tracked, JobOutcome):
        outcome = tracked
    else:
        try:
            result: TrainResult | BaseException = job.trainer.fit(
                on_epoch=tracked.on_epoch, resume=tracked.resume
            )
        except BaseException as err:  # noqa: BLE001 - close_tracking records it, then re-raises
            result = err
        outcome = close_tracking(tracked, result)
    if reporter is not None:
        reporter.finish(outcome)
    return outcome


@dataclass
class TrackedJob:
    """A prepared job with its MLflow run open, ready to train: where it resumes from and
    what logs (and reports to Optuna) each epoch. Trained alone by :func:`run_job`, or with
    others as one stacked model by ``hydra/launcher=batched``."""

    job: Job
    cfg: DictConfig
    run: TrackedRun
    reporter: TrialReporter | None
    resume: Checkpoint | None
    on_epoch: Callable[[EpochRecord], None]
    last: dict[str, float]


def open_tracking(
    cfg: DictConfig, job: Job, reporter: TrialReporter | None
) -> TrackedJob | JobOutcome:
    """The job's run, opened (or reopened to continue), or the outcome of a job that
    already finished."""
    direction = "maximize" if job.task.higher_is_better else "minimize"
    uri = tracking_uri(cfg.tracking.uri, cfg.tracking.root)
    experiment_id = ensure_experiment(uri, str(cfg.tracking.experiment), cfg.tracking.root)
    resume = job.trainer.resume_point() if cfg.trainer.resume else None
    run, reopened = _open_run(job, cfg, uri, experiment_id)
    if reporter is not None:
        reporter.attach_run(run.run_id)
        run.set_tags({"optuna.study": str(cfg.sweep.study), "optuna.trial": reporter.number})
    if reopened and run.status() == "FINISHED" and resume is not None and resume.done:
        value = float(resume.best_valid[job.task.metric])
        log.info("job already finished (run %s): %s = %.6g", run.run_id, job.task.metric, value)
        return JobOutcome(value, "complete", direction)
    if reopened:
        run.reopen()
    else:
        run.log_params(_params(job))
    # Epochs already in the run are not logged again; epochs only the checkpoint knows (a kill
    # between checkpoint and logging, or a new store) are. A retried trial hears them all.
    logged = run.metric_steps("train_loss")
    last = {"value": job.task.worst_value()}
    for past in resume.history if resume is not None else []:
        if past["epoch"] not in logged:
            run.log_metrics(_epoch_metrics(EpochRecord(**past)), step=past["epoch"])
        if reporter is not None:
            reporter.trial.report(past["valid"][job.task.metric], step=past["epoch"])

    def on_epoch(record: EpochRecord) -> None:
        if record.epoch not in logged:
            run.log_metrics(_epoch_metrics(record), step=record.epoch)
        last["value"] = record.valid[job.task.metric]
        if reporter is not None:
            reporter.report(last["value"], record.epoch)

    return TrackedJob(job, cfg, run, reporter, resume, on_epoch, last)


def close_tracking(tracked: TrackedJob, result: TrainResult | BaseException) -> JobOutcome:
    """End the run with what training gave: the result, or the error that ended it (a
    diverged or pruned trial is an outcome; any other error is re-raised once recorded)."""
    job, cfg, run = tracked.job, tracked.cfg, tracked.run
    direction = "maximize" if job.task.higher_is_better else "minimize"
    if isinstance(result, Diverged):
        log.error("run diverged: %s", result)
        run.set_tags({"failure_reason": str(result)})
        run.end("FAILED")
        return JobOutcome(job.task.worst_value(), "diverged", direction)
    if isinstance(result, Pruned):
        log.info("trial %s: %s", cfg.sweep.trial, result)
        run.set_tags({"ablate.pruned": "true", "failure_reason": str(result)})
        run.end("KILLED")
        return JobOutcome(float(tracked.last["value"]), "pruned", direction)
    if isinstance(result, KeyboardInterrupt):
        run.set_tags({"failure_reason": "interrupted (KeyboardInterrupt)"})
        run.end("KILLED")
        raise result
    if isinstance(result, BaseException):
        run.set_tags({"failure_reason": f"{type(result).__name__}: {result}"[:5000]})
        run.end("FAILED")
        raise result
    _finish(job, cfg, run, result)
    return JobOutcome(float(result.best_valid[job.task.metric]), "complete", direction)


def _finish(job: Job, cfg: DictConfig, run: TrackedRun, result: TrainResult) -> None:
    metric = job.task.metric
    run.log_metrics(
        {
            **{f"best_valid_{k}": v for k, v in result.best_valid.items()},
            **{f"test_{k}": v for k, v in result.test.items()},
            "num_parameters": count_parameters(job.model),
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "train_seconds": result.train_seconds,
        }
    )
    if cfg.tracking.log_artifacts:
        artifacts = []
        hydra_dir = job.job_dir / ".hydra"
        for name in ("config.yaml", "overrides.yaml"):
            if (hydra_dir / name).is_file():
                artifacts.append(hydra_dir / name)
        artifacts.append(
            plot_learning_curve(
                result.history,
                metric,
                result.best_epoch,
                f"{job.spec.name} on {job.task.name} (seed {cfg.seed})",
                job.job_dir / "learning_curve.png",
            )
        )
        weights = job.job_dir / "model.pt"
        torch.save(job.model.state_dict(), weights)  # the best-validation weights
        artifacts.append(weights)
        run.log_artifacts(artifacts)
    run.end("FINISHED")
    log.info(
        "done: best valid %s %.6g at epoch %d; test %s %.6g; run %s",
        metric,
        result.best_valid[metric],
        result.best_epoch,
        metric,
        result.test[metric],
        run.run_id,
    )


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
def hydra_main(cfg: DictConfig) -> JobOutcome:
    try:
        return run_job(cfg)
    except AblateError as err:
        if cfg.sweep.trial is not None or _in_multirun():
            raise  # the launcher records the failed job; the sweep goes on
        print(f"ablate train: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _check_gate_overrides(argv: list[str]) -> None:
    """``cell.gates`` is a list, which Hydra indexes by number: ``cell.gates.forget=false``
    (the form a component search's dimension takes) would end in OmegaConf's traceback."""
    for arg in argv:
        key, sep, _ = arg.lstrip("+~").partition("=")
        head, _, item = key.partition("cell.gates.")
        if sep and not head and item and not item.isdigit():
            raise AblateError(
                f"{arg}: cell.gates is the list of the cell's gates; set it whole "
                "(cell.gates=[input,output]) or give components=TOKEN; cell.gates.GATE is a "
                "search dimension (hydra.sweeper.params.cell.gates.GATE, "
                "conf/search/components.yaml)"
            )


def main(argv: list[str]) -> int:
    _check_gate_overrides(argv)  # ablate.cli prints it in one line
    sys.argv = ["ablate train", *argv]
    hydra_main()
    return 0
