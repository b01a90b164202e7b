"""Customer response: how touches move goodwill and how goodwill moves prescribing.

All functions act on whole arrays of HCPs or touches (vectorised); equations are in ``docs/MODEL.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oce_sim.config import CHANNELS, ScenarioConfig
from oce_sim.world import kernels
from oce_sim.world.population import ACCESS_LEVELS, Population
from oce_sim.world.rows import RowBound

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
WORKING_DAYS_PER_MONTH = 30.0 * 5.0 / 7.0
assert (REP_VISIT, REMOTE_DETAIL, EMAIL) == (kernels._REP_VISIT, kernels._REMOTE_DETAIL, kernels._EMAIL)
assert ORIGIN_ORCHESTRATOR == 0  # deliver_touches' email follow-up rule
_NO_VALUES = np.empty(0)  # daily_update: no per-HCP expected TRx wanted


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
    def empty(cls) -> TouchBatch:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.astype(np.int8), z.astype(np.int8), z.astype(np.int8), z.astype(bool),
                   z.astype(np.int8), z.astype(float))

    def __len__(self) -> int:
        return int(self.hcp.size)


class TouchQueues:
    """The touch queues of a batch's territories: one row of preallocated columns per territory (no object per
    batch of touches), ``size[t]`` rows in use in row ``t``.  A batch's compiled end of day takes every territory's
    touches of the day in one call (``kernels.take_day_rows``); each territory pushes through its
    :class:`TouchQueue` handle."""

    COLUMNS: tuple[tuple[str, Any], ...] = (
        ("day", np.int64), ("hcp", np.int64), ("channel", np.int8), ("theme", np.int8), ("origin", np.int8),
        ("question", np.bool_), ("engaged_hint", np.int8), ("time", np.float64),
    )

    def __init__(self, n_rows: int = 1, capacity: int = 1024):
        self.size = np.zeros(n_rows, dtype=np.int64)
        for name, dtype in self.COLUMNS:
            setattr(self, name, np.empty((n_rows, capacity), dtype=dtype))

    @property
    def capacity(self) -> int:
        return int(self.day.shape[1])

    def reserve(self, rows_needed: int) -> None:
        """Room for ``rows_needed`` rows in every territory's queue (capacity at least doubles: amortised O(1))."""
        if rows_needed <= self.capacity:
            return
        capacity = max(rows_needed, 2 * self.capacity)
        used = int(self.size.max())
        for name, dtype in self.COLUMNS:
            old = getattr(self, name)
            grown = np.empty((old.shape[0], capacity), dtype=dtype)
            grown[:, :used] = old[:, :used]
            setattr(self, name, grown)

    @classmethod
    def gather(cls, queues: Sequence[TouchQueue]) -> TouchQueues:
        """One batch's queues from the territories' own (each handle then points at its row of the new one)."""
        if len(queues) == 1 and queues[0].queues.size.size == 1:  # a territory's own queues: already a batch of one
            return queues[0].queues
        sizes = [q.size for q in queues]
        joined = cls(len(queues), max(1024, *sizes))
        for t, queue in enumerate(queues):
            n = sizes[t]
            for name, _ in cls.COLUMNS:
                getattr(joined, name)[t, :n] = getattr(queue, name)[:n]
            joined.size[t] = n
            queue.queues, queue.row = joined, t
        return joined


class TouchQueue:
    """One territory's touch queue: its row of the batch's :class:`TouchQueues` (standalone: a batch of one).

    Rows keep the order they were queued in; the batch's end of day (``kernels.take_day_rows``) hands out one day's
    rows in that order, which is the order in which a day's touches of equal HCP and time are delivered.
    """

    _COLUMNS = tuple(name for name, _ in TouchQueues.COLUMNS)

    def __init__(self, capacity: int = 1024):
        self.queues = TouchQueues(1, capacity)
        self.row = 0

    # the columns of this territory's row (views)
    day = property(lambda self: self.queues.day[self.row])
    hcp = property(lambda self: self.queues.hcp[self.row])
    channel = property(lambda self: self.queues.channel[self.row])
    theme = property(lambda self: self.queues.theme[self.row])
    origin = property(lambda self: self.queues.origin[self.row])
    question = property(lambda self: self.queues.question[self.row])
    engaged_hint = property(lambda self: self.queues.engaged_hint[self.row])
    time = property(lambda self: self.queues.time[self.row])

    @property
    def size(self) -> int:
        return int(self.queues.size[self.row])

    @size.setter
    def size(self, value: int) -> None:
        self.queues.size[self.row] = value

    def __len__(self) -> int:
        return self.size

    def push(self, hcp: np.ndarray, channel: int | np.ndarray, theme: int | np.ndarray, origin: int | np.ndarray,
             time: float | np.ndarray, engaged_hint: int | np.ndarray = -1, question: bool | np.ndarray = False,
             day: int | None = None) -> None:
        """Queue one touch per entry of ``hcp``; the other fields are scalars or arrays of the same length.
        ``day`` (when the caller knows all touches fall on one day) saves computing it from ``time``."""
        n = int(hcp.size)
        if n == 0:
            return
        start = self.size
        end = start + n
        self.queues.reserve(end)
        q, r = self.queues, self.row
        q.hcp[r, start:end] = hcp
        q.channel[r, start:end] = channel
        q.theme[r, start:end] = theme
        q.origin[r, start:end] = origin
        q.question[r, start:end] = question
        q.engaged_hint[r, start:end] = engaged_hint
        q.time[r, start:end] = time
        q.day[r, start:end] = np.floor(q.time[r, start:end]) if day is None else day
        q.size[r] = end

    def pending(self, customers: np.ndarray, channel: int, first_day: int, last_day: int) -> np.ndarray:
        """Rows of ``channel`` touches to ``customers`` (a boolean mask over HCPs) due on first..last day."""
        n = self.size
        return np.flatnonzero((self.channel[:n] == channel) & (self.day[:n] >= first_day)
                              & (self.day[:n] <= last_day) & customers[self.hcp[:n]])

    def retheme(self, rows: np.ndarray, theme: np.ndarray) -> None:
        self.theme[rows] = theme

    def cancel(self, rows: np.ndarray) -> None:
        """Drop ``rows``; the others keep their order."""
        if rows.size == 0:
            return
        keep = np.ones(self.size, dtype=bool)
        keep[rows] = False
        n = int(keep.sum())
        for name in self._COLUMNS:
            column = getattr(self, name)
            column[:n] = column[: self.size][keep]
        self.size = n

    def intervene(self, customers: np.ndarray, follow_up: np.ndarray, first_day: int, last_day: int,
                  retheme_channel: int, stop_channel: int) -> tuple[int, int]:
        """Re-theme the ``retheme_channel`` touches due to ``customers`` (a mask over HCPs) on first..last day to
        ``follow_up[hcp]`` and drop the ``stop_channel`` ones (the others keep their order); returns both counts."""
        if self.size == 0:
            return 0, 0
        rethemed, stopped, self.size = kernels.intervene_on_queue(
            self.size, self.day, self.hcp, self.channel, self.theme, self.origin, self.question, self.engaged_hint,
            self.time, customers, follow_up, first_day, last_day, retheme_channel, stop_channel)
        return int(rethemed), int(stopped)

    def clear(self) -> None:
        self.size = 0

    def __getstate__(self) -> dict[str, Any]:
        """A copy holds this territory's rows only (a batch of one), not the whole batch's queues."""
        n = self.size
        return {"capacity": self.queues.capacity, "rows": {name: getattr(self, name)[:n].copy()
                                                            for name in self._COLUMNS}, "size": n}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.queues, self.row = TouchQueues(1, state["capacity"]), 0
        n = state["size"]
        for name in self._COLUMNS:
            getattr(self, name)[:n] = state["rows"][name]
        self.size = n


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
    def empty(cls) -> TouchOutcome:
        z = np.zeros(0)
        flags = z.astype(bool)
        return cls(z.astype(np.int64), z.astype(np.int8), z.astype(np.int8), z.astype(np.int8), flags, flags.copy(),
                   flags.copy(), flags.copy(), flags.copy(), z, z.copy())


@dataclass
class CustomerState(RowBound):
    """Dynamic ground truth per HCP (hidden from the orchestrator).  In a batch, each field is a row of the batch's
    array (``oce_sim.world.rows``)."""

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
    patients: np.ndarray = field(default=None)  # type: ignore[assignment]  # expected patients on the brand
    nrx: np.ndarray = field(default=None)  # type: ignore[assignment]  # the last working day's new Rx

    @classmethod
    def initial(cls, pop: Population) -> CustomerState:
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
            patients=np.zeros(n),
            nrx=np.zeros(n, dtype=np.int32),
        )

    def sent_last_30_days(self, hcp: np.ndarray, channel: int | np.ndarray, day: float) -> np.ndarray:
        return (self.sent_days[hcp, channel, :] > day - 30.0).sum(axis=-1)


class ResponseModel:
    """Applies touches and daily dynamics with the scenario's response parameters."""

    def __init__(self, config: ScenarioConfig, pop: Population, access_downgrade: np.ndarray | None = None):
        """``access_downgrade``: per formulary review, the probability that an open account becomes restricted and a
        restricted one blocked (a steady start's, from the market's history); None: the rates that balance the
        configured day-0 use (:func:`configured_access_downgrade`)."""
        r = config.response
        ch = config.channels
        self.config = config
        self.pop = pop
        self.access_shares = configured_access_shares(config)
        self.access_downgrade = (configured_access_downgrade(config) if access_downgrade is None
                                 else _checked_downgrade(access_downgrade))
        # The market's history: each review sets the downgrades that balance its upgrades at the configured shares,
        # and logs the upgrade pressure by level (sum of p_up and accounts, restricted then blocked) it balanced.
        self.balance_access = False
        self.access_balance_log: list[tuple[float, float, float, float, float]] = []  # + open accounts
        self._balanced_upgrade = np.full(2, configured_access_upgrade(config))  # restricted, blocked: the last seen
        self.channel_effect = np.array([r.channel_effect[c] for c in CHANNELS])
        self.goodwill_decay = r.carryover_per_month ** (1.0 / 30.0)
        self.confusion_decay = 0.5 ** (1.0 / r.confusion_half_life_days)
        self.load_decay = 0.5 ** (1.0 / r.fatigue_half_life_days)
        # contact_load * this = touches per 30 days at a steady rate
        self.load_to_monthly = 30.0 * (1.0 - self.load_decay)
        self.caps = np.array(
            [ch.rep_visit.cap_per_30_days, ch.remote_detail.cap_per_30_days, ch.email.cap_per_30_days, 99, 99],
            dtype=np.int64,
        )
        self.base_engagement = np.array([1.0, ch.remote_detail.base_engagement, ch.email.base_open, 1.0, 1.0])
        self.access_factor = np.array([r.access_factor[a] for a in ACCESS_LEVELS])
        self.brand_share = np.array(r.brand_share_by_state)
        # The variable cost of a call (the rep's salary is fixed, booked per day by the world), for this brand's share.
        self.visit_cost = config.economics.call_cost_share * np.where(
            pop.specialty == 1, ch.rep_visit.variable_cost_specialist_usd, ch.rep_visit.variable_cost_primary_care_usd)
        self.unit_cost = np.array([0.0, ch.remote_detail.cost_usd, ch.email.cost_usd,
                                   ch.webinar.cost_per_attendee_usd, 0.0])
        self.tolerance = pop.contact_tolerance_per_month
        self._has_kols = pop.kol_edge_kol.size > 0
        # New and repeat prescriptions: a stock of patients on the brand per HCP, rates per working day.
        self.patient_keep = r.patient_persistence_per_month ** (1.0 / WORKING_DAYS_PER_MONTH)
        self.refill_rate = r.refills_per_patient_per_month / WORKING_DAYS_PER_MONTH
        # refills a new patient brings over his time on the brand; the share formula gives TRx at steady state
        self.refills_per_new_patient = self.refill_rate / (1.0 - self.patient_keep)
        self.new_patient_share = 1.0 / (1.0 + self.refills_per_new_patient)
        # daily transition coefficients by adoption state (unaware, aware, trialing, adopter)
        self._up_base = np.array([r.p_unaware_to_aware[0], r.p_aware_to_trial_base, r.p_trial_to_adopt[0], 0.0])
        self._up_slope = np.array([r.p_unaware_to_aware[1], r.p_aware_to_trial, r.p_trial_to_adopt[1], 0.0])
        self._up_peer = np.array([1.0, 1.0, 0.0, 0.0])
        self._down_base = np.array([0.0, 0.0, r.p_trial_reject, r.p_adopter_lapse])
        self._down_damp = np.array([0.0, 0.0, 1.0, 0.8])
        touch_values = {
            "load_to_monthly": self.load_to_monthly,
            "confusion_window_days": r.confusion_window_days,
            "confusion_theme_distance": r.confusion_theme_distance,
            "confusion_increment": r.confusion_increment,
            "out_of_sequence_factor": r.out_of_sequence_factor,
            "repeat_theme_factor": r.repeat_theme_factor,
            "unsubscribe_base": r.unsubscribe_base,
            "unsubscribe_per_excess": r.unsubscribe_per_excess,
            "reinforcement": r.cross_channel_reinforcement,
            "email_follow_up_open": ch.email.follow_up_open,
        }
        self._touch_params = np.array([touch_values[name] for name in kernels.TOUCH_PARAMS], dtype=float)
        day_values = {
            "share_lift_from_response": r.share_lift_from_response,
            "hill_shape": r.hill_shape,
            "hill_half_saturation_pow": r.hill_half_saturation ** r.hill_shape,
            "peer_effect_per_adopter_kol": r.peer_effect_per_adopter_kol if self._has_kols else 0.0,
            "goodwill_decay": self.goodwill_decay,
            "confusion_decay": self.confusion_decay,
            "load_decay": self.load_decay,
            "new_patient_share": self.new_patient_share,
            "refill_rate": self.refill_rate,
            "patient_keep": self.patient_keep,
        }
        self._day_params = np.array([day_values[name] for name in kernels.DAY_PARAMS], dtype=float)

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
        """Expected total prescriptions (TRx: new ones plus refills of the patient stock) per working day."""
        return self.expected_nrx_per_day(state) + self.refill_rate * state.patients

    def expected_nrx_per_day(self, state: CustomerState) -> np.ndarray:
        """Expected new prescriptions (new patients started on the brand) per working day."""
        r = self.config.response
        share = self.brand_share[state.adoption] + r.share_lift_from_response * self.hill(state.goodwill) * (
            state.adoption >= kernels.LIFT_FROM_STATE
        )
        access = self.access_factor[state.account_access[self.pop.account]]
        return self.pop.class_rx_per_day * share * access * self.new_patient_share

    def settle_patients(self, state: CustomerState) -> None:
        """Start every HCP's patient stock where today's new prescriptions would hold it (a market in steady state:
        expected TRx = the share formula of §2.9)."""
        state.patients = self.expected_nrx_per_day(state) / (1.0 - self.patient_keep)

    # -------------------------------------------------------------------------------------------- touches
    def apply_touches(
        self, state: CustomerState, batch: TouchBatch, day: float, rng: np.random.Generator
    ) -> TouchOutcome:
        """Deliver a day's touches in time order; an HCP's later touches see the effect of its earlier ones.

        Each touch of the batch gets two uniforms (engagement, unsubscribe), in delivery order.
        """
        if len(batch) == 0:
            return TouchOutcome.empty()
        order = np.lexsort((batch.time, batch.hcp))
        u = rng.random((order.size, 2))
        *delivered, blocked_consent, blocked_cap = kernels.deliver_touches(
            order, batch.hcp, batch.channel, batch.theme, batch.origin, batch.question, batch.engaged_hint, u,
            float(day), state.email_consent, state.remote_consent, state.sent_days, state.sent_pointer,
            state.contact_load, state.confusion, state.goodwill, state.progress, state.last_stakeholder_day,
            state.last_stakeholder_theme, state.ever_delivered,
            self.pop.channel_fit, self.pop.need_relevance, self.tolerance, self.visit_cost,
            self.caps, self.base_engagement, self.channel_effect, self.unit_cost, SOURCE_OF_CHANNEL, CONTACT_LOAD,
            self._touch_params,
        )  # fmt: skip
        return TouchOutcome(*delivered, blocked_no_consent=int(blocked_consent), blocked_cap=int(blocked_cap))

    # ---------------------------------------------------------------------------------------- daily update
    def advance_day(
        self, state: CustomerState, working_day: bool, u_rx: np.ndarray, u_transition: np.ndarray,
        u_refill: np.ndarray | None = None, expected_out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, float, int]:
        """End of day: prescriptions (working days only: new ones drawn from ``u_rx``, refills of the patient
        stock from ``u_refill``) and adoption transitions from the day's goodwill, then carryover, confusion and
        fatigue decay.

        Returns the day's total prescriptions (TRx) per HCP, their expected total (``expected_rx_per_day``
        summed) and their drawn total; the day's new prescriptions per HCP are left in ``state.nrx``.
        ``u_refill`` None reuses ``1 - u_rx`` (timing harnesses only: the world draws its own stream).
        ``expected_out``: on working days, filled with each HCP's expected TRx (``expected_rx_per_day`` of the state
        before the update, from the same loop).
        """
        pop = self.pop
        rx = np.empty(pop.n_hcps, dtype=np.int32)  # daily_update writes every entry
        if state.nrx is None or state.nrx.size != pop.n_hcps:
            state.nrx = np.zeros(pop.n_hcps, dtype=np.int32)
        if state.patients is None:
            state.patients = np.zeros(pop.n_hcps)
        if u_refill is None:
            u_refill = 1.0 - u_rx
        expected, drawn, _ = kernels.daily_update(
            bool(working_day), u_rx, u_refill, u_transition, state.adoption, state.goodwill, state.confusion,
            state.contact_load, state.patients, state.account_access, pop.account, pop.class_rx_per_day,
            self.brand_share, self.access_factor, pop.kol_edge_kol, pop.kol_edge_follower, self._up_base,
            self._up_slope, self._up_peer, self._down_base, self._down_damp, self._day_params, rx, state.nrx,
            _NO_VALUES if expected_out is None else expected_out,
        )  # fmt: skip
        return rx, float(expected), int(drawn)

    def access_upgrade_probability(self, state: CustomerState) -> np.ndarray:
        """Per account, the probability that a review opens it one level: 0.6 x its members' share at S >= 2."""
        pop = self.pop
        adopters = np.bincount(pop.account, weights=(state.adoption >= 2), minlength=pop.n_accounts)
        members = np.maximum(1, np.bincount(pop.account, minlength=pop.n_accounts))
        return np.minimum(1.0, self.config.response.access_upgrade_per_adopter_share * adopters / members)

    def review_access(self, state: CustomerState, rng: np.random.Generator) -> int:
        """Quarterly formulary reviews: accounts whose HCPs use the brand tend to open access, and every account
        that is not blocked may be tightened (``access_downgrade``), so that access is lost as well as won.

        One uniform per account decides both ways (up below p_up, down in the next p_down), so with no downgrades
        the draws are those of the upgrade-only review.  Returns the number of upgrades."""
        access = state.account_access
        p_up = np.where(access > 0, self.access_upgrade_probability(state), 0.0)
        if self.balance_access:
            restricted, blocked = access == 1, access == 2
            entry = (float(p_up[restricted].sum()), float(restricted.sum()), float(p_up[blocked].sum()),
                     float(blocked.sum()), float((access == 0).sum()))
            self.access_balance_log.append(entry)
            # A level with no account now keeps its last pressure (0 blocked accounts must not stop the inflow).
            for level, (up_sum, count) in enumerate((entry[0:2], entry[2:4])):
                if count > 0:
                    self._balanced_upgrade[level] = up_sum / count
            self.access_downgrade = balancing_downgrade(self.access_shares, self._balanced_upgrade[0], 1.0,
                                                        self._balanced_upgrade[1], 1.0)
        p_down = np.where(access == 0, self.access_downgrade[0], np.where(access == 1, self.access_downgrade[1], 0.0))
        u = rng.random(access.size)
        upgrade = u < p_up
        downgrade = ~upgrade & (u < p_up + np.minimum(p_down, 1.0 - p_up))
        state.account_access = (access - upgrade + downgrade).astype(np.int8)
        return int(upgrade.sum())


def configured_access_shares(config: ScenarioConfig) -> np.ndarray:
    """The configured shares of open, restricted and blocked accounts."""
    access = config.population.access
    return np.array([access.open, access.restricted, access.blocked], dtype=float)


def balancing_downgrade(shares: np.ndarray, up_restricted_sum: float, n_restricted: float, up_blocked_sum: float,
                        n_blocked: float) -> np.ndarray:
    """The downgrades per review (open -> restricted, restricted -> blocked) at which ``shares`` are the stationary
    distribution of the access chain, given the mean upgrade probability of the restricted and the blocked accounts
    (their sums over accounts and the counts): detailed balance of a birth-death chain, pi_open d_open =
    pi_restricted u_restricted and pi_restricted d_restricted = pi_blocked u_blocked.  A level with no account keeps
    no pressure (0)."""
    u_restricted = up_restricted_sum / n_restricted if n_restricted > 0 else 0.0
    u_blocked = up_blocked_sum / n_blocked if n_blocked > 0 else 0.0
    d_open = shares[1] * u_restricted / shares[0] if shares[0] > 0 else 0.0
    d_restricted = shares[2] * u_blocked / shares[1] if shares[1] > 0 else 0.0
    return np.clip(np.array([d_open, d_restricted]), 0.0, 1.0)


def stationary_access(upgrade: np.ndarray, downgrade: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """The stationary shares (open, restricted, blocked) of the access chain with mean upgrades per review
    ``upgrade`` (restricted -> open, blocked -> restricted) and ``downgrade`` (open -> restricted, restricted ->
    blocked); ``fallback`` where a link of the chain has no flow either way (its split is then not determined)."""
    u_restricted, u_blocked = upgrade
    d_open, d_restricted = downgrade
    if min(u_restricted, d_open) <= 0.0 or min(u_blocked, d_restricted) <= 0.0:
        return np.asarray(fallback, dtype=float).copy()
    weights = np.array([1.0, d_open / u_restricted, d_open * d_restricted / (u_restricted * u_blocked)])
    return weights / weights.sum()


def configured_access_downgrade(config: ScenarioConfig) -> np.ndarray:
    """The downgrades that balance the upgrades of the configured day-0 market (a launch or a market started as
    configured): its members' expected share at S >= 2 (the initial draw of ``generate_population``, scaled by
    decile, deciles uniform) sets the mean upgrade of every account, whatever its access.  A brand that grows past
    its day-0 use then gains access in expectation, one that shrinks loses it."""
    upgrade = configured_access_upgrade(config)
    return balancing_downgrade(configured_access_shares(config), upgrade, 1.0, upgrade, 1.0)


def configured_access_upgrade(config: ScenarioConfig) -> float:
    """The mean upgrade probability per review of an account of the configured day-0 market."""
    pop = config.population
    decile = np.arange(1, 11)
    using = np.minimum(1.0, (pop.initial_adopter_share + pop.initial_trialing_share) / (1.25 - 0.05 * decile)).mean()
    return float(min(1.0, config.response.access_upgrade_per_adopter_share * using))


def _checked_downgrade(access_downgrade: np.ndarray) -> np.ndarray:
    rates = np.asarray(access_downgrade, dtype=float)
    if rates.shape != (2,) or not np.all((rates >= 0.0) & (rates <= 1.0)):
        raise ValueError(f"access_downgrade must be two probabilities (open, restricted), got {rates!r}")
    return rates
