"""ptb: word-level language modelling on the Penn Treebank (Mikolov's split), Jozefowicz's
third task. The files are not shipped: ``data_dir`` must hold ``ptb.train.txt``,
``ptb.valid.txt`` and ``ptb.test.txt`` (one sentence per line, words separated by spaces,
rare words already ``<unk>``). A validation or test word that ptb.train.txt lacks is read as
``<unk>`` when the training text has that token, and refused otherwise."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from ablate.tasks.base import SPLITS, TaskDataError, require
from ablate.tasks.language import LanguageModel

log = logging.getLogger("ablate")

UNK = "<unk>"  # the rare-word token of Mikolov's files; unseen evaluation words map to it
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
    first). A validation or test word outside it is read as ``<unk>`` if the training text
    has that token, else it is a data error."""

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
        unk = index.get(UNK)
        fallback = -1 if unk is None else unk  # -1 is never used: unseen words are refused
        self.streams = {}
        self.files = {split: folder / f"ptb.{split}.txt" for split in SPLITS}
        for split, split_lines in lines.items():
            ids: list[int] = []
            unseen = 0
            for number, words in split_lines:
                unknown = next((w for w in words if w not in index), None)
                require(
                    unknown is None or unk is not None,
                    f"{self.files[split]}:{number}: word {unknown!r} is not in the vocabulary "
                    f"of ptb.train.txt (which has no {UNK} token to read it as)",
                )
                if unknown is not None:
                    unseen += sum(w not in index for w in words)
                ids.extend(index.get(w, fallback) for w in words)
            if unseen:
                log.info(
                    "%s: %d words not in ptb.train.txt read as %s", self.files[split], unseen, UNK
                )
            self.streams[split] = np.array(ids, dtype=np.int32)

    def check_batch_sizes(self, batch_size: int, eval_batch_size: int) -> None:
        """Truncated BPTT cuts each stream into ``batch_size`` rows of at least one step; a
        training epoch may start up to ``bptt - 1`` tokens in (see ``stream_batches``)."""
        for split in SPLITS:
            train = split == "train"
            rows = batch_size if train else eval_batch_size
            need = rows + (self.bptt if train else 1)
            setting = "trainer.batch_size" if train else "trainer.eval_batch_size"
            require(
                len(self.streams[split]) >= need,
                f"{self.files[split]}: {len(self.streams[split])} words (with {EOS}) are too "
                f"few for {setting}={rows} rows (need at least {need}); lower {setting}",
            )
