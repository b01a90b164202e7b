"""Reward components and episode KPIs, computed from the world's ledger (definitions: :mod:`oce_sim.world.kpis`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from oce_sim.config import CHANNELS, EconomicsConfig
from oce_sim.world.kpis import KPIS, UNDEFINED

if TYPE_CHECKING:
    from oce_sim.world.simulation import Ledger, World
    from oce_sim.world.tail import TailValue

# Every KPI an episode reports (the paired incremental_* KPIs are added by the evaluation).
KPI_NAMES: tuple[str, ...] = tuple(name for name in KPIS if not name.startswith("incremental_"))


def reward_components(before: Sequence["Ledger"], after: Sequence["Ledger"],
                      economics: EconomicsConfig) -> dict[str, np.ndarray]:
    """Named parts of one step's reward for each territory (``before``/``after``: their ledgers), in USD, one array
    per part: revenue and gross margin (realised, expected and observed: as the pipeline published it to the view
    during the step), the cost of each channel, the field force's fixed cost, and profit = gross margin - costs."""
    def change(name: str) -> np.ndarray:
        return np.array([getattr(a, name) for a in after], dtype=float) - np.array([getattr(b, name) for b in before],
                                                                                   dtype=float)

    variable = np.stack([a.cost_usd for a in after]) - np.stack([b.cost_usd for b in before])
    fixed = change("fixed_cost_usd")
    revenue = change("revenue_usd")
    expected_revenue = change("expected_revenue_usd")
    observed_revenue = change("observed_rx") * economics.price_per_rx_usd
    cost = variable.sum(axis=1) + fixed
    parts = {
        "revenue": revenue,
        "expected_revenue": expected_revenue,
        "gross_margin": revenue * economics.gross_margin,
        "expected_gross_margin": expected_revenue * economics.gross_margin,
        "observed_revenue": observed_revenue,
        "observed_gross_margin": observed_revenue * economics.gross_margin,
        "field_fixed_cost": fixed,
    }
    parts.update({f"{name}_cost": variable[:, i] for i, name in enumerate(CHANNELS) if name != "website"})
    parts["profit"] = parts["gross_margin"] - cost
    parts["expected_profit"] = parts["expected_gross_margin"] - cost
    parts["observed_profit"] = parts["observed_gross_margin"] - cost
    return parts


def episode_kpis(world: "World", tail: "TailValue | None" = None) -> dict[str, float]:
    """The episode's KPIs so far.  ``tail``: the value beyond the horizon, known once the episode has ended (until
    then ``value_at_horizon_usd`` is 0 and the multi-period KPIs equal the year-1 ones)."""
    led = world.ledger
    economics = world.config.economics
    n = world.pop.n_hcps
    variable = float(led.cost_usd.sum())
    cost = variable + led.fixed_cost_usd
    margin = led.revenue_usd * economics.gross_margin
    delivered = float(led.delivered.sum())
    reached = float(world.state.ever_delivered.sum())
    answered = led.suggestions_accepted + led.suggestions_dismissed
    calls = float(led.delivered[0])
    has_field = led.field_capacity_calls > 0
    utilisation = min(1.0, calls / led.field_capacity_calls) if has_field else UNDEFINED
    tail_revenue = tail.revenue_usd if tail is not None else 0.0
    tail_margin = tail.margin_usd if tail is not None else 0.0
    kpis = {
        "prescriptions": float(led.rx),
        "nrx": float(led.nrx),
        "trx": float(led.rx),
        "revenue_usd": float(led.revenue_usd),
        "gross_margin_usd": float(margin),
        "cost_fixed_usd": float(led.fixed_cost_usd),
        "cost_variable_usd": variable,
        "cost_usd": float(cost),
        "profit_usd": float(margin - cost),
        "value_at_horizon_usd": float(tail_margin),
        "revenue_multi_period_usd": float(led.revenue_usd + tail_revenue),
        "profit_multi_period_usd": float(margin - cost + tail_margin),
        "field_utilisation": float(utilisation),
        "idle_field_cost_usd": float(led.fixed_cost_usd * (1.0 - utilisation)) if has_field else 0.0,
        "suggestion_acceptance": float(led.suggestions_accepted / answered) if answered else UNDEFINED,
        "questions_answered": float(led.questions_answered),
        "reach": reached / n,
        "frequency": delivered / reached if reached else 0.0,
        "engagement_rate": float(led.engaged.sum() / delivered) if delivered else 0.0,
        "confusion_events": float(led.confusion_events),
        "out_of_sequence_touches": float(led.out_of_sequence),
        "unsubscribes": float(led.unsubscribes),
        "blocked_touches": float(led.blocked_no_consent + led.blocked_cap),
        "masked_actions": float(led.masked_actions),
        "adopters_end": float(np.sum(world.state.adoption == 3)),
    }
    for i, name in enumerate(CHANNELS):
        kpis[f"touches_{name}"] = float(led.delivered[i])
        kpis[f"cost_{name}_usd"] = float(led.cost_usd[i])
    return {name: kpis[name] for name in KPI_NAMES}
