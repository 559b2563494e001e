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
