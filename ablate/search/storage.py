"""Optuna storages: a sqlite file beside the MLflow store by default, any SQLAlchemy URL, or a
journal file (``journal:///path/to/study.log``) for file systems where sqlite locks are bad."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from ablate.errors import AblateError
from ablate.tracking import retry, sqlite_creation_lock, working_root

DEFAULT_FILE = "optuna.db"
JOURNAL = "journal://"


def storage_url(url: str | None, root: str | Path | None) -> str:
    return str(url) if url else f"sqlite:///{working_root(root) / DEFAULT_FILE}"


def open_storage(url: str) -> BaseStorage:
    """Parallel workers share sqlite: wait for locks (60 s) rather than fail on them."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if url.startswith(JOURNAL):
            path = Path(url.removeprefix(JOURNAL))
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path), JournalFileOpenLock(str(path))))
        engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        with sqlite_creation_lock(url):
            return retry(lambda: RDBStorage(url, engine_kwargs=engine_kwargs))
    except AblateError:
        raise
    except Exception as err:  # noqa: BLE001 - any storage error, reported in one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AblateError(f"optuna storage {url}: {first}") from None
