"""Bad input: one clear line naming the problem, a non-zero exit, nothing in the stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import mlflow_runs, run_ablate
from tests.sweeps import sweep, trials, write_conf
from tests.tasks.helpers import write_framewise, write_ptb


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    write_ptb(folder / "ptb")
    (folder / "ptb" / "ptb.train.txt").write_bytes(bytes(range(256)) * 10)  # binary junk
    write_ptb(folder / "ptb_short")  # fewer valid words than the 256 rows of eval_batch_size
    write_ptb(folder / "ptb_no_unk")
    train = (folder / "ptb_no_unk" / "ptb.train.txt").read_text()
    (folder / "ptb_no_unk" / "ptb.train.txt").write_text(train.replace("<unk>", "bird"))
    (folder / "ptb_no_unk" / "ptb.valid.txt").write_text("the cat\nthe zebra sat\n")
    write_framewise(folder / "frames")
    npz = folder / "frames" / "train.npz"
    npz.write_bytes(npz.read_bytes()[:200])  # truncated
    write_framewise(folder / "noise")
    (folder / "noise" / "train.npz").write_bytes(np.random.default_rng(0).bytes(4000))
    (folder / "conf" / "cell").mkdir(parents=True)
    (folder / "conf" / "cell" / "mine.yaml").write_text("- forget\n- input\n")  # a list
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
    (["trainer.monitor=nope"], "trainer.monitor must be one of metric, loss, got 'nope'"),
    (["optim.lr=-0.1"], "optim.lr must be a finite number > 0, got -0.1"),
    (["optim.lr=inf"], "optim.lr must be a finite number > 0, got inf"),
    (["optim.lr=nan"], "optim.lr must be a finite number > 0, got nan"),
    (["cell=lstm", "task=arith", "seed=-1"], "seed must be a non-negative integer"),
    (["task=arith", "task.data_seed=-1"], "task.data_seed: must be a non-negative integer"),
    (
        ["model.hidden_size=1000000000"],
        "model too large: cell vanilla with model.hidden_size=1000000000, model.num_layers=1 "
        "on task digits has 4,000,000,049,000,000,010 parameters and needs at least 55.5 EiB "
        "to train, more than the ",
    ),
    (
        ["--config-dir={data}/conf", "cell=mine"],
        "cell spec file '{data}/conf/cell/mine.yaml' must hold a mapping of fields",
    ),
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
    (
        ["task=framewise", "task.data_dir={data}/noise"],
        "train.npz: not a readable .npz file: "
        "the file is not a valid .npz (a zip archive of .npy arrays, as numpy.savez writes)",
    ),
    (
        ["task=ptb", "task.data_dir={data}/ptb_short"],
        "ptb_short/ptb.valid.txt: 129 words (with <eos>) are too few for "
        "trainer.eval_batch_size=256 rows (need at least 257); lower trainer.eval_batch_size",
    ),
    (
        ["task=ptb", "task.data_dir={data}/ptb_no_unk"],
        "ptb.valid.txt:2: word 'zebra' is not in the vocabulary of ptb.train.txt (which has no "
        "<unk> token to read it as)",
    ),
    (["task=framewise", "task.data_dir={data}/missing"], "task.data_dir is not a folder"),
    (
        ["cell.gates.forget=false"],
        "cell.gates.forget=false: cell.gates is the list of the cell's gates; set it whole",
    ),
    (["tracking.uri=http://127.0.0.1:9"], "tracking server http://127.0.0.1:9 is unreachable"),
    (["hydra.run.dir={data}/afile/out"], "output folder {data}/afile/out cannot be written"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_refused_in_one_line(tmp_path, data, args, message):
    args = [a.replace("{data}", str(data)) for a in args]
    mode = ["-m"] if args[0] == "-m" else []
    rest = args[1:] if mode else args
    options = [a for a in rest if a.startswith("--")]  # Hydra's, before the overrides
    rest = [a for a in rest if a not in options]
    task = [] if any(a.startswith("task=") for a in rest) else ["task=digits"]
    result = run_ablate(
        "train", *mode, *options, *task, *rest, "trainer.max_epochs=1", cwd=tmp_path, check=False
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message.replace("{data}", str(data)) in output
    assert "Traceback" not in output and "pickle" not in output
    assert "epoch 1" not in output
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "optuna.db").exists()
    if message.startswith(("Could not find", "Key ")):
        return  # Hydra's own errors, with their lists of options
    (line,) = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert message.replace("{data}", str(data)) in line


def test_a_changed_search_space_names_the_parameter_and_writes_nothing(tmp_path):
    conf = write_conf(tmp_path)
    sweep(conf, tmp_path, "hydra.sweeper.n_trials=1")
    before = [(t.number, t.state) for t in trials(tmp_path)]
    runs_before = sorted(r.info.run_id for r in mlflow_runs(tmp_path)[1])
    result = sweep(
        conf,
        tmp_path,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.params.optim.lr.high=0.5",
        "~hydra.sweeper.params.model.input_noise",
        "+hydra.sweeper.params.model.dropout={choices: [0.0, 0.5]}",
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert "search space of study 'default/nig/digits' changed" in line
    assert "optim.lr: [0.01, 0.3] (log) -> [0.01, 0.5] (log)" in line
    assert "model.dropout added: choices [0.0, 0.5]" in line
    assert "model.input_noise removed (was [0.0, 0.5])" in line
    assert [(t.number, t.state) for t in trials(tmp_path)] == before
    assert sorted(r.info.run_id for r in mlflow_runs(tmp_path)[1]) == runs_before
