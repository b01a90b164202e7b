"""Value beyond the horizon: the expected prescriptions the customer state still earns with no further promotion.

A year of promotion leaves goodwill, prescribers and opened formularies behind; a one-year P&L ignores them and
so rewards cutting promotion before the horizon.  This module propagates the model's own dynamics forward from
the true state at the horizon, with no touches but the customers' own website visits, and returns the expected
prescriptions of every tail day.  It is a mean-field propagation, exact in expectation for each HCP's adoption
chain given the (deterministic) goodwill path, with two approximations: the KOL peer term and formulary reviews
use the *expected* adoption of KOLs and accounts (their correlation with the follower is ignored), and the
website's expected goodwill is added before the Hill curve.  ``tests/test_tail.py`` holds it within 2% of
actually continuing the world without promotion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from oce_sim.world.kernels import LIFT_FROM_STATE, hill_power
from oce_sim.world.protocols import SimulatedWorld
from oce_sim.world.response import WEBSITE

DAYS_PER_YEAR = 365.0
PORTAL_UNAWARE_FACTOR = 0.2  # as in World.portal_visits


@dataclass(frozen=True)
class TailValue:
    """Expected prescriptions per tail day and their discounted revenue and margin (USD)."""

    expected_rx_per_day: np.ndarray
    discount_factor: np.ndarray
    revenue_usd: float  # discounted
    margin_usd: float  # discounted: the value left at the horizon
    margin_per_hcp_usd: np.ndarray | None = None  # the same split by HCP (tail_value(..., by_hcp=True))

    @property
    def expected_rx(self) -> float:
        return float(self.expected_rx_per_day.sum())


def discount_factors(n_days: int, rate_per_year: float) -> np.ndarray:
    """Factor of tail day k (0 = the first day after the horizon): cash at the end of day k, (1+r)^-((k+1)/365)."""
    return (1.0 + rate_per_year) ** (-(np.arange(n_days) + 1.0) / DAYS_PER_YEAR)


def expected_tail_rx(world: SimulatedWorld, n_days: int, factor: np.ndarray | None = None,
                     per_hcp: np.ndarray | None = None) -> np.ndarray:
    """Expected prescriptions of each of the ``n_days`` days after ``world.now``, with no further promotion.
    ``per_hcp`` (n_hcps zeros): each HCP's expected prescriptions weighted by ``factor`` of their day are added
    to it."""
    if per_hcp is None:
        factor, per_hcp = np.zeros(0), np.zeros(0)
    pop, state, model = world.pop, world.state, world.response
    cfg = world.config
    r = cfg.response
    top_need = pop.need.argmax(axis=1)
    relevance = pop.need_relevance[np.arange(pop.n_hcps), top_need]
    portal_rate = cfg.channels.website.visits_per_day_digital * pop.channel_fit[:, WEBSITE]
    portal_impact = model.channel_effect[WEBSITE] * pop.channel_fit[:, WEBSITE] * relevance
    sequence = np.array([1.0, r.out_of_sequence_factor, r.repeat_theme_factor])
    access_dist = np.zeros((pop.n_accounts, 3))
    access_dist[np.arange(pop.n_accounts), state.account_access] = 1.0
    days = int(world.now) + np.arange(n_days)
    working = days % 7 < 5
    reviews = _reviews_on_days(days, r.access_review_interval_days)
    return _propagate(
        n_days, working, reviews, state.adoption.astype(np.int64), state.goodwill.copy(), state.confusion.copy(),
        state.contact_load.copy(), state.patients.astype(np.float64).copy(), state.progress.astype(np.int64), top_need.astype(np.int64), access_dist,
        pop.account.astype(np.int64), pop.class_rx_per_day, model.brand_share, model.access_factor,
        pop.kol_edge_kol, pop.kol_edge_follower, model._up_base, model._up_slope, model._up_peer, model._down_base,
        model._down_damp, model._day_params, portal_rate, portal_impact, sequence, model.tolerance,
        model.load_to_monthly, r.access_upgrade_per_adopter_share, factor, per_hcp,
    )  # fmt: skip


def tail_value(world: SimulatedWorld, tail_years: float | None = None, discount_rate: float | None = None,
               by_hcp: bool = False) -> TailValue:
    """The value the world's state leaves at ``world.now`` over the scenario's tail (or the given one); ``by_hcp``:
    also split by HCP (``margin_per_hcp_usd``; its sum equals ``margin_usd`` up to rounding)."""
    economics = world.config.economics
    years = economics.tail_years if tail_years is None else tail_years
    rate = economics.discount_rate_per_year if discount_rate is None else discount_rate
    n_days = int(round(years * DAYS_PER_YEAR))
    factor = discount_factors(n_days, rate)
    per_hcp = np.zeros(world.pop.n_hcps) if by_hcp else None
    rx = expected_tail_rx(world, n_days, factor, per_hcp) if n_days > 0 else np.zeros(0)
    revenue = float((rx * factor).sum() * economics.price_per_rx_usd)
    margin_per_hcp = per_hcp * economics.margin_per_rx_usd if per_hcp is not None else None
    return TailValue(rx, factor, revenue, revenue * economics.gross_margin, margin_per_hcp)


def _review_on_day(day: int, interval: float) -> bool:
    """WorldBatch._access_reviews fires at 00:00 of days interval, 2 x interval, ...: is there one on ``day``?"""
    k = math.ceil(day / interval - 1e-9)
    return k >= 1 and k * interval < day + 1 - 1e-9


def _reviews_on_days(days: np.ndarray, interval: float) -> np.ndarray:
    """``_review_on_day`` for each of ``days`` (the same float operations, elementwise)."""
    k = np.ceil(days / interval - 1e-9)
    return (k >= 1) & (k * interval < days + 1 - 1e-9)


@njit(cache=True)
def _propagate(
    n_days, working, reviews, adoption, goodwill, confusion, contact_load, patients, progress, top_need, access_dist,
    account,
    class_rx_per_day, brand_share, access_factor, kol_edge_kol, kol_edge_follower, up_base, up_slope, up_peer,
    down_base, down_damp, day_params, portal_rate, portal_impact, sequence, tolerance, load_to_monthly,
    upgrade_per_share, factor, per_hcp,
):  # fmt: skip
    """Expected TRx of each tail day; with ``per_hcp`` of size n (else size 0), each HCP's expected TRx weighted by
    ``factor`` of its day is added to it as well."""
    by_hcp = per_hcp.size > 0
    share_lift, hill_shape, hill_k_pow, peer_per_kol = day_params[0], day_params[1], day_params[2], day_params[3]
    goodwill_decay, confusion_decay, load_decay = day_params[4], day_params[5], day_params[6]
    new_share, refill_rate, patient_keep = day_params[7], day_params[8], day_params[9]
    n = goodwill.size
    n_accounts = access_dist.shape[0]
    p = np.zeros((n, 4))
    for i in range(n):
        p[i, adoption[i]] = 1.0
    # Probability that the website visit has moved the HCP past its top-need theme (then it counts as a repeat).
    advanced = np.zeros(n)
    out = np.zeros(n_days)
    peer = np.zeros(n)
    access = np.zeros(n)
    moved = np.zeros(4)  # one HCP's flows between adoption states on a day (reused: no allocation per HCP-day)
    for k in range(n_days):
        if reviews[k] or k == 0:
            if reviews[k]:
                adopters = np.zeros(n_accounts)
                members = np.zeros(n_accounts)
                for i in range(n):
                    adopters[account[i]] += p[i, 2] + p[i, 3]
                    members[account[i]] += 1.0
                for a in range(n_accounts):
                    q = min(1.0, upgrade_per_share * adopters[a] / max(1.0, members[a]))
                    access_dist[a, 0] += q * access_dist[a, 1]
                    access_dist[a, 1] += q * (access_dist[a, 2] - access_dist[a, 1])
                    access_dist[a, 2] -= q * access_dist[a, 2]
            # The expected access factor changes only with the formulary reviews.
            for i in range(n):
                d = access_dist[account[i]]
                access[i] = d[0] * access_factor[0] + d[1] * access_factor[1] + d[2] * access_factor[2]
        if working[k]:
            # The peers' adoption at the start of the day (the website visits below do not move it).
            for i in range(n):
                peer[i] = 0.0
            for e in range(kol_edge_kol.size):
                peer[kol_edge_follower[e]] += p[kol_edge_kol[e], 3]
        total = 0.0
        # One pass per HCP-day, in the order of the day: website visit, prescriptions and transitions, decay.
        for i in range(n):
            if portal_rate[i] > 0.0:
                rate = portal_rate[i] * (1.0 - (1.0 - PORTAL_UNAWARE_FACTOR) * p[i, 0])
                excess = max(0.0, contact_load[i] * load_to_monthly / tolerance[i] - 1.0)
                if top_need[i] == progress[i]:
                    seq = (1.0 - advanced[i]) * sequence[0] + advanced[i] * sequence[2]
                    advanced[i] += (1.0 - advanced[i]) * rate
                elif top_need[i] > progress[i]:
                    seq = sequence[1]
                else:
                    seq = sequence[2]
                gain = rate * portal_impact[i] * seq * (1.0 - confusion[i])
                if excess > 0.0:  # exp(-0) is exactly 1: skip it for the customers not over-contacted
                    gain *= math.exp(-2.0 * excess)
                goodwill[i] += gain
            if working[k]:
                g = hill_power(goodwill[i], hill_shape)
                response = g / (g + hill_k_pow)
                lifted = 0.0  # probability of a state whose share goodwill lifts (as kernels.daily_update)
                for s in range(LIFT_FROM_STATE, 4):
                    lifted += p[i, s]
                share = (p[i, 1] * brand_share[1] + p[i, 2] * brand_share[2] + p[i, 3] * brand_share[3]
                         + p[i, 0] * brand_share[0] + lifted * share_lift * response)
                nrx = class_rx_per_day[i] * share * access[i] * new_share
                total += nrx + refill_rate * patients[i]
                if by_hcp:
                    per_hcp[i] += (nrx + refill_rate * patients[i]) * factor[k]
                patients[i] = patients[i] * patient_keep + nrx
                moved[:] = 0.0
                for s in range(4):
                    if s == 1:
                        gate = access[i]
                    elif s == 2:
                        gate = 1.0 - confusion[i]
                    else:
                        gate = 1.0
                    p_up = (up_base[s] + up_slope[s] * response + up_peer[s] * peer_per_kol * peer[i]) * gate
                    p_up = min(1.0, max(0.0, p_up))
                    p_down = down_base[s] * (1.0 - down_damp[s] * response) * (1.0 + confusion[i])
                    p_down = min(max(0.0, p_down), 1.0 - p_up)
                    if s < 3:
                        moved[s] -= p[i, s] * p_up
                        moved[s + 1] += p[i, s] * p_up
                    if s >= 2:
                        moved[s] -= p[i, s] * p_down
                        moved[1] += p[i, s] * p_down
                for s in range(4):
                    p[i, s] += moved[s]
            goodwill[i] *= goodwill_decay
            confusion[i] *= confusion_decay
            contact_load[i] *= load_decay
        if working[k]:
            out[k] = total
    return out
