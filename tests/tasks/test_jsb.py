"""jsb: the piano rolls, their statistics, the split and the cache."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from ablate.tasks import build_task
from ablate.tasks import jsb as jsb_module
from ablate.tasks.jsb import KEYS, LOWEST_KEY, chorale_files, chorale_roll


def _all_rolls(task):
    return [r for split in task.rolls.values() for r in (split[i] for i in range(len(split)))]


def test_a_chorale_roll_by_hand():
    """bwv1.6 is 80 beats long; every beat has at most one note per voice, inside the
    four voices' ranges."""
    roll = chorale_roll(str(chorale_files(1)[0]))
    assert roll.shape == (80, KEYS) and roll.dtype == np.uint8
    assert roll.sum(axis=1).max() <= 4 and roll.sum(axis=1).mean() > 3.5
    pitches = np.nonzero(roll)[1] + LOWEST_KEY
    assert pitches.min() >= 36 and pitches.max() <= 81


def test_small_build_statistics(make_task):
    task = make_task("jsb")
    rolls = _all_rolls(task)
    assert task.parsed == 12 and not task.skipped
    assert sum(len(r) for r in task.rolls.values()) == 12  # no duplicate among the first files
    assert [len(task.rolls[s]) for s in ("train", "valid", "test")] == [8, 2, 2]
    for roll in rolls:
        assert 24 <= len(roll) <= 272
        pitches = np.nonzero(roll)[1] + LOWEST_KEY
        assert pitches.min() >= 36 and pitches.max() <= 81


def test_splits_share_no_chorale(make_task):
    task = make_task("jsb")
    names = [n for split in task.names.values() for n in split]
    assert len(names) == len(set(names))
    contents = [r.tobytes() for r in _all_rolls(task)]
    assert len(contents) == len(set(contents))


def test_cache_reused_and_keyed_by_subset(tmp_path, monkeypatch, caplog):
    small = build_task(
        {"name": "jsb", "max_chorales": 4, "valid_fraction": 0.25, "test_fraction": 0.25},
        seed=0,
        cache_dir=str(tmp_path),
    )
    assert (tmp_path / "jsb-v1-4.npz").is_file()

    def refuse(path):
        raise AssertionError("parsed again despite the cache")

    monkeypatch.setattr(jsb_module, "chorale_roll", refuse)
    again = build_task(
        {"name": "jsb", "max_chorales": 4, "valid_fraction": 0.25, "test_fraction": 0.25},
        seed=0,
        cache_dir=str(tmp_path),
    )
    assert again.names == small.names
    monkeypatch.undo()

    # a corrupt file is rebuilt, with a warning
    (tmp_path / "jsb-v1-4.npz").write_bytes(b"PK\x03\x04 garbage")
    with caplog.at_level(logging.WARNING):
        rebuilt = build_task(
            {"name": "jsb", "max_chorales": 4, "valid_fraction": 0.25, "test_fraction": 0.25},
            seed=0,
            cache_dir=str(tmp_path),
        )
    assert "unreadable" in caplog.text and rebuilt.names == small.names
    # another subset has its own file and leaves this one alone
    build_task({"name": "jsb", "max_chorales": 5}, seed=0, cache_dir=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jsb-v1-4.npz", "jsb-v1-5.npz"]


@pytest.mark.slow
def test_full_corpus_statistics(tmp_path):
    """The whole corpus (about 25 s to parse): the numbers in studies.md section 3, less the
    three files that are not four-voice chorales."""
    start = time.perf_counter()
    task = build_task({"name": "jsb"}, seed=0, cache_dir=str(tmp_path))
    built = time.perf_counter() - start
    start = time.perf_counter()
    build_task({"name": "jsb"}, seed=0, cache_dir=str(tmp_path))
    cached = time.perf_counter() - start
    rolls = _all_rolls(task)
    lengths = np.array([len(r) for r in rolls])
    pitches = np.nonzero(np.concatenate(rolls))[1] + LOWEST_KEY
    stats = {
        "parsed": task.parsed,
        "skipped": task.skipped,
        "unique": len(rolls),
        "frames": int(lengths.sum()),
        "lengths": (int(lengths.min()), int(lengths.max())),
        "midi": (int(pitches.min()), int(pitches.max())),
        "split": [len(task.rolls[s]) for s in ("train", "valid", "test")],
        "build_s": round(built, 1),
        "cached_s": round(cached, 3),
    }
    print(stats)
    assert 400 <= task.parsed <= 410
    assert sorted(task.skipped) == ["bwv227.3.mxl", "bwv27.6.mxl", "bwv846.mxl"]
    assert task.parsed - 3 <= len(rolls) < task.parsed  # a few duplicates removed
    assert 22_500 <= lengths.sum() <= 23_500
    assert stats["lengths"] == (24, 272) and stats["midi"] == (36, 81)
    assert len({r.tobytes() for r in rolls}) == len(rolls)
    assert abs(stats["split"][1] - 0.2 * len(rolls)) <= 1
    assert cached < 2.0
