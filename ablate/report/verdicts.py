"""The papers' headline findings (shared/reference/studies.md) against what this store measured:
holds, does not hold, or too few trials to say. A finding whose cells or tasks the store does
not have is not tested (and listed as such).

Thresholds, so that a verdict is not read off noise:
- Greff's variant findings use Welch's test on all finished trials (the Figure 3 table,
  corrected if --holm), and need MIN_TRIALS finished trials of every cell involved per task.
- The hyperparameter findings need MIN_FANOVA_SETTINGS distinct hyperparameter settings per
  task (studies of different cells may draw the same settings); 'by far' means at least
  twice every other hyperparameter's importance (a component search's cell fields are
  components, not hyperparameters); 'hardly matters' and 'nearly independent' mean below
  NEGLIGIBLE of the variance.
- Jozefowicz's findings compare best test values per (cell, task) and need
  MIN_SEARCH_TRIALS searched trials per cell and task: finished, diverged or pruned, each an
  outcome of the search whose best is read (a diverged draw is a bad one, not a missing one).
- Weiss's needs MIN_SEEDS finished runs of each cell kind; the 2024 counting claim (LSTM and
  sLSTM) MIN_SEEDS finished a^n b^n runs of each.
- Feng et al.'s "competitive": on every task, minGRU's (minLSTM's) best quarter of trials by
  validation is not significantly worse than the GRU's (LSTM's) by Welch's test; the best
  single values are one draw each and a fixed margin would need one per metric (accuracy
  points, nats per frame), so the spread of each search's best trials sets the scale, and
  "not significantly worse" reads as Greff's "costs nothing" rows do. Needs
  MIN_SEARCH_TRIALS searched trials per cell and task.
- On a component search: the two most important components (fANOVA) need
  MIN_FANOVA_SETTINGS settings per task; coupling is judged by Welch's test between the
  coupled and uncoupled cells that have both gates, MIN_TRIALS of each per task.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ablate.report import components
from ablate.report.greff import WEISS_TASK, Comparison
from ablate.report.hyper import Analysis
from ablate.report.jozefowicz import RankAgreement
from ablate.report.paper import CELL_LABEL, GREFF_DOMAIN
from ablate.report.scale import Scale
from ablate.report.stats import best_fraction, welch
from ablate.report.tables import Table
from ablate.search import components as search_components

HOLDS, FAILS, TOO_FEW = "holds", "does not hold", "too few trials to say"
MIN_TRIALS = 10
MIN_FANOVA_SETTINGS = 50
MIN_SEARCH_TRIALS = 20
MIN_SEEDS = 3
NEGLIGIBLE = 0.1
TOP_FRACTION = 0.25  # Feng's 'competitive': each search's best quarter by validation
MINIMAL = {"mingru": "gru", "minlstm": "lstm"}  # Feng et al.'s cells and the classic each pares


@dataclass(frozen=True)
class Evidence:
    """Everything the verdicts read, already computed by the report's sections."""

    comparisons: list[Comparison]
    alpha: float
    analyses: list[Analysis]
    best: pd.DataFrame  # best run per (task, cell) by validation
    searched: pd.Series  # trials with an outcome per (task, cell): finished, diverged, pruned
    agreements: list[RankAgreement]
    counting: pd.DataFrame  # every counting run
    components: list[components.Analysis] = field(default_factory=list)  # a component search
    jobs: pd.DataFrame = field(default_factory=pd.DataFrame)  # every job run
    scale: Scale = field(default_factory=lambda: Scale(None, ""))  # what the verdicts say of it


def searched(jobs: pd.DataFrame) -> pd.Series:
    """Trials per (task, cell) that reached an outcome of their search: finished, diverged or
    pruned (killed and crashed ones ran no draw to its end)."""
    return (
        jobs[jobs["state"].isin(("finished", "diverged", "pruned"))]
        .groupby(["task", "cell"])
        .size()
    )


@dataclass(frozen=True)
class Verdict:
    finding: str
    paper: str
    measured: str
    verdict: str


@dataclass(frozen=True)
class Finding:
    statement: str
    paper: str
    judge: Callable[[Evidence], tuple[str, str] | None]  # (measured, verdict), None: untested
    from_search: bool = True  # read off the searches' trials (else off a grid of seeds)


# -- Greff: variants against vanilla ----------------------------------------------------------


def _greff(e: Evidence) -> list[Comparison]:
    return [c for c in e.comparisons if c.reference == "vanilla"]


def _enough(c: Comparison, cells: list[str]) -> bool:
    return all(
        len(c.all_trials.values.get(cell, [])) >= MIN_TRIALS for cell in [c.reference, *cells]
    )


def _marks(e: Evidence, cells: list[str]) -> tuple[list[tuple[Comparison, str, str]], bool]:
    """(comparison, cell, 'better'/'worse'/'') for each present cell, and whether every
    comparison has enough trials."""
    marks, enough = [], True
    for c in _greff(e):
        present = [cell for cell in cells if cell in c.cells]
        enough &= _enough(c, present)
        marks += [(c, cell, c.significant(c.all_trials, cell, e.alpha)) for cell in present]
    return marks, enough


def _p(c: Comparison, cell: str) -> str:
    return f"{cell} on {c.task} (p = {c.all_trials.pvalues[cell]:.2g})"


def _none_significant(
    cells: list[str], direction: str
) -> Callable[[Evidence], tuple[str, str] | None]:
    def judge(e: Evidence) -> tuple[str, str] | None:
        marks, enough = _marks(e, cells)
        if not marks:
            return None
        hits = [_p(c, cell) for c, cell, mark in marks if mark == direction]
        tasks = sorted({c.task for c, _, _ in marks})
        measured = (
            f"significantly {direction} than vanilla: " + "; ".join(hits)
            if hits
            else f"none significantly {direction} than vanilla on {', '.join(tasks)}"
        )
        if hits:
            return measured, FAILS
        return measured, HOLDS if enough else TOO_FEW

    return judge


def _mean_ranks(e: Evidence) -> dict[str, float]:
    """Each variant's rank by mean test value (1 = best), averaged over the tasks."""
    ranks: dict[str, list[float]] = {}
    for c in _greff(e):
        means = pd.Series({cell: np.mean(v) for cell, v in c.all_trials.values.items() if len(v)})
        for cell, rank in means.rank(ascending=not c.higher_is_better).items():
            ranks.setdefault(str(cell), []).append(float(rank))
    return {cell: float(np.mean(r)) for cell, r in ranks.items()}


def _hurt_most(e: Evidence) -> tuple[str, str] | None:
    cells = ["nfg", "noaf"]
    marks, enough = _marks(e, cells)
    present = sorted({cell for _, cell, _ in marks})
    if not present:
        return None
    ranks = _mean_ranks(e)
    worst = sorted(ranks, key=lambda cell: -ranks[cell])[: len(present)]
    tasks = len(_greff(e))
    worse = {cell: sum(m == "worse" for _, x, m in marks if x == cell) for cell in present}
    measured = "; ".join(
        f"{cell}: worse than vanilla on {worse[cell]}/{tasks} tasks, mean rank "
        f"{ranks.get(cell, np.nan):.1f} of {len(ranks)}"
        for cell in present
    )
    if all(worse[cell] == tasks for cell in present) and set(worst) == set(present):
        return measured, HOLDS
    return measured, FAILS if enough else TOO_FEW


def _domain_specific(e: Evidence) -> tuple[str, str] | None:
    cells = ["nig", "nog", "niaf"]
    marks, enough = _marks(e, cells)
    domains = {GREFF_DOMAIN.get(c.task) for c, _, _ in marks}
    if not marks or "music" not in domains or not domains & {"speech", "handwriting"}:
        return None
    wrong = [
        _p(c, cell)
        for c, cell, mark in marks
        if (GREFF_DOMAIN.get(c.task) == "music") == (mark == "worse")
        and GREFF_DOMAIN.get(c.task) in ("music", "speech", "handwriting")
    ]
    measured = (
        "against the pattern: " + "; ".join(wrong)
        if wrong
        else "worse on every speech/handwriting task, not worse on music"
    )
    if not wrong:
        return measured, HOLDS
    return measured, FAILS if enough else TOO_FEW


# -- Greff: hyperparameters -------------------------------------------------------------------


def _analysed(e: Evidence, key: str) -> list[Analysis]:
    return [a for a in e.analyses if not a.skipped and key in a.importances]


def _enough_fanova(found: list[Analysis]) -> bool:
    return all(a.settings >= MIN_FANOVA_SETTINGS for a in found)


def _lr_dominates(e: Evidence) -> tuple[str, str] | None:
    found = _analysed(e, "optim.lr")
    if not found:
        return None
    parts, dominant = [], True
    for a in found:
        lr = a.importances["optim.lr"]
        # Greff's finding ranks hyperparameters; a component search's cell fields are not.
        others = {
            k: v
            for k, v in a.importances.items()
            if k != "optim.lr" and not search_components.is_component(k)
        }
        rival = max(others, key=others.__getitem__, default=None)
        runner_up = others.get(rival, 0.0)
        dominant &= lr >= 2 * runner_up
        parts.append(
            f"{a.task}: lr {lr:.2f}" + (f", largest other {rival} {runner_up:.2f}" if rival else "")
        )
    if not _enough_fanova(found):
        return "; ".join(parts), TOO_FEW
    return "; ".join(parts), HOLDS if dominant else FAILS


def _small(
    key_of: Callable[[Analysis], float | None], what: str
) -> Callable[[Evidence], tuple[str, str] | None]:
    def judge(e: Evidence) -> tuple[str, str] | None:
        found = [(a, key_of(a)) for a in e.analyses if not a.skipped]
        found = [(a, v) for a, v in found if v is not None]
        if not found:
            return None
        measured = "; ".join(f"{a.task}: {what} {v:.3f}" for a, v in found)
        if not _enough_fanova([a for a, _ in found]):
            return measured, TOO_FEW
        return measured, HOLDS if all(v < NEGLIGIBLE for _, v in found) else FAILS

    return judge


def _momentum(a: Analysis) -> float | None:
    return a.importances.get("optim.momentum")


def _interaction(a: Analysis) -> float | None:
    if a.interaction is None:
        return None
    first, second = (d.key for d in a.interaction.dims)
    return a.interaction.fractions[f"{first} x {second}"]


# -- Greff's conclusions on a component search ------------------------------------------------


def _top_components(e: Evidence) -> tuple[str, str] | None:
    wanted = {"cell.gates.forget", "cell.output_activation"}
    found = [a for a in e.components if wanted <= {d.key for d in a.dims}]
    if not found:
        return None
    parts, holds = [], True
    for a in found:
        ranked = sorted((d.key for d in a.dims), key=lambda k: -a.importances.get(k, 0.0))
        holds &= set(ranked[:2]) == wanted
        top = ", ".join(
            f"{components.label(k)} {a.importances.get(k, 0.0):.2f}" for k in ranked[:3]
        )
        parts.append(f"{a.task}: {top}")
    if any(a.settings < MIN_FANOVA_SETTINGS for a in found):
        return "; ".join(parts), TOO_FEW
    return "; ".join(parts), HOLDS if holds else FAILS


def _coupling_free(e: Evidence) -> tuple[str, str] | None:
    found = [(a, components.coupling(a)) for a in e.components]
    found = [(a, c) for a, c in found if c is not None]
    if not found:
        return None
    parts, enough, worse = [], True, False
    for a, (p, on, off, n_on, n_off) in found:
        parts.append(
            f"{a.task}: coupled {on:.4g} (n={n_on}) vs not {off:.4g} (n={n_off}), p = {p:.3g}"
        )
        enough &= min(n_on, n_off) >= MIN_TRIALS
        hurts = on < off if a.higher_is_better else on > off
        worse |= hurts and not math.isnan(p) and p < e.alpha
    return _verdict(parts, enough, not worse)


# -- Jozefowicz: best values ------------------------------------------------------------------


def _best_pairs(e: Evidence, challenger: str, baseline: str) -> list[tuple]:
    """Per task with both cells: (task, challenger's best test, baseline's, higher-is-better,
    enough trials)."""
    best = e.best.set_index(["task", "cell"])
    out = []
    for task in sorted(e.best["task"].unique()):
        if task == WEISS_TASK:  # Weiss's question, not Jozefowicz's
            continue
        if (task, challenger) not in best.index or (task, baseline) not in best.index:
            continue
        higher = best.loc[(task, baseline), "direction"] == "maximize"
        enough = all(
            e.searched.get((task, c), 0) >= MIN_SEARCH_TRIALS for c in (challenger, baseline)
        )
        out.append(
            (
                task,
                float(best.loc[(task, challenger), "test"]),
                float(best.loc[(task, baseline), "test"]),
                higher,
                enough,
            )
        )
    return out


def _beats(
    challenger: str, baseline: str, majority: bool
) -> Callable[[Evidence], tuple[str, str] | None]:
    def judge(e: Evidence) -> tuple[str, str] | None:
        pairs = _best_pairs(e, challenger, baseline)
        if not pairs:
            return None
        wins = [t for t, a, b, higher, _ in pairs if (a > b if higher else a < b)]
        names = (
            CELL_LABEL.get(challenger, challenger),
            CELL_LABEL.get(baseline, baseline),
        )
        measured = "; ".join(
            f"{t}: {names[0]} {a:.4g} vs {names[1]} {b:.4g}" for t, a, b, _, _ in pairs
        )
        if not all(enough for *_, enough in pairs):
            return measured, TOO_FEW
        won = len(wins) > len(pairs) / 2 if majority else len(wins) == len(pairs)
        return measured, HOLDS if won else FAILS

    return judge


def _forget_gate_matters(e: Evidence) -> tuple[str, str] | None:
    variants = ["lstm", "lstm_i", "lstm_o", "lstm_b"]
    parts, worst_everywhere, enough, tested = [], True, True, False
    for task in ("arith", "xml"):
        rows = e.best[(e.best["task"] == task) & e.best["cell"].isin(["lstm_f", *variants])]
        if "lstm_f" not in set(rows["cell"]) or len(rows) < 2:
            continue
        tested = True
        higher = bool((rows["direction"] == "maximize").all())
        worst = rows.sort_values("test", ascending=higher).iloc[0]["cell"]
        worst_everywhere &= worst == "lstm_f"
        enough &= all(e.searched.get((task, c), 0) >= MIN_SEARCH_TRIALS for c in rows["cell"])
        parts.append(f"{task}: worst LSTM variant {CELL_LABEL.get(worst, worst)}")
    if not tested:
        return None
    return _verdict(parts, enough, worst_everywhere)


def _ordering(e: Evidence) -> tuple[str, str] | None:
    ranked = [a for a in e.agreements if len(a.cells) >= 3]  # no rank correlation below three
    if not ranked:
        return None
    measured = "; ".join(
        f"{a.task}: rho {a.rho:.2f} (p {a.p:.2g}, {len(a.cells)} cells)" for a in ranked
    )
    enough = all(
        len(a.cells) >= 5
        and all(e.searched.get((a.task, c), 0) >= MIN_SEARCH_TRIALS for c in a.cells)
        for a in ranked
    )
    if not enough:
        return measured, TOO_FEW
    return measured, HOLDS if all(a.rho > 0 and a.p < e.alpha for a in ranked) else FAILS


# -- The cells of 2024 ------------------------------------------------------------------------


def _top(e: Evidence, task: str, cell: str, higher: bool) -> np.ndarray:
    jobs = e.jobs
    rows = jobs[(jobs["task"] == task) & (jobs["cell"] == cell) & (jobs["state"] == "finished")]
    rows = rows.dropna(subset=["valid", "test"])
    return best_fraction(rows, TOP_FRACTION, higher)["test"].to_numpy(float)


def _competitive(e: Evidence) -> tuple[str, str] | None:
    parts, worse, enough = [], False, True
    for challenger, classic in MINIMAL.items():
        names = CELL_LABEL[challenger], CELL_LABEL[classic]
        for task, a, b, higher, ok in _best_pairs(e, challenger, classic):
            mine, theirs = _top(e, task, challenger, higher), _top(e, task, classic, higher)
            p = welch(mine, theirs)
            gap = float(np.mean(mine) - np.mean(theirs))
            worse |= bool(p < e.alpha and (gap < 0 if higher else gap > 0))
            enough &= ok
            parts.append(
                f"{task}: {names[0]} {a:.4g} vs {names[1]} {b:.4g} (best {len(mine)} and "
                f"{len(theirs)} trials: {np.mean(mine):.4g} vs {np.mean(theirs):.4g}, p = {p:.2g})"
            )
    if not parts:
        return None
    if worse:
        return "; ".join(parts), FAILS
    return "; ".join(parts), HOLDS if enough else TOO_FEW


# -- Weiss ------------------------------------------------------------------------------------


def _counting(e: Evidence) -> tuple[str, str] | None:
    """On the counting rule (Weiss's acceptance, with every forced symbol the most probable):
    Weiss's rule alone is met by a model that spreads its mass and never says when the b's
    end. Weiss's and the strict limits are reported beside."""
    runs = e.counting[e.counting["state"] == "finished"]
    kinds = set(runs["cell.kind"])
    if not {"lstm", "gru"} <= kinds:
        return None
    columns = ["test_counting_limit", "test_generalisation_limit", "test_strict_limit"]
    parts, holds, enough = [], True, True
    for language in sorted(runs["task.language"].unique()):
        mine = runs[runs["task.language"] == language]
        n_train = float(mine["task.n_train"].max())
        best = {k: mine[mine["cell.kind"] == k][columns].max() for k in ("lstm", "gru")}
        enough &= min(int((mine["cell.kind"] == k).sum()) for k in best) >= MIN_SEEDS
        lstm, gru = best["lstm"], best["gru"]
        holds &= bool(
            lstm["test_counting_limit"] >= 2 * n_train and gru["test_counting_limit"] < 2 * n_train
        )
        parts.append(
            f"{language} (n_train {n_train:g}): best LSTM-kind counting limit "
            f"{lstm['test_counting_limit']:g}, best GRU-kind {gru['test_counting_limit']:g} "
            f"(Weiss's rule: {lstm['test_generalisation_limit']:g} and "
            f"{gru['test_generalisation_limit']:g}; strict: {lstm['test_strict_limit']:g} and "
            f"{gru['test_strict_limit']:g})"
        )
    return _verdict(parts, enough, holds)


def _counts_beyond_2x(e: Evidence) -> tuple[str, str] | None:
    """On a^n b^n and the counting rule, as Weiss's row; each cell's best seed."""
    runs = e.counting[(e.counting["state"] == "finished") & (e.counting["task.language"] == "anbn")]
    if "slstm" not in set(runs["cell"]):
        return None
    parts, holds, enough = [], True, True
    for cell in ("lstm", "slstm"):
        mine = runs[runs["cell"] == cell]
        if mine.empty:
            continue
        n_train = float(mine["task.n_train"].max())
        best = mine[["test_counting_limit", "test_generalisation_limit", "test_strict_limit"]].max()
        holds &= bool(best["test_counting_limit"] >= 2 * n_train)
        enough &= len(mine) >= MIN_SEEDS
        parts.append(
            f"{CELL_LABEL[cell]}: best counting limit {best['test_counting_limit']:g} "
            f"(n_train {n_train:g}, runs: {len(mine)}; Weiss's rule "
            f"{best['test_generalisation_limit']:g}, strict {best['test_strict_limit']:g})"
        )
    return _verdict(parts, enough, holds)


def _verdict(parts: list[str], enough: bool, holds: bool) -> tuple[str, str]:
    """The measured parts, and holds / does not hold, or too few where the gate is not met."""
    return "; ".join(parts), (HOLDS if holds else FAILS) if enough else TOO_FEW


FINDINGS = (
    Finding(
        "No variant is significantly better than vanilla",
        "Greff 2017",
        _none_significant(["nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr"], "better"),
    ),
    Finding("NFG and NOAF hurt most", "Greff 2017", _hurt_most),
    Finding(
        "CIFG and NP cost nothing (not significantly worse)",
        "Greff 2017",
        _none_significant(["cifg", "np"], "worse"),
    ),
    Finding(
        "FGR gains nothing (not significantly better)",
        "Greff 2017",
        _none_significant(["fgr"], "better"),
    ),
    Finding(
        "NIG, NOG and NIAF hurt on speech and handwriting but not on music (unverified)",
        "Greff 2017",
        _domain_specific,
    ),
    Finding(
        "Learning rate is by far the most important hyperparameter", "Greff 2017", _lr_dominates
    ),
    Finding(
        f"Momentum hardly matters (importance < {NEGLIGIBLE:g})",
        "Greff 2017",
        _small(_momentum, "momentum importance"),
    ),
    Finding(
        f"Hyperparameters are nearly independent (lr x hidden size interaction < {NEGLIGIBLE:g})",
        "Greff 2017",
        _small(_interaction, "interaction"),
    ),
    Finding(
        "The forget gate and the output activation are the most important components",
        "Greff 2017",
        _top_components,
    ),
    Finding(
        "Coupling the gates (CIFG) costs nothing (coupled cells not significantly worse)",
        "Greff 2017",
        _coupling_free,
    ),
    Finding(
        "LSTM-b (forget bias 1) beats the LSTM on every task",
        "Jozefowicz 2015",
        _beats("lstm_b", "lstm", majority=False),
    ),
    Finding(
        "The GRU beats the LSTM on most tasks",
        "Jozefowicz 2015",
        _beats("gru", "lstm", majority=True),
    ),
    Finding(
        "Without its forget gate the LSTM is the worst LSTM variant (Arith, XML)",
        "Jozefowicz 2015",
        _forget_gate_matters,
    ),
    Finding(
        "Our ordering of the cells agrees with Table 1 (Spearman rho > 0, p < alpha)",
        "Jozefowicz 2015",
        _ordering,
    ),
    Finding(
        "LSTMs count beyond 2 x the training range; GRUs do not",
        "Weiss 2018",
        _counting,
        from_search=False,
    ),
    Finding(
        "minGRU and minLSTM are competitive with the GRU and the LSTM (best quarter of trials "
        "not significantly worse on any task)",
        "Feng 2024",
        _competitive,
    ),
    Finding(
        "The LSTM and the sLSTM count beyond 2 x the training range on a^n b^n",
        "Beck 2024; Weiss 2018",
        _counts_beyond_2x,
        from_search=False,
    ),
)


def judge(evidence: Evidence) -> tuple[Table, list[str]]:
    """The verdict table, and the findings this store could not test."""
    rows, untested = [], []
    for finding in FINDINGS:
        result = finding.judge(evidence)
        if result is None:
            untested.append(f"{finding.statement} ({finding.paper})")
            continue
        measured, verdict = result
        verdict = evidence.scale.prefix(verdict, finding.from_search)
        rows.append(Verdict(finding.statement, finding.paper, measured, verdict))
    frame = pd.DataFrame(
        [vars(v) for v in rows], columns=["finding", "paper", "measured", "verdict"]
    )
    note = (
        f"Significance: Welch's t-test on all finished trials, p < {evidence.alpha:g}, needing "
        f"{MIN_TRIALS}+ finished trials per cell and task; fANOVA findings need "
        f"{MIN_FANOVA_SETTINGS}+ distinct hyperparameter settings per task; best-value "
        f"comparisons {MIN_SEARCH_TRIALS}+ trials per cell and task searched (finished, "
        "diverged or pruned); counting "
        f"{MIN_SEEDS}+ runs per cell kind. Competitive (Feng 2024): on every task, the best "
        f"{TOP_FRACTION:.0%} of each cell's trials by validation not significantly worse than "
        "the classic's (Welch's t-test on their test values)."
    )
    return Table("verdicts", "The papers' headline findings, measured here", frame, note), untested
