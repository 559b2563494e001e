"""Weiss's protocol trains: an LSTM on a^n b^n is selected on a validation value that moves
from the first epoch (the acceptance limits sit at 0 until the counter works)."""

from __future__ import annotations

from tests.conftest import mlflow_runs, run_ablate


def test_an_lstm_on_anbn_improves_its_validation_value(tmp_path):
    run_ablate(
        "train", "cell=lstm", "task=counting", "task.n_train=10", "task.n_max=20",
        "task.train_repeats=5", "model.hidden_size=10", "optim=adam", "optim.lr=0.01",
        "trainer.max_epochs=6", "trainer.patience=6", "tracking.log_artifacts=false",
        cwd=tmp_path,
    )  # fmt: skip
    client, (run,) = mlflow_runs(tmp_path)
    assert run.data.tags["metric"] == "loss"
    history = sorted(client.get_metric_history(run.info.run_id, "valid_loss"), key=lambda m: m.step)
    values = [m.value for m in history]
    assert len(values) == 6 and min(values[1:]) < 0.8 * values[0], values
    assert run.data.metrics["best_epoch"] > 1  # selection kept a trained epoch
    assert "test_strict_limit" in run.data.metrics and "test_accept_at_2x" in run.data.metrics
