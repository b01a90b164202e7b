"""Reward components and episode KPIs, computed from the world's ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from oce_sim.config import CHANNELS

if TYPE_CHECKING:
    from oce_sim.world.simulation import Ledger, World

KPI_NAMES: tuple[str, ...] = (
    "prescriptions",
    "rx_value_usd",
    "cost_usd",
    "profit_usd",
    "roi",
    "reach",
    "frequency",
    "engagement_rate",
    "confusion_events",
    "out_of_sequence_touches",
    "unsubscribes",
    "suggestion_acceptance",
    "questions_answered",
    "blocked_touches",
    "masked_actions",
    "adopters_end",
)


def reward_components(before: "Ledger", after: "Ledger") -> dict[str, float]:
    """Named parts of one step's reward, in USD."""
    cost = after.cost_usd - before.cost_usd
    rx_value = after.rx_value_usd - before.rx_value_usd
    parts = {"rx_value": float(rx_value), "expected_rx_value": float(after.expected_rx_value_usd - before.expected_rx_value_usd)}
    parts.update({f"{name}_cost": float(cost[i]) for i, name in enumerate(CHANNELS) if name != "website"})
    parts["profit"] = float(rx_value - cost.sum())
    parts["expected_profit"] = float(parts["expected_rx_value"] - cost.sum())
    return parts


def episode_kpis(world: "World") -> dict[str, float]:
    led = world.ledger
    n = world.pop.n_hcps
    cost = float(led.cost_usd.sum())
    delivered = float(led.delivered.sum())
    reached = float(world.state.ever_delivered.sum())
    answered = led.suggestions_accepted + led.suggestions_dismissed
    kpis = {
        "prescriptions": float(led.rx),
        "rx_value_usd": float(led.rx_value_usd),
        "cost_usd": cost,
        "profit_usd": float(led.rx_value_usd - cost),
        # ROI of promotion spend: profit per promotional dollar (undefined without spend)
        "roi": float((led.rx_value_usd - cost) / cost) if cost > 0 else float("nan"),
        "reach": reached / n,
        "frequency": delivered / reached if reached else 0.0,
        "engagement_rate": float(led.engaged.sum() / delivered) if delivered else 0.0,
        "confusion_events": float(led.confusion_events),
        "out_of_sequence_touches": float(led.out_of_sequence),
        "unsubscribes": float(led.unsubscribes),
        "suggestion_acceptance": float(led.suggestions_accepted / answered) if answered else float("nan"),
        "questions_answered": float(led.questions_answered),
        "blocked_touches": float(led.blocked_no_consent + led.blocked_cap),
        "masked_actions": float(led.masked_actions),
        "adopters_end": float(np.sum(world.state.adoption == 3)),
    }
    for i, name in enumerate(CHANNELS):
        kpis[f"touches_{name}"] = float(led.delivered[i])
        kpis[f"cost_{name}_usd"] = float(led.cost_usd[i])
    return kpis
