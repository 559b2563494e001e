"""Progress bars where a person watches a terminal, and none in logs or CI."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

T = TypeVar("T")


def interactive() -> bool:
    return sys.stderr.isatty()


def bar(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """``items``, drawing a bar on stderr when it is a terminal."""
    if not interactive():
        yield from items
        return
    yield from tqdm(items, desc=description, total=total, leave=False, dynamic_ncols=True)


class StudyBars:
    """A sweep's trials done of the total: one bar overall and one per study (while the
    studies fit a terminal), with log lines printed above them."""

    MAX_STUDY_BARS = 12

    def __init__(self, totals: Mapping[str, int]) -> None:
        self.totals = dict(totals)
        self.bars: dict[str, tqdm] = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> StudyBars:
        if not interactive():
            return self
        self._stack.enter_context(logging_redirect_tqdm([logging.getLogger()]))
        names = list(self.totals) if len(self.totals) <= self.MAX_STUDY_BARS else []
        overall = f"{len(self.totals)} studies" if len(self.totals) > 1 else "trials"
        for position, (name, total) in enumerate(
            [(overall, sum(self.totals.values()))] + [(n, self.totals[n]) for n in names]
        ):
            self.bars[name] = self._stack.enter_context(
                tqdm(total=total, desc=name, position=position, leave=position == 0,
                     dynamic_ncols=True, unit="trial")
            )  # fmt: skip
        return self

    def update(self, done: Mapping[str, int]) -> None:
        """Trials done per study, as the study says (so workers elsewhere count too)."""
        if not self.bars:
            return
        overall = next(iter(self.bars.values()))
        for bar, n in [(overall, sum(done.values()))] + [
            (self.bars[name], n) for name, n in done.items() if name in self.bars
        ]:
            bar.n = min(n, bar.total)
            bar.refresh()

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
