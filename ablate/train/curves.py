"""The learning-curve figure logged with every run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ablate.train.loop import EpochRecord  # noqa: E402


def plot_learning_curve(
    history: Sequence[EpochRecord], metric: str, best_epoch: int, title: str, path: Path
) -> Path:
    epochs = [r.epoch for r in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    ax_loss.plot(epochs, [r.train_loss for r in history], marker="o", ms=3, label="train")
    ax_loss.plot(epochs, [r.valid["loss"] for r in history], marker="o", ms=3, label="valid")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_metric.plot(epochs, [r.valid[metric] for r in history], marker="o", ms=3, color="C1")
    if best_epoch:
        ax_metric.axvline(
            best_epoch, color="0.6", ls="--", lw=1, label=f"best (epoch {best_epoch})"
        )
        ax_metric.legend()
    ax_metric.set(xlabel="epoch", ylabel=f"valid {metric}", title=f"valid {metric}")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
