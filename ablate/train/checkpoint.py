"""Per-epoch checkpoints: everything needed to continue a job with identical numbers.

Written atomically (temp file, then rename) so a kill mid-write leaves the previous epoch's
checkpoint intact; read with ``weights_only=True`` so a checkpoint can never run code.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("ablate")

FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    fingerprint: str  # hash of the config that determines the numbers
    epoch: int
    done: bool  # training has stopped; only the test evaluation may be missing
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    schedule: dict[str, int]
    rng: torch.Tensor
    history: list[dict[str, Any]]
    best_model: dict[str, torch.Tensor]
    best_epoch: int
    best_valid: dict[str, float]
    train_seconds: float


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"version": FORMAT_VERSION, **dataclasses.asdict(checkpoint)}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, fingerprint: str) -> Checkpoint | None:
    """The checkpoint at ``path`` if it belongs to this config; None (with a reason) if not."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file means: start afresh
        log.warning("ignoring unreadable checkpoint %s (%s); starting afresh", path, err)
        return None
    if not isinstance(data, dict) or data.pop("version", None) != FORMAT_VERSION:
        log.warning("ignoring checkpoint %s of another format version; starting afresh", path)
        return None
    if data.get("fingerprint") != fingerprint:
        log.warning("ignoring checkpoint %s of a different config; starting afresh", path)
        return None
    try:
        return Checkpoint(**data)
    except TypeError as err:
        log.warning("ignoring malformed checkpoint %s (%s); starting afresh", path, err)
        return None
