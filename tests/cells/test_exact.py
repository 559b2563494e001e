"""Every preset against its paper's equations, torch's kernels, and gradcheck, on every
backend that runs it: torch's fused kernels, the C++ kernels, the parallel scan and the
reference loop, in float64 (to ~1e-10) and float32 (to float32's precision)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ablate.cells import GatedRNN, preset, preset_names
from ablate.cells.kernels import supports
from tests.cells import reference

torch.set_default_dtype(torch.float32)

# (M, N): M != N, and M == N where MUT1/MUT2 use raw x exactly; N even for the sLSTM's 2 heads
SIZES = [(3, 6), (4, 4)]
LOOPS = ["compiled", "reference"]  # the time loops that run every Greff and Jozefowicz preset
# (rtol, atol) of outputs and of gradients, per dtype, against the float64 reference.
TOLERANCES = {
    torch.float64: ((1e-10, 1e-12), (1e-9, 1e-11)),
    torch.float32: ((1e-5, 1e-6), (1e-4, 1e-5)),
}


def loops(name: str) -> list[str]:
    """The backends that run a time loop of their own for a preset: the C++ kernels where they
    compute it, the parallel scan where the gates see x alone, and the reference loop."""
    spec = preset(name)
    return (
        (["compiled"] if supports(spec) else [])
        + (["scan"] if spec.parallel else [])
        + ["reference"]
    )


# Every preset with every backend that runs it: ``auto`` only where it is not one of the loops.
CASES = [
    (name, backend)
    for name in reference.ALL
    for backend in (["auto"] if preset(name).fused else []) + loops(name)
]


def build(
    name: str,
    m: int,
    n: int,
    layers: int,
    bidirectional: bool,
    backend: str = "auto",
    dtype: torch.dtype = torch.float64,
):
    torch.manual_seed(hash((name, m, n, layers, bidirectional)) % 2**31)
    rnn = GatedRNN(
        preset(name),
        m,
        n,
        num_layers=layers,
        bidirectional=bidirectional,
        init="torch",
        backend=backend,
    ).to(dtype)
    with torch.no_grad():  # random everything, biases and peepholes included
        for p in rnn.parameters():
            p.uniform_(-0.8, 0.8)
    return rnn


def layer_params(rnn: GatedRNN) -> list[dict[str, torch.Tensor]]:
    return [dict(layer.named_parameters()) for layer in rnn.layers]


def test_reference_covers_every_preset():
    assert sorted(preset_names()) == reference.ALL


@pytest.mark.parametrize("name,backend", CASES)
@pytest.mark.parametrize("m,n", SIZES)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_matches_paper_equations(name, backend, m, n, layers, bidirectional, dtype):
    check_against_reference(build(name, m, n, layers, bidirectional, backend, dtype), name)


@pytest.mark.parametrize("name", [name for name, backend in CASES if backend == "compiled"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_matches_paper_equations_with_weights_in_several_panels(name, dtype):
    """Weights over 1 MiB reach the C++ products in 64-column panels, the last one partly
    padding (N = 370: 4 N = 23 x 64 + 8 columns). Sums of ~700 products of size ~1 leave
    float32 ~1e-5 from float64 in absolute terms."""
    rnn = build(name, 300, 370, 1, False, "compiled", dtype)
    tolerances = TOLERANCES[dtype] if dtype == torch.float64 else ((1e-4, 1e-4), (1e-3, 1e-3))
    check_against_reference(rnn, name, steps=3, tolerances=tolerances)


def check_against_reference(
    rnn: GatedRNN,
    name: str,
    steps: int = 6,
    batch: int = 3,
    tolerances: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> None:
    """Outputs, final states and the gradients of every parameter and the input, against the
    float64 reference run on the very same numbers."""
    dtype, m, n = next(rnn.parameters()).dtype, rnn.input_size, rnn.hidden_size
    layers, bidirectional = rnn.num_layers, rnn.bidirectional
    x = torch.randn(steps, batch, m, dtype=dtype, requires_grad=True)
    out, state = rnn(x)
    states = list(state) if isinstance(state, tuple) else [state]
    # The reference in float64, from the very same (possibly float32) numbers.
    x64 = x.detach().double().requires_grad_(True)
    params64 = [
        {k: p.detach().double().requires_grad_(True) for k, p in layer.items()}
        for layer in layer_params(rnn)
    ]
    ref_out, ref_states = reference.run(name, params64, x64, n, layers, bidirectional)
    (rtol, atol), (grad_rtol, grad_atol) = tolerances or TOLERANCES[dtype]
    torch.testing.assert_close(out.double(), ref_out, rtol=rtol, atol=atol)
    for s, r in zip(states, ref_states, strict=True):
        torch.testing.assert_close(s.double(), r, rtol=rtol, atol=atol)

    # Gradients of a random projection of every output, w.r.t. every parameter and the input.
    weights = [torch.randn_like(t, dtype=torch.float64) for t in (out, *states)]
    loss = sum((w.to(dtype) * t).sum() for w, t in zip(weights, (out, *states), strict=True))
    ref_loss = sum((w * t).sum() for w, t in zip(weights, (ref_out, *ref_states), strict=True))
    grads = torch.autograd.grad(loss, [x, *rnn.parameters()])
    ref_leaves = [x64, *(p for layer in params64 for p in layer.values())]
    ref_grads = torch.autograd.grad(ref_loss, ref_leaves, allow_unused=True)
    for (pname, _), g, r in zip(
        [("input", x), *rnn.named_parameters()], grads, ref_grads, strict=True
    ):
        assert r is not None, f"the reference does not use {pname}"
        torch.testing.assert_close(
            g.double(), r, rtol=grad_rtol, atol=grad_atol, msg=f"gradient of {pname}"
        )


@pytest.mark.parametrize("name,backend", [case for case in CASES if case[1] != "auto"])
def test_gradcheck(name, backend):
    rnn = build(name, 4, 4, 1, True, backend=backend)
    names = [k for k, _ in rnn.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in rnn.parameters()]
    x = torch.randn(2, 4, 4, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 3])

    def f(x, *ps):
        out, _ = torch.func.functional_call(
            rnn, dict(zip(names, ps, strict=True)), (x,), {"lengths": lengths}
        )
        return out

    rnn.batch_first = True
    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5)


def _suffix(rnn: GatedRNN, k: int) -> str:
    """torch's parameter-name suffix of layer-direction k."""
    return f"_l{k // rnn.num_directions}" + ("_reverse" if k % 2 and rnn.bidirectional else "")


def _copy_from_torch(rnn: GatedRNN, ref: nn.RNNBase, kind: str) -> None:
    n = rnn.hidden_size
    with torch.no_grad():
        for k, layer in enumerate(rnn.layers):
            sfx = _suffix(rnn, k)
            w_ih, w_hh = getattr(ref, "weight_ih" + sfx), getattr(ref, "weight_hh" + sfx)
            b_ih, b_hh = getattr(ref, "bias_ih" + sfx), getattr(ref, "bias_hh" + sfx)
            layer.weight_ih.copy_(w_ih)
            layer.weight_hh.copy_(w_hh)
            if kind == "lstm":
                layer.bias.copy_(b_ih + b_hh)
            else:
                layer.bias.copy_(torch.cat([b_ih[: 2 * n] + b_hh[: 2 * n], b_ih[2 * n :]]))
                layer.bias_hn.copy_(b_hh[2 * n :])


def _torch_grads(rnn: GatedRNN, ref: nn.RNNBase, kind: str) -> list[torch.Tensor]:
    """torch's gradients mapped to ablate's parameter layout."""
    n = rnn.hidden_size
    out = []
    for k in range(len(rnn.layers)):
        sfx = _suffix(rnn, k)
        out += [getattr(ref, "weight_ih" + sfx).grad, getattr(ref, "weight_hh" + sfx).grad]
        b_ih, b_hh = getattr(ref, "bias_ih" + sfx).grad, getattr(ref, "bias_hh" + sfx).grad
        out.append(b_ih)  # d/d(b_ih + b_hh) = d/d b_ih
        if kind == "gru":
            out.append(b_hh[2 * n :])
    return out


@pytest.mark.parametrize("name,kind", [("lstm", "lstm"), ("lstm_b", "lstm"), ("gru_torch", "gru")])
@pytest.mark.parametrize("backend", ["fused", *LOOPS])
@pytest.mark.parametrize(
    "layers,bidirectional,use_lengths", [(1, False, False), (2, True, False), (2, True, True)]
)
def test_matches_torch_kernel(name, kind, backend, layers, bidirectional, use_lengths):
    torch.manual_seed(0)
    m, n, steps, batch = 5, 7, 9, 4
    ref = (nn.LSTM if kind == "lstm" else nn.GRU)(
        m, n, layers, bidirectional=bidirectional, batch_first=True
    )
    rnn = GatedRNN(
        name,
        m,
        n,
        num_layers=layers,
        bidirectional=bidirectional,
        batch_first=True,
        backend=backend,
    )
    _copy_from_torch(rnn, ref, kind)
    x = torch.randn(batch, steps, m)
    x_ref = x.clone().requires_grad_(True)
    x = x.requires_grad_(True)
    lengths = torch.tensor([9, 3, 7, 1]) if use_lengths else None
    out, state = rnn(x, lengths=lengths)
    if use_lengths:
        packed = nn.utils.rnn.pack_padded_sequence(
            x_ref, lengths, batch_first=True, enforce_sorted=False
        )
        ref_packed, ref_state = ref(packed)
        ref_out, _ = nn.utils.rnn.pad_packed_sequence(
            ref_packed, batch_first=True, total_length=steps
        )
    else:
        ref_out, ref_state = ref(x_ref)
    states = state if isinstance(state, tuple) else (state,)
    ref_states = ref_state if isinstance(ref_state, tuple) else (ref_state,)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    for s, r in zip(states, ref_states, strict=True):
        torch.testing.assert_close(s, r, rtol=1e-5, atol=1e-5)
    weights = [torch.randn_like(t) for t in (out, *states)]
    sum((w * t).sum() for w, t in zip(weights, (out, *states), strict=True)).backward()
    sum((w * t).sum() for w, t in zip(weights, (ref_out, *ref_states), strict=True)).backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    for (pname, p), g in zip(rnn.named_parameters(), _torch_grads(rnn, ref, kind), strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-5, msg=f"gradient of {pname}")


@pytest.mark.parametrize("name,backend", CASES)
def test_padded_batch_equals_each_sequence_alone(name, backend):
    rnn = build(name, 3, 4, 2, True, backend=backend)
    rnn.batch_first = True
    lengths = torch.tensor([6, 2, 4, 1])
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    x_padded = x.clone()
    for b, length in enumerate(lengths):
        x_padded[b, length:] = 1e3  # garbage in padding must change nothing
    out, state = rnn(x_padded, lengths=lengths)
    states = state if isinstance(state, tuple) else (state,)
    for b, length in enumerate(lengths.tolist()):
        alone, alone_state = rnn(x[b : b + 1, :length])
        alone_states = alone_state if isinstance(alone_state, tuple) else (alone_state,)
        torch.testing.assert_close(out[b, :length], alone[0], rtol=1e-10, atol=1e-12)
        assert torch.all(out[b, length:] == 0)
        for s, a in zip(states, alone_states, strict=True):
            torch.testing.assert_close(s[:, b], a[:, 0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["mut1", "mut2"])
@pytest.mark.parametrize("backend", LOOPS)
def test_mut1_mut2_see_the_raw_input_when_the_sizes_match(name, backend):
    """The paper's tanh(x) (MUT1) and x (MUT2): no projection when M == N, so nothing to
    learn there; a stacked layer reading 2 N features gets one, P x."""
    rnn = build(name, 4, 4, 2, True, backend)
    assert "weight_xp" not in dict(rnn.layers[0].named_parameters())
    assert "weight_xp" in dict(rnn.layers[2].named_parameters())  # layer 2 reads 2 N = 8
    check_against_reference(rnn, name)
