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
) -> tuple[dict[str, list[str]], dict[str, set[object]]]:
    """``counts[split]`` examples per split, none repeated anywhere, and each split's keys.
    Test is drawn first, then valid, then train, each from its own seeded stream, so the
    evaluation sets do not change with the training set's size."""
    seen: set[object] = set()
    examples: dict[str, list[str]] = {}
    keys: dict[str, set[object]] = {}
    for number, split in reversed(list(enumerate(SPLITS))):
        rng = np.random.default_rng([seed, number])
        examples[split], keys[split] = _draw(generate, rng, counts[split], seen, f"{what} {split}")
        seen |= keys[split]
    return {split: examples[split] for split in SPLITS}, keys


def _draw(
    generate: Generator, rng: np.random.Generator, count: int, taken: set[object], what: str
) -> tuple[list[str], set[object]]:
    """``count`` distinct examples whose keys are not in ``taken``."""
    chosen: list[str] = []
    keys: set[object] = set()
    repeats = 0
    while len(chosen) < count:
        text, key = generate(rng)
        if key in taken or key in keys:
            repeats += 1
            require(
                repeats < _MAX_REPEATS,
                f"{what}: cannot draw {count} distinct examples; ask for fewer or larger ones",
            )
            continue
        repeats = 0
        keys.add(key)
        chosen.append(text)
    return chosen, keys


class GeneratedTask(LanguageModel):
    """Next-character prediction over the concatenated examples of each split.

    With ``fresh_train`` every training epoch reads ``train_examples`` new examples, drawn
    from the epoch's seed and never a valid or test problem: an endless supply, as a
    generator allows, so a cell that memorises its training set gains nothing."""

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
        fresh_train: bool = False,
    ) -> None:
        """``score_from``: score only the characters after this one in every example (all
        characters when None)."""
        super().__init__(bptt=bptt)
        for split, count in counts.items():
            require(count > 0, f"task.{split}_examples: must be positive, got {count}")
        self.vocabulary = list(self.alphabet)
        self.generate = generate
        self.data_seed = data_seed
        self.score_from = score_from
        self.fresh_train = fresh_train
        self.examples, keys = draw_examples(generate, counts, data_seed, f"task {self.name}")
        self.held_out = keys["valid"] | keys["test"]
        encoded = {split: self._encode(texts) for split, texts in self.examples.items()}
        self.streams = {split: stream for split, (stream, _) in encoded.items()}
        self.starts = {
            split: np.cumsum([0, *map(len, texts[:-1])]) for split, texts in self.examples.items()
        }
        if score_from is not None:
            self.scored = {split: scored for split, (_, scored) in encoded.items()}

    def split_stream(
        self, split: str, *, shuffle: bool, seed: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if not (self.fresh_train and split == "train" and shuffle):
            return super().split_stream(split, shuffle=shuffle, seed=seed)
        rng = np.random.default_rng([self.data_seed, len(SPLITS), seed])
        count = len(self.examples["train"])
        texts, _ = _draw(self.generate, rng, count, self.held_out, f"task {self.name} train")
        return self._encode(texts)

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """The examples' character stream and which characters are scored."""
        stream = encode_chars("".join(texts), self.alphabet, f"task {self.name}")
        if self.score_from is None:
            return stream, None
        return stream, np.concatenate([_after(text, self.score_from) for text in texts])


def _after(text: str, marker: str) -> np.ndarray:
    """Whether each character comes after the first ``marker``."""
    scored = np.zeros(len(text), dtype=bool)
    scored[text.index(marker) + 1 :] = True
    return scored
