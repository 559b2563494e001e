"""Progress bars where a person watches a terminal, and none in logs or CI."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def interactive() -> bool:
    return sys.stderr.isatty()


def bar(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """``items``, drawing a bar on stderr when it is a terminal."""
    if not interactive():
        yield from items
        return
    yield from tqdm(items, desc=description, total=total, leave=False, dynamic_ncols=True)
