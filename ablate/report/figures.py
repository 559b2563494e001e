"""The report's figures, each saved as PNG and PDF (without creation dates, so a rerun writes
the same bytes where matplotlib allows)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from ablate.report.components import Analysis as ComponentAnalysis  # noqa: E402
from ablate.report.components import label as component_label  # noqa: E402
from ablate.report.greff import Comparison, Panel, cell_order  # noqa: E402
from ablate.report.hyper import LABEL, Analysis  # noqa: E402

COLOURS = {"reference": "#bdbdbd", "worse": "#fb6a4a", "better": "#74c476", "": "white"}
STYLE = "whitegrid"


def save(fig: plt.Figure, folder: Path, name: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    png, pdf = folder / f"{name}.png", folder / f"{name}.pdf"
    fig.savefig(png, dpi=120, metadata={"Software": None})
    fig.set_layout_engine("none")  # laid out once: the PDF keeps the PNG's positions
    fig.savefig(pdf, metadata={"CreationDate": None, "Producer": None, "Creator": None})
    plt.close(fig)
    return [png, pdf]


def _log_scale(ax: plt.Axes, which: str, values: np.ndarray) -> None:
    """A log x or y axis; over less than three decades, ticks at 1-2-5 as plain numbers."""
    getattr(ax, f"set_{which}scale")("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    if values.max() / values.min() < 1e3:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def _direction(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def _count(n: float) -> str:
    if np.isnan(n):
        return "?"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


def _limits(values: list[np.ndarray]) -> tuple[float, float] | None:
    """The y-range: every point, unless points more than 3 interquartile ranges (of all
    cells' points together) beyond the quartiles would squash the rest into a third of the
    axis, as one bad cell can; those points are then drawn at the edge."""
    data = [v for v in values if len(v)]
    if not data:
        return None
    joined = np.concatenate(data)
    q1, q3 = np.percentile(joined, [25, 75])
    reach = 3 * (q3 - q1)
    low, high = float(joined.min()), float(joined.max())
    kept = (max(low, q1 - reach), min(high, q3 + reach))
    if high - low > 3 * (kept[1] - kept[0]):
        low, high = kept
    pad = 0.06 * (high - low) if high > low else max(abs(high) * 0.05, 1e-3)
    return float(low - pad), float(high + pad)


def _box_panel(ax: plt.Axes, c: Comparison, panel: Panel, alpha: float, diverged: bool) -> None:
    data = [panel.values[cell] for cell in c.cells]
    positions = np.arange(len(c.cells))
    shown = [(p, d) for p, d in zip(positions, data, strict=True) if len(d)]
    if shown:
        boxes = ax.boxplot(
            [d for _, d in shown],
            positions=[p for p, _ in shown],
            widths=0.6,
            patch_artist=True,
            showfliers=False,
            whis=(0, 100),
            medianprops={"color": "black"},
        )
        for patch, (p, _) in zip(boxes["boxes"], shown, strict=True):
            cell = c.cells[p]
            mark = "reference" if cell == c.reference else c.significant(panel, cell, alpha)
            patch.set_facecolor(COLOURS[mark])
    rng = np.random.default_rng(0)
    limits = _limits(data)
    for p, d in zip(positions, data, strict=True):
        if not len(d):
            continue
        jitter = rng.uniform(-0.18, 0.18, len(d))
        inside = d if limits is None else np.clip(d, *limits)
        kept = d == inside
        ax.scatter(p + jitter[kept], d[kept], s=6, color="0.3", alpha=0.5, zorder=3, lw=0)
        for side, marker in ((d > inside, "^"), (d < inside, "v")):
            ax.scatter(p + jitter[side], inside[side], s=18, color="0.3", marker=marker, zorder=3)
        mean = float(np.mean(d))
        shown_mean = mean if limits is None else float(np.clip(mean, *limits))
        ax.scatter([p], [shown_mean], s=28, color="red", zorder=4)
        if shown_mean != mean:  # off the axis: say where
            above = mean > shown_mean
            ax.annotate(
                f"mean {mean:.3g}",
                (p, shown_mean),
                xytext=(6, -6 if above else 6),
                textcoords="offset points",
                va="top" if above else "bottom",
                fontsize=7,
                color="red",
            )
    if limits is not None:
        low, high = limits
        if diverged and c.counts["diverged"].any():  # room for the marks on the worst side
            room = 0.1 * (high - low)
            low, high = (low - room, high) if c.higher_is_better else (low, high + room)
        ax.set_ylim(low, high)
    if diverged:
        edge = 0.0 if c.higher_is_better else 1.0
        for p, cell in enumerate(c.cells):
            n = int(c.counts.loc[cell, "diverged"])
            if n:
                ax.annotate(
                    f"x{n}",
                    (p, edge),
                    xycoords=("data", "axes fraction"),
                    xytext=(0, 4 if c.higher_is_better else -4),
                    textcoords="offset points",
                    ha="center",
                    va="bottom" if c.higher_is_better else "top",
                    color="#cb181d",
                    fontsize=8,
                )
    labels = []
    for cell in c.cells:
        star = " *" if cell != c.reference and c.significant(panel, cell, alpha) else ""
        labels.append(f"{cell}{star}\n{_count(c.parameters[cell])}")
    ax.set_xticks(positions, labels, fontsize=8)
    ax.set_xlim(-0.6, len(c.cells) - 0.4)
    counts = sorted({len(d) for d in data})
    n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    ax.set_title(f"{panel.label} (n = {n} per cell)", fontsize=10)
    ax.set_ylabel(f"test {c.metric}")


def greff_boxes(c: Comparison, alpha: float, folder: Path) -> list[Path]:
    with sns.axes_style(STYLE):
        fig, axes = plt.subplots(
            2, 1, figsize=(max(7.0, 0.8 * len(c.cells) + 2), 7.5), constrained_layout=True
        )
        _box_panel(axes[0], c, c.all_trials, alpha, diverged=True)
        _box_panel(axes[1], c, c.best, alpha, diverged=False)
        legend = [
            Patch(
                facecolor=COLOURS["reference"],
                edgecolor="black",
                label=f"reference ({c.reference})",
            ),
            Patch(facecolor=COLOURS["worse"], edgecolor="black", label=f"worse, p < {alpha:g}"),
            Patch(facecolor=COLOURS["better"], edgecolor="black", label=f"better, p < {alpha:g}"),
            Line2D([], [], marker="o", color="red", ls="", label="mean"),
            Line2D(
                [], [], marker="$x$", color="#cb181d", ls="", label="xN: N diverged (not scored)"
            ),
        ]
        fig.legend(handles=legend, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
        fig.suptitle(
            f"{c.task}: test {c.metric} per cell ({_direction(c.higher_is_better)})\n"
            f"* p < {alpha:g} (Welch) against {c.reference}; "
            "under each cell: median parameter count"
        )
        return save(fig, folder, f"greff_fig3_{c.task}")


def importance(found: list[Analysis], folder: Path) -> list[Path]:
    done = [a for a in found if not a.skipped]
    rows = [
        {"hyperparameter": LABEL.get(k, k), "task": a.task, "importance": v}
        for a in done
        for k, v in sorted(a.importances.items())
    ]
    frame = pd.DataFrame(rows)
    with sns.axes_style(STYLE):
        fig, ax = plt.subplots(
            figsize=(7, 0.5 + 0.45 * frame["hyperparameter"].nunique() * len(done)),
            constrained_layout=True,
        )
        sns.barplot(frame, y="hyperparameter", x="importance", hue="task", ax=ax, orient="h")
        ax.set_xlim(0, 1)
        ax.set_xlabel("fraction of variance explained (fANOVA main effect)")
        ax.set_ylabel("")
        ax.set_title("Hyperparameter importance per task (test metric, pooled over cells)")
        return save(fig, folder, "fanova_importance")


def marginals(a: Analysis, folder: Path) -> list[Path]:
    with sns.axes_style(STYLE):
        fig, axes = plt.subplots(
            1,
            len(a.marginals),
            figsize=(max(8.0, 4 * len(a.marginals)), 3.8),
            squeeze=False,
            constrained_layout=True,
        )
        for ax, m in zip(axes[0], a.marginals, strict=True):
            if m.dim.choices is not None:
                ax.errorbar(m.x, m.mean, yerr=m.std, marker="o", capsize=3)
            else:
                ax.plot(m.x, m.mean, color="C0")
                ax.fill_between(m.x, m.mean - m.std, m.mean + m.std, color="C0", alpha=0.25, lw=0)
            positive = bool(np.all(m.x > 0))
            if m.dim.log or (
                m.dim.choices is not None and positive and m.x.max() / m.x.min() >= 10
            ):
                _log_scale(ax, "x", m.x)
            ax.set_xlabel(LABEL.get(m.dim.key, m.dim.key))
            ax.set_ylabel(f"predicted test {a.metric}")
        fig.suptitle(
            f"{a.task}: marginal test {a.metric} ({_direction(a.higher_is_better)})\n"
            f"random forest, {a.trials} trials ({a.settings} distinct settings); "
            "+-1 std between trees",
            fontsize=11,
        )
        return save(fig, folder, f"fanova_marginals_{a.task}")


def interaction(a: Analysis, folder: Path) -> list[Path]:
    inter = a.interaction
    assert inter is not None
    first, second = inter.dims
    with sns.axes_style("white"):
        fig, ax = plt.subplots(figsize=(5.6, 4.4), constrained_layout=True)
        mesh = ax.pcolormesh(
            inter.x,
            inter.y,
            inter.grid.T,
            shading="nearest",
            cmap="viridis_r" if not a.higher_is_better else "viridis",
        )
        fig.colorbar(
            mesh, ax=ax, label=f"predicted test {a.metric} ({_direction(a.higher_is_better)})"
        )
        for which, dim, values in (("x", first, inter.x), ("y", second, inter.y)):
            if dim.log:
                _log_scale(ax, which, values)
        ax.set_xlabel(LABEL.get(first.key, first.key))
        ax.set_ylabel(LABEL.get(second.key, second.key))
        share = inter.fractions[f"{first.key} x {second.key}"]
        ax.set_title(
            f"{a.task}: {LABEL.get(first.key)} x {LABEL.get(second.key)} "
            f"(interaction explains {share:.1%})",
            fontsize=10,
        )
        return save(fig, folder, f"fanova_interaction_{a.task}")


def curves(
    task: str, metric: str, higher: bool, best: pd.DataFrame, history: pd.DataFrame, folder: Path
) -> list[Path]:
    """The validation metric and training loss per epoch of each cell's best run."""
    keys = (f"valid_{metric}", "train_loss")
    titles = [f"valid {metric} ({_direction(higher)}); dot: best epoch", "training loss"]
    with sns.axes_style(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
        palette = sns.color_palette("tab10", n_colors=max(10, len(best)))
        for colour, (_, run) in zip(palette, best.iterrows(), strict=False):
            mine = history[history["run_id"] == run["run_id"]]
            for ax, key in zip(axes, keys, strict=True):
                points = mine[mine["key"] == key]
                ax.plot(points["step"], points["value"], color=colour, lw=1.4, label=run["cell"])
                if key != "train_loss" and run["best_epoch"] in set(points["step"]):
                    at = points[points["step"] == run["best_epoch"]]["value"]
                    ax.scatter([run["best_epoch"]], at, color=colour, s=20, zorder=3)
        for ax, key, title in zip(axes, keys, titles, strict=True):
            cut = _cut(ax, key, best, history)
            # Wrapped to the panel's width: long cell names (a component search's) would
            # otherwise run into the next panel's title.
            ax.set_title("\n".join([title, *textwrap.wrap(cut, _TITLE_WIDTH)]), fontsize=9)
            ax.set(xlabel="epoch", ylabel=key.replace("_", " "))
        axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.suptitle(f"{task}: learning curves of each cell's best run (by validation)")
        return save(fig, folder, f"curves_{task}")


_NAMED = 3  # runs a cut curve's title names, the highest first
_TITLE_WIDTH = 62  # characters a curve panel's title line holds at its font size


def _cut(ax: plt.Axes, key: str, best: pd.DataFrame, history: pd.DataFrame) -> str:
    """Keep one run's blow-up (a loss of 1e11, say) from flattening every other curve: the
    box plots' y-range rule, and the runs it leaves off the axis named in the title."""
    rows = history[history["key"] == key]
    limits = _limits([rows["value"].to_numpy(float)])
    if limits is None:
        return ""
    low, high = limits
    out = rows[(rows["value"] < low) | (rows["value"] > high)]
    if out.empty:
        return ""
    ax.set_ylim(low, high)
    cells = best.set_index("run_id")["cell"]
    peaks = out.groupby("run_id")["value"].agg(lambda v: v.abs().max())
    peaks = peaks[peaks.index.isin(cells.index)].sort_values(ascending=False)
    named = ", ".join(f"{cells[r]} {peaks[r]:.2g}" for r in peaks.index[:_NAMED])
    more = f" and {len(peaks) - _NAMED} more" if len(peaks) > _NAMED else ""
    return f"(off the axis: {named}{more})"


# Each run's three test limits in the weiss figure: column, legend label, marker style.
_LIMIT_MARKERS = (
    ("test_counting_limit", "counting rule", {"color": "C0", "s": 22}),
    ("test_generalisation_limit", "Weiss rule", {"facecolor": "none", "edgecolor": "C1", "s": 40}),
    ("test_strict_limit", "strict", {"marker": "x", "color": "C2", "s": 22}),
)


def weiss(runs: pd.DataFrame, folder: Path) -> list[Path]:
    finished = runs[runs["state"] == "finished"]
    languages = sorted(finished["task.language"].unique())
    with sns.axes_style(STYLE):
        fig, axes = plt.subplots(
            1,
            len(languages),
            figsize=(6 * len(languages), 3.8),
            squeeze=False,
            constrained_layout=True,
        )
        for ax, language in zip(axes[0], languages, strict=True):
            mine = finished[finished["task.language"] == language]
            cells = cell_order(list(mine["cell"].unique()))
            rng = np.random.default_rng(0)
            for p, cell in enumerate(cells):
                rows = mine[mine["cell"] == cell]
                jitter = rng.uniform(-0.15, 0.15, len(rows))
                for column, label, style in _LIMIT_MARKERS:
                    ax.scatter(
                        p + jitter,
                        rows[column],
                        zorder=3,
                        label=label if p == 0 else None,
                        **style,
                    )
            n_train = float(mine["task.n_train"].max())
            ax.axhline(n_train, color="0.4", ls="--", lw=1, label="n_train")
            ax.axhline(2 * n_train, color="0.4", ls=":", lw=1, label="2 x n_train")
            ax.set_xticks(range(len(cells)), cells)
            ax.set_ylabel("test limit: largest n accepted")
            ax.set_yscale("symlog", linthresh=10)
            ax.set_ylim(bottom=-2)  # limits are >= 0: room for the markers at 0, no negative ticks
            ax.set_title(f"{language}: how far each run counts (higher is better)", fontsize=10)
            ax.legend(fontsize=8)
        fig.suptitle("Weiss et al.: generalisation limits on the counting languages, per run")
        return save(fig, folder, "weiss_limits")


def component_marginals(a: ComponentAnalysis, folder: Path) -> list[Path]:
    """One panel per component: the predicted test metric at each of its choices, averaged
    over everything else, with the spread between trees; the panels share the y axis."""
    keys = list(a.marginals)
    columns = min(4, len(keys))
    rows = -(-len(keys) // columns)
    with sns.axes_style(STYLE):
        fig, axes = plt.subplots(
            rows,
            columns,
            figsize=(2.6 * columns + 1, 2.3 * rows + 0.9),
            sharey=True,
            squeeze=False,
            constrained_layout=True,
        )
        for ax, key in zip(axes.flat, keys, strict=False):
            choices = a.marginals[key]
            names = [
                ("on" if c.value else "off") if isinstance(c.value, bool) else f"{c.value}"
                for c in choices
            ]
            means = np.array([c.mean for c in choices])
            best = int(np.argmax(means) if a.higher_is_better else np.argmin(means))
            colours = ["C2" if i == best else "C0" for i in range(len(choices))]
            ax.bar(names, means, yerr=[c.std for c in choices], color=colours, capsize=3)
            ax.set_title(component_label(key), fontsize=10)
            ax.tick_params(axis="x", labelsize=9)
        for ax in axes.flat[len(keys) :]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel(f"test {a.metric}")
        low = min(c.mean - c.std for m in a.marginals.values() for c in m)
        high = max(c.mean + c.std for m in a.marginals.values() for c in m)
        pad = 0.15 * (high - low) if high > low else 0.05 * abs(high) or 0.01
        axes[0, 0].set_ylim(low - pad, high + pad)
        fig.suptitle(
            f"{a.task}: predicted test {a.metric} per component choice "
            f"({_direction(a.higher_is_better)}; green: the better)\n"
            f"random forest on {a.trials} trials, averaged over the other components and the "
            "hyperparameters; +-1 std between trees",
            fontsize=10,
        )
        return save(fig, folder, f"component_marginals_{a.task}")
