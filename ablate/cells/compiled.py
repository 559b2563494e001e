"""Build the C++ cell kernels (``csrc/``) once per machine and load them, or say why not.

The first use compiles them with torch.utils.cpp_extension (about 10 s, announced by one line
on stderr) into a cache folder; later processes load the cached library in milliseconds.
Where that fails (no compiler, no ninja, no BLAS exported by torch), :func:`kernels` warns
once and returns None, and the cells run the reference loop instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import re
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import Any

import platformdirs
import torch

log = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
SOURCES = ("ops.cpp", "blas.cpp", "lstm.cpp", "gru.cpp", "elman.cpp", "slstm.cpp")
# -ffast-math lets GCC vectorise exp and tanh (through glibc's vector math; ~1.7x faster
# pointwise passes); -fopenmp makes at::parallel_for use threads at all. -ffast-math is kept
# out of the link, where GCC would add crtfastmath.o and flush denormals process-wide.
CFLAGS = ("-O3", "-ffast-math", "-march=native", "-fopenmp")
LDFLAGS = ("-fopenmp",)


def build_root() -> Path:
    """$ABLATE_CACHE_DIR/torch_extensions, else $TORCH_EXTENSIONS_DIR, else the user's cache."""
    if os.environ.get("ABLATE_CACHE_DIR"):
        return Path(os.environ["ABLATE_CACHE_DIR"]) / "torch_extensions"
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"])
    return Path(platformdirs.user_cache_dir("ablate")) / "torch_extensions"


def build_name() -> str:
    """A name that changes with the sources, flags, torch and the CPU: ``-march=native`` code
    from one machine must not be loaded on another that shares the cache (a cluster home)."""
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(" ".join((*CFLAGS, *LDFLAGS, torch.__version__, _cpu_signature())).encode())
    return f"ablate_cells_{digest.hexdigest()[:16]}"


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {platform.processor()} {flags.strip()}"


@cache
def kernels() -> Any | None:
    """``torch.ops.ablate`` with the C++ kernels loaded, or None (warned once) if they cannot
    be built here."""
    try:
        _load()
    except Exception as err:  # a compiler or linker error, a missing tool: all mean "fall back"
        log.warning(
            "ablate: could not build the C++ cell kernels (%s); using the slower Python loop",
            _reason(err),
        )
        return None
    return torch.ops.ablate


def _reason(err: Exception) -> str:
    """The telling line of a build error (ninja's output echoes every command first)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    telling = [
        line for line in lines[1:]
        if re.search(r"error|not found|no such file", line, re.IGNORECASE)
    ]
    return (telling or lines or [type(err).__name__])[0][:300]


def _load() -> None:
    from torch.utils import cpp_extension

    name = build_name()
    directory = build_root() / name
    directory.mkdir(parents=True, exist_ok=True)
    fresh = not (directory / f"{name}.so").exists()
    if fresh:
        print("ablate: building the C++ cell kernels (once, ~10 s)...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    # ninja's default of (cores + 2) jobs makes ops.cpp, the longest, share a core; one job
    # per core builds it alongside the rest (SOURCES lists it first). torch's own compiler
    # warnings would add lines to the one this module writes on failure.
    with (
        _environ(
            MAX_JOBS=os.environ.get("MAX_JOBS") or str(os.cpu_count() or 1),
            PATH=_path_with_ninja(),
        ),
        _quiet(logging.getLogger("torch.utils.cpp_extension")),
        warnings.catch_warnings(),
        _build_lock(directory),
    ):
        warnings.simplefilter("ignore")
        cpp_extension.load(
            name=name,
            sources=[str(SOURCE_DIR / s) for s in SOURCES],
            extra_cflags=list(CFLAGS),
            extra_ldflags=list(LDFLAGS),
            build_directory=str(directory),
            is_python_module=False,
            verbose=False,
        )
    if not torch.ops.ablate.has_blas():
        raise RuntimeError("this torch exports no BLAS sgemm_/dgemm_ for the kernels to call")
    if fresh:
        print(
            f"ablate: built the C++ cell kernels in {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
            flush=True,
        )


@contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    """The build folder's lock, with a stale baton cleared.

    torch takes a baton (a file named ``lock``) to build or load an extension and waits,
    forever, while one exists: a process killed holding it (a SIGKILLed worker) would hang
    every later one. Every ablate process takes this flock around its load, and the kernel
    drops a flock with its holder, so a baton found while holding it belongs to nobody."""
    with open(directory / "ablate-build.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            (directory / "lock").unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _path_with_ninja() -> str:
    """$PATH, plus the ninja that pip installed when the venv's bin is not on it."""
    path = os.environ.get("PATH", "")
    if shutil.which("ninja") is None:
        with suppress(ImportError):
            import ninja

            return ninja.BIN_DIR + os.pathsep + path
    return path


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
