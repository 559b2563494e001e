"""``ablate bench`` end to end at a tiny size: the tables and the plot it writes (timings are
reported, never asserted)."""

from __future__ import annotations

import csv

import pytest

from ablate.bench import main


def test_bench_writes_tables_and_plot(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(
        [
            "--sizes",
            "5:3:4:6",
            "--presets",
            "vanilla,gru,lstm,tanh",
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "forward+backward" in printed and "forward alone (inference)" in printed
    assert "Targets met:" in printed
    rows = list(csv.DictReader((out / "cpu.csv").open()))
    by_key = {(r["name"], r["mode"]): r for r in rows}
    assert {name for name, _ in by_key} == {
        "torch.nn.LSTM",
        "control: torch.nn.LSTM",
        "torch.nn.GRU",
        "torch.nn.RNN",
        "vanilla",
        "gru",
        "lstm",
        "tanh",
    }
    assert by_key["vanilla", "train"]["backend"] == "compiled"
    assert by_key["lstm", "train"]["backend"] == "fused"
    assert by_key["gru", "train"]["baseline"] == "torch.nn.GRU"
    assert float(by_key["torch.nn.LSTM", "train"]["ratio"]) == 1.0
    control = by_key["control: torch.nn.LSTM", "train"]  # timed in pairs, like a preset
    assert control["baseline"] == "torch.nn.LSTM" and control["target"] == ""
    assert float(control["ratio_min"]) <= float(control["ratio"]) <= float(control["ratio_max"])
    assert float(by_key["vanilla", "train"]["peak_mib"]) > 0
    assert by_key["vanilla", "train"]["target"] == "1.25"
    assert by_key["tanh", "infer"]["target"] == ""
    assert "| vanilla " in (out / "cpu.md").read_text()
    assert (out / "cpu.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pairs_alternate_which_goes_first():
    """A preset and its baseline, alone in the rotation, first in turn: drift hits both."""
    import torch

    from ablate.bench import _paired

    calls: list[str] = []
    mine, theirs = _paired(
        lambda: calls.append("preset"), lambda: calls.append("torch"), torch.device("cpu"),
        repeats=4, warmup=1,
    )  # fmt: skip
    assert len(mine) == len(theirs) == 4
    assert calls == ["preset", "torch", "torch", "preset"] * 2 + ["preset", "torch"]


def test_bench_forward_only_and_bad_arguments(tmp_path, capsys):
    assert (
        main(
            [
                "--sizes",
                "4:2:3:5",
                "--presets",
                "cifg",
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--forward-only",
                "--no-plot",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    modes = {r["mode"] for r in csv.DictReader((tmp_path / "cpu.csv").open())}
    assert modes == {"infer"}
    assert not (tmp_path / "cpu.png").exists()
    for bad in (["--presets", "nope"], ["--sizes", "huge"], ["--repeats", "0"], ["--modes", "x"]):
        with pytest.raises(SystemExit) as exit_:
            main([*bad, "--out", str(tmp_path)])
        assert exit_.value.code == 2
        assert "error:" in capsys.readouterr().err


def test_bench_with_variable_lengths(tmp_path):
    """--lengths: the cells get lengths (lstm then runs the C++ kernels), torch's modules a
    packed batch; the tables go to cpu-lengths.*."""
    out = tmp_path / "bench"
    args = ["--sizes", "6:3:4:5", "--presets", "lstm,vanilla", "--repeats", "2", "--warmup",
            "0", "--threads", "1", "--modes", "train", "--lengths", "--no-plot", "--out", str(out)]
    assert main(args) == 0
    by_name = {r["name"]: r for r in csv.DictReader((out / "cpu-lengths.csv").open())}
    assert by_name["lstm"]["backend"] == "compiled"
    assert by_name["control: torch.nn.LSTM"]["backend"] == "torch"
    assert "variable lengths" in (out / "cpu-lengths.md").read_text()
