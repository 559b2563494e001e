"""A small, safe cache for slow data builds: versioned ``.npz`` files (never pickle),
written atomically, rebuilt with a one-line warning when missing, corrupt or stale."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import platformdirs

log = logging.getLogger(__name__)

ENV_VAR = "ABLATE_CACHE_DIR"
_META = "__meta__"


def cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    """The explicit folder, else $ABLATE_CACHE_DIR, else the user's cache folder."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get(ENV_VAR) or platformdirs.user_cache_dir("ablate"))


def cached_arrays(
    path: Path,
    meta: Mapping[str, object],
    build: Callable[[], dict[str, np.ndarray]],
    consistent: Callable[[dict[str, np.ndarray]], bool] = lambda arrays: True,
) -> dict[str, np.ndarray]:
    """The arrays stored at ``path`` if its metadata equals ``meta`` (which should hold a
    format version and whatever the content depends on) and they are ``consistent``, else
    ``build()``'s, saved there."""
    wanted = json.dumps(dict(meta), sort_keys=True)
    problem = "not found"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
            found = str(arrays.pop(_META))
            if found != wanted:
                problem = f"built with {found}, need {wanted}"
            elif not consistent(arrays):
                problem = "inconsistent"
            else:
                return arrays
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            problem = f"unreadable ({type(err).__name__}: {err})"
    log.warning("cache %s %s; rebuilding it", path, problem)
    arrays = build()
    _save(path, {**arrays, _META: np.array(wanted)})
    return arrays


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write to a temporary file beside ``path``, then rename: readers never see half a file.
    A cache that cannot be written only costs a rebuild next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        log.warning("cannot write cache %s (%s); continuing without it", path, err)
