"""Customer response: how touches move goodwill and how goodwill moves prescribing.

All functions act on whole arrays of HCPs or touches (vectorised); equations are in ``docs/MODEL.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from oce_sim.config import CHANNELS, ScenarioConfig
from oce_sim.world.population import ACCESS_LEVELS, Population

REP_VISIT, REMOTE_DETAIL, EMAIL, WEBINAR, WEBSITE = range(len(CHANNELS))
N_CHANNELS = len(CHANNELS)
# Stakeholder that delivers each channel: field (rep), inside sales, marketing, portal (customer-initiated).
SOURCE_OF_CHANNEL = np.array([0, 1, 2, 2, 3], dtype=np.int8)
N_STAKEHOLDERS = 3  # sources that can contradict each other; the portal is pulled, not pushed
# Origin of a touch: who decided it.
ORIGIN_ORCHESTRATOR, ORIGIN_REP_OWN, ORIGIN_CALENDAR, ORIGIN_CUSTOMER = range(4)
# Weight of a delivered touch in the contact load that drives fatigue.
CONTACT_LOAD = np.array([1.0, 1.0, 0.5, 1.0, 0.0])
CAP_RING = 8  # longest 30-day cap supported


@dataclass
class TouchBatch:
    """Touches to apply, one row each.  ``engaged_hint``: 1/0 decided upstream, -1 draw here."""

    hcp: np.ndarray
    channel: np.ndarray
    theme: np.ndarray
    origin: np.ndarray
    question: np.ndarray
    engaged_hint: np.ndarray
    time: np.ndarray

    @classmethod
    def empty(cls) -> "TouchBatch":
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.astype(np.int8), z.astype(np.int8), z.astype(np.int8), z.astype(bool),
                   z.astype(np.int8), z.astype(float))

    @classmethod
    def concat(cls, batches: list["TouchBatch"]) -> "TouchBatch":
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        return cls(*(np.concatenate([getattr(b, f) for b in batches]) for f in cls.__dataclass_fields__))

    def __len__(self) -> int:
        return int(self.hcp.size)


@dataclass
class TouchOutcome:
    """What happened to each delivered touch (rows of the input batch that were not blocked)."""

    hcp: np.ndarray
    channel: np.ndarray
    theme: np.ndarray
    origin: np.ndarray
    question: np.ndarray
    engaged: np.ndarray
    conflict: np.ndarray
    out_of_sequence: np.ndarray
    unsubscribed: np.ndarray
    impact: np.ndarray
    cost_usd: np.ndarray
    blocked_no_consent: int = 0
    blocked_cap: int = 0

    @classmethod
    def empty(cls) -> "TouchOutcome":
        z = np.zeros(0)
        flags = z.astype(bool)
        return cls(z.astype(np.int64), z.astype(np.int8), z.astype(np.int8), z.astype(np.int8), flags, flags.copy(),
                   flags.copy(), flags.copy(), flags.copy(), z, z.copy())


@dataclass
class CustomerState:
    """Dynamic ground truth per HCP (hidden from the orchestrator)."""

    adoption: np.ndarray
    goodwill: np.ndarray
    confusion: np.ndarray
    contact_load: np.ndarray
    progress: np.ndarray  # themes heard in the intended order (0..T)
    email_consent: np.ndarray
    remote_consent: np.ndarray
    last_stakeholder_day: np.ndarray  # [n, 3] day of last engaged touch per stakeholder
    last_stakeholder_theme: np.ndarray  # [n, 3]
    sent_days: np.ndarray  # [n, C, CAP_RING] ring of delivery days per channel
    sent_pointer: np.ndarray  # [n, C]
    account_access: np.ndarray  # per account, index into ACCESS_LEVELS
    ever_delivered: np.ndarray = field(default=None)  # type: ignore[assignment]

    @classmethod
    def initial(cls, pop: Population) -> "CustomerState":
        n = pop.n_hcps
        return cls(
            adoption=pop.initial_state.copy(),
            goodwill=np.zeros(n),
            confusion=np.zeros(n),
            contact_load=np.zeros(n),
            progress=np.zeros(n, dtype=np.int8),
            email_consent=pop.email_consent.copy(),
            remote_consent=pop.remote_consent.copy(),
            last_stakeholder_day=np.full((n, N_STAKEHOLDERS), -1e9),
            last_stakeholder_theme=np.zeros((n, N_STAKEHOLDERS), dtype=np.int8),
            sent_days=np.full((n, N_CHANNELS, CAP_RING), -1e9, dtype=np.float32),
            sent_pointer=np.zeros((n, N_CHANNELS), dtype=np.int8),
            account_access=pop.initial_account_access.copy(),
            ever_delivered=np.zeros(n, dtype=bool),
        )

    def sent_last_30_days(self, hcp: np.ndarray, channel: int | np.ndarray, day: float) -> np.ndarray:
        return (self.sent_days[hcp, channel, :] > day - 30.0).sum(axis=-1)


class ResponseModel:
    """Applies touches and daily dynamics with the scenario's response parameters."""

    def __init__(self, config: ScenarioConfig, pop: Population):
        r = config.response
        ch = config.channels
        self.config = config
        self.pop = pop
        self.channel_effect = np.array([r.channel_effect[c] for c in CHANNELS])
        self.goodwill_decay = r.carryover_per_month ** (1.0 / 30.0)
        self.confusion_decay = 0.5 ** (1.0 / r.confusion_half_life_days)
        self.load_decay = 0.5 ** (1.0 / r.fatigue_half_life_days)
        # contact_load * this = touches per 30 days at a steady rate
        self.load_to_monthly = 30.0 * (1.0 - self.load_decay)
        self.caps = np.array(
            [ch.rep_visit.cap_per_30_days, ch.remote_detail.cap_per_30_days, ch.email.cap_per_30_days, 99, 99]
        )
        self.base_engagement = np.array([1.0, ch.remote_detail.base_engagement, ch.email.base_open, 1.0, 1.0])
        self.access_factor = np.array([r.access_factor[a] for a in ACCESS_LEVELS])
        self.brand_share = np.array(r.brand_share_by_state)
        self.visit_cost = np.where(pop.specialty == 1, ch.rep_visit.cost_specialist_usd,
                                   ch.rep_visit.cost_primary_care_usd)
        self.unit_cost = np.array([0.0, ch.remote_detail.cost_usd, ch.email.cost_usd,
                                   ch.webinar.cost_per_attendee_usd, 0.0])
        self.tolerance = pop.contact_tolerance_per_month
        self._has_kols = pop.kol_edge_kol.size > 0
        # daily transition coefficients by adoption state (unaware, aware, trialing, adopter)
        self._up_base = np.array([r.p_unaware_to_aware[0], 0.0, r.p_trial_to_adopt[0], 0.0])
        self._up_slope = np.array([r.p_unaware_to_aware[1], r.p_aware_to_trial, r.p_trial_to_adopt[1], 0.0])
        self._up_peer = np.array([1.0, 1.0, 0.0, 0.0])
        self._down_base = np.array([0.0, 0.0, r.p_trial_reject, r.p_adopter_lapse])
        self._down_damp = np.array([0.0, 0.0, 1.0, 0.8])

    # ------------------------------------------------------------------------------------------- response
    def hill(self, goodwill: np.ndarray) -> np.ndarray:
        r = self.config.response
        g = np.power(np.maximum(goodwill, 0.0), r.hill_shape)
        return g / (g + r.hill_half_saturation ** r.hill_shape)

    def fatigue_excess(self, state: CustomerState, hcp: np.ndarray) -> np.ndarray:
        monthly = state.contact_load[hcp] * self.load_to_monthly
        return np.maximum(0.0, monthly / self.tolerance[hcp] - 1.0)

    def sequence_factor(self, progress: np.ndarray, theme: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.config.response
        in_order = theme == progress
        ahead = theme > progress
        factor = np.where(in_order, 1.0, np.where(ahead, r.out_of_sequence_factor, r.repeat_theme_factor))
        return factor, ahead

    def expected_rx_per_day(self, state: CustomerState) -> np.ndarray:
        r = self.config.response
        share = self.brand_share[state.adoption] + r.share_lift_from_response * self.hill(state.goodwill) * (
            state.adoption >= 2
        )
        access = self.access_factor[state.account_access[self.pop.account]]
        return self.pop.class_rx_per_day * share * access

    # -------------------------------------------------------------------------------------------- touches
    def apply_touches(
        self, state: CustomerState, batch: TouchBatch, day: float, rng: np.random.Generator
    ) -> TouchOutcome:
        """Deliver a day's touches in time order; an HCP's k-th touch of the day sees its earlier ones."""
        if len(batch) == 0:
            return TouchOutcome.empty()
        order = np.lexsort((batch.time, batch.hcp))
        hcp_sorted = batch.hcp[order]
        start = np.r_[True, hcp_sorted[1:] != hcp_sorted[:-1]]
        group_start = np.maximum.accumulate(np.where(start, np.arange(order.size), 0))
        rank = np.arange(order.size) - group_start
        if rank.max() == 0:
            return self._apply_unique(state, batch, order, day, rng)
        outcomes: list[TouchOutcome] = []
        blocked_consent = blocked_cap = 0
        for k in range(int(rank.max()) + 1):
            idx = order[rank == k]
            out = self._apply_unique(state, batch, idx, day, rng)
            blocked_consent += out.blocked_no_consent
            blocked_cap += out.blocked_cap
            outcomes.append(out)
        merged = TouchOutcome(
            *(np.concatenate([getattr(o, f) for o in outcomes]) for f in list(TouchOutcome.__dataclass_fields__)[:11]),
            blocked_no_consent=blocked_consent,
            blocked_cap=blocked_cap,
        )
        return merged

    def _apply_unique(
        self, state: CustomerState, batch: TouchBatch, idx: np.ndarray, day: float, rng: np.random.Generator
    ) -> TouchOutcome:
        r = self.config.response
        pop = self.pop
        h = batch.hcp[idx]
        c = batch.channel[idx].astype(np.int64)
        t = batch.theme[idx].astype(np.int64)
        # The channel systems block what consent or caps forbid (no touch without consent).
        no_consent = ((c == EMAIL) & ~state.email_consent[h]) | ((c == REMOTE_DETAIL) & ~state.remote_consent[h])
        recent = (state.sent_days[h, c, :] > day - 30.0).sum(axis=1)
        over_cap = (recent >= self.caps[c]) & ~no_consent
        ok = ~(no_consent | over_cap)
        blocked_consent, blocked_cap = int(no_consent.sum()), int(over_cap.sum())
        h, c, t, idx = h[ok], c[ok], t[ok], idx[ok]
        n = h.size
        origin = batch.origin[idx]
        question = batch.question[idx]
        hint = batch.engaged_hint[idx]

        fit = pop.channel_fit[h, c]
        relevance = pop.need_relevance[h, t]
        excess = self.fatigue_excess(state, h)
        fatigue = np.exp(-2.0 * excess)
        p_engage = self.base_engagement[c] * (0.4 + 0.6 * fit) * (0.6 + 0.4 * relevance) * fatigue
        u = rng.random((n, 2))
        engaged = np.where(hint >= 0, hint == 1, u[:, 0] < p_engage)

        seq_factor, ahead = self.sequence_factor(state.progress[h], t)
        source = SOURCE_OF_CHANNEL[c]
        pushed = source < N_STAKEHOLDERS
        last_day = state.last_stakeholder_day[h]
        last_theme = state.last_stakeholder_theme[h]
        other = np.arange(N_STAKEHOLDERS)[None, :] != source[:, None]
        recent_other = other & (day - last_day <= r.confusion_window_days)
        contradicts = np.abs(last_theme.astype(np.int64) - t[:, None]) >= r.confusion_theme_distance
        conflict = engaged & pushed & (recent_other & contradicts).any(axis=1)
        state.confusion[h] = np.where(conflict, np.minimum(1.0, state.confusion[h] + r.confusion_increment),
                                      state.confusion[h])

        impact = np.where(
            engaged,
            self.channel_effect[c] * fit * relevance * seq_factor * (1.0 - state.confusion[h]) * fatigue,
            0.0,
        )
        state.goodwill[h] += impact
        state.progress[h] = np.where(engaged & (t == state.progress[h]), t + 1, state.progress[h])
        eng_pushed = engaged & pushed
        src_e, h_e = source[eng_pushed].astype(np.int64), h[eng_pushed]
        state.last_stakeholder_day[h_e, src_e] = day
        state.last_stakeholder_theme[h_e, src_e] = t[eng_pushed]

        # Unsubscribes: over-contact on opt-in channels loses consent for good.
        opt_in = (c == EMAIL) | (c == REMOTE_DETAIL)
        p_unsub = r.unsubscribe_base + r.unsubscribe_per_excess * excess
        unsub = opt_in & (u[:, 1] < p_unsub)
        state.email_consent[h[unsub & (c == EMAIL)]] = False
        state.remote_consent[h[unsub & (c == REMOTE_DETAIL)]] = False

        state.contact_load[h] += CONTACT_LOAD[c] * np.where(c == REP_VISIT, engaged, 1.0)
        pointer = state.sent_pointer[h, c].astype(np.int64)
        state.sent_days[h, c, pointer] = day
        state.sent_pointer[h, c] = (pointer + 1) % CAP_RING
        state.ever_delivered[h] = True
        cost = np.where(c == REP_VISIT, self.visit_cost[h], self.unit_cost[c])
        return TouchOutcome(h, c.astype(np.int8), t.astype(np.int8), origin, question, engaged, conflict,
                            ahead & eng_pushed, unsub, impact, cost, blocked_consent, blocked_cap)

    # ---------------------------------------------------------------------------------------- daily update
    def end_of_day(self, state: CustomerState, working_day: bool, u_transition: np.ndarray) -> None:
        """Adoption transitions (working days), then carryover, confusion and fatigue decay."""
        r = self.config.response
        pop = self.pop
        if working_day:
            response = self.hill(state.goodwill)
            access = self.access_factor[state.account_access[pop.account]]
            peer = np.zeros(pop.n_hcps)
            if self._has_kols:
                adopting = state.adoption[pop.kol_edge_kol] == 3
                peer = r.peer_effect_per_adopter_kol * np.bincount(
                    pop.kol_edge_follower[adopting], minlength=pop.n_hcps
                )
            s = state.adoption
            confusion = state.confusion
            # Per-state coefficients gathered by index instead of branching (same equations as docs/MODEL.md).
            up_base, up_slope, up_peer = self._up_base[s], self._up_slope[s], self._up_peer[s]
            up_gate = np.where(s == 1, access, np.where(s == 2, 1.0 - confusion, 1.0))
            p_up = (up_base + up_slope * response + up_peer * peer) * up_gate
            p_down = (self._down_base[s] * (1.0 - self._down_damp[s] * response)) * (1.0 + confusion)
            up = u_transition < p_up
            down = ~up & (u_transition > 1.0 - p_down)
            state.adoption = np.where(up, s + 1, np.where(down, 1, s)).astype(np.int8)
        state.goodwill *= self.goodwill_decay
        state.confusion *= self.confusion_decay
        state.contact_load *= self.load_decay

    def review_access(self, state: CustomerState, rng: np.random.Generator) -> int:
        """Quarterly formulary reviews: accounts whose HCPs use the brand tend to open access."""
        pop = self.pop
        adopters = np.bincount(pop.account, weights=(state.adoption >= 2), minlength=pop.n_accounts)
        members = np.maximum(1, np.bincount(pop.account, minlength=pop.n_accounts))
        p_upgrade = self.config.response.access_upgrade_per_adopter_share * adopters / members
        upgrade = (state.account_access > 0) & (rng.random(pop.n_accounts) < p_upgrade)
        state.account_access = np.where(upgrade, state.account_access - 1, state.account_access).astype(np.int8)
        return int(upgrade.sum())
