"""``ablate bench``: every preset's speed against torch's fused kernels, measured in one run.

For each size and mode (training: forward+backward; inference: forward alone, no_grad) it
times every preset in a pair with its family's torch kernel (nn.LSTM/GRU/RNN), alternating,
so that a shared machine's drift hits both alike, with a control pair (nn.LSTM against
itself), and reports medians, paired ratios to the family's torch kernel and to
nn.LSTM, matmul FLOPs and GFLOP/s, and the peak memory of one step. It checks the speed
targets and writes the tables (Markdown, CSV) and a plot under ``reports/bench/``. Timings are
reported, never asserted: they depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ablate.cells import GatedRNN, layout, preset, preset_names
from ablate.cells.kernels import supports
from ablate.cells.spec import CellSpec, StateKind


@dataclass(frozen=True)
class Size:
    steps: int
    batch: int
    input_size: int
    hidden_size: int

    @property
    def label(self) -> str:
        return f"T={self.steps} B={self.batch} M={self.input_size} N={self.hidden_size}"


SIZES = {"small": Size(100, 32, 64, 128), "large": Size(100, 64, 512, 512)}
MODES = ("train", "infer")  # forward+backward; forward alone
# Per state kind: torch's fused module and the preset that computes the same function.
BASELINES: dict[StateKind, tuple[str, type[nn.RNNBase], str]] = {
    StateKind.LSTM: ("torch.nn.LSTM", nn.LSTM, "lstm"),
    StateKind.GRU: ("torch.nn.GRU", nn.GRU, "gru_torch"),
    StateKind.ELMAN: ("torch.nn.RNN", nn.RNN, "tanh"),
    StateKind.SLSTM: ("torch.nn.LSTM", nn.LSTM, "lstm"),
}


@dataclass
class Row:
    size: str
    mode: str
    name: str
    backend: str  # the path the preset ran: fused, compiled, scan, reference (torch: baselines)
    baseline: str
    ms: float  # median time of one step
    ms_min: float  # fastest step (interference only slows a step down)
    ratio: float  # to the family's torch kernel: the median of the paired repeats' ratios
    ratio_min: float
    ratio_max: float
    ratio_lstm: float  # to torch.nn.LSTM
    target: float | None  # the largest ratio allowed, None where the issue sets none
    gflop: float
    gflops: float
    peak_mib: float

    @property
    def met(self) -> str:
        if self.target is None:
            return ""
        return "yes" if self.ratio <= self.target else "NO"


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    machine = _machine(device, args.threads)
    print(f"ablate bench on {machine}", flush=True)
    rows: list[Row] = []
    sections = []
    for size_name, size in args.sizes.items():
        for mode in args.modes:
            title = f"{size_name} ({size.label}), {_MODE_TITLES[mode]}" + (
                ", variable lengths" if args.lengths else ""
            )
            print(f"\n{title}:", flush=True)
            if args.idle_below is not None:
                _wait_for_idle(args.idle_below)
            load = _load_average()
            table = measure(args.presets, size_name, size, mode, device, args.repeats,
                            args.warmup, args.lengths)
            print(markdown(table), flush=True)
            rows += table
            sections.append(f"## {title}\n\nLoad average {load:.2f} at the start.\n\n"
                            + markdown(table))

    stem = "cpu" if device.type == "cpu" else f"cuda-{_slug(torch.cuda.get_device_name(device))}"
    stem += "-lengths" if args.lengths else ""
    args.out.mkdir(parents=True, exist_ok=True)
    header = (
        f"# ablate bench: {machine}\n\n{datetime.date.today()}, torch {torch.__version__}, "
        f"float32. Each preset is timed in a pair with the torch kernel of its family (nn.LSTM, "
        "nn.GRU, nn.RNN; nn.LSTM for the sLSTM), the two alone in the rotation and alternating "
        f"which goes first, {args.repeats} repeats after {args.warmup} warmup; ratio: the median "
        "of the repeats' ratios (min-max beside it). The control row times a second nn.LSTM "
        "against the first in the same way: it reads 1.00 when the harness is fair.\n"
        + (
            "\nVariable lengths: each batch has lengths drawn in [T/2, T] (one of T); the cells "
            "get them as `lengths`, torch's kernels a packed sequence.\n"
            if args.lengths
            else ""
        )
    )
    (args.out / f"{stem}.md").write_text("\n\n".join([header, *sections, summary(rows)]) + "\n")
    _write_csv(args.out / f"{stem}.csv", rows)
    written = [f"{stem}.md", f"{stem}.csv"]
    if not args.no_plot:
        plot(rows, args.out / f"{stem}.png", machine)
        written.append(f"{stem}.png")
    print("\n" + summary(rows))
    print(f"\nwrote {', '.join(str(args.out / w) for w in written)}")
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The options, checked; sizes, presets and modes parsed into their values."""
    parser = argparse.ArgumentParser(
        prog="ablate bench",
        description="Time every cell preset against torch's fused kernels (paired with its "
        "family's kernel, alternating; medians after a warmup, a control pair) and write the "
        "tables and a plot.",
    )
    parser.add_argument("--sizes", default="small,large",
                        help="comma-separated sizes: small (T=100 B=32 M=64 N=128), large "
                             "(T=100 B=64 M=N=512) or T:B:M:N; default small,large")
    parser.add_argument("--presets", default="",
                        help="comma-separated preset names (default: all)")
    parser.add_argument("--repeats", type=int, default=11, help="timed repeats (default 11)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed repeats first")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU; default 2)")
    parser.add_argument("--modes", default="train,infer",
                        help="comma-separated: train (forward+backward), infer (forward alone, "
                             "no_grad); default both")
    parser.add_argument("--forward-only", action="store_true", help="same as --modes infer")
    parser.add_argument("--idle-below", type=float, default=None, metavar="LOAD",
                        help="before each size and mode, wait (up to 10 min) until the 1-minute "
                             "load average is below LOAD: cleaner numbers on a shared machine")
    parser.add_argument("--lengths", action="store_true",
                        help="variable-length batches (lengths in [T/2, T]): the cells get "
                             "lengths, torch's kernels a packed sequence")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench"),
                        help="folder for the table and plot (default reports/bench)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    args = parser.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--repeats and --threads must be positive, --warmup non-negative")
    try:
        args.sizes = {name: _parse_size(name) for name in args.sizes.split(",") if name}
    except ValueError as err:
        parser.error(str(err))
    args.presets = [p for p in args.presets.split(",") if p] or preset_names()
    unknown = sorted(set(args.presets) - set(preset_names()))
    if unknown:
        parser.error(f"unknown presets {unknown} (known: {', '.join(preset_names())})")
    args.modes = ["infer"] if args.forward_only else [m for m in args.modes.split(",") if m]
    if not args.modes or set(args.modes) - set(MODES):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    return args


_MODE_TITLES = {"train": "forward+backward", "infer": "forward alone (inference)"}


def _parse_size(text: str) -> Size:
    if text in SIZES:
        return SIZES[text]
    parts = text.split(":")
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"unknown size {text!r}: small, large, or T:B:M:N with positive ints")
    return Size(*(int(p) for p in parts))


CONTROL = "control: torch.nn.LSTM"  # a second nn.LSTM, timed against the first like a preset


def measure(names: list[str], size_name: str, size: Size, mode: str, device: torch.device,
            repeats: int, warmup: int, ragged: bool = False) -> list[Row]:
    """Each preset timed in a pair with its family's torch kernel, alone in the rotation, the
    two alternating which goes first, and the ratio taken repeat by repeat: a round-robin of
    every preset let the order and the machine's drift bias the ratios by 10-30%. A second
    nn.LSTM, paired with the first the same way, is the harness's control (1.00 +- noise).
    One row per baseline first (its median over all its pairs), then the control, then the
    presets."""
    torch.manual_seed(0)
    x = torch.randn(size.steps, size.batch, size.input_size, device=device)
    x.requires_grad_(mode == "train")  # as in a layer of a stack: dx is computed too
    lengths = None
    if ragged:
        lengths = torch.randint(size.steps // 2, size.steps + 1, (size.batch,))
        lengths[0] = size.steps
    m, n = size.input_size, size.hidden_size
    baselines: dict[str, tuple[nn.Module, CellSpec]] = {}
    for kind, (label, module, equivalent) in BASELINES.items():
        if kind is StateKind.LSTM or any(preset(p).kind is kind for p in names):
            baselines.setdefault(label, (module(m, n).to(device), preset(equivalent)))
    lstm = BASELINES[StateKind.LSTM][0]
    candidates: list[tuple[str, nn.Module, str, CellSpec]] = [
        (CONTROL, nn.LSTM(m, n).to(device), "torch", baselines[lstm][1])
    ]
    for name in names:
        rnn = GatedRNN(name, m, n).to(device)
        candidates.append((name, rnn, str(rnn.path(device, lengths=ragged)), rnn.spec))

    steps = {label: _step(model, x, mode, lengths) for label, (model, _) in baselines.items()}
    baseline_times: dict[str, list[float]] = {label: [] for label in baselines}
    timed = []
    for key, model, backend, spec in candidates:
        label = BASELINES[spec.kind][0]
        step = _step(model, x, mode, lengths)
        mine, theirs = _paired(step, steps[label], device, repeats, warmup)
        baseline_times[label] += theirs
        ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
        timed.append((key, backend, spec, label, step, mine, ratios))

    lstm_median = statistics.median(baseline_times[lstm])
    lstm_flops = _flops(BASELINES[StateKind.LSTM][2], size, mode)

    def row(key: str, backend: str, spec: CellSpec, label: str, step: Callable[[], None],
            times: list[float], ratios: list[float], judged: bool) -> Row:
        flops = _flops(spec, size, mode)
        median = statistics.median(times)
        return Row(
            size=size_name, mode=mode, name=key, backend=backend, baseline=label,
            ms=median * 1e3, ms_min=min(times) * 1e3,
            ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios),
            ratio_lstm=median / lstm_median,
            target=target(spec, flops / lstm_flops, device) if judged else None,
            gflop=flops / 1e9, gflops=flops / median / 1e9,
            peak_mib=peak_memory(step, device) / 2**20,
        )

    rows = [
        row(label, "torch", spec, label, steps[label], ts, [1.0], judged=False)
        for label, ts in baseline_times.items()
        for spec in [baselines[label][1]]
    ]
    rows += [
        row(key, backend, spec, label, step, mine, ratios, judged=key != CONTROL)
        for key, backend, spec, label, step, mine, ratios in timed
    ]
    return rows


def _paired(step: Callable[[], None], baseline: Callable[[], None], device: torch.device,
            repeats: int, warmup: int) -> tuple[list[float], list[float]]:
    """Times of ``step`` and ``baseline`` per repeat, the first of the two alternating."""
    mine: list[float] = []
    theirs: list[float] = []
    for repeat in range(warmup + repeats):
        if repeat % 2:
            b, a = _time(baseline, device), _time(step, device)
        else:
            a, b = _time(step, device), _time(baseline, device)
        if repeat >= warmup:
            mine.append(a)
            theirs.append(b)
    return mine, theirs


def target(spec: CellSpec, flop_ratio: float, device: torch.device) -> float | None:
    """The issue's limit on a preset's time / its family's torch kernel's time. It set none
    for the cells that run in torch (the parallel scan, the reference loop): those are
    reported, not judged."""
    if spec.fused:
        return 1.05
    if spec.kind is StateKind.ELMAN or not supports(spec):
        return None
    if device.type == "cuda":
        return 3.0
    if spec.full_gate_recurrence:  # held to the LSTM's time per FLOP
        return 1.25 * flop_ratio
    return 1.25


def _flops(spec: CellSpec | str, size: Size, mode: str) -> float:
    """Matrix-product FLOPs of one step: forward's, and 3x that with backward (dx and dW)."""
    spec = preset(spec) if isinstance(spec, str) else spec
    forward = layout(spec, size.input_size, size.hidden_size).matmul_flops(size.batch, size.steps)
    return forward * (3 if mode == "train" else 1)


def _step(
    model: nn.Module, x: Tensor, mode: str, lengths: Tensor | None = None
) -> Callable[[], None]:
    """One training step (gradients reset first, as an optimiser does) or one inference; with
    lengths, torch's modules get the batch packed (what a variable-length batch costs them)."""

    def forward() -> Tensor:
        if lengths is None:
            return model(x)[0]
        if isinstance(model, nn.RNNBase):
            packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
            return pad_packed_sequence(model(packed)[0], total_length=x.shape[0])[0]
        return model(x, None, lengths)[0]

    def run() -> None:
        if mode == "train":
            model.zero_grad(set_to_none=True)
            x.grad = None
            forward().sum().backward()
        else:
            with torch.no_grad():
                forward()

    return run


def _time(step: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - start


def peak_memory(step: Callable[[], None], device: torch.device) -> float:
    """Peak bytes allocated during one step, beyond what existed before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    # The CPU allocator keeps no statistics: sum the profiler's allocation events in order.
    with _quiet_stderr(), torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        current += event.nbytes()
        peak = max(peak, current)
    return peak


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """The profiler's C++ side prints a line to stderr at each start and stop."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _wait_for_idle(load: float, patience: float = 600.0) -> None:
    """Until the 1-minute load average drops below ``load`` or ``patience`` seconds pass."""
    deadline = time.monotonic() + patience
    while _load_average() >= load and time.monotonic() < deadline:
        print(f"  waiting for load < {load} (now {_load_average():.2f})", flush=True)
        time.sleep(15)


def _load_average() -> float:
    """The 1-minute load average; NaN where the system keeps none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _machine(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"{_cpu_name()}, {threads} thread{'s' if threads > 1 else ''}"


def _cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


COLUMNS = ("preset", "ran on", "vs", "ms", "ratio", "min-max", "x nn.LSTM", "target", "met",
           "GFLOP", "GFLOP/s", "peak MiB")


def _cells(r: Row) -> tuple[str, ...]:
    return (
        r.name, r.backend, r.baseline, f"{r.ms:.2f}", f"{r.ratio:.2f}",
        f"{r.ratio_min:.2f}-{r.ratio_max:.2f}", f"{r.ratio_lstm:.2f}",
        "" if r.target is None else f"<= {r.target:.2f}", r.met, f"{r.gflop:.2f}",
        f"{r.gflops:.0f}", f"{r.peak_mib:.1f}",
    )


def markdown(rows: list[Row]) -> str:
    lines = [COLUMNS, *(_cells(r) for r in rows)]
    widths = [max(len(line[k]) for line in lines) for k in range(len(COLUMNS))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
           for line in lines]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def summary(rows: list[Row]) -> str:
    checked = [r for r in rows if r.target is not None]
    missed = [r for r in checked if r.met == "NO"]
    lines = [f"Targets met: {len(checked) - len(missed)} of {len(checked)}."]
    lines += [
        f"- missed: {r.name} at {r.size}, {_MODE_TITLES[r.mode]}: {r.ratio:.2f}x "
        f"{r.baseline} (target {r.target:.2f}x)"
        for r in missed
    ]
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[Row]) -> None:
    with path.open("w", newline="") as f:
        fields = [*asdict(rows[0]), "met"] if rows else []
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({**asdict(r), "met": r.met})


def plot(rows: list[Row], path: Path, machine: str) -> None:
    """Ratio to the family's torch kernel per preset: one panel per size, a bar per mode, and
    each preset's target as a black tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(r.size for r in rows))
    modes = list(dict.fromkeys(r.mode for r in rows))
    fig, axes = plt.subplots(len(sizes), 1, figsize=(13, 4.2 * len(sizes)), squeeze=False)
    width = 0.8 / len(modes)
    for ax, size in zip(axes[:, 0], sizes, strict=True):
        names = list(dict.fromkeys(r.name for r in rows if r.size == size))
        for k, mode in enumerate(modes):
            by_name = {r.name: r for r in rows if r.size == size and r.mode == mode}
            xs = [i + (k - (len(modes) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, [by_name[nm].ratio for nm in names], width,
                   label=_MODE_TITLES[mode], color=("tab:blue", "tab:orange")[k % 2])
        train = {r.name: r for r in rows if r.size == size}
        for i, nm in enumerate(names):
            if train[nm].target is not None:
                ax.hlines(train[nm].target, i - 0.45, i + 0.45, colors="black", linewidth=2)
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_ylabel("time / torch kernel's")
        label = SIZES[size].label if size in SIZES else size
        ax.set_title(f"{size} ({label}); black: target")
        ax.legend(loc="upper left")
    fig.suptitle(f"ablate bench: {machine}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
