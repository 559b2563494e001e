"""Where the shipped configs live, in a source checkout and in an installed wheel alike."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    """A wheel maps ``conf/`` to ``ablate/conf/``; a checkout (or editable install) keeps it
    beside the package."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"ablate: cannot find the shipped '{name}' folder near {_PACKAGE}")


def config_dir() -> Path:
    return _shipped("conf")


def experiments_dir() -> Path:
    return _shipped("experiments")
