"""Many trials of one study trained as one stacked model.

Trials of a study share the cell, the task and the batch shape and differ in scalars
(learning rate, momentum, input noise, seed) and the hidden size. K of them train as one
model whose parameters carry a leading trial dimension: one C++ kernel call per layer and
direction, one head product, one loss, one optimiser step for all K, each trial computing
what it computes alone (``tests/train/test_stack.py``). Smaller hidden sizes are padded to the
group's largest; their padded units stay inert: weights and gradients there are exactly zero.
"""

from ablate.stack.group import GroupMember, can_stack, train_group

__all__ = ["GroupMember", "can_stack", "train_group"]
