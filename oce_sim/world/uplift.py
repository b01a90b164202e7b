"""Expected profit of one touch per customer, computed on the ground truth (the oracles only).

An approximate estimate over the multi-period horizon (:func:`value_horizon_days`): probability of engagement x impact on goodwill x marginal response (Hill slope) x the
value of one unit of response over the goodwill's remaining carryover, by adoption state.
"""

from __future__ import annotations

import numpy as np

from oce_sim.world import kernels
from oce_sim.world.protocols import SimulatedWorld
from oce_sim.world.response import REP_VISIT, WEBINAR
from oce_sim.world.tail import DAYS_PER_YEAR, discount_factors


def value_horizon_days(world: SimulatedWorld) -> float:
    """Days over which a touch's effect is valued: the rest of the episode plus the discounted tail (the
    multi-period objective of ``profit_multi_period_usd``)."""
    economics = world.config.economics
    tail_days = int(round(economics.tail_years * DAYS_PER_YEAR))
    discounted_tail = float(discount_factors(tail_days, economics.discount_rate_per_year).sum())
    return max(0.0, world.config.env.horizon_days - world.now) + discounted_tail


def expected_touch_value_usd(world: SimulatedWorld, channel: int, days_left: float) -> np.ndarray:
    """Expected incremental brand value (USD, before cost) of one touch on ``channel`` for every HCP."""
    cfg = world.config
    r = cfg.response
    pop, state, model = world.pop, world.state, world.response
    # (selections and indexing below are the NumPy reference's, done without broadcasting: the same numbers)
    theme = kernels.choose_themes(state.progress, pop.need_relevance)  # field.choose_theme, compiled
    fit = pop.channel_fit[:, channel]
    relevance = np.take_along_axis(pop.need_relevance, theme[:, None], axis=1)[:, 0]
    fatigue = np.exp(-2.0 * np.maximum(0.0, state.contact_load * model.load_to_monthly / model.tolerance - 1.0))
    seq, _ = model.sequence_factor(state.progress, theme)
    if channel == REP_VISIT:
        p_engage = world.field.availability[pop.archetype]
    elif channel == WEBINAR:
        web = cfg.channels.webinar
        p_engage = web.base_registration * (0.4 + 0.6 * fit) * (0.5 + 0.5 * relevance) * web.show_rate
    else:
        p_engage = model.base_engagement[channel] * (0.4 + 0.6 * fit) * (0.6 + 0.4 * relevance) * fatigue
    impact = model.channel_effect[channel] * fit * relevance * seq * (1.0 - state.confusion) * fatigue
    g = np.maximum(state.goodwill, 1e-6)
    k, a = r.hill_half_saturation, r.hill_shape
    slope = a * g ** (a - 1) * k**a / (g**a + k**a) ** 2
    slope = np.where(state.goodwill <= 1e-6, model.hill(impact) / np.maximum(impact, 1e-9), slope)
    working_left = max(0.0, days_left * 5.0 / 7.0)
    carry = (1.0 - model.goodwill_decay ** working_left) / (1.0 - model.goodwill_decay)
    access = model.access_factor[state.account_access[pop.account]]
    rx_day_value = pop.class_rx_per_day * access * cfg.economics.margin_per_rx_usd
    share = model.brand_share
    # value of being one state higher for the rest of the horizon, roughly half of it on average
    half = 0.5 * working_left
    by_state = np.array([r.p_unaware_to_aware[1] * r.p_aware_to_trial * 0.5 * (share[2] - share[1]), 0.0,
                         r.p_trial_to_adopt[1] * (share[3] - share[2]),
                         r.p_adopter_lapse * 0.8 * (share[3] - share[1])])
    aware = state.adoption == 1
    gain_next = by_state[np.minimum(state.adoption, 3)]
    gain_next[aware] = r.p_aware_to_trial * access[aware] * (share[2] - share[1])
    gain_next = gain_next * half
    lift_now = np.where(state.adoption >= kernels.LIFT_FROM_STATE, r.share_lift_from_response, 0.0)
    value_per_response_day = rx_day_value * (gain_next + lift_now)
    return p_engage * impact * slope * carry * value_per_response_day
