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


# Jozefowicz's sets: 6 x 4 x 5 x 7 = 840 settings.
JOZEFOWICZ = {
    "model.init_scale": {"choices": [0.3, 0.7, 1.0, 1.4, 2.0, 2.8]},
    "model.num_layers": {"choices": [1, 2, 3, 4]},
    "optim.clip_norm": {"choices": [1.0, 2.5, 5.0, 10.0, 20.0]},
    "optim.lr": {"choices": [0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0]},
}


def _discrete_search(study_name: str, spec: dict, n: int, enqueue: dict | None = None):
    space = parse_space(spec)
    dims = {d.key: d.distribution for d in space}
    plain = TrialSeededRandomSampler(0)  # draws with replacement, as before
    study = optuna.create_study(
        study_name=study_name, sampler=TrialSeededRandomSampler(0, space=space)
    )
    if enqueue:
        study.enqueue_trial(enqueue)
    trials = [study.ask(dims) for _ in range(n)]
    for t in trials:
        study.tell(t, 0.0)
    with_replacement = [
        {k: plain.sample_independent(study, t, k, dist) for k, dist in dims.items()}
        for t in study.trials
    ]
    return [t.params for t in study.trials], with_replacement


def test_a_discrete_space_is_searched_without_repeats():
    """With replacement, mut2/arith's trial 8 drew trial 7's setting again (one job, counted
    twice): now trial 8 redraws. Every other trial draws what it drew before."""
    drawn, before = _discrete_search("jozefowicz2015/mut2/arith", JOZEFOWICZ, 24)
    assert before[7] == before[8]  # the repeat the study met
    assert len({tuple(sorted(p.items())) for p in drawn}) == 24
    assert [k for k in range(24) if drawn[k] != before[k]] == [8]


def test_a_retry_queued_with_its_setting_is_not_drawn_again_and_a_full_space_repeats():
    tiny = {"a": {"choices": [1, 2]}, "b": {"type": "int", "low": 0, "high": 1}}  # 4 settings
    drawn, _ = _discrete_search("s", tiny, 6, enqueue={"a": 2, "b": 1})
    assert drawn[0] == {"a": 2, "b": 1}
    assert len({tuple(sorted(p.items())) for p in drawn[:4]}) == 4  # all four, once each
    assert len(drawn) == 6  # then, every setting taken, repeats rather than failing


def test_a_space_with_a_continuous_dimension_draws_as_before():
    space = parse_space(GREFF)
    new = TrialSeededRandomSampler(0, space=space)
    assert new.infer_relative_search_space(None, None) == {}  # type: ignore[arg-type]


def test_trials_that_shared_one_job_fill_one_place():
    """Legacy repeats (two trials, one MLflow run) count once, so the resumed sweep runs the
    missing trial; a trial given back and its retry are told apart as before."""
    from optuna.trial import TrialState

    from ablate.search.trial import ERROR_ATTR, MLFLOW_RUN_ATTR, counted

    study = optuna.create_study()
    runs = ["a", "b", "a", None, "c"]
    for k, run in enumerate(runs):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        if run is not None:
            study._storage.set_trial_system_attr(trial._trial_id, MLFLOW_RUN_ATTR, run)
        if k == 3:  # given back: FAIL without an error, its parameters queued again
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, float(k))
    crashed = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study._storage.set_trial_system_attr(crashed._trial_id, ERROR_ATTR, "RuntimeError: boom")
    study.tell(crashed, state=TrialState.FAIL)
    assert [t.number for t in counted(study.trials)] == [0, 1, 4, 5]
