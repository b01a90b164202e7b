"""The KPI registry: every number a table, ``summary.json``, the docs or the benchmark gate shows is defined here
once, with its unit and which direction is better.

Episode KPIs are computed by :func:`oce_sim.world.metrics.episode_kpis`; *paired* KPIs (``incremental_*``) compare a
strategy with the no-promotion counterfactual on the same seed and are added by
:func:`oce_sim.studies.evaluation.add_paired_kpis`.  A ratio whose denominator is zero is undefined: episode infos carry
:data:`UNDEFINED` (a finite sentinel, so that equal runs compare equal) and tables show "n/a".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

Better = Literal["higher", "lower", "neither"]
Unit = Literal["usd", "ratio", "share", "count", "per_customer", "rx"]
UNDEFINED = -1.0  # sentinel of an undefined ratio (no spend, nothing answered); never a valid value of one


@dataclass(frozen=True)
class KPI:
    name: str
    label: str
    unit: Unit
    better: Better
    definition: str
    group: Literal["economics", "multi_period", "field", "engagement", "channel"] = "economics"
    ratio: bool = False  # may be undefined (UNDEFINED in infos, NaN in tables)

    def direction(self) -> int:
        """+1 if higher is better, -1 if lower is better, 0 if neither."""
        return {"higher": 1, "lower": -1, "neither": 0}[self.better]


_KPIS: tuple[KPI, ...] = (
    # -------------------------------------------------------------------------------- year-1 P&L
    KPI("prescriptions", "prescriptions (year 1)", "rx", "higher",
        "Brand prescriptions written by the territory's HCPs during the episode (realised Poisson draws): total Rx, "
        "new prescriptions plus refills (= trx)."),
    KPI("nrx", "new Rx (year 1)", "rx", "higher",
        "New prescriptions: patients the territory's HCPs started on the brand during the episode (realised draws; "
        "driven by the adoption state and the response, docs/MODEL.md §2.9)."),
    KPI("trx", "total Rx (year 1)", "rx", "higher",
        "Total prescriptions: nrx plus the refills of the patients on the brand (response.refills_per_patient_per_month, "
        "response.patient_persistence_per_month). Revenue is booked on it."),
    KPI("revenue_usd", "revenue (year 1)", "usd", "higher",
        "prescriptions x economics.price_per_rx_usd: the brand's sales in the territory during the episode."),
    KPI("gross_margin_usd", "gross margin (year 1)", "usd", "higher",
        "revenue_usd x economics.gross_margin."),
    KPI("cost_fixed_usd", "fixed field cost (year 1)", "usd", "lower",
        "Fully loaded annual cost of the field force (economics.rep_annual_cost_usd x reps x "
        "economics.call_cost_share), accrued per calendar day whether the reps call or not."),
    KPI("cost_variable_usd", "variable promotion cost (year 1)", "usd", "lower",
        "Per-call rep cost (samples, travel) x call_cost_share, plus remote details, emails and webinar costs."),
    KPI("cost_usd", "promotion cost (year 1)", "usd", "lower", "cost_fixed_usd + cost_variable_usd."),
    KPI("profit_usd", "profit (year 1)", "usd", "higher", "gross_margin_usd - cost_usd."),
    # -------------------------------------------------------------------------------- beyond the horizon
    KPI("value_at_horizon_usd", "value left at the horizon", "usd", "higher",
        "Expected gross margin the customer state at the horizon still earns over economics.tail_years with no "
        "further promotion, discounted at economics.discount_rate_per_year (computed from the model's own "
        "dynamics: oce_sim.world.tail).", group="multi_period"),
    KPI("revenue_multi_period_usd", "revenue (year 1 + tail)", "usd", "higher",
        "revenue_usd + the discounted expected revenue of the tail.", group="multi_period"),
    KPI("profit_multi_period_usd", "profit (year 1 + tail)", "usd", "higher",
        "profit_usd + value_at_horizon_usd: the objective a strategist should rank strategies by.",
        group="multi_period"),
    # -------------------------------------------------------------------------------- paired with no promotion
    KPI("incremental_revenue_usd", "incremental revenue (year 1)", "usd", "higher",
        "revenue_usd - revenue_usd of no promotion (no field force, no marketing) on the same seed."),
    KPI("incremental_roi", "incremental ROI (year 1)", "ratio", "higher",
        "incremental_revenue_usd / cost_usd: revenue per promotional dollar, field force included, over no "
        "promotion on the same seed (the convention of the published detailing ROIs).", ratio=True),
    KPI("incremental_revenue_multi_period_usd", "incremental revenue (year 1 + tail)", "usd", "higher",
        "revenue_multi_period_usd - the same for no promotion on the same seed.", group="multi_period"),
    KPI("incremental_roi_multi_period", "incremental ROI (year 1 + tail)", "ratio", "higher",
        "incremental_revenue_multi_period_usd / cost_usd.", group="multi_period", ratio=True),
    KPI("incremental_profit_multi_period_usd", "incremental profit (year 1 + tail)", "usd", "higher",
        "profit_multi_period_usd - the same for no promotion on the same seed.", group="multi_period"),
    # -------------------------------------------------------------------------------- field force
    KPI("field_utilisation", "field utilisation", "share", "higher",
        "Calls made / the field force's nominal capacity (reps x working days x calls per day). The rest is idle "
        "capacity that is paid for (cost_fixed_usd) but not used.", group="field", ratio=True),
    KPI("idle_field_cost_usd", "idle field cost", "usd", "lower",
        "cost_fixed_usd x (1 - field_utilisation): what unused field capacity cost.", group="field"),
    KPI("suggestion_acceptance", "suggestion acceptance", "share", "higher",
        "Orchestrator suggestions the reps accepted / suggestions they accepted or dismissed.", group="field",
        ratio=True),
    KPI("questions_answered", "questions answered", "count", "higher",
        "Profiling questions reps asked and answered (sales stage >= 2).", group="field"),
    # -------------------------------------------------------------------------------- engagement
    KPI("reach", "reach", "share", "higher",
        "Share of the territory's HCPs who received at least one delivered touch (any channel, the website "
        "included) during the episode.", group="engagement"),
    KPI("frequency", "frequency", "per_customer", "neither",
        "Delivered touches per reached HCP during the episode.", group="engagement"),
    KPI("engagement_rate", "engagement rate", "share", "higher",
        "Engaged touches (a met rep visit, an answered remote detail, an opened email, an attended webinar, a "
        "portal visit) / delivered touches. n/a in tables for a strategy that delivered no promotional touch: the "
        "customers' own portal visits, always engaged, would make it 100%.", group="engagement"),
    KPI("confusion_events", "confusion events", "count", "lower",
        "Engaged touches whose theme contradicts (>= response.confusion_theme_distance themes apart) another "
        "stakeholder's engaged touch to the same HCP within response.confusion_window_days.", group="engagement"),
    KPI("out_of_sequence_touches", "out-of-sequence touches", "count", "lower",
        "Engaged touches whose theme jumps ahead of the HCP's progress through the intended message order.",
        group="engagement"),
    KPI("unsubscribes", "unsubscribes", "count", "lower",
        "HCPs who withdrew email or remote-detail consent.", group="engagement"),
    KPI("blocked_touches", "blocked touches", "count", "lower",
        "Touches the channel systems refused (no consent, or the 30-day cap reached).", group="engagement"),
    KPI("masked_actions", "masked actions", "count", "lower",
        "Plays the agent chose that the action mask forbids (replaced by hold).", group="engagement"),
    KPI("adopters_end", "adopters at the horizon", "count", "higher",
        "HCPs in the adopter state at the end of the episode (ground truth).", group="engagement"),
)

KPIS: dict[str, KPI] = {k.name: k for k in _KPIS}

# Per-channel KPIs, generated: touches_<channel>, cost_<channel>_usd.
def _channel_kpis() -> None:
    from oce_sim.config import CHANNELS

    for channel in CHANNELS:
        KPIS[f"touches_{channel}"] = KPI(f"touches_{channel}", f"{channel} touches", "count", "neither",
                                         f"Delivered {channel} touches.", group="channel")
        KPIS[f"cost_{channel}_usd"] = KPI(f"cost_{channel}_usd", f"{channel} cost", "usd", "lower",
                                          f"Cost booked to {channel} (the rep visit's share of the fixed field "
                                          "cost excluded).", group="channel")


_channel_kpis()

# The default columns of a comparison table, in order.
TABLE_KPIS: tuple[str, ...] = (
    "profit_multi_period_usd",
    "profit_usd",
    "value_at_horizon_usd",
    "revenue_usd",
    "cost_usd",
    "cost_fixed_usd",
    "cost_variable_usd",
    "incremental_roi",
    "incremental_roi_multi_period",
    "prescriptions",
    "field_utilisation",
    "idle_field_cost_usd",
    "reach",
    "engagement_rate",
    "confusion_events",
    "unsubscribes",
)


def kpi(name: str) -> KPI:
    try:
        return KPIS[name]
    except KeyError:
        raise KeyError(f"unknown KPI {name!r}; known: {', '.join(KPIS)}") from None


def direction(name: str) -> int:
    """+1 if higher is better, -1 if lower is better, 0 if neither (unknown KPIs: 0)."""
    return KPIS[name].direction() if name in KPIS else 0


def format_value(name: str, value: float, sign: bool = False) -> str:
    """A KPI value in its unit, for tables: ``1,234k`` USD, ``12.3%`` shares, ``1.23`` ratios."""
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    unit = KPIS[name].unit if name in KPIS else "count"
    plus = "+" if sign else ""
    if unit == "usd":
        return f"{value / 1000:{plus},.0f}k"
    if unit == "share":
        return f"{value:{plus}.1%}"
    if unit in ("ratio", "per_customer"):
        return f"{value:{plus}.2f}"
    return f"{value:{plus},.0f}"


def unit_label(name: str) -> str:
    """Axis label of a KPI: its label and unit."""
    k = KPIS.get(name)
    if k is None:
        return name
    suffix = {"usd": "USD", "ratio": "USD per USD", "share": "share", "count": "count",
              "per_customer": "touches per reached HCP", "rx": "prescriptions"}[k.unit]
    return f"{k.label} ({suffix})"


def definitions(names: Iterable[str]) -> dict[str, dict[str, str]]:
    """The registry's entries for ``names`` (those it defines), for summary.json and reports."""
    return {n: {"label": KPIS[n].label, "unit": KPIS[n].unit, "better": KPIS[n].better,
                "definition": KPIS[n].definition} for n in names if n in KPIS}


def markdown_table() -> str:
    """The registry as a Markdown table (for docs/MODEL.md and reports)."""
    lines = ["| KPI | unit | better | definition |", "|---|---|---|---|"]
    for k in KPIS.values():
        lines.append(f"| `{k.name}` | {k.unit} | {k.better} | {k.definition} |")
    return "\n".join(lines)
