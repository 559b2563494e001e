"""jsb: Greff's polyphonic-music task, rebuilt from the Bach chorales shipped with music21.

The JSB pickles are not available offline; this rebuilds them the way JSB was made: the four
voices' sounding pitches at every quarter-note beat, as 88-key binary frames. Parsing the
corpus takes tens of seconds, so the frames are cached.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ablate.tasks.base import Batch, Head, Pattern, Task, check_split, package_dir, require
from ablate.tasks.batching import Ragged, next_step_batches, split_indices
from ablate.tasks.cache import cache_root, cached_arrays

VOICES = ("soprano", "alto", "tenor", "bass")
LOWEST_KEY = 21  # MIDI number of the piano's A0
KEYS = 88
CACHE_VERSION = 1


def chorale_files(max_chorales: int | None) -> list[Path]:
    """The corpus's MusicXML scores of Bach, sorted; the first ``max_chorales`` if given."""
    root = package_dir("music21", "install it with: pip install music21") / "corpus" / "bach"
    files = sorted(p for p in root.iterdir() if p.suffix in (".mxl", ".xml"))
    require(bool(files), f"{root}: no Bach MusicXML files in music21's corpus")
    return files[:max_chorales]


def chorale_roll(path: str) -> np.ndarray | None:
    """The piano roll (beats, 88) uint8 of the score's Soprano, Alto, Tenor and Bass parts,
    sampled at every quarter-note beat; None unless it has exactly one part per voice (the
    corpus also holds a piano prelude and two five-voice chorales)."""
    from music21 import converter

    score = converter.parse(path, forceSource=True)
    voices: dict[str, list] = {}
    for part in score.parts:
        words = (part.partName or "").split()  # e.g. "Bass\rContinuo": the voice comes first
        if words and words[0].lower() in VOICES:
            voices.setdefault(words[0].lower(), []).append(part)
    if sorted(voices) != sorted(VOICES) or any(len(parts) != 1 for parts in voices.values()):
        return None
    roll = np.zeros((math.ceil(score.highestTime), KEYS), dtype=np.uint8)
    for [part] in voices.values():
        for note in part.flatten().notes:
            start = float(note.offset)
            end = start + float(note.duration.quarterLength)
            for pitch in note.pitches:
                key = pitch.midi - LOWEST_KEY
                require(0 <= key < KEYS, f"{path}: pitch {pitch} lies outside the 88 piano keys")
                # Sounding at beat k when start <= k < end.
                roll[math.ceil(start) : math.ceil(end), key] = 1
    return roll


def parse_corpus(files: list[Path]) -> dict[str, np.ndarray]:
    """Every file's piano roll, flat: ``frames`` (beats, 88), ``lengths`` and ``names`` of
    the four-voice chorales, and the ``skipped`` files' names. Serial: worker processes
    would re-run an unguarded calling script (spawn) or risk torch's threads (fork), for a
    build that runs once."""
    progress = tqdm(files, desc="jsb: parsing Bach chorales", unit="file", disable=None)
    rolls = [chorale_roll(str(path)) for path in progress]
    kept = [(f.name, r) for f, r in zip(files, rolls, strict=True) if r is not None]
    require(bool(kept), f"{files[0].parent}: none of {len(files)} files has four voices")
    return {
        "frames": np.concatenate([r for _, r in kept]),
        "lengths": np.array([len(r) for _, r in kept], dtype=np.int64),
        "names": np.array([name for name, _ in kept]),
        "skipped": np.array(
            [f.name for f, r in zip(files, rolls, strict=True) if r is None], dtype=str
        ),
    }


def unique_chorales(rolls: Ragged) -> np.ndarray:
    """Indices of the first occurrence of every distinct piano roll (the corpus repeats a
    few chorales under different catalogue numbers)."""
    seen: set[bytes] = set()
    keep = []
    for i in range(len(rolls)):
        key = rolls[i].tobytes()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return np.array(keep, dtype=np.int64)


class JSB(Task):
    """Next-frame prediction of the chorales' piano rolls: 88 independent sigmoid outputs,
    scored by the negative log-likelihood per frame (summed over the keys)."""

    name = "jsb"
    tokens = False
    pattern = Pattern.NEXT_STEP
    head = Head.SIGMOID
    metric = "nll"
    higher_is_better = False
    reported = ("nll",)

    def __init__(
        self,
        *,
        max_chorales: int | None = None,
        valid_fraction: float = 0.2,
        test_fraction: float = 0.2,
        data_seed: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        require(
            max_chorales is None or max_chorales >= 3,
            f"task.max_chorales: need null or at least 3 (one per split), got {max_chorales}",
        )
        self.input_size = self.output_size = KEYS
        files = chorale_files(max_chorales)
        count = "all" if max_chorales is None else str(max_chorales)
        path = cache_root(cache_dir) / f"jsb-v{CACHE_VERSION}-{count}.npz"
        corpus = cached_arrays(path, _cache_meta(files), lambda: parse_corpus(files), _consistent)
        rolls = Ragged.from_lengths(corpus["frames"].astype(bool), corpus["lengths"])
        self.parsed = len(rolls)
        self.skipped = [str(n) for n in corpus["skipped"]]
        unique = unique_chorales(rolls)
        parts = split_indices(
            len(unique), {"valid": valid_fraction, "test": test_fraction}, data_seed, "task jsb"
        )
        self.names = {s: [str(corpus["names"][i]) for i in unique[idx]] for s, idx in parts.items()}
        self.rolls = {s: rolls.subset(unique[idx]) for s, idx in parts.items()}

    def batches(self, split: str, batch_size: int, *, shuffle: bool, seed: int) -> Iterator[Batch]:
        check_split(split)
        return next_step_batches(self.rolls[split], batch_size, shuffle=shuffle, seed=seed)

    def _sizes(self) -> dict[str, int]:
        sizes = {"parsed_chorales": self.parsed, "skipped_files": len(self.skipped)}
        for split, rolls in self.rolls.items():
            sizes[f"{split}_chorales"] = len(rolls)
            sizes[f"{split}_frames"] = int(rolls.lengths.sum())
        return sizes


def _consistent(corpus: dict[str, np.ndarray]) -> bool:
    return (
        {"frames", "lengths", "names", "skipped"} <= corpus.keys()
        and corpus["frames"].shape[1:] == (KEYS,)
        and int(corpus["lengths"].sum()) == len(corpus["frames"])
        and len(corpus["names"]) == len(corpus["lengths"])
    )


def _cache_meta(files: list[Path]) -> dict[str, object]:
    """What the cached frames depend on: the format, music21's corpus, and the files."""
    return {
        "version": CACHE_VERSION,
        "music21": version("music21"),
        "files": len(files),
        "last": files[-1].name,
    }
