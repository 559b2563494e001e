"""The fast path around the kernels: which backend runs, the build, the fallback, threads,
and float32 over longer sequences (the exactness of every preset is in test_exact.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch

from ablate.cells import Backend, GatedRNN, compiled, preset, preset_names
from ablate.cells.kernels import supports

COMPILED_PRESETS = [name for name in preset_names() if supports(preset(name))]


@pytest.fixture
def no_compiler(monkeypatch):
    """A machine where the C++ kernels cannot be built."""

    def fail() -> None:
        raise RuntimeError("Error building extension: c++: command not found\nmore detail")

    monkeypatch.setattr(compiled, "_load", fail)
    compiled.kernels.cache_clear()
    yield
    compiled.kernels.cache_clear()


def test_auto_runs_torch_kernels_where_exact_and_the_compiled_kernels_elsewhere():
    """Cells the C++ kernels do not compute run the parallel scan where their gates see x
    alone, else the reference loop; neither builds nor warns."""
    for name in preset_names():
        rnn = GatedRNN(name, 3, 4)
        expected = (
            Backend.FUSED if rnn.spec.fused
            else Backend.SCAN if rnn.spec.parallel
            else Backend.COMPILED if supports(rnn.spec)
            else Backend.REFERENCE
        )
        assert rnn.path("cpu") is expected, name
        assert GatedRNN(name, 3, 4, backend="reference").path("cpu") is Backend.REFERENCE
        # With lengths on the CPU, torch's kernel would pack the batch: the C++ kernels run.
        ragged = Backend.COMPILED if expected is Backend.FUSED else expected
        assert rnn.path("cpu", lengths=True) is ragged, name
        assert GatedRNN(name, 3, 4, backend="fused" if rnn.spec.fused else "auto").path(
            "cpu", lengths=True
        ) is (Backend.FUSED if rnn.spec.fused else ragged), name
    # Off the CPU, in other dtypes or under autocast, custom cells take the reference loop
    # (nothing is built); the C++ kernels refuse.
    rnn, compiled_rnn = GatedRNN("vanilla", 3, 4), GatedRNN("vanilla", 3, 4, backend="compiled")
    assert rnn.path("meta") is Backend.REFERENCE
    with pytest.raises(ValueError, match="run on the CPU"):
        compiled_rnn.path("meta")
    assert rnn.path("cpu", torch.bfloat16) is Backend.REFERENCE
    with pytest.raises(ValueError, match="float32 or float64"):
        compiled_rnn.path("cpu", torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert rnn.path("cpu") is Backend.REFERENCE
        out, _ = rnn(torch.randn(5, 2, 3))
    assert out.shape == (5, 2, 4)


def test_without_a_compiler_auto_warns_once_and_runs_the_reference_loop(no_compiler, caplog):
    rnn = GatedRNN("vanilla", 3, 4)
    x = torch.randn(5, 2, 3)
    with caplog.at_level(logging.WARNING):
        rnn(x)
        rnn(x)
    warnings = [r.getMessage() for r in caplog.records if "C++ cell kernels" in r.getMessage()]
    assert warnings == [
        "ablate: could not build the C++ cell kernels (Error building extension: c++: command "
        "not found); using the slower Python loop"
    ]
    assert rnn.path("cpu") is Backend.REFERENCE
    with pytest.raises(RuntimeError, match="could not be built"):
        GatedRNN("vanilla", 3, 4, backend="compiled")(x)


def test_a_failed_build_says_so_in_two_lines_and_the_cell_still_runs(tmp_path):
    """A real build with no compiler, in a fresh process and cache."""
    script = (
        "import torch\n"
        "from ablate.cells import GatedRNN\n"
        "rnn = GatedRNN('vanilla', 3, 4)\n"
        "rnn(torch.randn(5, 2, 3))\n"
        "rnn(torch.randn(5, 2, 3))\n"
        "print(rnn.path('cpu'))\n"
    )
    env = {**os.environ, "ABLATE_CACHE_DIR": str(tmp_path), "CXX": str(tmp_path / "no-c++")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    assert result.stdout.strip() == "reference"
    lines = [line for line in result.stderr.splitlines() if line.startswith("ablate:")]
    assert lines[0] == "ablate: building the C++ cell kernels (once, ~10 s)..."
    assert lines[1].startswith("ablate: could not build the C++ cell kernels (")
    assert lines[1].endswith("no-c++: not found); using the slower Python loop")
    assert len(lines) == 2


def test_build_folder_follows_the_cache_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("ABLATE_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "t"))
    assert compiled.build_root() == tmp_path / "a" / "torch_extensions"
    monkeypatch.delenv("ABLATE_CACHE_DIR")
    assert compiled.build_root() == tmp_path / "t"
    assert compiled.build_name().startswith("ablate_cells_")


@pytest.mark.parametrize("name", ["vanilla", "fgr", "gru", "mut3", "tanh"])
def test_compiled_kernels_give_the_same_result_on_one_thread_and_two(name):
    """Big enough that two threads split the batch (>= ~1M multiply-adds each)."""
    torch.manual_seed(0)
    rnn = GatedRNN(name, 8, 64, num_layers=2, bidirectional=True, backend="compiled").double()
    x = torch.randn(40, 9, 8, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([40, 13, 25, 1, 36, 40, 2, 39, 20])
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out, _ = rnn(x, lengths=lengths)
            results.append((out, *torch.autograd.grad(out.square().sum(), [x, *rnn.parameters()])))
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results, strict=True):
        torch.testing.assert_close(one, two, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["vanilla", "cifg", "fgr", "gru", "mut1", "tanh"])
def test_float32_stays_close_to_float64_over_long_sequences(name):
    """At realistic lengths float32 drifts from float64 by ~1e-5 relative: compare norms."""
    torch.manual_seed(1)
    rnn = GatedRNN(name, 16, 32, backend="compiled")
    rnn64 = GatedRNN(name, 16, 32, backend="compiled").double()
    rnn64.load_state_dict(rnn.state_dict())
    x = torch.randn(60, 8, 16)
    out, _ = rnn(x.requires_grad_(True))
    out64, _ = rnn64(x.detach().double().requires_grad_(True))
    out.sum().backward()
    out64.sum().backward()
    torch.testing.assert_close(out.double(), out64, rtol=1e-4, atol=1e-5)
    for p, p64 in zip(rnn.parameters(), rnn64.parameters(), strict=True):
        assert (p.grad.double() - p64.grad).norm() <= 1e-4 * p64.grad.norm() + 1e-6


@pytest.mark.parametrize("name", COMPILED_PRESETS)
def test_inference_computes_what_training_does(name):
    """Without a backward to come the kernels keep one step's activations, not all."""
    rnn = GatedRNN(name, 3, 4, num_layers=2, bidirectional=True, backend="compiled").double()
    x = torch.randn(6, 5, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4, 1, 5])
    with torch.no_grad():
        out, state = rnn(x, lengths=lengths)
    assert not out.requires_grad
    train_out, train_state = rnn(x, lengths=lengths)
    assert train_out.requires_grad
    torch.testing.assert_close(out, train_out.detach(), rtol=0, atol=0)
    for s, t in zip(
        *(st if isinstance(st, tuple) else (st,) for st in (state, train_state)), strict=True
    ):
        torch.testing.assert_close(s, t.detach(), rtol=0, atol=0)


def test_a_batch_smaller_than_the_threads():
    rnn = GatedRNN("vanilla", 3, 4, backend="compiled")
    out, (h, _) = rnn(torch.randn(5, 1, 3))
    assert out.shape == (5, 1, 4)
    torch.testing.assert_close(out[-1], h[0])


def test_kernels_reject_tensors_they_cannot_read():
    ops = compiled.kernels()
    assert ops is not None and ops.has_blas()
    x, w_ih = torch.randn(3, 2, 8)[..., :3], torch.randn(2, 3)
    bias, h0 = torch.zeros(2), torch.zeros(2, 2)
    with pytest.raises(RuntimeError, match="x must be a contiguous CPU tensor"):
        ops.elman_forward(x, w_ih, bias, h0, torch.eye(2), None, 0)
    with pytest.raises(RuntimeError, match="weight_hh has shape"):
        ops.elman_forward(x.contiguous(), w_ih, bias, h0, torch.eye(3), None, 0)
    with pytest.raises(RuntimeError, match="weight_ih has shape"):
        ops.elman_forward(x.contiguous(), torch.randn(3, 2), bias, h0, torch.eye(2), None, 0)
