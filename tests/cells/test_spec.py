"""Spec validation, presets, initialisation and the ``ablate cells`` command."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from ablate.cells import CellSpec, GatedRNN, SpecError, layout, load_spec, preset, preset_names
from ablate.cells.activations import ACTIVATION_FUNCTIONS
from ablate.cells.equations import equations
from ablate.cells.spec import ACTIVATIONS, GATE_ACTIVATIONS


def spec(**fields) -> CellSpec:
    return CellSpec.from_dict({"name": "bad", **fields})


@pytest.mark.parametrize(
    "fields,message",
    [
        (
            {"gates": ["forget", "output"], "coupled": True},
            "'coupled': coupling f = 1 - i needs an input gate",
        ),
        (
            {"kind": "gru", "peepholes": {"input": "prev"}},
            "'peepholes': a peephole needs a cell state",
        ),
        ({"block_activation": "swish"}, "'block_activation': unknown activation 'swish'"),
        ({"kind": "elman", "coupled": True}, "'coupled'"),
        (
            {"peepholes": {"input": "new"}},
            "'peepholes.input': only the output gate can see the new cell",
        ),
        (
            {"gates": ["input", "output"], "peepholes": {"forget": "prev"}},
            "'peepholes.forget': peephole on the forget gate",
        ),
        (
            {"coupled": True, "peepholes": {"forget": "prev"}},
            "'peepholes.forget': a coupled forget gate",
        ),
        (
            {"gates": ["input", "output"], "forget_bias": 1.0},
            "'forget_bias': the cell has no forget gate",
        ),
        ({"peepholes": {"input": "prev"}, "fused": "lstm"}, "'fused'"),
        (
            {"kind": "gru", "sources": {"reset": ["wx"], "update": ["wx"]}},
            "'sources.candidate': needs at least one source",
        ),
        (
            {
                "kind": "gru",
                "sources": {
                    "reset": ["wx", "rh", "r_tanh_h"],
                    "update": ["wx"],
                    "candidate": ["rh"],
                },
            },
            "'sources.reset': use either",
        ),
        (
            {
                "kind": "gru",
                "reset": "after",
                "sources": {"reset": ["wx"], "update": ["wx"], "candidate": ["wx"]},
            },
            "'reset'",
        ),
        ({"kind": "quantum"}, "field 'kind' has unknown value 'quantum'"),
        ({"gates": ["input", "sideways"]}, "field 'gates' has unknown value 'sideways'"),
        ({"peeholes": {}}, "unknown field 'peeholes'"),
        ({"coupled": "yes"}, "field 'coupled' must be true or false"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(fields, message):
    with pytest.raises(SpecError) as err:
        spec(**fields)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_activation_names_all_resolve():
    assert set(ACTIVATIONS) | set(GATE_ACTIVATIONS) <= set(ACTIVATION_FUNCTIONS)


def test_every_preset_round_trips_and_renders():
    for name in preset_names():
        s = preset(name)
        assert s.name == name
        assert CellSpec.from_dict(s.to_dict()) == s
        assert equations(s)


def test_preset_from_a_user_yaml(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nkind: lstm\ngates: [input, output]\noutput_activation: relu\n")
    s = preset(str(path))
    assert s.gates == (s.gates[0], s.gates[1]) and s.output_activation == "relu"
    assert "h_t = relu(c_t) * o_t" in equations(s)
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(SpecError, match="unknown cell preset 'vanila'.*vanilla"):
        preset("vanila")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"hidden_size": 0}, "hidden_size must be a positive integer"),
        ({"hidden_size": -3}, "hidden_size must be a positive integer"),
        ({"num_layers": 0}, "num_layers"),
        ({"dropout": 1.5}, "dropout"),
        ({"init": "he"}, "unknown init 'he'"),
        ({"backend": "gpu"}, "unknown backend"),
    ],
)
def test_bad_module_arguments(kwargs, message):
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        GatedRNN("vanilla", **args)


def test_fused_backend_refused_for_custom_cell():
    with pytest.raises(SpecError, match="no fused torch kernel"):
        GatedRNN("vanilla", 3, 4, backend="fused")


def test_forget_bias_override_needs_a_forget_gate():
    with pytest.raises(SpecError, match="no forget gate"):
        GatedRNN("cifg", 3, 4, forget_bias=1.0)


def test_greff_variants_differ_from_vanilla_by_one_thing():
    base = preset("vanilla").to_dict()
    for name in ("nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr"):
        other = preset(name).to_dict()
        changed = {k for k in base if base[k] != other[k]} - {"name", "description"}
        assert changed, name
        assert changed <= {
            "gates",
            "peepholes",
            "block_activation",
            "output_activation",
            "coupled",
            "full_gate_recurrence",
        }, (name, changed)


def test_fgr_matmul_work_is_about_two_and_a_half_lstms():
    lstm, fgr = layout(preset("lstm"), 64, 128), layout(preset("fgr"), 64, 128)
    ratio = fgr.matmul_flops(32, 100) / lstm.matmul_flops(32, 100)
    assert 2.3 < ratio < 2.7


def test_uniform_init_bounds_and_forget_bias():
    torch.manual_seed(0)
    rnn = GatedRNN("lstm_b", 8, 16, init="uniform", init_scale=2.0)
    bound = 2.0 / math.sqrt(16)
    p = rnn.layers[0]
    assert p.weight_hh.abs().max() <= bound and p.weight_hh.abs().max() > 0.9 * bound
    bias = p.bias.detach().view(4, 16)  # rows i, f, z, o
    assert torch.all(bias[1] == 1.0) and torch.all(bias[[0, 2, 3]] == 0.0)


def test_xavier_orthogonal_is_per_gate():
    torch.manual_seed(0)
    rnn = GatedRNN("vanilla", 8, 16, init="xavier_orthogonal")
    for block in rnn.layers[0].weight_hh.detach().split(16):
        torch.testing.assert_close(block @ block.T, torch.eye(16), atol=1e-5, rtol=0)
    stacked = rnn.layers[0].weight_hh.detach()
    assert not torch.allclose(stacked.T @ stacked, torch.eye(16), atol=1e-3)


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = GatedRNN("mut2", 5, 6)
    torch.manual_seed(3)
    b = GatedRNN("mut2", 5, 6)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def _ablate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ablate", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_lists_presets_with_parameter_counts():
    result = _ablate("cells", "--input-size", "64", "--hidden-size", "128")
    assert result.returncode == 0, result.stderr
    for name in preset_names():
        assert f"\n{name} " in result.stdout
    assert "99,200" in result.stdout  # vanilla: 4*128*(64+128) + 4*128 + 3*128


def test_cli_show_prints_equations_and_errors_cleanly(tmp_path):
    result = _ablate("cells", "show", "cifg")
    assert "f_t = 1 - i_t" in result.stdout
    assert _ablate("cells", "cifg").stdout == result.stdout  # `show` may be left out
    bad = _ablate("cells", "show", "nope")
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "unknown cell preset 'nope'" in bad.stderr
    assert _ablate("cells", "--hidden-size", "-1").returncode == 2
