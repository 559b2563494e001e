"""Bad input: one clear line naming the problem, a non-zero exit, nothing in the stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_ablate
from tests.tasks.helpers import write_framewise, write_ptb


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    write_ptb(folder / "ptb")
    (folder / "ptb" / "ptb.train.txt").write_bytes(bytes(range(256)) * 10)  # binary junk
    write_framewise(folder / "frames")
    npz = folder / "frames" / "train.npz"
    npz.write_bytes(npz.read_bytes()[:200])  # truncated
    (folder / "afile").write_text("")
    return folder


CASES = [
    (["cell=nope"], "Could not find 'cell/nope'"),
    (["task=nope"], "Could not find 'task/nope'"),
    (["optim=nope"], "Could not find 'optim/nope'"),
    (["-m", "search=nope"], "Could not find 'search/nope'"),
    (["model.hiden_size=8"], "Key 'hiden_size' is not in struct"),
    (["model.hidden_size=0"], "model.hidden_size must be a positive integer, got 0"),
    (["model.num_layers=-1"], "model.num_layers must be a positive integer, got -1"),
    (["trainer.batch_size=0"], "trainer.batch_size must be a positive integer"),
    (["optim.lr=-0.1"], "optim.lr must be > 0, got -0.1"),
    (["-m", "search=greff", "hydra.sweeper.n_trials=0"], "n_trials must be a positive integer"),
    (
        [
            "-m",
            "search=greff",
            "hydra.sweeper.params.optim.lr.low=1",
            "hydra.sweeper.params.optim.lr.high=0.1",
        ],
        "search space: optim.lr: low (1) > high (0.1)",
    ),
    (
        ["-m", "search=greff", "hydra.sweeper.params.optim.lr.low=0"],
        "search space: optim.lr: a log scale needs low > 0",
    ),
    (["task=ptb"], "task.data_dir is required"),
    (["task=ptb", "task.data_dir={data}/ptb"], "ptb.train.txt: unreadable as UTF-8 text"),
    (["task=framewise", "task.data_dir={data}/frames"], "train.npz: not a readable .npz file"),
    (["task=framewise", "task.data_dir={data}/missing"], "task.data_dir is not a folder"),
    (["tracking.uri=http://127.0.0.1:9"], "tracking server http://127.0.0.1:9 is unreachable"),
    (["hydra.run.dir={data}/afile/out"], "output folder {data}/afile/out cannot be written"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_refused_in_one_line(tmp_path, data, args, message):
    args = [a.replace("{data}", str(data)) for a in args]
    mode = ["-m"] if args[0] == "-m" else []
    rest = args[1:] if mode else args
    task = [] if any(a.startswith("task=") for a in rest) else ["task=digits"]
    result = run_ablate(
        "train", *mode, *task, *rest, "trainer.max_epochs=1", cwd=tmp_path, check=False
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message.replace("{data}", str(data)) in output
    assert "Traceback" not in output
    assert "epoch 1" not in output
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "optuna.db").exists()
