"""xml: Jozefowicz's XML task. Documents of nested tags with random names of 2-10 lowercase
letters: starting with one open tag, each step closes the most recently opened tag with
probability 0.5 (always once 50 steps have passed), else opens a new one; the document ends
when no tag is open. No whitespace, no text between tags."""

from __future__ import annotations

import string

import numpy as np

from ablate.tasks.generated import GeneratedTask

LETTERS = string.ascii_lowercase
ALPHABET = LETTERS + "</>"
NAME_LENGTHS = (2, 10)
CLOSE_PROBABILITY = 0.5
MAX_STEPS = 50


def draw_document(rng: np.random.Generator) -> tuple[str, str]:
    """One document; it is its own key."""
    parts: list[str] = []
    stack: list[str] = []
    steps = 0
    while True:
        if stack and (steps >= MAX_STEPS or rng.random() < CLOSE_PROBABILITY):
            parts.append(f"</{stack.pop()}>")
        else:
            length = int(rng.integers(NAME_LENGTHS[0], NAME_LENGTHS[1] + 1))
            stack.append("".join(LETTERS[i] for i in rng.integers(len(LETTERS), size=length)))
            parts.append(f"<{stack[-1]}>")
        steps += 1
        if not stack:
            document = "".join(parts)
            return document, document


class XML(GeneratedTask):
    """Next-character prediction over concatenated documents; every character is scored
    (opening names are random, so only the structure and the closing tags are learnable)."""

    name = "xml"
    alphabet = ALPHABET

    def __init__(
        self,
        *,
        train_examples: int = 2000,
        valid_examples: int = 200,
        test_examples: int = 200,
        bptt: int = 35,
        data_seed: int = 0,
        fresh_train: bool = False,
    ) -> None:
        super().__init__(
            draw_document,
            {"train": train_examples, "valid": valid_examples, "test": test_examples},
            bptt=bptt,
            data_seed=data_seed,
            fresh_train=fresh_train,
        )
