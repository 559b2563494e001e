"""A search over the cell's components: only valid cells are drawn, every drawn cell builds
and travels to its job as one token, and the draws are a function of seed, study and trial."""

from __future__ import annotations

import optuna
import pytest
import torch

from ablate.cells import GatedRNN
from ablate.cells.presets import preset
from ablate.errors import AblateError
from ablate.search import components
from ablate.search.samplers import build_sampler
from ablate.search.space import parse_space

SPACE = {
    "optim": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
    "cell": {
        "gates": {g: {"choices": [True, False]} for g in ("input", "forget", "output")},
        "peepholes": {
            "input": {"choices": ["prev", "none"]},
            "forget": {"choices": ["prev", "none"]},
            "output": {"choices": ["new", "prev", "none"]},
        },
        "block_activation": {"choices": ["tanh", "identity"]},
        "output_activation": {"choices": ["tanh", "identity"]},
        "coupled": {"choices": [False, True]},
        "full_gate_recurrence": {"choices": [False, True]},
        "forget_bias": {"choices": [0.0, 1.0]},
    },
}
GRU_SPACE = {
    "cell": {
        "sources": {
            "reset": {"choices": ["wx+rh", "wx", "none"]},
            "update": {"choices": ["wx+rh", "x", "wx"]},
            "candidate": {"choices": ["wx+rh", "rh+tanh_x", "wx"]},
        },
        "reset": {"choices": ["before", "after"]},
    }
}


def draws(space: dict, base: str, count: int, study: str = "s", seed: int = 0, start: int = 0):
    dims = parse_space(space)
    cell = preset(base).to_dict()
    sampler = build_sampler(
        {"name": "random", "seed": seed}, dims, 0, lambda v: components.valid(cell, v)
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    run = optuna.create_study(storage=storage, study_name=study, sampler=sampler)
    for _ in range(start):  # trials another worker took
        run.enqueue_trial({})
        run.ask()
    out = []
    for _ in range(count):
        trial = run.ask({d.key: d.distribution for d in dims})
        out.append(trial.params)
    return cell, out


@pytest.mark.parametrize("space,base", [(SPACE, "vanilla"), (GRU_SPACE, "gru")])
def test_every_draw_is_a_valid_cell_that_builds_and_travels(space, base):
    cell, found = draws(space, base, 100)
    names = set()
    for params in found:
        picked = {k: v for k, v in params.items() if components.is_component(k)}
        spec = components.sampled_spec(cell, picked)
        word = components.token(spec)
        assert components.sampled_spec(components.apply_token(cell, word), {}) == spec
        assert components.values_of(spec, list(picked)) == picked
        rnn = GatedRNN(spec, input_size=3, hidden_size=4, backend="reference")
        out, _ = rnn(torch.randn(5, 2, 3))
        assert out.shape == (5, 2, 4) and torch.isfinite(out).all()
        names.add(components.describe(spec))
    assert len(names) > 20  # the draws cover the space, not a few cells
    if base == "vanilla":
        assert {params["cell.gates.forget"] for params in found} == {True, False}


def test_draws_are_a_function_of_seed_study_and_trial():
    _, first = draws(SPACE, "vanilla", 20)
    _, again = draws(SPACE, "vanilla", 20)
    _, resumed = draws(SPACE, "vanilla", 10, start=10)  # a second worker, from trial 10
    _, other = draws(SPACE, "vanilla", 20, seed=1)
    assert first == again
    assert resumed == first[10:]
    assert other != first


def test_names_and_refusals():
    cell = preset("vanilla").to_dict()
    assert components.describe(preset("cifg")) == "cifg"
    spec = components.sampled_spec(cell, {"cell.peepholes.input": "none", "cell.forget_bias": 1.0})
    assert components.describe(spec) == "i f o peep(f,o) g=tanh h=tanh fb=1"
    assert components.token(spec) == "ifo+pfO+gtanh+htanh+fb1.0"
    assert not components.valid(cell, {"cell.gates.input": False})  # its peephole stays
    with pytest.raises(AblateError, match="not a cell component"):
        parse_space({"cell": {"name": {"choices": ["a", "b"]}}})
    with pytest.raises(AblateError, match="takes a list 'choices'"):
        parse_space({"cell": {"forget_bias": {"type": "float", "low": 0.0, "high": 1.0}}})
    with pytest.raises(AblateError, match="needs the random sampler"):
        build_sampler({"name": "tpe"}, parse_space(SPACE), 0)


def test_a_finite_space_counts_only_the_settings_the_spec_accepts():
    """The GRU space has 54 combinations of which the spec accepts 27: once a study has drawn
    those 27, a trial repeats one at once instead of searching 10,000 rounds for a 28th."""
    dims = parse_space(GRU_SPACE)
    cell = preset("gru").to_dict()
    sampler = build_sampler(
        {"name": "random", "seed": 0}, dims, 0, lambda v: components.valid(cell, v)
    )
    assert sampler.settings == 27
    _, found = draws(GRU_SPACE, "gru", 40)
    assert len({tuple(sorted(p.items())) for p in found[:27]}) == 27  # no repeat before all
