"""The shared splitting and batching helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ablate.cells import preset, preset_names
from ablate.model import ModelConfig, SequenceModel
from ablate.tasks import TaskDataError
from ablate.tasks.batching import (
    Ragged,
    next_step_batches,
    padded_batches,
    split_indices,
    stream_batches,
)
from ablate.tasks.language import LanguageModel


def test_split_indices_disjoint_complete_seeded():
    parts = split_indices(103, {"valid": 0.2, "test": 0.2}, seed=4, what="t")
    assert [len(parts[s]) for s in ("train", "valid", "test")] == [61, 21, 21]
    assert np.array_equal(np.sort(np.concatenate(list(parts.values()))), np.arange(103))
    again = split_indices(103, {"valid": 0.2, "test": 0.2}, seed=4, what="t")
    assert all(np.array_equal(parts[s], again[s]) for s in parts)
    other = split_indices(103, {"valid": 0.2, "test": 0.2}, seed=5, what="t")
    assert not np.array_equal(parts["test"], other["test"])


def test_split_indices_refuses_an_empty_split():
    with pytest.raises(TaskDataError, match="empty split"):
        split_indices(4, {"valid": 0.1, "test": 0.1}, seed=0, what="t")


def test_ragged_padding():
    seqs = Ragged.from_list([np.array([1, 2, 3]), np.array([4]), np.array([5, 6])])
    assert list(seqs.lengths) == [3, 1, 2]
    padded, lengths = seqs.padded(np.array([1, 0]))
    assert padded.dtype == torch.int64
    assert padded.tolist() == [[4, 0, 0], [1, 2, 3]] and lengths.tolist() == [1, 3]
    assert (
        Ragged.from_list([np.array([True, False])]).padded(np.array([0]))[0].dtype == torch.float32
    )


def test_padded_batches_labels_per_sequence_and_per_frame():
    x = Ragged.from_list([np.ones((2, 3)), np.ones((4, 3))])
    y_seq = np.array([7, 8])
    y_frame = Ragged.from_list([np.array([1, 2]), np.array([3, 4, 5, 6])])
    [b] = padded_batches(x, y_seq, 5, shuffle=False, seed=0)
    assert b.inputs.shape == (2, 4, 3) and b.targets.tolist() == [7, 8]
    assert b.mask.tolist() == [[True, True, False, False], [True] * 4]
    [b] = padded_batches(x, y_frame, 5, shuffle=False, seed=0)
    assert b.targets.tolist() == [[1, 2, 0, 0], [3, 4, 5, 6]]


def test_next_step_batches_shift_by_one():
    seqs = Ragged.from_list([np.array([1, 2, 3, 4]), np.array([5, 6])])
    [b] = next_step_batches(seqs, 2, shuffle=False, seed=0)
    assert b.inputs.tolist() == [[1, 2, 3], [5, 0, 0]]
    assert b.targets.tolist() == [[2, 3, 4], [6, 0, 0]]
    assert b.lengths.tolist() == [3, 1]
    assert b.mask.tolist() == [[True, True, True], [True, False, False]]


def test_stream_windows_continue_their_rows():
    stream = np.arange(1000) % 97
    batches = list(stream_batches(stream, 4, 7, shuffle=False, seed=0))
    assert all(b.carry_state for b in batches)
    assert [b.inputs.shape[1] for b in batches] == [7] * 35 + [4]  # 999 // 4 = 249 steps
    inputs = torch.cat([b.inputs for b in batches], dim=1)
    targets = torch.cat([b.targets for b in batches], dim=1)
    assert torch.equal(inputs.flatten(), torch.from_numpy(stream[:996]))
    assert torch.equal(targets.flatten(), torch.from_numpy(stream[1:997]))


def test_stream_shuffle_moves_the_start_and_keeps_the_mask_aligned():
    stream = np.arange(500)
    scored = stream % 3 == 0
    first = [
        next(stream_batches(stream, 2, 10, shuffle=True, seed=s, scored=scored)) for s in range(8)
    ]
    starts = {int(b.inputs[0, 0]) for b in first}
    assert len(starts) > 1 and max(starts) < 10
    for b in first:
        assert torch.equal(b.mask, b.targets % 3 == 0)


def test_stream_rows_begin_where_examples_do():
    # examples of 3..11 tokens: token i holds its own position, so rows can be checked
    lengths = np.random.default_rng(0).integers(3, 12, size=60)
    stream = np.arange(int(lengths.sum()))
    starts = np.cumsum([0, *lengths[:-1]])
    scored = np.random.default_rng(1).random(len(stream)) < 0.5
    batches = list(
        stream_batches(stream, 8, 5, shuffle=False, seed=0, scored=scored, starts=starts)
    )
    assert all(b.carry_state for b in batches)
    inputs = torch.cat([b.inputs for b in batches], dim=1)
    targets = torch.cat([b.targets for b in batches], dim=1)
    mask = torch.cat([b.mask for b in batches], dim=1)
    assert inputs.shape[0] == 8 and set(inputs[:, 0].tolist()) <= set(starts.tolist())
    # the same targets as the plain cut, each scored once; padding never scored
    flat = list(stream_batches(stream, 8, 5, shuffle=False, seed=0, scored=scored))
    plain = torch.cat([b.targets[b.mask] for b in flat]).sort().values
    assert torch.equal(
        targets[mask].sort().values, plain.new_tensor(np.flatnonzero(scored[1:]) + 1)
    )
    assert len(plain) <= int(mask.sum())  # the plain cut drops a tail the aligned rows keep
    for row in range(8):  # each row reads consecutive tokens, then padding
        n = int((inputs[row] != 0).sum()) + int(inputs[row, 0] == 0)
        assert torch.equal(targets[row, :n], inputs[row, :n] + 1)
        assert not mask[row, n:].any()
    # too few examples for the rows asked: fewer rows, still aligned
    few = list(
        stream_batches(stream[:40], 16, 5, shuffle=False, seed=0, starts=starts[starts < 40])
    )
    assert set(few[0].inputs[:, 0].tolist()) <= set(starts.tolist())
    with pytest.raises(TaskDataError, match="starts"):
        list(stream_batches(stream, 8, 5, shuffle=True, seed=0, starts=starts))


def _rows_read_their_questions(batches, vocabulary) -> list[bool]:
    """Per row: whether every scored target comes after an "=" the row has read."""
    inputs = torch.cat([b.inputs for b in batches], 1)
    mask = torch.cat([b.mask for b in batches], 1)
    equals = vocabulary.index("=")
    verdicts = []
    for row, scored in zip(inputs, mask, strict=True):
        first = int(scored.nonzero()[0]) if scored.any() else len(row)
        verdicts.append(bool((row[: first + 1] == equals).any()) or not scored.any())
    return verdicts


def test_generated_evaluation_rows_never_begin_inside_an_example(make_task):
    # 256 evaluation rows (the default) over 300 examples: the plain cut begins most rows
    # inside an example, whose answer then follows a question the row never read
    task = make_task("arith", valid_examples=300)
    aligned = list(task.batches("valid", 256, shuffle=False, seed=0))
    assert all(_rows_read_their_questions(aligned, task.vocabulary))
    first = {task.vocabulary[i] for i in aligned[0].inputs[:, 0].tolist()}
    assert first <= set("-0123456789")  # an example's first character
    scored = task.scored["valid"]
    plain = list(
        stream_batches(task.streams["valid"], 256, 35, shuffle=False, seed=0, scored=scored)
    )
    assert not all(_rows_read_their_questions(plain, task.vocabulary))
    # the same targets are scored either way
    assert int(sum(b.mask.sum() for b in aligned)) == int(scored[1:].sum())


def test_stream_too_short():
    with pytest.raises(TaskDataError, match="too short"):
        list(stream_batches(np.arange(5), 8, 35, shuffle=False, seed=0))


class _Stream(LanguageModel):
    """A language model over a fixed random token stream, cut into ``bptt``-step windows."""

    name = "stream"
    metric = "bpc"
    higher_is_better = False
    reported = ("bpc", "accuracy")

    def __init__(self, bptt: int) -> None:
        super().__init__(bptt=bptt)
        tokens = np.random.default_rng(0).integers(0, 5, size=300)
        self.vocabulary = list("abcde")
        self.streams = {split: tokens for split in ("train", "valid", "test")}


@pytest.mark.parametrize("name", preset_names())
def test_stream_windows_with_the_carried_state_score_as_one_pass(name):
    """Truncated BPTT carries the cell's whole state from window to window (FGR's gate
    activations too), so windows of 7 steps score exactly what one 74-step window does."""
    torch.manual_seed(0)
    task = _Stream(bptt=7)
    model = SequenceModel(preset(name), task, ModelConfig(hidden_size=6)).double().eval()
    with torch.no_grad():
        windows = task.evaluate(model, "valid", 4)
        whole = _Stream(bptt=1000).evaluate(model, "valid", 4)
    assert len(list(task.batches("valid", 4, shuffle=False, seed=0))) == 11  # 74 steps / 7
    assert windows == pytest.approx(whole, rel=1e-12)
