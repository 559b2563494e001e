"""Initialisation: the forget bias on every layer-direction, and init="torch" drawing what
torch's own modules amount to."""

from __future__ import annotations

import pytest
import torch

from ablate.cells import GatedRNN
from ablate.cells.init import InitScheme


@pytest.mark.parametrize("init", [str(s) for s in InitScheme])
@pytest.mark.parametrize(
    "name,forget_bias,shift",
    [("vanilla", 1.5, 1.5), ("lstm_b", None, 1.0)],  # an override; LSTM-b's own bias of 1
    ids=["override", "spec"],
)
def test_forget_bias_is_added_on_every_layer_and_direction(init, name, forget_bias, shift):
    """Same seed, same draws: with the forget bias, every layer-direction's forget rows (and
    nothing else) are larger by exactly that much."""
    n, kwargs = 6, dict(num_layers=3, bidirectional=True, init=init)
    torch.manual_seed(0)
    plain = GatedRNN(name, 5, n, forget_bias=0.0, **kwargs)
    torch.manual_seed(0)
    biased = GatedRNN(name, 5, n, forget_bias=forget_bias, **kwargs)
    assert len(biased.layers) == 6
    for k, (a, b) in enumerate(zip(plain.layers, biased.layers, strict=True)):
        for (pname, p), (_, q) in zip(
            a.named_parameters(), b.named_parameters(), strict=True
        ):
            expected = p.detach().clone()
            if pname == "bias":
                expected.view(4, n)[1] += shift  # rows i, f, z, o
            torch.testing.assert_close(
                q.detach(), expected, rtol=0, atol=0, msg=f"layer-direction {k}: {pname}"
            )


def _spread(values: torch.Tensor, n: int) -> tuple[float, float]:
    """Variance and largest magnitude, in units of torch's bound 1/sqrt(N)."""
    scaled = values.detach().double() * n**0.5
    return float(scaled.var()), float(scaled.abs().max())


# In units of 1/sqrt(N): one U(-1, 1) draw has variance 1/3 and stays within 1; the sum of
# two (torch's b_ih + b_hh) has variance 2/3 and reaches 2.
ONE, TWO = 1 / 3, 2 / 3


def _assert_spread(ours: torch.Tensor, theirs: torch.Tensor, n: int, variance: float) -> None:
    """Both samples (thousands of values) have the variance and the range of ``variance``'s
    distribution: variances within 10% (about 4 standard errors), the same bounds."""
    bound = 1.0 if variance == ONE else 2.0
    for label, values in (("ablate", ours), ("torch", theirs)):
        var, top = _spread(values, n)
        assert 0.9 * variance < var < 1.1 * variance, f"{label}: variance {var:.3f} x 1/N"
        assert 0.75 * bound < top <= bound, f"{label}: largest |b| {top:.3f} / sqrt(N)"


def test_torch_init_draws_the_lstm_bias_torch_does():
    """nn.LSTM adds two biases, each U(+-1/sqrt(N)); the cell sees their sum."""
    n, layers = 256, 4
    torch.manual_seed(0)
    ours = GatedRNN("lstm", n, n, num_layers=layers, init="torch")
    theirs = torch.nn.LSTM(n, n, num_layers=layers)
    bias = torch.cat([layer.bias for layer in ours.layers])
    torch_bias = torch.cat([
        getattr(theirs, f"bias_ih_l{k}") + getattr(theirs, f"bias_hh_l{k}") for k in range(layers)
    ])
    _assert_spread(bias, torch_bias, n, TWO)
    weights = torch.cat([layer.weight_hh.flatten() for layer in ours.layers])
    _assert_spread(weights, theirs.weight_hh_l0.flatten(), n, ONE)


def test_torch_init_draws_the_gru_biases_torch_does():
    """nn.GRU: the reset and update gates see b_ih + b_hh; the candidate sees b_in, and
    b_hn inside r * (R h + b_hn), one draw each (gru_torch's bias_hn)."""
    n, layers = 256, 4
    torch.manual_seed(0)
    ours = GatedRNN("gru_torch", n, n, num_layers=layers, init="torch")
    theirs = torch.nn.GRU(n, n, num_layers=layers)
    gates, candidate, torch_gates, torch_candidate = [], [], [], []
    for k, layer in enumerate(ours.layers):
        gates.append(layer.bias[: 2 * n])
        candidate += [layer.bias[2 * n :], layer.bias_hn]
        b_ih, b_hh = getattr(theirs, f"bias_ih_l{k}"), getattr(theirs, f"bias_hh_l{k}")
        torch_gates.append(b_ih[: 2 * n] + b_hh[: 2 * n])
        torch_candidate += [b_ih[2 * n :], b_hh[2 * n :]]
    _assert_spread(torch.cat(gates), torch.cat(torch_gates), n, TWO)
    _assert_spread(torch.cat(candidate), torch.cat(torch_candidate), n, ONE)
