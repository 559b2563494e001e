"""The generated tasks' grammars: arith answers, well-formed xml, counting strings, and the
counting task's acceptance rule."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from ablate.tasks import TaskDataError, build_task
from ablate.tasks.arith import ALPHABET as ARITH_ALPHABET
from ablate.tasks.arith import draw_example
from ablate.tasks.counting import leading_run
from ablate.tasks.generated import draw_examples
from ablate.tasks.xml import ALPHABET as XML_ALPHABET

ARITH = re.compile(r"(-?\d+)([+-])(-?\d+)=(-?\d+)\.")


def _decode(task, split):
    return "".join(task.vocabulary[i] for i in task.streams[split])


def test_arith_vocabulary_is_the_papers_40_symbols(make_task):
    assert len(ARITH_ALPHABET) == 40 and len(set(ARITH_ALPHABET)) == 40
    assert make_task("arith").output_size == 40


def test_every_arith_answer_is_right(make_task):
    task = make_task("arith")
    for split, examples in task.examples.items():
        assert _decode(task, split) == "".join(examples)
        for text in examples:
            question, answer = text.split("=")
            letters = re.findall(r"[a-z]+", question)
            assert all(len(run) <= 3 for run in letters)  # max_distractors
            assert not question[0].isalpha() and "=" not in answer
            m = ARITH.fullmatch(re.sub(r"[a-z]", "", question) + "=" + answer)
            assert m, text
            a, op, b, result = int(m[1]), m[2], int(m[3]), int(m[4])
            assert result == (a + b if op == "+" else a - b)
            assert len(str(abs(a))) <= 8 and len(str(abs(b))) <= 8


def test_arith_scores_only_the_answer(make_task):
    task = make_task("arith")
    text = _decode(task, "valid")
    scored = task.scored["valid"]
    expected = np.zeros(len(text), dtype=bool)
    for m in re.finditer(r"=[-0-9]+\.", text):
        expected[m.start() + 1 : m.end()] = True
    assert np.array_equal(scored, expected)
    # a batch's mask marks exactly the targets in the answers
    b = next(iter(task.batches("valid", 4, shuffle=False, seed=0)))
    masked = {task.vocabulary[i] for i in b.targets[b.mask].tolist()}
    assert masked <= set("-0123456789.") and "." in masked


def test_arith_digits_option_and_no_repeats():
    rng = np.random.default_rng(0)
    for _ in range(200):
        text, (a, op, b) = draw_example(rng, max_digits=2, max_distractors=0)
        assert abs(a) < 100 and abs(b) < 100 and not re.search("[a-z]", text)
    # 1-digit problems: 19 x 2 x 19 = 722 of them; asking for more must fail, clearly
    with pytest.raises(TaskDataError, match="distinct"):
        build_task(
            {
                "name": "arith",
                "max_digits": 1,
                "train_examples": 800,
                "valid_examples": 10,
                "test_examples": 10,
            },
            seed=0,
        )


def test_generated_splits_are_disjoint_and_eval_sets_fixed(make_task):
    for name in ("arith", "xml"):
        task = make_task(name)
        sets = [set(task.examples[s]) for s in ("train", "valid", "test")]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
        bigger = make_task(name, train_examples=400)
        assert bigger.examples["test"] == task.examples["test"]
        assert bigger.examples["valid"] == task.examples["valid"]


def _epoch_text(task, seed, shuffle=True):
    stream, scored = task.split_stream("train", shuffle=shuffle, seed=seed)
    return "".join(task.vocabulary[i] for i in stream), scored


@pytest.mark.parametrize("name", ["arith", "xml"])
def test_fresh_train_reads_new_examples_every_epoch(make_task, name):
    task = make_task(name, fresh_train=True)
    first, again, second = (_epoch_text(task, seed) for seed in (11, 11, 12))
    assert first[0] == again[0] and first[0] != second[0]  # seeded by the epoch
    fixed = "".join(task.examples["train"])
    assert first[0] != fixed and _epoch_text(task, 11, shuffle=False)[0] == fixed
    if name == "arith":  # the scored answers follow the new examples
        expected = np.zeros(len(first[0]), dtype=bool)
        for m in re.finditer(r"=[-0-9]+\.", first[0]):
            expected[m.start() + 1 : m.end()] = True
        assert np.array_equal(first[1], expected)
        for text in first[0].split(".")[:-1]:
            assert ARITH.fullmatch(re.sub(r"[a-z]", "", text) + "."), text
    # batches read the epoch's examples, and the evaluation splits never change
    b = next(iter(task.batches("train", 2, shuffle=True, seed=12)))
    row = "".join(task.vocabulary[i] for i in b.inputs[0].tolist())
    assert row in second[0]
    assert make_task(name, fresh_train=False).examples["valid"] == task.examples["valid"]


def test_fresh_train_never_draws_an_evaluation_problem():
    # 1-digit problems without distractors: 722 in all, 600 of them held out
    task = build_task(
        {
            "name": "arith",
            "max_digits": 1,
            "max_distractors": 0,
            "train_examples": 100,
            "valid_examples": 300,
            "test_examples": 300,
            "fresh_train": True,
        },
        seed=0,
    )
    held_out = set(task.examples["valid"]) | set(task.examples["test"])
    for seed in range(5):
        text, _ = _epoch_text(task, seed)
        drawn = [t + "." for t in text.split(".")[:-1]]
        assert len(drawn) == 100 and len(set(drawn)) == 100
        assert not set(drawn) & held_out


def test_draw_examples_deterministic():
    def generate(rng):
        value = int(rng.integers(10**6))
        return str(value), value

    counts = {"train": 5, "valid": 3, "test": 3}
    assert draw_examples(generate, counts, 1, "t") == draw_examples(generate, counts, 1, "t")
    assert draw_examples(generate, counts, 1, "t") != draw_examples(generate, counts, 2, "t")


def _xml_steps(element: ET.Element) -> int:
    return 2 + sum(_xml_steps(child) for child in element)


def test_every_xml_document_is_well_formed(make_task):
    task = make_task("xml")
    assert set(XML_ALPHABET) == set("abcdefghijklmnopqrstuvwxyz</>")
    for split, documents in task.examples.items():
        assert _decode(task, split) == "".join(documents)
        for doc in documents:
            root = ET.fromstring(doc)  # raises unless well formed, one root element
            for element in root.iter():
                assert re.fullmatch("[a-z]{2,10}", element.tag) and not element.text
            # open/close steps: the 50-step rule caps the opens at 50
            assert _xml_steps(root) // 2 <= 50


def test_xml_closing_probability_one_half(make_task):
    """The root closes at step two with probability 0.5: about half the documents are one tag."""
    docs = make_task("xml").examples["train"]
    single = np.mean([doc.count("<") == 2 for doc in docs])
    assert 0.4 < single < 0.6


@pytest.mark.parametrize("language", ["anbn", "anbncn"])
def test_counting_strings_are_in_the_language(make_task, language):
    task = make_task("counting", language=language)
    letters = "abc"[: len(language) // 2]
    for split in ("train", "valid", "test"):
        strings = task.train_strings if split == "train" else task.eval_strings[split]
        seen = []
        for i in range(len(strings)):
            text = "".join(task.vocabulary[t] for t in strings[i])
            n = (len(text) - 2) // len(letters)
            assert text == "^" + "".join(c * n for c in letters) + "$"
            seen.append(n)
        if split == "train":
            assert sorted(set(seen)) == list(range(1, 7)) and len(seen) == 6 * 3
        elif split == "valid":  # model selection sees the training range only
            assert seen == list(range(1, 7))
        else:
            assert seen == list(range(1, 17))


def _counting_oracle(task, failing: frozenset[int] = frozenset(), spread: float = 0.0):
    """Predicts the language exactly (legal symbols share the mass, ``spread`` goes to every
    symbol), except for n in ``failing``, where it predicts the end one symbol too early."""
    vocab = task.vocabulary
    a, b, end = vocab.index("a"), vocab.index("b"), vocab.index("$")

    def predict(batch, state):
        rows, steps = batch.mask.shape
        probs = torch.full((rows, steps, len(vocab)), spread)
        for r in range(rows):
            length = int(batch.lengths[r])
            n = length // (len(vocab) - 2)
            for t in range(length):
                target = int(batch.targets[r, t])
                if int(batch.inputs[r, t]) == a:
                    probs[r, t, a] += 0.5
                    probs[r, t, b] += 0.5
                else:
                    probs[r, t, target] += 1.0
                if n in failing and t == length - 2:
                    probs[r, t] = 0.0
                    probs[r, t, end] = 1.0
        return torch.log(probs / probs.sum(-1, keepdim=True)), state

    return predict


def test_counting_acceptance_rule(make_task):
    task = make_task("counting")  # n_train 6, n_max 16
    perfect = task.evaluate(_counting_oracle(task), "test", 5)
    assert perfect["generalisation_limit"] == 16 and perfect["strict_limit"] == 16
    assert perfect["counting_limit"] == 16 and perfect["accept_at_2x"] == 1.0
    failing = task.evaluate(_counting_oracle(task, frozenset(range(10, 17))), "test", 5)
    assert failing["generalisation_limit"] == 9 and failing["strict_limit"] == 9
    assert failing["counting_limit"] == 9
    assert failing["accept_at_2x"] == 0.0  # n = 12 rejected
    gap = task.evaluate(_counting_oracle(task, frozenset({14})), "test", 5)
    assert gap["generalisation_limit"] == 13 and gap["accept_at_2x"] == 1.0
    on_train = task.evaluate(_counting_oracle(task), "train", 5)
    assert on_train["generalisation_limit"] == 6 and "accept_at_2x" not in on_train


def test_counting_uniform_model_passes_weiss_but_not_strict(make_task):
    task = make_task("counting")
    uniform = task.evaluate(_counting_oracle(task, spread=1e6), "test", 16)
    assert uniform["generalisation_limit"] == 16 and uniform["strict_limit"] == 0


def test_a_predictor_that_knows_nothing_passes_weiss_but_not_the_counting_rule(make_task):
    task = make_task("counting")

    def flat(batch, state):  # the same probability for every symbol, everywhere
        return torch.zeros((*batch.mask.shape, len(task.vocabulary))), state

    knows_nothing = task.evaluate(flat, "test", 16)
    assert knows_nothing["generalisation_limit"] == 16
    assert knows_nothing["counting_limit"] == 0 and knows_nothing["strict_limit"] == 0


def test_a_counter_with_a_little_spread_passes_the_counting_rule_not_the_strict_one(make_task):
    task = make_task("counting")
    sloppy = task.evaluate(_counting_oracle(task, spread=0.02), "test", 16)
    assert sloppy["generalisation_limit"] == 16 and sloppy["counting_limit"] == 16
    assert sloppy["strict_limit"] == 0


def test_leading_run():
    assert leading_run([True, True, False, True]) == 2
    assert leading_run([False]) == 0 and leading_run([True] * 3) == 3
