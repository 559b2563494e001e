"""User-facing errors: the CLI prints their one-line message and exits non-zero."""

from enum import StrEnum
from typing import TypeVar

E = TypeVar("E", bound=StrEnum)


class AblateError(ValueError):
    """A problem with the user's input (config, spec, data, store) that names what is wrong."""


def choice(enum_cls: type[E], value: str, unknown: str) -> E:
    """``value`` as a member of ``enum_cls``, else one line: ``UNKNOWN 'value' (valid: ...)``."""
    try:
        return enum_cls(value)
    except ValueError:
        valid = ", ".join(e.value for e in enum_cls)
        raise AblateError(f"{unknown} {value!r} (valid: {valid})") from None
