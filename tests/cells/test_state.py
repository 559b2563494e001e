"""The returned state is everything the recurrence carries: a sequence cut into windows, each
call starting from the state the previous one returned, computes what one call does (the
contract truncated BPTT relies on), values and gradients, on every preset and backend."""

from __future__ import annotations

import pytest
import torch

from ablate.cells import GatedRNN
from tests.cells import reference
from tests.cells.test_exact import CASES, build, layer_params

# (rtol, atol) of windows against one call. The loops are step by step either way; float32
# may differ in the last bits where a projection over all steps is blocked differently.
TOLERANCES = {torch.float64: (1e-12, 1e-13), torch.float32: (1e-6, 1e-6)}
CUTS = (3, 5)  # windows [0, 3), [3, 5), [5, 8)
STEPS = 8


def as_tuple(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def initial_state(rnn: GatedRNN, batch: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """A state the cell could have reached (gate activations in range): from a random prefix."""
    with torch.no_grad():
        _, state = rnn(torch.randn(4, batch, rnn.input_size, dtype=dtype))
    return tuple(s.clone().requires_grad_(True) for s in as_tuple(state))


def windows(rnn: GatedRNN, x: torch.Tensor, state, lengths: torch.Tensor | None):
    """x cut at CUTS, each window from the last one's state; ``lengths`` (all beyond the last
    cut) apply to the last window."""
    outs = []
    bounds = (0, *CUTS, x.shape[0])
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        last = stop == x.shape[0]
        window_lengths = None if lengths is None or not last else lengths - start
        out, state = rnn(x[start:stop], state, window_lengths)
        outs.append(out)
    return torch.cat(outs), as_tuple(state)


@pytest.mark.parametrize("name,backend", CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
def test_windows_with_the_state_passed_on_equal_one_call(name, backend, dtype, use_lengths):
    rnn = build(name, 3, 4, 2, False, backend, dtype)
    batch = 3
    x = torch.randn(STEPS, batch, 3, dtype=dtype, requires_grad=True)
    lengths = torch.tensor([8, 6, 7]) if use_lengths else None
    start = initial_state(rnn, batch, dtype)
    state0 = start if len(start) > 1 else start[0]
    out, state = rnn(x, state0, lengths)
    win_out, win_state = windows(rnn, x, state0, lengths)
    state = as_tuple(state)
    assert len(win_state) == len(state)
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(win_out, out, rtol=rtol, atol=atol)
    for w, s in zip(win_state, state, strict=True):
        torch.testing.assert_close(w, s, rtol=rtol, atol=atol)
    # Gradients flow back through the carried state exactly as through one call.
    weights = [torch.randn_like(t) for t in (out, *state)]
    leaves = [x, *start, *rnn.parameters()]
    loss = sum((w * t).sum() for w, t in zip(weights, (out, *state), strict=True))
    win_loss = sum((w * t).sum() for w, t in zip(weights, (win_out, *win_state), strict=True))
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    win_grads = torch.autograd.grad(win_loss, leaves, allow_unused=True)
    grad_rtol, grad_atol = (10 * rtol, 10 * atol)
    for leaf, g, w in zip(leaves, grads, win_grads, strict=True):
        assert_same_grad(leaf, w, g, rtol=grad_rtol, atol=grad_atol)


def assert_same_grad(leaf, g, expected, **tolerances) -> None:
    """A leaf no path reads has no gradient (None), the same as zero: minLSTM's h_0, which
    its gates do not see (its state is c), reaches a loop only where padding holds h."""
    zero = torch.zeros_like(leaf)
    torch.testing.assert_close(
        zero if g is None else g, zero if expected is None else expected, **tolerances
    )


@pytest.mark.parametrize("name,backend", CASES)
def test_a_given_initial_state_matches_paper_equations(name, backend):
    """Every layer-direction starts from its own slice of the state (FGR's gate activations
    included) and returns its own final one; gradients reach the initial state."""
    rnn = build(name, 3, 4, 2, True, backend)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    start = initial_state(rnn, 2, torch.float64)
    out, state = rnn(x, start if len(start) > 1 else start[0])
    state = as_tuple(state)
    params = [{k: p.detach().requires_grad_(True) for k, p in d.items()} for d in layer_params(rnn)]
    ref_start = [s.detach().requires_grad_(True) for s in start]
    ref_out, ref_state = reference.run(name, params, x.detach(), 4, 2, True, initial=ref_start)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
    for s, r in zip(state, ref_state, strict=True):
        torch.testing.assert_close(s, r, rtol=1e-10, atol=1e-12)
    weights = [torch.randn_like(t) for t in (out, *state)]
    loss = sum((w * t).sum() for w, t in zip(weights, (out, *state), strict=True))
    ref_loss = sum((w * t).sum() for w, t in zip(weights, (ref_out, *ref_state), strict=True))
    grads = torch.autograd.grad(loss, start, allow_unused=True)
    ref_grads = torch.autograd.grad(ref_loss, ref_start, allow_unused=True)
    for leaf, g, r in zip(start, grads, ref_grads, strict=True):
        assert_same_grad(leaf, g, r, rtol=1e-9, atol=1e-11)


def test_fgr_state_holds_the_previous_gate_activations():
    """FGR's state is (h, c, a), a the last step's i, f, o side by side; the others' is
    unchanged, as nn.LSTM's."""
    x = torch.randn(5, 2, 3)
    out, (h, c, a) = GatedRNN("fgr", 3, 4, num_layers=2, bidirectional=True)(x)
    assert h.shape == c.shape == (4, 2, 4) and a.shape == (4, 2, 12)
    assert torch.all((a > 0) & (a < 1))  # sigmoid gates
    _, (h, c) = GatedRNN("vanilla", 3, 4)(x)
    _, h = GatedRNN("gru", 3, 4)(x)
    with pytest.raises(ValueError, match=r"expected state \(h, c, a\)"):
        GatedRNN("fgr", 3, 4)(x, (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)))
