"""`python -m ablate.throughput` end to end on the quickstart, one trial per study (rates are
reported, never asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow  # a minute of two full quickstart sweeps; the default run keeps to budget
def test_throughput_compares_one_job_on_all_threads_with_one_job_per_core(tmp_path):
    out = tmp_path / "throughput.md"
    result = subprocess.run(
        [sys.executable, "-m", "ablate.throughput", "--trials", "1", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in out.read_text().splitlines()]
    rows = [row for row in cells if row and " x " in row[0]]  # not the header lines
    assert [row[0] for row in rows] == ["1 job x 2 threads", "2 jobs x 1 thread"]
    for _, trials, wall, _, ratio, span, _, busy_ratio in rows:
        assert trials == "4"  # the quickstart's four studies, one trial each
        assert 0 < float(span) < float(wall)
        assert float(ratio) > 0 and float(busy_ratio) > 0
    assert rows[0][4] == rows[0][7] == "1.00"
    assert "1 job x 2 threads: 4 trials in" in result.stdout
