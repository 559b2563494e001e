"""User-facing errors: the CLI prints their one-line message and exits non-zero."""


class AblateError(ValueError):
    """A problem with the user's input (config, spec, data, store) that names what is wrong."""
