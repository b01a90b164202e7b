"""Value beyond the horizon: the expected prescriptions the customer state still earns with no further promotion.

A year of promotion leaves goodwill, prescribers and opened formularies behind; a one-year P&L ignores them and
so rewards cutting promotion before the horizon.  This module propagates the model's own dynamics forward from
the true state at the horizon, with no touches but the customers' own website visits, and returns the expected
prescriptions of every tail day.  It is a mean-field propagation of each HCP's adoption distribution, with these
approximations: the KOL peer term and formulary reviews (which open and tighten accounts, as the world's do) use
the *expected* adoption of KOLs and accounts (their correlation with the follower is ignored), and the website's
expected goodwill is added before the Hill curve.  It steps a block of up to four weeks at a time, cut at every
formulary review (``method="blocks"``, the default): each HCP's response, transition probabilities, peers, website
gain and access are set once per block (the block's mean goodwill over its working days) and its adoption
distribution moves in closed form over the block's working days, its patient stock day by day.
``method="daily"`` is the exact day-by-day propagation it replaced (the reference).  ``tests/test_economics.py``
holds the block tail within 2% of actually continuing the world without promotion and within 0.1% of the daily
one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from oce_sim.world.kernels import LIFT_FROM_STATE, PORTAL_UNAWARE_FACTOR, hill_power
from oce_sim.world.protocols import SimulatedWorld
from oce_sim.world.response import WEBSITE

DAYS_PER_YEAR = 365.0


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


TAIL_METHODS = ("blocks", "daily")
BLOCK_DAYS = 28  # a block ends earlier at a review: 4 weeks is 4.9x cheaper than daily, within 0.05%


def expected_tail_rx(world: SimulatedWorld, n_days: int, factor: np.ndarray | None = None,
                     per_hcp: np.ndarray | None = None, method: str = "blocks") -> np.ndarray:
    """Expected prescriptions of each of the ``n_days`` days after ``world.now``, with no further promotion.
    ``per_hcp`` (n_hcps zeros): each HCP's expected prescriptions weighted by ``factor`` of their day are added
    to it.  ``method``: "blocks" (coefficients per block of ``BLOCK_DAYS``, cut at reviews) or "daily" (the exact
    reference)."""
    if method not in TAIL_METHODS:
        raise ValueError(f"method must be one of {TAIL_METHODS}, got {method!r}")
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
    propagate = _propagate_blocks if method == "blocks" else _propagate
    return propagate(
        n_days, working, reviews, state.adoption.astype(np.int64), state.goodwill.copy(), state.confusion.copy(),
        state.contact_load.copy(), state.patients.astype(np.float64).copy(), state.progress.astype(np.int64), top_need.astype(np.int64), access_dist,
        pop.account.astype(np.int64), pop.class_rx_per_day, model.brand_share, model.access_factor,
        pop.kol_edge_kol, pop.kol_edge_follower, model._up_base, model._up_slope, model._up_peer, model._down_base,
        model._down_damp, model._day_params, portal_rate, portal_impact, sequence, model.tolerance,
        model.load_to_monthly, r.access_upgrade_per_adopter_share, model.access_downgrade.astype(np.float64), factor,
        per_hcp,
    )  # fmt: skip


def tail_value(world: SimulatedWorld, tail_years: float | None = None, discount_rate: float | None = None,
               by_hcp: bool = False, method: str = "blocks") -> TailValue:
    """The value the world's state leaves at ``world.now`` over the scenario's tail (or the given one); ``by_hcp``:
    also split by HCP (``margin_per_hcp_usd``; its sum equals ``margin_usd`` up to rounding); ``method``: see
    :func:`expected_tail_rx`."""
    economics = world.config.economics
    years = economics.tail_years if tail_years is None else tail_years
    rate = economics.discount_rate_per_year if discount_rate is None else discount_rate
    n_days = int(round(years * DAYS_PER_YEAR))
    factor = discount_factors(n_days, rate)
    per_hcp = np.zeros(world.pop.n_hcps) if by_hcp else None
    rx = expected_tail_rx(world, n_days, factor, per_hcp, method) if n_days > 0 else np.zeros(0)
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
    upgrade_per_share, downgrade, factor, per_hcp,
):  # fmt: skip
    """Expected TRx of each tail day, day by day (the reference); with ``per_hcp`` of size n (else size 0), each
    HCP's expected TRx weighted by ``factor`` of its day is added to it as well."""
    by_hcp = per_hcp.size > 0
    share_lift, hill_shape, hill_k_pow, peer_per_kol = day_params[0], day_params[1], day_params[2], day_params[3]
    goodwill_decay, confusion_decay, load_decay = day_params[4], day_params[5], day_params[6]
    new_share, refill_rate, patient_keep = day_params[7], day_params[8], day_params[9]
    n = goodwill.size
    p, advanced, out, peer, access = _buffers(adoption, n_days)
    moved = np.zeros(4)  # one HCP's flows between adoption states on a day (reused: no allocation per HCP-day)
    for k in range(n_days):
        if reviews[k] or k == 0:
            if reviews[k]:
                _review_accounts(access_dist, p, account, upgrade_per_share, downgrade)
            # The expected access factor changes only with the formulary reviews.
            _access_of_hcps(access, access_dist, account, access_factor)
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


@njit(cache=True)
def _buffers(adoption, n_days):
    """Each HCP's adoption distribution (its state for sure), and zeroed buffers: the probability that the website
    visit has moved the HCP past its top-need theme (then it counts as a repeat), the TRx of each tail day, the peer
    term and the expected access factor of each HCP."""
    n = adoption.size
    p = np.zeros((n, 4))
    for i in range(n):
        p[i, adoption[i]] = 1.0
    return p, np.zeros(n), np.zeros(n_days), np.zeros(n), np.zeros(n)


@njit(cache=True)
def _review_accounts(access_dist, p, account, upgrade_per_share, downgrade):
    """A formulary review of every account's access distribution, in expectation: ``ResponseModel.review_access``
    with the expected share of members at S >= 2 (up below p_up, down in the next min(p_down, 1 - p_up))."""
    n_accounts = access_dist.shape[0]
    adopters = np.zeros(n_accounts)
    members = np.zeros(n_accounts)
    for i in range(account.size):
        adopters[account[i]] += p[i, 2] + p[i, 3]
        members[account[i]] += 1.0
    for a in range(n_accounts):
        q = min(1.0, upgrade_per_share * adopters[a] / max(1.0, members[a]))
        down_restricted = min(downgrade[1], 1.0 - q)
        d_open, d_restricted, d_blocked = access_dist[a, 0], access_dist[a, 1], access_dist[a, 2]
        access_dist[a, 0] = d_open * (1.0 - downgrade[0]) + q * d_restricted
        access_dist[a, 1] = d_restricted * (1.0 - q - down_restricted) + downgrade[0] * d_open + q * d_blocked
        access_dist[a, 2] = d_blocked * (1.0 - q) + down_restricted * d_restricted


@njit(cache=True)
def _access_of_hcps(access, access_dist, account, access_factor):
    """Each HCP's expected access factor from its account's access distribution."""
    for i in range(account.size):
        d = access_dist[account[i]]
        access[i] = d[0] * access_factor[0] + d[1] * access_factor[1] + d[2] * access_factor[2]


@njit(cache=True)
def _times_generator(x, p_up, p_down, out):
    """``out = x A`` for the generator A = M - I of one working day's adoption transitions (up one state, or down to
    aware from trialing and adopter)."""
    for s in range(4):
        out[s] = -x[s] * (p_up[s] + p_down[s])
    for s in range(3):
        out[s + 1] += x[s] * p_up[s]
    out[1] += x[2] * p_down[2] + x[3] * p_down[3]


@njit(cache=True)
def _propagate_blocks(
    n_days, working, reviews, adoption, goodwill, confusion, contact_load, patients, progress, top_need, access_dist,
    account,
    class_rx_per_day, brand_share, access_factor, kol_edge_kol, kol_edge_follower, up_base, up_slope, up_peer,
    down_base, down_damp, day_params, portal_rate, portal_impact, sequence, tolerance, load_to_monthly,
    upgrade_per_share, downgrade, factor, per_hcp,
):  # fmt: skip
    """``_propagate`` a block of up to ``BLOCK_DAYS`` days at a time (a block ends before each review, which acts on
    its own day), in closed form within the block: per HCP one response (the Hill curve of the block's mean goodwill
    over its working days), one transition matrix M for its n <= 20 working days (p M^d expanded to third order in
    M - I: a day moves under 2% of the mass, so the terms left out are under C(20, 4) 0.02^4 < 1e-3, and about 1e-6
    at the usual 0.5%), one website gain per day (the sequence factor of the block's start, its mean confusion and
    contact load), and the peer term of its KOLs' mean adoption over the block (KOLs go first).  The patient stock
    moves day by day (scalars).  Same arguments and output."""
    by_hcp = per_hcp.size > 0
    share_lift, hill_shape, hill_k_pow, peer_per_kol = day_params[0], day_params[1], day_params[2], day_params[3]
    goodwill_decay, confusion_decay, load_decay = day_params[4], day_params[5], day_params[6]
    new_share, refill_rate, patient_keep = day_params[7], day_params[8], day_params[9]
    n = goodwill.size
    p, advanced, out, peer, access = _buffers(adoption, n_days)
    p_up = np.zeros(4)
    p_down = np.zeros(4)
    a1 = np.zeros(4)
    a2 = np.zeros(4)
    a3 = np.zeros(4)
    x = np.zeros(4)
    work_days = np.zeros(BLOCK_DAYS, dtype=np.int64)
    day_rx = np.zeros(BLOCK_DAYS)  # the block's expected TRx per working day, summed over HCPs
    binomial2 = np.array([d * (d - 1) / 2.0 for d in range(BLOCK_DAYS)])
    binomial3 = np.array([d * (d - 1) * (d - 2) / 6.0 for d in range(BLOCK_DAYS)])
    _access_of_hcps(access, access_dist, account, access_factor)
    # KOLs first (no KOL follows another): their mean adopter probability over a block's working days sets the
    # peer term of their followers in the same block.
    is_kol = np.zeros(n, dtype=np.bool_)
    for e in range(kol_edge_kol.size):
        is_kol[kol_edge_kol[e]] = True
    n_kols = 0
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        if is_kol[i]:
            order[n_kols] = i
            n_kols += 1
    rest = n_kols
    for i in range(n):
        if not is_kol[i]:
            order[rest] = i
            rest += 1
    kol_adopter = np.zeros(n)  # a KOL's mean adopter probability over the block's working days
    end = 0
    while end < n_days:
        # A block ends after BLOCK_DAYS days or before the next review, so that every review acts on its own day.
        start = end
        end = min(n_days, start + BLOCK_DAYS)
        for k in range(start + 1, end):
            if reviews[k]:
                end = k
                break
        length = end - start
        n_work = 0
        # Goodwill on working day j of the block: decay^j g + gain (1 - decay^(j+1)) / (1 - decay); its mean over the
        # working days is hold * g + build * gain, and the block leaves decay^L g + carry * gain.
        hold = 0.0
        build = 0.0
        power = 1.0
        # Confusion and contact load decay within the block too: their mean factor over its days (the website's
        # gain, every day) and over its working days (the transitions).
        confusion_power = 1.0
        confusion_all = 0.0
        confusion_work = 0.0
        load_power = 1.0
        load_all = 0.0
        for k in range(start, end):
            confusion_all += confusion_power
            load_all += load_power
            if working[k]:
                work_days[n_work] = k
                n_work += 1
                hold += power
                build += (1.0 - power * goodwill_decay) / (1.0 - goodwill_decay)
                confusion_work += confusion_power
            power *= goodwill_decay
            confusion_power *= confusion_decay
            load_power *= load_decay
        decay_block = power
        carry = goodwill_decay * (1.0 - power) / (1.0 - goodwill_decay)
        confusion_all /= end - start
        load_all /= end - start
        if n_work > 0:
            hold /= n_work
            build /= n_work
            confusion_work /= n_work
        if reviews[start]:
            _review_accounts(access_dist, p, account, upgrade_per_share, downgrade)
            _access_of_hcps(access, access_dist, account, access_factor)
        confusion_block = confusion_power
        load_block = load_power
        c2 = n_work * (n_work - 1) / 2.0
        c3 = c2 * (n_work - 2) / 3.0
        c4 = c3 * (n_work - 3) / 4.0
        day_rx[:] = 0.0
        for j in range(n):
            if j == n_kols and n_work > 0:
                for i in range(n):
                    peer[i] = 0.0
                for e in range(kol_edge_kol.size):
                    peer[kol_edge_follower[e]] += kol_adopter[kol_edge_kol[e]]
            i = order[j]
            gain = 0.0
            if portal_rate[i] > 0.0:
                rate = portal_rate[i] * (1.0 - (1.0 - PORTAL_UNAWARE_FACTOR) * p[i, 0])
                excess = max(0.0, contact_load[i] * load_all * load_to_monthly / tolerance[i] - 1.0)
                if top_need[i] == progress[i]:
                    seq = (1.0 - advanced[i]) * sequence[0] + advanced[i] * sequence[2]
                    miss = 1.0
                    for _ in range(length):
                        miss *= 1.0 - rate
                    advanced[i] = 1.0 - (1.0 - advanced[i]) * miss
                elif top_need[i] > progress[i]:
                    seq = sequence[1]
                else:
                    seq = sequence[2]
                gain = rate * portal_impact[i] * seq * (1.0 - confusion[i] * confusion_all)
                if excess > 0.0:
                    gain *= math.exp(-2.0 * excess)
            used = hold * goodwill[i] + build * gain
            goodwill[i] = decay_block * goodwill[i] + carry * gain
            confusion_start = confusion[i] * confusion_work  # the block's mean over its working days
            confusion[i] *= confusion_block
            contact_load[i] *= load_block
            if n_work == 0:
                continue
            h = hill_power(used, hill_shape)
            response = h / (h + hill_k_pow)
            for s in range(4):
                if s == 1:
                    gate = access[i]
                elif s == 2:
                    gate = 1.0 - confusion_start
                else:
                    gate = 1.0
                up = (up_base[s] + up_slope[s] * response + up_peer[s] * peer_per_kol * peer[i]) * gate
                p_up[s] = min(1.0, max(0.0, up)) if s < 3 else 0.0
                down = down_base[s] * (1.0 - down_damp[s] * response) * (1.0 + confusion_start)
                p_down[s] = min(max(0.0, down), 1.0 - p_up[s]) if s >= 2 else 0.0
            for s in range(4):
                x[s] = p[i, s]
            _times_generator(x, p_up, p_down, a1)
            _times_generator(a1, p_up, p_down, a2)
            _times_generator(a2, p_up, p_down, a3)
            # The share of each state (goodwill lifts it from LIFT_FROM_STATE on), then the share on working day d
            # is share(p M^d) = s0 + d s1 + C(d, 2) s2 + C(d, 3) s3.
            lift = share_lift * response
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for s in range(4):
                weight = brand_share[s] + (lift if s >= LIFT_FROM_STATE else 0.0)
                s0 += weight * x[s]
                s1 += weight * a1[s]
                s2 += weight * a2[s]
                s3 += weight * a3[s]
            rx_scale = class_rx_per_day[i] * access[i] * new_share
            stock = patients[i]
            for d in range(n_work):
                nrx = rx_scale * (s0 + d * s1 + binomial2[d] * s2 + binomial3[d] * s3)
                trx = nrx + refill_rate * stock
                day_rx[d] += trx
                if by_hcp:
                    per_hcp[i] += trx * factor[work_days[d]]
                stock = stock * patient_keep + nrx
            patients[i] = stock
            if is_kol[i]:  # sum over working days d of C(d, m) is C(n, m + 1)
                kol_adopter[i] = x[3] + (c2 * a1[3] + c3 * a2[3] + c4 * a3[3]) / n_work
            for s in range(4):
                p[i, s] = x[s] + n_work * a1[s] + c2 * a2[s] + c3 * a3[s]
        for d in range(n_work):
            out[work_days[d]] = day_rx[d]
    return out
