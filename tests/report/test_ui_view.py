"""`ablate ui` as a reader sees it: the experiment's link opens MLflow's model-training view
with the job runs listed by cell, task and trial (headless Chromium, Debian's package)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.sweeps import Spawned, free_port, sweep, write_conf

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1600,1000", "--virtual-time-budget=20000", *args],
        capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian: apt-get install chromium)")
def test_the_experiment_link_opens_the_training_view_with_the_runs(tmp_path):
    sweep(write_conf(tmp_path), tmp_path, "hydra.sweeper.n_trials=2")
    port = free_port()
    command = [sys.executable, "-m", "ablate", "ui", "--port", str(port)]
    with Spawned(command, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                 text=True) as ui:  # fmt: skip
        banner = ui.proc.stdout.readline()
        assert banner.startswith("MLflow UI for sqlite:///") and f":{port}" in banner
        name, link = ui.proc.stdout.readline().strip().split(": ", 1)
        assert name == "default" and "workflowType=machine_learning" in link
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        dom = _chromium("--dump-dom", link).stdout
        picture = tmp_path / "page.png"
        _chromium(f"--screenshot={picture}", link)
    # The training view's side bar (Runs, Models), not the GenAI one (Judges, Prompts).
    assert "Judges" not in dom and "Prompts" not in dom and "Models" in dom
    assert "nig/digits/trial0" in dom and "nig/digits/trial1" in dom
    assert "study default/nig/digits" not in dom  # the parent run is filtered out
    assert picture.stat().st_size > 20_000
