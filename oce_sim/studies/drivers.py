"""The drivers of a gain (issue 24, item 4): each strategy's paired difference to the baseline in profit (year 1 +
tail), split by channel, on the same seeds as the comparison.

Every strategy (and the baseline) is replayed on each seed once per channel with
:func:`oce_sim.studies.calibration.run`'s ``mute``: a shadow copy of the customers ignores that channel's touches
while the company, the real customers and every random draw run exactly as in the compared episode (the real
KPIs are those of ``oce-sim compare``, checked).  The real minus the shadow customers' year-1 *expected* gross
margin is the channel's effect in that episode, everything else held fixed.  For a strategy ``s`` against the
baseline ``b`` on one seed (all in USD per territory):

* **channel c** (rep visits, remote details, emails, webinars, website): ``effect_c(s) - effect_c(b)``, where
  ``effect_c(x)`` = year-1 expected gross margin of ``x``'s customers minus that of its shadow customers who ignore
  channel c (expected prescriptions x price x gross margin, working days of the episode);
* **interactions (the residual)**: ``(EGM(s) - EGM(b)) - sum_c channel c``, with ``EGM`` the year-1 expected gross
  margin.  A channel's effect measured alone is its effect *given all the others*, and the channels interact: they
  complement each other (a met visit makes the follow-up email open, consistent messages reinforce) and overlap
  (fatigue, adoption that saturates: a customer won over once is not won twice), so the five do not add up to the
  joint effect.  A negative residual says the channels overlap more than they complement each other: each
  channel's part is then more than it would add on its own.  With every channel muted at once the shadows of
  ``s`` and ``b`` coincide on a seed (same market history, same draws: tested), so the residual holds no
  difference of the unpromoted market: it is the strategy's interaction term minus the baseline's;
* **prescription draws**: ``(GM(s) - EGM(s)) - (GM(b) - EGM(b))``, realised minus expected gross margin: the
  Poisson luck of the prescriptions written (common uniforms, so small but not zero);
* **promotion cost**: ``-(cost(s) - cost(b))``, field force included (a dearer strategy has a negative part);
* **value left at the horizon**: ``value_at_horizon(s) - value_at_horizon(b)`` whole: the channels' lasting effects
  on the customer state are in it, not in their rows;
* **total**: ``profit_multi_period(s) - profit_multi_period(b)`` = the sum of the parts above, per seed, exactly
  up to floating-point rounding (tested).

Beside them, as diagnostics (not parts of the sum): the differences in reach (share of HCPs), confusion events
and unsubscribes.  A muted touch loses its message only: an email or remote detail still adds contact load and may
still unsubscribe in the shadow, so a channel's part is the value of its messages, not the cost of its fatigue.

Cost: five muted replays per strategy and seed (each about two to three times a plain episode: the shadow's
touches and days are simulated too).  The rollout oracle cannot be decomposed: its look-ahead plays deep copies of
the world, which would drive the shadow customers as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from oce_sim.config import CHANNELS, ScenarioConfig
from oce_sim.storage.outputs import atomic_save_figure, atomic_write_text
from oce_sim.studies import calibration
from oce_sim.studies.evaluation import t_interval, strategy_config

USD = "USD per territory"
CHANNEL_LABELS: dict[str, str] = {"rep_visit": "rep visits", "remote_detail": "remote details", "email": "emails",
                                  "webinar": "webinars", "website": "website (customers' own visits)"}
# component -> (kind, label); the parts in the order of the waterfall, the total last
PARTS: dict[str, tuple[str, str]] = {
    **{c: ("channel", CHANNEL_LABELS[c]) for c in CHANNELS},
    "interactions": ("residual", "interactions between channels (residual)"),
    "rx_draws": ("draws", "prescription draws (realised - expected)"),
    "cost": ("cost", "promotion cost (- its difference)"),
    "value_at_horizon": ("horizon", "value left at the horizon"),
}
TOTAL = "total"
TOTAL_LABEL = "total: profit (year 1 + tail)"
# diagnostic -> (unit, label): differences shown beside the parts, not in their sum
DIAGNOSTICS: dict[str, tuple[str, str]] = {
    "reach": ("share of HCPs", "reach"),
    "confusion_events": ("count per territory", "confusion events"),
    "unsubscribes": ("count per territory", "unsubscribes"),
}
SUMMARY_COLUMNS = ["strategy", "baseline", "component", "kind", "unit", "mean", "ci_low", "ci_high", "n_seeds"]
SEED_COLUMNS = ["strategy", "baseline", "seed", "component", "kind", "unit", "value"]


def replays_world(policy: Any) -> bool:
    """Whether ``policy`` plays ahead on deep copies of the env (the rollout oracle): its copies would drive the
    shadow customers too, so it cannot be decomposed."""
    from oce_sim.agents.oracle import Oracle

    return isinstance(policy, Oracle)


@dataclass(frozen=True)
class Measured:
    """One strategy on one seed: its KPIs (those of the compared episode), its year-1 expected gross margin and
    each channel's effect on it (real minus shadow customers who ignore the channel), USD per territory."""

    kpis: dict[str, float]
    expected_margin_usd: float
    effect_usd: dict[str, float]


def measure(policy: Any, config: ScenarioConfig, seed: int) -> Measured:
    """``policy`` on ``config`` and ``seed``, replayed once per channel with that channel muted in the shadow."""
    gross_margin, price = config.economics.gross_margin, config.economics.price_per_rx_usd
    kpis: dict[str, float] | None = None
    expected = float("nan")
    effect: dict[str, float] = {}
    for channel, name in enumerate(CHANNELS):
        trace = calibration.run(policy, config, seed, mute=channel)
        if kpis is None:
            kpis, expected = dict(trace.kpis), trace.ledger.expected_revenue_usd * gross_margin
        elif trace.kpis != kpis:  # the real episode must not depend on what the shadow ignores
            raise RuntimeError(f"seed {seed}: muting {name} changed the real episode; the decomposition would not "
                               "be of the compared episodes")
        real = sum(trace.expected_rx_by_day.values())
        shadow = sum(trace.shadow_expected_rx_by_day.values())
        effect[name] = (real - shadow) * price * gross_margin
    assert kpis is not None
    return Measured(kpis, expected, effect)


def decompose(own: Measured, base: Measured) -> dict[str, float]:
    """The parts of ``own``'s difference to ``base`` on one seed (module docstring), the total and diagnostics."""
    k, b = own.kpis, base.kpis
    parts = {c: own.effect_usd[c] - base.effect_usd[c] for c in CHANNELS}
    channels = sum(parts.values())
    parts["interactions"] = (own.expected_margin_usd - base.expected_margin_usd) - channels
    parts["rx_draws"] = ((k["gross_margin_usd"] - own.expected_margin_usd)
                         - (b["gross_margin_usd"] - base.expected_margin_usd))
    parts["cost"] = -(k["cost_usd"] - b["cost_usd"])
    parts["value_at_horizon"] = k["value_at_horizon_usd"] - b["value_at_horizon_usd"]
    parts[TOTAL] = k["profit_multi_period_usd"] - b["profit_multi_period_usd"]
    parts.update({d: k[d] - b[d] for d in DIAGNOSTICS})
    return parts


def kind_unit(component: str) -> tuple[str, str]:
    if component in PARTS:
        return PARTS[component][0], USD
    if component == TOTAL:
        return TOTAL, USD
    return "diagnostic", DIAGNOSTICS[component][0]


def run(policies: Mapping[str, Any], scenario: ScenarioConfig, episodes: int, seed: int, baseline: str,
        stages: Mapping[str, int | None] | None = None, results: pd.DataFrame | None = None,
        progress: bool = True) -> pd.DataFrame:
    """The decomposition of every strategy but the baseline (and the oracle) on seeds ``seed .. seed+episodes-1``:
    tidy rows per strategy, seed and component (:data:`SEED_COLUMNS`).  With ``results`` (the comparison's tidy
    rows), every replay's profit is checked against the compared episode's."""
    from tqdm.auto import tqdm

    if baseline not in policies or replays_world(policies[baseline]):
        raise ValueError(f"the baseline {baseline!r} cannot be decomposed against")
    shown = decomposable(policies, baseline)
    if not shown:
        raise ValueError("no strategy other than the baseline can be decomposed")
    rows: list[dict[str, Any]] = []
    with tqdm(total=(len(shown) + 1) * episodes, desc=f"{scenario.name}: drivers", disable=not progress) as bar:
        measured: dict[str, list[Measured]] = {}
        for label in [baseline, *shown]:
            config = strategy_config(scenario, policies[label], (stages or {}).get(label))
            measured[label] = []
            for episode in range(episodes):
                m = measure(policies[label], config, seed + episode)
                if results is not None:
                    _check_episode(results, label, seed + episode, m)
                measured[label].append(m)
                bar.update(1)
        for label in shown:
            for episode, (own, base) in enumerate(zip(measured[label], measured[baseline])):
                for component, value in decompose(own, base).items():
                    kind, unit = kind_unit(component)
                    rows.append(dict(strategy=label, baseline=baseline, seed=seed + episode, component=component,
                                     kind=kind, unit=unit, value=float(value)))
    return pd.DataFrame(rows, columns=SEED_COLUMNS)


def decomposable(policies: Mapping[str, Any], baseline: str) -> list[str]:
    """The strategies whose difference to ``baseline`` is decomposed: all but the baseline and the oracle."""
    return [label for label, policy in policies.items() if label != baseline and not replays_world(policy)]


def _check_episode(results: pd.DataFrame, label: str, seed: int, m: Measured) -> None:
    row = results[(results.strategy == label) & (results.seed == seed) & (results.metric == "profit_multi_period_usd")]
    if not row.empty and not np.isclose(float(row.value.iloc[0]), m.kpis["profit_multi_period_usd"], rtol=1e-12,
                                        atol=1e-6):
        raise RuntimeError(f"{label}, seed {seed}: the muted replay's profit differs from the compared episode's")


def summarise(by_seed: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean and paired t-interval of every component per strategy (:data:`SUMMARY_COLUMNS`)."""
    out = []
    for (strategy, component), frame in by_seed.groupby(["strategy", "component"], sort=False):
        ci = t_interval(frame.value.to_numpy(dtype=float), confidence)
        first = frame.iloc[0]
        out.append(dict(strategy=strategy, baseline=first.baseline, component=component, kind=first.kind,
                        unit=first.unit, mean=ci["diff_mean"], ci_low=ci["diff_low"], ci_high=ci["diff_high"],
                        n_seeds=int(frame.value.notna().sum())))
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def write(out: Path, by_seed: pd.DataFrame, summary: pd.DataFrame) -> list[Path]:
    """``drivers.csv`` (the summary) and ``drivers_by_seed.csv`` (every seed's parts) in ``out``."""
    paths = [out / "drivers.csv", out / "drivers_by_seed.csv"]
    atomic_write_text(paths[0], summary.to_csv(index=False))
    atomic_write_text(paths[1], by_seed.to_csv(index=False))
    return paths


# ------------------------------------------------------------------------------------------------ figure and text
def _label(component: str) -> str:
    if component in PARTS:
        return PARTS[component][1]
    return TOTAL_LABEL if component == TOTAL else DIAGNOSTICS[component][1]


def _diagnostic_text(value: float, component: str) -> str:
    if not np.isfinite(value):
        return "n/a"
    text = f"{100 * value:+.1f}" if component == "reach" else f"{value:+,.1f}"
    text = text.removesuffix(".0")
    return text + " pp" if component == "reach" else text


def _usd_k(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value / 1000:+,.0f}k"


def figure_name(strategy: str, taken: set[str]) -> str:
    """``drivers_<strategy>.png``, the strategy's name in letters, digits and dashes, unique among ``taken``."""
    stem = "drivers_" + (re.sub(r"[^A-Za-z0-9]+", "-", strategy).strip("-").lower() or "strategy")
    name, n = f"{stem}.png", 2
    while name in taken:
        name, n = f"{stem}-{n}.png", n + 1
    taken.add(name)
    return name


def _value_label(ax: Any, x: float, y: float, value: float) -> None:
    """A bar's value (USD thousands) at its end, beside the CI's line."""
    ax.annotate(f"{value:+,.0f}", (x, y), xytext=(4, 2 if value >= 0 else -9), textcoords="offset points",
                ha="left", fontsize=7, bbox=dict(boxstyle="round,pad=0.1", fc="white", alpha=0.7, lw=0))


def plot_waterfalls(summary: pd.DataFrame, out: Path, title: str) -> list[Path]:
    """One waterfall per strategy: the parts of its difference to the baseline, each with its 95% CI at its end,
    then the total with its CI; the diagnostics beneath.  USD thousands per territory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    taken: set[str] = set()
    for strategy, frame in summary.groupby("strategy", sort=False):
        rows = frame.set_index("component")
        baseline, n = str(frame.baseline.iloc[0]), int(rows.loc[TOTAL, "n_seeds"])
        fig, ax = plt.subplots(figsize=(11, 5.2))
        start = 0.0
        labels = []
        for x, component in enumerate(PARTS):
            mean, low, high = (rows.loc[component, c] / 1e3 for c in ("mean", "ci_low", "ci_high"))
            ax.bar(x, mean, bottom=start, color="#2e8b57" if mean >= 0 else "#c0392b", alpha=0.85)
            _value_label(ax, x, start + mean, mean)
            if np.isfinite(low):
                ax.errorbar(x, start + mean, yerr=[[mean - low], [high - mean]], fmt="none", ecolor="black",
                            capsize=3, lw=0.8)
            if x + 1 < len(PARTS):
                ax.plot([x + 0.4, x + 0.6], [start + mean] * 2, color="grey", lw=0.8)
            start += mean
            labels.append(_label(component))
        mean, low, high = (rows.loc[TOTAL, c] / 1e3 for c in ("mean", "ci_low", "ci_high"))
        x = len(PARTS)
        ax.bar(x, mean, color="#2b5797", alpha=0.9)
        _value_label(ax, x, mean, mean)
        if np.isfinite(low):
            ax.errorbar(x, mean, yerr=[[mean - low], [high - mean]], fmt="none", ecolor="black", capsize=3, lw=0.8)
        labels.append(TOTAL_LABEL)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel("part of the difference (channels: year-1 expected gross margin, measured by muting each)",
                      fontsize=9)
        ax.set_ylabel(f"difference to {baseline} (USD thousands per territory)", fontsize=9)
        diagnostics = ", ".join(f"{_label(d)} {_diagnostic_text(rows.loc[d, 'mean'], d)}" for d in DIAGNOSTICS
                                if d in rows.index)
        ax.set_title(f"{title}: what drives {strategy} against {baseline} (mean over {n} paired seeds, 95% CI)\n"
                     f"beside it: {diagnostics}", fontsize=10)
        fig.tight_layout()
        path = out / figure_name(str(strategy), taken)
        atomic_save_figure(fig, path)
        plt.close(fig)
        paths.append(path)
    return paths


DEFINITIONS = (
    "Each strategy and the baseline are replayed on the same seeds once per channel with a shadow copy of the "
    "customers that ignores that channel's touches (`oce_sim.studies.calibration.run`'s mute): the company, the real "
    "customers and every random draw stay those of the compared episode, so real minus shadow customers is the "
    "channel's effect in that episode, everything else held fixed. A **channel's** part is its effect on the year-1 "
    "expected gross margin (expected prescriptions x price x gross margin) in the strategy's episodes minus its "
    "effect in the baseline's, seed by seed. Each channel is measured given all the others, and the channels interact "
    "(they complement each other: a met visit makes the follow-up email open; and overlap: fatigue, a customer won "
    "over once is not won twice), so these parts do not add up: **interactions (residual)** is the year-1 expected "
    "gross margin difference minus the five channel parts (negative: the channels overlap more than they complement "
    "each other). With every channel muted at once the two shadows coincide, so it holds interactions only. "
    "**Prescription draws** is realised minus expected gross margin (the prescriptions' luck), "
    "**promotion cost** minus the cost difference (field force included), and the **value left at the horizon** its "
    "whole difference (the channels' lasting effects are in it, not in their rows). The parts sum to the **total** on "
    "every seed. A muted email or remote detail still adds contact load and may unsubscribe: a channel's part is the "
    "value of its messages. Reach, confusion events and unsubscribes are differences shown beside, not parts."
)


def section(summary: pd.DataFrame, episodes: int, scale: str, figures: Sequence[Path],
            skipped: Sequence[str] = ()) -> tuple[str, str, list[tuple[Path, str]]]:
    """The report's section (heading, Markdown, figures with captions): the definitions, a sentence per strategy,
    the table of every part and diagnostic."""
    from oce_sim.studies.report import markdown_table

    strategies = list(dict.fromkeys(summary.strategy))
    baseline = str(summary.baseline.iloc[0])
    cells = summary.set_index(["strategy", "component"])
    lines = [DEFINITIONS]
    for strategy in strategies:
        lines.append(headline(summary[summary.strategy == strategy], scale))
    if skipped:
        lines.append(f"Not decomposed: {', '.join(skipped)} (the rollout oracle plays ahead on copies of the world, "
                     "which would drive the shadow customers too).")

    def cell(strategy: str, component: str) -> str:
        row = cells.loc[(strategy, component)]
        text = (_usd_k(row["mean"]) if row.unit == USD else _diagnostic_text(row["mean"], component))
        if np.isfinite(row.ci_low):
            low, high = ((_usd_k(row.ci_low), _usd_k(row.ci_high)) if row.unit == USD else
                         (_diagnostic_text(row.ci_low, component), _diagnostic_text(row.ci_high, component)))
            text += f" [{low}, {high}]"
        return text

    order = [*PARTS, TOTAL, *DIAGNOSTICS]
    header = [f"part of the difference to {baseline} (USD thousands per territory; diagnostics in their unit)",
              *strategies]
    table_rows = []
    for component in order:
        _, unit = kind_unit(component)
        name = _label(component) if unit == USD else f"beside: {_label(component)} ({unit}"
        if component == "reach":
            name = "beside: reach (percentage points of HCPs)"
        elif unit != USD:
            name += ")"
        table_rows.append([f"**{name}**" if component == TOTAL else name,
                           *(cell(s, component) for s in strategies)])
    lines.append(f"Mean over {episodes} paired seeds, {scale}; in brackets the 95% CI over seeds. "
                 "`drivers.csv` has these rows, `drivers_by_seed.csv` every seed's.\n\n"
                 + markdown_table(header, table_rows))
    captions = [(p, f"What drives {s} against {baseline}: each part with its 95% CI at its end, then the total, "
                    f"{scale} (USD thousands).") for p, s in zip(figures, strategies)]
    return "What drives each difference", "\n\n".join(lines), captions


def headline(frame: pd.DataFrame, scale: str) -> str:
    """One sentence: a strategy's total difference, its largest channel part and its cost part."""
    rows = frame.set_index("component")
    strategy, baseline = str(frame.strategy.iloc[0]), str(frame.baseline.iloc[0])
    if not frame[["mean", "ci_low", "ci_high"]].fillna(0.0).to_numpy().any():
        return (f"**{strategy}**: the same episodes as {baseline} on every seed (the same organisation by another "
                "name): every part is 0.")
    channels = rows.loc[list(CHANNELS), "mean"]
    top = str(channels.abs().idxmax())
    return (f"**{strategy}**: {_usd_k(rows.loc[TOTAL, 'mean'])} USD of profit (year 1 + tail) against {baseline}, "
            f"{scale}; its largest channel part is {CHANNEL_LABELS[top]} ({_usd_k(channels[top])}), its promotion "
            f"cost part {_usd_k(rows.loc['cost', 'mean'])}, interactions {_usd_k(rows.loc['interactions', 'mean'])} "
            f"and the value left at the horizon {_usd_k(rows.loc['value_at_horizon', 'mean'])}.")


__all__ = ["DIAGNOSTICS", "Measured", "PARTS", "TOTAL", "decompose", "decomposable", "measure", "plot_waterfalls",
           "replays_world", "run", "section", "summarise", "write"]
