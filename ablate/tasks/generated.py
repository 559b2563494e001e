"""What Jozefowicz's generated tasks (arith, xml) share: examples drawn per split from a
seeded generator, never repeated across splits, concatenated into one character stream."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ablate.tasks.base import SPLITS, require
from ablate.tasks.language import LanguageModel, encode_chars

# Draws one example: its text and the key that identifies it (for uniqueness).
Generator = Callable[[np.random.Generator], tuple[str, object]]

# Give up when this many draws in a row repeat earlier examples (the space is exhausted).
_MAX_REPEATS = 1000


def draw_examples(
    generate: Generator, counts: dict[str, int], seed: int, what: str
) -> dict[str, list[str]]:
    """``counts[split]`` examples per split, none repeated anywhere. Test is drawn first,
    then valid, then train, each from its own seeded stream, so the evaluation sets do not
    change with the training set's size."""
    seen: set[object] = set()
    examples: dict[str, list[str]] = {}
    for number, split in reversed(list(enumerate(SPLITS))):
        rng = np.random.default_rng([seed, number])
        chosen: list[str] = []
        repeats = 0
        while len(chosen) < counts[split]:
            text, key = generate(rng)
            if key in seen:
                repeats += 1
                require(
                    repeats < _MAX_REPEATS,
                    f"{what}: cannot draw {counts[split]} distinct {split} examples; "
                    "ask for fewer or larger ones",
                )
                continue
            repeats = 0
            seen.add(key)
            chosen.append(text)
        examples[split] = chosen
    return {split: examples[split] for split in SPLITS}


class GeneratedTask(LanguageModel):
    """Next-character prediction over the concatenated examples of each split."""

    metric = "accuracy"
    higher_is_better = True
    reported = ("accuracy",)
    alphabet: str

    def __init__(
        self,
        generate: Generator,
        counts: dict[str, int],
        *,
        bptt: int,
        data_seed: int,
        score_from: str | None = None,
    ) -> None:
        """``score_from``: score only the characters after this one in every example (all
        characters when None)."""
        super().__init__(bptt=bptt)
        for split, count in counts.items():
            require(count > 0, f"task.{split}_examples: must be positive, got {count}")
        self.vocabulary = list(self.alphabet)
        self.examples = draw_examples(generate, counts, data_seed, f"task {self.name}")
        self.streams = {
            split: encode_chars("".join(texts), self.alphabet, f"task {self.name}")
            for split, texts in self.examples.items()
        }
        if score_from is not None:
            self.scored = {
                split: np.concatenate([_after(text, score_from) for text in texts])
                for split, texts in self.examples.items()
            }


def _after(text: str, marker: str) -> np.ndarray:
    """Whether each character comes after the first ``marker``."""
    scored = np.zeros(len(text), dtype=bool)
    scored[text.index(marker) + 1 :] = True
    return scored
