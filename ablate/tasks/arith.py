"""arith: Jozefowicz's arithmetic task. Two numbers of up to 8 digits, each positive or
negative, are added or subtracted; distractor letters are strewn between the input
characters, then "=" and the result follow, one character at a time, and "." ends the
example: "3e36d9-h1h39f94eeh43keg3c=-13991064." encodes 3369-13994433=-13991064."""

from __future__ import annotations

import string
from functools import partial

import numpy as np

from ablate.tasks.base import require
from ablate.tasks.generated import GeneratedTask

LETTERS = string.ascii_lowercase
ALPHABET = LETTERS + string.digits + "+-=."  # the paper's 40 symbols


def draw_number(rng: np.random.Generator, max_digits: int) -> int:
    """A uniform digit count in 1..max_digits, a uniform number of that many digits, and a
    fair sign (so short numbers are as common as long ones)."""
    digits = int(rng.integers(1, max_digits + 1))
    low = 0 if digits == 1 else 10 ** (digits - 1)
    value = int(rng.integers(low, 10**digits))
    return -value if rng.random() < 0.5 else value


def draw_example(
    rng: np.random.Generator, max_digits: int, max_distractors: int
) -> tuple[str, tuple[int, str, int]]:
    """One example's text, keyed by its problem (a, operator, b)."""
    a, b = draw_number(rng, max_digits), draw_number(rng, max_digits)
    operator = "+" if rng.random() < 0.5 else "-"
    result = a + b if operator == "+" else a - b
    question = f"{a}{operator}{b}"
    # all of an example's distractors in two draws: fresh_train draws 20,000 examples an epoch
    counts = rng.integers(0, max_distractors + 1, size=len(question)).tolist()
    noise = "".join(LETTERS[i] for i in rng.integers(len(LETTERS), size=sum(counts)))
    ends = np.cumsum(counts).tolist()
    parts = [c + noise[end - n : end] for c, n, end in zip(question, counts, ends, strict=True)]
    return f"{''.join(parts)}={result}.", (a, operator, b)


class Arith(GeneratedTask):
    """Next-character prediction, teacher-forced; only the answer is scored: the characters
    after "=" up to and including the final "."."""

    name = "arith"
    alphabet = ALPHABET

    def __init__(
        self,
        *,
        train_examples: int = 20000,
        valid_examples: int = 500,
        test_examples: int = 500,
        max_digits: int = 8,
        max_distractors: int = 3,
        bptt: int = 35,
        data_seed: int = 0,
        fresh_train: bool = True,
    ) -> None:
        require(0 < max_digits <= 18, f"task.max_digits: must lie in 1..18, got {max_digits}")
        require(max_distractors >= 0, f"task.max_distractors: must be >= 0, got {max_distractors}")
        super().__init__(
            partial(draw_example, max_digits=max_digits, max_distractors=max_distractors),
            {"train": train_examples, "valid": valid_examples, "test": test_examples},
            bptt=bptt,
            data_seed=data_seed,
            fresh_train=fresh_train,
            score_from="=",
        )
