"""Every cell test draws the same numbers whatever ran before it: float32 checks against the
float64 reference hold within their tolerances for the draws they make, not for any draw."""

from __future__ import annotations

import zlib

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded(request: pytest.FixtureRequest) -> None:
    torch.manual_seed(zlib.crc32(request.node.nodeid.encode()))
