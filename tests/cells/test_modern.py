"""The recurrent cells of 2024 (minGRU, minLSTM, sLSTM) and IndRNN, beyond what the tests of
every preset check (test_exact, test_state): the parallel scan against the sequential loop,
the spec options that no preset uses (sLSTM heads and exponential forget gate, IndRNN's
bound on u), the refusals, the backend each runs, and ``ablate cells`` and ``ablate bench``.
The float64 references are in reference.py, written from the papers' equations."""

from __future__ import annotations

import csv
import logging
import subprocess
import sys

import pytest
import torch

from ablate.bench import main as bench
from ablate.cells import Backend, CellSpec, GatedRNN, SpecError, compiled, preset
from ablate.cells.parallel import linear_scan
from tests.cells.test_exact import check_against_reference

MODERN = ("mingru", "minlstm", "indrnn", "slstm")


def spec(base: str, **changes) -> CellSpec:
    return CellSpec.from_dict({**preset(base).to_dict(), **changes})


def build(cell, m: int, n: int, layers: int, bidirectional: bool, backend: str) -> GatedRNN:
    torch.manual_seed(0)
    rnn = GatedRNN(cell, m, n, num_layers=layers, bidirectional=bidirectional,
                   backend=backend).double()
    with torch.no_grad():
        for p in rnn.parameters():
            p.uniform_(-0.8, 0.8)
    return rnn


def test_linear_scan_is_the_recurrence():
    """s_t = a_t s_{t-1} + b_t at every length around the powers of two the rounds double to."""
    torch.manual_seed(0)
    for steps in (1, 2, 3, 7, 8, 9, 64, 100):
        a = torch.rand(steps, 3, 5, dtype=torch.float64)
        b = torch.randn(steps, 3, 5, dtype=torch.float64)
        s0 = torch.randn(3, 5, dtype=torch.float64)
        s, expected = s0, []
        for t in range(steps):
            s = a[t] * s + b[t]
            expected.append(s)
        torch.testing.assert_close(linear_scan(a, b, s0), torch.stack(expected), rtol=1e-12,
                                   atol=1e-14)


def test_linear_scan_keeps_float32_over_long_sequences():
    """Products of gates only shrink in linear space: no log-space cancellation with T."""
    torch.manual_seed(0)
    a = torch.rand(4000, 2, 8, dtype=torch.float64) * 0.2 + 0.8
    b = torch.randn(4000, 2, 8, dtype=torch.float64)
    s0 = torch.randn(2, 8, dtype=torch.float64)
    exact = linear_scan(a, b, s0)
    single = linear_scan(a.float(), b.float(), s0.float()).double()
    assert (single - exact).abs().max() <= 1e-5 * exact.abs().max()


# Parallel specs beyond the presets: every branch of the scan's coefficients.
PARALLEL_VARIANTS = {
    "mingru": preset("mingru"),
    "minlstm": preset("minlstm"),
    "gru_old_tanh": spec("mingru", name="v", update_side="old", block_activation="tanh"),
    "lstm_coupled_output": spec(
        "minlstm", name="v", gates=["input", "forget", "output"], normalized=False,
        coupled=True, block_activation="tanh", output_activation="tanh",
    ),
    "lstm_no_forget": spec("minlstm", name="v", gates=["input"], normalized=False),
}


@pytest.mark.parametrize("variant", PARALLEL_VARIANTS)
@pytest.mark.parametrize("lengths", [None, [37, 12, 1, 30]], ids=["full", "lengths"])
def test_parallel_scan_equals_the_sequential_loop(variant, lengths):
    """Outputs, final states and every gradient, float64, to ~1e-10: 2 layers, both
    directions, packed variable lengths, a given initial state, 37 steps (not a power of 2)."""
    cell = PARALLEL_VARIANTS[variant]
    scan = build(cell, 3, 5, 2, True, "scan")
    loop = build(cell, 3, 5, 2, True, "reference")
    assert scan.path("cpu") is Backend.SCAN and GatedRNN(cell, 3, 5).path("cpu") is Backend.SCAN
    x = torch.randn(37, 4, 3, dtype=torch.float64, requires_grad=True)
    lengths = None if lengths is None else torch.tensor(lengths)
    sizes = scan.state_sizes
    start = tuple(torch.randn(4, 4, k, dtype=torch.float64, requires_grad=True) for k in sizes)
    state0 = start if len(start) > 1 else start[0]
    results = []
    for rnn in (scan, loop):
        out, state = rnn(x, state0, lengths)
        states = state if isinstance(state, tuple) else (state,)
        torch.manual_seed(1)
        loss = sum((torch.randn_like(t) * t).sum() for t in (out, *states))
        leaves = [x, *start, *rnn.parameters()]
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        grads = [torch.zeros_like(v) if g is None else g for v, g in zip(leaves, grads, strict=True)]
        results.append((out, *states, *grads))
    for s, r in zip(*results, strict=True):
        torch.testing.assert_close(s, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
@pytest.mark.parametrize("heads,n", [(1, 3), (2, 4), (4, 8)])
def test_slstm_heads_and_forget_gate_match_the_paper(forget, heads, n):
    """R block-diagonal per head (the reference builds the full matrices with block_diag);
    outputs, final (h, c, n, m) and gradients against the float64 reference."""
    cell = spec("slstm", heads=heads, forget_activation=forget)
    rnn = build(cell, 3, n, 2, True, "auto")
    assert rnn.layers[0].weight_hh.shape == (4 * n, n // heads)
    name = "slstm" if forget == "sigmoid" else "slstm_exp"
    check_against_reference(rnn, name)


def test_slstm_stabiliser_keeps_exponential_gates_finite():
    """Input-gate pre-activations near 1000 overflow exp in float64; with m they cancel in
    c / n, which is a weighted mean of the z's: |h| <= 1."""
    rnn = build(spec("slstm", forget_activation="exp"), 3, 4, 1, False, "auto")
    with torch.no_grad():
        rnn.layers[0].bias[:4].fill_(1000.0)  # rows i, f, z, o
        rnn.layers[0].bias[4:8].fill_(-5.0)
    out, (h, c, n, m) = rnn(torch.randn(50, 2, 3, dtype=torch.float64))
    assert torch.isfinite(out).all() and torch.isfinite(torch.stack([c, n, m])).all()
    assert out.abs().max() <= 1.0 and m.min() > 900


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_slstm_saturated_forget_gates_keep_finite_gradients(dtype):
    """Forget pre-activations of +-100 (sigmoid 1 - 4e-44 and 4e-44): the compiled kernel's
    outputs and gradients stay finite and equal the float64 reference's."""
    rnn = build(spec("slstm"), 3, 4, 1, False, "compiled").to(dtype)
    with torch.no_grad():
        rnn.layers[0].bias[4:6].fill_(100.0)  # rows f: two units saturated open,
        rnn.layers[0].bias[6:8].fill_(-100.0)  # two closed
    check_against_reference(rnn, "slstm")


def test_slstm_heads_must_divide_the_hidden_size():
    with pytest.raises(SpecError) as err:
        GatedRNN("slstm", 3, 5)
    assert str(err.value) == (
        "cell spec 'slstm': field 'heads': hidden_size 5 is not divisible by heads=2"
    )


def test_indrnn_clips_u_to_recurrent_max_before_every_forward():
    """The paper's |u| <= recurrent_max, as after every optimiser step: u starts within it,
    an update that takes u beyond is clipped before the next forward (which computes the
    paper's equations with the clipped u), and a u within is never written."""
    bound = 2 ** (1 / 10)
    cell = spec("indrnn", recurrent_max=bound)
    torch.manual_seed(0)
    rnn = GatedRNN(cell, 3, 6, num_layers=2).double()
    for layer in rnn.layers:
        assert layer.weight_hh.min() >= 0.0 and layer.weight_hh.max() <= 1.0  # U(0, 1)
    version = rnn.layers[0].weight_hh._version
    rnn(torch.randn(4, 2, 3, dtype=torch.float64))
    assert rnn.layers[0].weight_hh._version == version
    with torch.no_grad():
        rnn.layers[0].weight_hh.copy_(
            torch.tensor([-3.0, -1.0, 0.5, 1.05, 1.2, 7.0], dtype=torch.float64)
        )
    check_against_reference(rnn, "indrnn")
    expected = torch.tensor([-bound, -1.0, 0.5, 1.05, bound, bound], dtype=torch.float64)
    torch.testing.assert_close(rnn.layers[0].weight_hh.detach(), expected, rtol=0, atol=0)
    optimiser = torch.optim.SGD(rnn.parameters(), lr=10.0)
    out, _ = rnn(torch.randn(4, 2, 3, dtype=torch.float64))
    out.sum().backward()
    optimiser.step()
    rnn(torch.randn(4, 2, 3, dtype=torch.float64))
    for layer in rnn.layers:
        assert layer.weight_hh.abs().max() <= bound


def test_the_cells_without_a_kernel_run_in_torch_without_building_or_warning(
    monkeypatch, caplog
):
    """minGRU, minLSTM and IndRNN have no C++ kernel: ``auto`` picks the scan or the reference
    loop without touching the kernels (no build, no warning), and ``compiled`` is refused up
    front. The sLSTM has one."""
    def fail() -> None:
        raise AssertionError("the C++ kernels were built")

    torch_only = ("mingru", "minlstm", "indrnn")
    monkeypatch.setattr(compiled, "_load", fail)
    compiled.kernels.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            for name, path in zip(torch_only, ("scan", "scan", "reference"), strict=True):
                rnn = GatedRNN(name, 3, 4)
                assert rnn.path("cpu") is Backend(path), name
                rnn(torch.randn(5, 2, 3))
    finally:
        compiled.kernels.cache_clear()
    assert not caplog.records
    for name in torch_only:
        with pytest.raises(SpecError, match=f"cell '{name}' has no C\\+\\+ kernel"):
            GatedRNN(name, 3, 4, backend="compiled")
    with pytest.raises(SpecError, match="'slstm' has no parallel scan"):
        GatedRNN("slstm", 3, 4, backend="scan")


def test_minlstm_state_is_h_and_c_with_c_equal_h():
    _, (h, c) = GatedRNN("minlstm", 3, 4, num_layers=2)(torch.randn(5, 2, 3))
    torch.testing.assert_close(h, c, rtol=0, atol=0)
    _, state = GatedRNN("slstm", 3, 4)(torch.randn(5, 2, 3))
    assert len(state) == 4
    with pytest.raises(ValueError, match=r"expected state \(h, c, n, m\)"):
        GatedRNN("slstm", 3, 4)(torch.randn(5, 2, 3), state[:2])


@pytest.mark.parametrize(
    "name,changes,message",
    [
        ("lstm", {"heads": 2}, "field 'heads': block-diagonal heads belong to kind 'slstm'"),
        ("slstm", {"heads": 0}, "field 'heads' must be a positive integer"),
        ("slstm", {"forget_activation": "relu"}, "field 'forget_activation': unknown"),
        ("lstm", {"forget_activation": "exp"}, "field 'forget_activation': belongs to kind"),
        ("slstm", {"peepholes": {"input": "prev"}}, "field 'peepholes': the sLSTM has no"),
        ("slstm", {"gates": ["input", "forget"]}, "field 'gates': the sLSTM has all three"),
        ("slstm", {"fused": "lstm"}, "field 'fused'"),
        ("lstm", {"recurrence": "diagonal"}, "field 'recurrence': 'diagonal'"),
        ("mingru", {"recurrence": "none"}, "field 'recurrence': 'none'"),
        ("tanh", {"recurrence": "sideways"}, "field 'recurrence' has unknown value"),
        ("vanilla", {"recurrence": "none"}, "field 'peepholes': recurrence 'none'"),
        ("tanh", {"recurrent_max": 1.1}, "field 'recurrent_max': bounds the diagonal"),
        ("indrnn", {"recurrent_max": -1}, "field 'recurrent_max' must be a positive number"),
        ("minlstm", {"gates": ["input"]}, "field 'normalized': normalising i and f needs"),
        ("minlstm", {"coupled": True}, "field 'normalized': a coupled pair"),
        ("mingru", {"normalized": True}, "field 'normalized': normalises LSTM"),
        ("minlstm", {"normalized": "yes"}, "field 'normalized' must be true or false"),
        ("lstm", {"recurrence": "none"}, "field 'fused'"),
        ("mingru", {"sources": {"reset": ["wx"], "update": ["wx"], "candidate": ["wx"]}},
         "field 'sources.reset': the reset gate acts on the candidate's R h"),
    ],
)
def test_bad_new_fields_are_refused_in_one_line_naming_the_field(name, changes, message):
    with pytest.raises(SpecError) as err:
        spec(name, **changes)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_paper_form_needs_only_the_fields_its_kind_uses():
    """The new fields keep their defaults on every older preset, so those compare equal."""
    fields = ("normalized", "recurrence", "recurrent_max", "heads", "forget_activation")
    defaults = CellSpec(name="x")
    for name in ("vanilla", "gru", "tanh"):
        assert all(getattr(preset(name), f) == getattr(defaults, f) for f in fields)


@pytest.mark.parametrize(
    "name,line",
    [
        ("mingru", "h_t = z_t * h~_t + (1 - z_t) * h_{t-1}"),
        ("minlstm", "i'_t = i_t / (i_t + f_t);  f'_t = f_t / (i_t + f_t)"),
        ("indrnn", "h_t = relu(W x_t + u * h_{t-1} + b)"),
        ("slstm", "m_t = max(log f_t + m_{t-1}, log i_t)"),
    ],
)
def test_cells_show_prints_the_equations(name, line):
    result = subprocess.run([sys.executable, "-m", "ablate", "cells", "show", name],
                            capture_output=True, text=True, timeout=120, check=True)
    assert line in result.stdout
    assert preset(name).paper in result.stdout


def test_bench_times_the_new_presets(tmp_path):
    code = bench(["--sizes", "5:3:4:6", "--presets", ",".join(MODERN), "--repeats", "1",
                  "--warmup", "0", "--threads", "1", "--no-plot", "--out", str(tmp_path)])
    assert code == 0
    rows = {(r["name"], r["mode"]): r for r in csv.DictReader((tmp_path / "cpu.csv").open())}
    expected = {"mingru": ("scan", "torch.nn.GRU"), "minlstm": ("scan", "torch.nn.LSTM"),
                "indrnn": ("reference", "torch.nn.RNN"), "slstm": ("compiled", "torch.nn.LSTM")}
    for name, (backend, baseline) in expected.items():
        assert rows[name, "train"]["backend"] == backend
        assert rows[name, "train"]["baseline"] == baseline
        assert float(rows[name, "infer"]["ms"]) > 0

