"""Search spaces and samplers, without a sweep."""

from __future__ import annotations

import optuna
import pytest

from ablate.errors import AblateError
from ablate.search.samplers import TrialSeededRandomSampler
from ablate.search.space import parse_space

GREFF = {
    "model": {"hidden_size": {"type": "int", "low": 20, "high": 200, "log": True}},
    "optim": {
        "lr": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
        "momentum": {
            "type": "float",
            "low": 0.01,
            "high": 1.0,
            "log": True,
            "transform": "one_minus",
        },
    },
}


def test_nested_and_dotted_keys_and_the_momentum_transform():
    space = parse_space({**GREFF, "model.input_noise": {"type": "float", "low": 0, "high": 1}})
    assert [d.key for d in space] == [
        "model.hidden_size",
        "optim.lr",
        "optim.momentum",
        "model.input_noise",
    ]
    momentum = space[2]
    assert momentum.value(0.25) == 0.75 and momentum.override(0.25) == "optim.momentum=0.75"
    assert space[0].distribution.log and space[1].distribution.low == 1e-6


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"a": {"type": "float", "low": 2, "high": 1}}, "a: low (2) > high (1)"),
        ({"a": {"type": "float", "low": 0, "high": 1, "log": True}}, "a log scale needs low > 0"),
        ({"a": {"type": "int", "low": 1.5, "high": 3}}, "int bounds must be integers"),
        ({"a": {"type": "float", "low": 0, "high": 1, "transform": "sqrt"}}, "unknown transform"),
        ({"a": {"type": "gaussian", "low": 0, "high": 1}}, "unknown type 'gaussian'"),
        ({"a": {"choices": []}}, "non-empty list 'choices'"),
        ({"a": {"type": "float", "low": 0, "hgih": 1}}, "unknown field 'hgih'"),
        ({}, "no parameters"),
    ],
)
def test_bad_spaces(spec, message):
    with pytest.raises(AblateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_space(spec)


def _draws(study_name: str, paired: bool, seed: int = 0) -> list[dict]:
    dims = {d.key: d.distribution for d in parse_space(GREFF)}
    study = optuna.create_study(
        study_name=study_name, sampler=TrialSeededRandomSampler(seed, paired=paired)
    )
    return [study.ask(dims).params for _ in range(5)]


def test_random_draws_are_a_function_of_seed_study_and_trial():
    assert _draws("s/vanilla/jsb", False) == _draws("s/vanilla/jsb", False)
    assert _draws("s/vanilla/jsb", False) != _draws("s/nfg/jsb", False)
    assert _draws("s/vanilla/jsb", False) != _draws("s/vanilla/jsb", False, seed=1)
    assert _draws("s/vanilla/jsb", True) == _draws("s/nfg/jsb", True)
    assert len({tuple(p.values()) for p in _draws("s/vanilla/jsb", False)}) == 5
