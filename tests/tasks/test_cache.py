"""The data cache: reuse, atomic writes, and rebuilds with a warning."""

from __future__ import annotations

import logging

import numpy as np

from ablate.tasks.cache import ENV_VAR, cache_root, cached_arrays


def _builder(calls):
    def build():
        calls.append(1)
        return {"x": np.arange(5), "names": np.array(["a", "bc"])}

    return build


def test_built_once_then_read(tmp_path, caplog):
    calls = []
    path = tmp_path / "sub" / "c.npz"
    with caplog.at_level(logging.WARNING):
        first = cached_arrays(path, {"version": 1}, _builder(calls))
    assert "not found" in caplog.text
    second = cached_arrays(path, {"version": 1}, _builder(calls))
    assert calls == [1]
    assert np.array_equal(first["x"], second["x"]) and list(second["names"]) == ["a", "bc"]
    assert [p.name for p in path.parent.iterdir()] == ["c.npz"]  # no temporary left behind


def test_rebuilt_when_corrupt_or_stale(tmp_path, caplog):
    calls = []
    path = tmp_path / "c.npz"
    cached_arrays(path, {"version": 1}, _builder(calls))
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with caplog.at_level(logging.WARNING):
        cached_arrays(path, {"version": 1}, _builder(calls))
    assert "unreadable" in caplog.text and len(calls) == 2
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        cached_arrays(path, {"version": 2}, _builder(calls))
    assert "built with" in caplog.text and len(calls) == 3
    cached_arrays(path, {"version": 2}, _builder(calls))
    assert len(calls) == 3


def test_unwritable_cache_only_warns(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING):
        arrays = cached_arrays(blocker / "c.npz", {"version": 1}, _builder([]))
    assert "cannot write cache" in caplog.text and len(arrays["x"]) == 5


def test_cache_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert cache_root(str(tmp_path / "arg")) == tmp_path / "arg"
    assert cache_root(None) == tmp_path / "env"
    monkeypatch.delenv(ENV_VAR)
    assert "ablate" in str(cache_root(None))


def test_rebuilt_when_inconsistent(tmp_path, caplog):
    calls = []
    path = tmp_path / "c.npz"
    cached_arrays(path, {"version": 1}, _builder(calls))
    with caplog.at_level(logging.WARNING):
        cached_arrays(path, {"version": 1}, _builder(calls), consistent=lambda a: len(a["x"]) > 9)
    assert "inconsistent" in caplog.text and len(calls) == 2
