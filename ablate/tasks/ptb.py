"""ptb: word-level language modelling on the Penn Treebank (Mikolov's split), Jozefowicz's
third task. The files are not shipped: ``data_dir`` must hold ``ptb.train.txt``,
``ptb.valid.txt`` and ``ptb.test.txt`` (one sentence per line, words separated by spaces,
rare words already ``<unk>``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ablate.tasks.base import SPLITS, TaskDataError, require
from ablate.tasks.language import LanguageModel

EOS = "<eos>"  # appended to every line, as in Zaremba et al.'s and Jozefowicz's setup


def read_words(path: Path) -> list[tuple[int, list[str]]]:
    """The file's non-blank lines as (line number, words ending with ``<eos>``)."""
    require(path.is_file(), f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TaskDataError(f"{path}: unreadable as UTF-8 text ({err})") from err
    require("\x00" not in text, f"{path}: binary data, not a text file")
    lines = [
        (number, line.split() + [EOS])
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    require(bool(lines), f"{path}: no words (empty file?)")
    return lines


class PTB(LanguageModel):
    """Next-word prediction; the vocabulary is the training file's words (most frequent
    first), and a validation or test word outside it is a data error."""

    name = "ptb"
    metric = "perplexity"
    higher_is_better = False
    reported = ("perplexity", "accuracy")

    def __init__(self, *, data_dir: str | None = None, bptt: int = 35) -> None:
        super().__init__(bptt=bptt)
        require(
            data_dir is not None,
            "task.data_dir is required: a folder with ptb.train.txt, "
            "ptb.valid.txt and ptb.test.txt",
        )
        folder = Path(str(data_dir)).expanduser()
        require(folder.is_dir(), f"{folder}: task.data_dir is not a folder")
        lines = {split: read_words(folder / f"ptb.{split}.txt") for split in SPLITS}
        counts = Counter(word for _, words in lines["train"] for word in words)
        self.vocabulary = sorted(counts, key=lambda w: (-counts[w], w))
        index = {word: i for i, word in enumerate(self.vocabulary)}
        self.streams = {}
        for split, split_lines in lines.items():
            ids: list[int] = []
            for number, words in split_lines:
                unknown = next((w for w in words if w not in index), None)
                require(
                    unknown is None,
                    f"{folder / f'ptb.{split}.txt'}:{number}: word {unknown!r} is not in the "
                    "vocabulary of ptb.train.txt",
                )
                ids.extend(index[w] for w in words)
            self.streams[split] = np.array(ids, dtype=np.int32)
