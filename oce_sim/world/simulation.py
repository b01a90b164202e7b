"""The SimPy world: timed processes for the field force, marketing calendar, webinars, HCP-initiated portal
visits, the data pipeline and formulary reviews, over vectorised customer state.

Time is in days (day ``d`` spans ``[d, d+1)``; days with ``d % 7 < 5`` are working days).  Within a day:
00:00 decisions, 02:00 pipeline batches, 08:00 the field day, 10:00 marketing sends, 18:00 webinars,
23:00 the day's touches are applied, customers move through adoption states and write prescriptions.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any

import numpy as np
import simpy

from oce_sim.config import PipelineLevel, ScenarioConfig
from oce_sim.world import dispatch, kernels
from oce_sim.world.batch import CalendarSettings, WorldBatch, same_calendar
from oce_sim.world.calendar import HOUR, add_working_days, is_working_day
from oce_sim.world.efficacy import WORKING_DAYS_PER_WINDOW, Z_ONE_SIDED_95, EfficacyTest
from oce_sim.world.field import FieldForce
from oce_sim.world.observation import SEGMENT_FEATURES, STALE_DAYS
from oce_sim.world.population import Population, generate_population
from oce_sim.world.response import (
    CONTACT_LOAD,
    EMAIL,
    N_CHANNELS,
    ORIGIN_CALENDAR,
    ORIGIN_CUSTOMER,
    ORIGIN_ORCHESTRATOR,
    REMOTE_DETAIL,
    REP_VISIT,
    SOURCE_OF_CHANNEL,
    WEBINAR,
    WEBSITE,
    CustomerState,
    ResponseModel,
    TouchBatch,
    TouchOutcome,
    TouchQueue,
    TouchQueues,
)
from oce_sim.world.rows import BOUND, bind_rows, stack_rows
from oce_sim.world.stages import has
from oce_sim.world.start import StartTable
from oce_sim.world.streams import RandomStreams
from oce_sim.world.tail import DAYS_PER_YEAR
from oce_sim.world.uplift import expected_touch_value_usd, value_horizon_days
from oce_sim.world.view import (
    RX_WINDOW_DAYS,
    TRIALING_BELOW_SHARE,
    DataPipeline,
    DayRecord,
    OrchestratorView,
    covered_mask,
    rx_noise,
)

# dtypes of the hashed event columns: touch HCP, channel, theme, engaged, conflict, then the day's Rx per HCP
DIGEST_DTYPES = (np.int64, np.int64, np.int64, np.bool_, np.bool_, np.int64)
EXOGENOUS_BLOCK_DAYS = 28
FIELD_RECENT_DAYS = 14  # "a fortnight": how far marketing and the stage-3 rep look around a call
BELIEVED_STAGE_OF_STATE = np.array([0, 0, 1, 2])  # the oracles' view: adoption state -> believed stage
ONE_ACTIVE = np.ones(1, dtype=np.bool_)  # a lone territory's rows for the row kernels
KOL_FOLLOWER_WEIGHT = 0.1  # a mapped KOL's priority adds this share of the value of the customers he sways
RANK_WEIGHT_RANGE = (0.25, 4.0)  # how far the tested response may move a customer's rank (exploration stays alive)


def poisson_from_uniform(u: np.ndarray, lam: np.ndarray, max_count: int = 30) -> np.ndarray:
    """Inverse-CDF Poisson draw: monotone in ``lam`` for a fixed ``u`` (coupled common random numbers)."""
    count = np.zeros(u.shape, dtype=np.int32)
    p = np.exp(-lam)
    active = np.flatnonzero(u > p)  # only HCPs whose draw is above the CDF so far go on
    u, lam, p = u[active], lam[active], p[active]
    cdf = p.copy()
    for k in range(1, max_count + 1):
        if active.size == 0:
            break
        count[active] += 1
        p = p * lam / k
        cdf = cdf + p
        above = u > cdf
        active, u, lam, p, cdf = active[above], u[above], lam[above], p[above], cdf[above]
    return count


@dataclass
class Ledger:
    """Running totals the KPIs are computed from.  In a batch, the per-channel arrays are rows of the batch's:
    they are only ever changed in place (a class that would replace them would be ``RowBound``; the ledger is
    not, as its scalars change many times a day and ``RowBound`` makes every assignment a Python call)."""

    rx: float = 0.0  # total prescriptions (TRx: new + refills)
    observed_rx: float = 0.0  # prescriptions as the pipeline has published them to the view (late, noisy, gappy)
    nrx: float = 0.0  # new prescriptions (new patients started on the brand)
    revenue_usd: float = 0.0
    expected_revenue_usd: float = 0.0  # revenue of the expected prescriptions given the true state
    cost_usd: np.ndarray = field(default_factory=lambda: np.zeros(N_CHANNELS))  # variable cost per channel
    fixed_cost_usd: float = 0.0  # the field force's salaries, accrued per calendar day
    field_capacity_calls: float = 0.0  # calls the field force could have made (nominal, working days)
    delivered: np.ndarray = field(default_factory=lambda: np.zeros(N_CHANNELS))
    engaged: np.ndarray = field(default_factory=lambda: np.zeros(N_CHANNELS))
    confusion_events: int = 0
    out_of_sequence: int = 0
    unsubscribes: int = 0
    blocked_no_consent: int = 0
    blocked_cap: int = 0
    suggestions_accepted: int = 0
    suggestions_dismissed: int = 0
    suggestions_expired: int = 0
    questions_answered: int = 0
    webinar_events: int = 0
    masked_actions: int = 0
    rep_interventions: int = 0  # other channels' touches a stage-3 rep re-sequenced or stopped

    def snapshot(self) -> Ledger:
        return Ledger(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()
                         if k != BOUND})


class World:
    """One territory: ground truth plus the company's systems, advanced by its batch's SimPy calendar.

    A World belongs to a ``WorldBatch`` (``self.batch``): standalone, a batch of one; in a vector env, one batch
    for all territories (``Territories.join``).  A World pickles and deep-copies between runs as a batch of one:
    the SimPy environment and its process generators are dropped and rebuilt at the current simulated time, where
    each process waited (``WorldBatch.wakes``), in the same order and phase.
    """

    def __init__(self, config: ScenarioConfig, seed: int | None = None, start: StartTable | None = None,
                 access_reviews: bool = True, standalone: bool = True):
        """``start``: the day-0 state table of a steady start (None: the configured initial shares);
        ``access_reviews``: False keeps every formulary as it is (a diagnostic: the market's history runs its reviews);
        ``standalone``: True gives the World a batch of one; False leaves it for ``Territories.join`` (a vector
        env's territories share one batch)."""
        self.config = config
        self.stage = config.stage
        self.oracle_view = bool(config.env.oracle_view)  # the oracle may switch it per decision (use_oracle_view)
        self.streams = RandomStreams(seed)
        self.pop: Population = generate_population(config, self.streams.population)
        self.state = CustomerState.initial(self.pop)
        if start is not None:
            start.apply(self.pop, self.state.adoption, self.state.goodwill, self.state.account_access)
        self.response = ResponseModel(config, self.pop, None if start is None else start.access_downgrade)
        self.response.settle_patients(self.state)
        self.view = OrchestratorView(config, self.pop)
        self.pipeline = DataPipeline(config.pipeline_level())
        # IT stage 3: holdout tests; the view learns from published Rx, the truth instance is a diagnostic only.
        self.testing_efficacy = (has(self.stage, "predictions_tested_for_efficacy")
                                 and config.pipeline.holdout_share > 0 and not config.env.oracle_view)
        self.efficacy_truth: EfficacyTest | None = None
        if self.testing_efficacy:
            self.view.efficacy = EfficacyTest(self.pop.class_rx_per_day, dispatch.N_SEGMENTS, N_CHANNELS)
            self.efficacy_truth = EfficacyTest(self.pop.class_rx_per_day, dispatch.N_SEGMENTS, N_CHANNELS)
        self.held_out_touches = 0  # planned touches withheld by the holdout
        self.stopped_touches = 0  # planned touches stopped because their tested uplift did not pay
        self.field = FieldForce(config, self.pop, self.streams.stream("territories"))
        self.ledger = Ledger()
        self.batch: WorldBatch | None = None
        self._queue = TouchQueue()
        self._pending_notes: dict[int, list[tuple[str, np.ndarray | int]]] = defaultdict(list)
        self._rng_touches = self.streams.stream("touches")
        self._rng_field = self.streams.stream("field")
        self._rng_pipeline = self.streams.stream("pipeline")
        self._rng_webinar = self.streams.stream("webinar")
        self._blocks: dict[str, tuple[int, np.ndarray]] = {}
        self._webinar_registered = np.zeros(self.pop.n_hcps, dtype=bool)
        self._digest = hashlib.sha256() if config.env.record_events else None
        self.event_log: list[DayRecord] = []
        self.daily_rx: list[int] = []
        self.access_upgrades = 0
        self.own_send_day = np.full((self.pop.n_hcps, N_CHANNELS), -1e9)  # the executor's own sends
        self._portal_rate = config.channels.website.visits_per_day_digital * self.pop.channel_fit[:, WEBSITE]
        self._top_need = self.pop.need.argmax(axis=1)
        self._row = 0  # this territory's row in its batch (set by the batch)
        # env.hcp_rewards: per HCP, the expected gross margin of its prescriptions and what was spent on it alone (USD,
        # running); the field force's salaries are no HCP's and stay out
        self.hcp_margin_usd: np.ndarray | None = np.zeros(self.pop.n_hcps) if config.env.hcp_rewards else None
        self.hcp_cost_usd: np.ndarray | None = np.zeros(self.pop.n_hcps) if config.env.hcp_rewards else None
        economics = config.economics
        self.field_fixed_cost_per_day_usd = (
            self.field.n_reps * economics.rep_annual_cost_usd * economics.call_cost_share / DAYS_PER_YEAR)
        working_days_per_epoch = config.env.decision_interval_days * 5 / 7
        self.field_calls_per_epoch = self.field.nominal_calls_per_day * working_days_per_epoch

        self._load_history()
        self._access_reviews_on = access_reviews
        if has(self.stage, "customers_declare_preferences"):
            self._customer_declarations()
        if standalone:
            Territories.join([self])

    def _load_history(self) -> None:
        """Syndicated Rx history for the weeks before day 0, as the pipeline would have delivered it."""
        lam = self.response.expected_rx_per_day(self.state)
        outcome = TouchOutcome.empty()
        for day in range(-RX_WINDOW_DAYS, 0):
            u = self.streams.daily("rx", 10_000 + day).random(self.pop.n_hcps)
            rx = kernels.poisson_draws(u, lam) if is_working_day(day) else np.zeros(self.pop.n_hcps, dtype=np.int32)
            if self.efficacy_truth is not None:
                self.efficacy_truth.on_day(day, rx)
            self.view.absorb(DayRecord(day=day, touches=outcome, rx=rx), self.pipeline.level, self._rng_pipeline)

    # ----------------------------------------------------------------------------------------- helpers
    def _joined_batch(self) -> WorldBatch:
        if self.batch is None:
            raise RuntimeError("this World belongs to no batch yet: Territories.join([...]) it")
        return self.batch

    @property
    def env(self) -> simpy.Environment:
        """The SimPy environment of the World's batch (shared by all its territories)."""
        return self._joined_batch().env

    @property
    def now(self) -> float:
        return float(self.env.now)

    def exogenous_uniforms(self, name: str, day: int) -> np.ndarray:
        """Per-HCP uniforms for ``day`` that no policy can change (drawn in fixed 28-day blocks)."""
        block = day // EXOGENOUS_BLOCK_DAYS
        cached = self._blocks.get(name)
        if cached is None or cached[0] != block:
            rng = self.streams.daily(name, block)
            if cached is None:
                cached = (block, rng.random((EXOGENOUS_BLOCK_DAYS, self.pop.n_hcps)))
            else:  # in place: in a batch the block is a column of the batch's (the same draws)
                if cached[1].flags.c_contiguous:
                    rng.random(out=cached[1])
                else:  # a batch's day-major block (NumPy draws only into contiguous arrays)
                    cached[1][...] = rng.random(cached[1].shape)
                cached = (block, cached[1])
            self._blocks[name] = cached
        return cached[1][day % EXOGENOUS_BLOCK_DAYS]

    def schedule_touches(self, batch: TouchBatch, day: int | None = None) -> None:
        """Queue touches for the end of the day they happen on (``day``, when the caller knows it is one day)."""
        self._queue.push(batch.hcp, batch.channel, batch.theme, batch.origin, batch.time, batch.engaged_hint,
                         batch.question, day)

    def sent_last_30_days(self, hcp: np.ndarray, channel: int) -> np.ndarray:
        """The channel system's own count of deliveries (exact: every system knows its own sends)."""
        return self.state.sent_last_30_days(hcp, channel, self.now)

    def marketing_theme(self, hcp: np.ndarray, day: float) -> np.ndarray:
        """Marketing's message: the calendar's (stage 0) or personalised from shared insight (stages 1-2)."""
        if not has(self.stage, "marketing_personalises_from_insight"):
            theme = dispatch.calendar_theme(day, self.config.marketing.theme_period_days, self.pop.n_themes)
            return np.full(hcp.size, theme, dtype=np.int64)
        return kernels.choose_themes(self.view.progress[hcp], self.view.need_relevance()[hcp])

    def customer_priority(self) -> np.ndarray:
        """How the executor ranks customers: public value, or the true net value of a visit (oracle)."""
        if self.oracle_view:
            gain = expected_touch_value_usd(self, REP_VISIT, value_horizon_days(self)) - self.response.visit_cost
            return np.maximum(gain, 0.0)
        pop = self.pop
        value = np.empty((1, pop.n_hcps))
        edges = pop.kol_edge_kol.size
        kernels.customer_value_rows(
            ONE_ACTIVE, pop.class_rx_per_day[np.newaxis], self.response.access_factor,
            self.state.account_access[np.newaxis], pop.account[np.newaxis], np.array([0, edges]),
            pop.kol_edge_kol.astype(np.int64, copy=False), pop.kol_edge_follower.astype(np.int64, copy=False),
            self.kol_weight(), value)
        if self.testing_efficacy:
            return value[0] * self.tested_rank_weight()
        return value[0]

    def kol_weight(self) -> float:
        """Must-win stakeholders: once mapped, a KOL is worth his own volume plus this share of the volume he sways."""
        return KOL_FOLLOWER_WEIGHT if has(self.stage, "account_stakeholders_mapped") else 0.0

    def tested_rank_weight(self) -> np.ndarray:
        """IT stage 3: each customer's weight in the field's ranking, from the tested response to a suggested visit
        of customers in his believed prescribing state (shrunk uplift relative to the mean over states; 1 until two
        states are tested)."""
        n_beliefs = len(dispatch.BELIEFS)
        shrunk = self.view.efficacy.shrunk_uplift(REP_VISIT, n_beliefs)
        if shrunk is None or shrunk.mean() <= 0:
            return np.ones(self.pop.n_hcps)
        return np.clip(shrunk / shrunk.mean(), *RANK_WEIGHT_RANGE)[self.segments() % n_beliefs]

    # ------------------------------------------------------------------------------------ orchestrator API
    def action_mask(self) -> np.ndarray:
        """``[N_SEGMENTS, N_PLAYS]``: what may be played on each segment now (``Territories.decisions``)."""
        return self._decisions().mask[self._row].copy()

    def segments(self) -> np.ndarray:
        """Segment of every HCP as the orchestrator sees it now (read-only; the view only changes as time passes)."""
        segment = self._decisions().segment[self._row]
        segment.flags.writeable = False
        return segment

    def segment_features(self) -> np.ndarray:
        """``[N_SEGMENTS, len(SEGMENT_FEATURES)]``: the observation's per-segment features now, from the view."""
        self._decisions()  # first: a territory on the ground-truth view syncs it
        return self._territories().segment_features(self.now)[self._row]

    def _territories(self) -> Territories:
        territories = self._joined_batch().territories
        assert isinstance(territories, Territories)
        return territories

    def _decisions(self) -> Decisions:
        return self._territories().decisions(self.now, self._row)

    def apply_plays(self, plays: np.ndarray) -> None:
        """Execute one play per segment for the next decision epoch, starting now (``Territories.apply_plays``: a
        batch plans all its territories' plays in one call)."""
        self._territories().apply_plays({self._row: plays})

    def execute_plan(self, plan: dispatch.Plan) -> None:
        """Hand this territory's epoch plan to the field force and the channels (after the efficacy test, at IT 3)."""
        day = self.now
        if self.testing_efficacy:
            plan = self._test_efficacy(plan, int(day))
        self.ledger.suggestions_expired += self.field.set_queue(plan.queue_hcp, plan.queue_theme, plan.queue_ask)
        if plan.email_hcp.size:
            send = add_working_days(day, 0) + 10 * HOUR
            self.own_send_day[plan.email_hcp, EMAIL] = day
            open_time = send + self.config.channels.email.open_delay_days
            self._queue.push(plan.email_hcp, EMAIL, plan.email_theme, ORIGIN_ORCHESTRATOR, open_time)
        if plan.remote_hcp.size:
            delay = self.config.channels.remote_detail.delay_days
            days = np.array([add_working_days(day + delay, int(k)) for k in range(int(plan.remote_day_offset.max()) + 1)])
            times = days[plan.remote_day_offset] + 11 * HOUR
            self.own_send_day[plan.remote_hcp, REMOTE_DETAIL] = day
            self._queue.push(plan.remote_hcp, REMOTE_DETAIL, plan.remote_theme, ORIGIN_ORCHESTRATOR, times)
        if plan.webinar_hcp.size:
            self._register_for_webinar(plan.webinar_hcp)

    def _test_efficacy(self, plan: dispatch.Plan, day: int) -> dispatch.Plan:
        """IT stage 3: stop planned touches whose tested uplift is confidently below their cost, withhold a random
        ``holdout_share`` of the customers the rest targets, and register both groups for the test."""
        segment = self.segments()
        uplift, se, tested = self.view.efficacy.uplift()
        upper = np.where(tested, uplift + Z_ONE_SIDED_95 * se, np.inf)  # share of class volume over a window
        rx_per_window = self.pop.class_rx_per_day * WORKING_DAYS_PER_WINDOW
        margin = self.config.economics.margin_per_rx_usd
        held = self.streams.daily("holdout", day).random(self.pop.n_hcps) < self.config.pipeline.holdout_share

        def keep(hcp: np.ndarray, channel: int) -> np.ndarray:
            """Which of the touches planned on ``channel`` for ``hcp`` go ahead (registers the test groups)."""
            cost = self.response.visit_cost[hcp] if channel == REP_VISIT else self.response.unit_cost[channel]
            # The field is paid anyway: its visits are ranked by the test (tested_rank_weight), never stopped.
            pays = (upper[segment[hcp], channel] * rx_per_window[hcp] * margin >= cost) | (channel == REP_VISIT)
            tested_hcp = hcp[pays]
            for test in (self.view.efficacy, self.efficacy_truth):
                test.register(day, tested_hcp, np.full(tested_hcp.size, channel), ~held[tested_hcp],
                              segment[tested_hcp])
            self.stopped_touches += int((~pays).sum())
            self.held_out_touches += int(held[tested_hcp].sum())
            return pays & ~held[hcp]

        # Rep queues: the kept suggestions move up, the freed slots go empty (-1) at the end of each row.
        queue_hcp, queue_theme, queue_ask = plan.queue_hcp.copy(), plan.queue_theme.copy(), plan.queue_ask.copy()
        queued = queue_hcp >= 0
        go = np.zeros_like(queued)
        go[queued] = keep(queue_hcp[queued], REP_VISIT)
        for r in range(queue_hcp.shape[0]):
            row = np.flatnonzero(go[r])
            k = row.size
            queue_hcp[r, :k], queue_theme[r, :k], queue_ask[r, :k] = (
                queue_hcp[r, row], queue_theme[r, row], queue_ask[r, row])
            queue_hcp[r, k:], queue_theme[r, k:], queue_ask[r, k:] = -1, 0, False
        email = keep(plan.email_hcp, EMAIL)
        remote = keep(plan.remote_hcp, REMOTE_DETAIL)
        webinar = keep(plan.webinar_hcp, WEBINAR)
        return dispatch.Plan(queue_hcp, queue_theme, queue_ask, plan.email_hcp[email], plan.email_theme[email],
                             plan.remote_hcp[remote], plan.remote_theme[remote], plan.remote_day_offset[remote],
                             plan.webinar_hcp[webinar])

    def run_until(self, day: float) -> None:
        """Run the World's batch (every territory in it) to ``day``; never backwards."""
        self._joined_batch().run_until(day)

    def use_oracle_view(self, on: bool) -> None:
        """Switch the ground-truth view (``env.oracle_view``) on or off from now on (the rollout oracle chooses it per
        decision).  Switched on, beliefs are replaced by the truth at the next decision; switched off, the orchestrator
        keeps the beliefs it was last given and segments on observed prescriptions again.  No-op if unchanged."""
        if bool(on) == self.oracle_view:
            return
        self.oracle_view = bool(on)
        self._territories().forget_decisions()
        if not on:
            self.view.stage_override = None
            self.view._cache.clear()

    def _refresh_oracle_view(self) -> None:
        if self.oracle_view:
            self.view.sync_ground_truth(self.pop, self.state, self.now)
            self.view.stage_override = BELIEVED_STAGE_OF_STATE[self.state.adoption]  # 0, 0, 1 trialing, 2 adopter

    # ------------------------------------------------------------------------------------ pickle support
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["batch"]  # holds the SimPy environment and its generators: rebuilt as a batch of one
        batch = self.batch
        state["_now"] = batch.now if batch is not None else 0.0
        state["_wakes"] = batch.wakes() if batch is not None else {}
        state["_digest"] = self._digest is not None  # hashlib objects cannot be pickled; rebuilt from event_log
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        now = state.pop("_now")
        wakes = state.pop("_wakes")
        state.pop("env", None)  # pickles from before batches
        state.pop("_wake_order", None)
        state.setdefault("oracle_view", bool(state["config"].env.oracle_view))  # pickles from before the switch
        self.__dict__.update(state)
        if self._digest and self.event_log is not None:  # (a closed World has no event log left to hash)
            self._digest = hashlib.sha256()
            for record in self.event_log:
                self._hash_record(record)
        else:
            self._digest = None
        self.batch = None
        if self.state is not None:  # a closed World has nothing left to run
            Territories.join([self], now=now, wakes=wakes)

    # ------------------------------------------------------------------------------- phases of the day
    def calendar_settings(self) -> CalendarSettings:
        """What shapes the batch's calendar (the same for every territory of one configuration)."""
        config = self.config
        return CalendarSettings(
            pipeline_batch_interval_days=float(self.pipeline.level.batch_interval_days),
            field_works=bool(self.field.capacity_available),
            working_minutes_per_day=float(config.channels.rep_visit.working_minutes_per_day),
            email_interval_days=float(config.marketing.email_interval_days),
            remote_interval_days=float(config.marketing.remote_interval_days),
            access_review_interval_days=float(config.response.access_review_interval_days),
            access_reviews=bool(self._access_reviews_on),
            calendar_marketing=not has(self.stage, "orchestrator_controls_marketing"),
        )

    def close_day(self, day: int, working: bool, outcome: TouchOutcome, counts: np.ndarray, rx: np.ndarray,
                  expected_rx: float, rx_total: int, nrx_total: int, need_hcp: np.ndarray,
                  need_values: np.ndarray) -> DayRecord:
        """23:00, after the batch has delivered the day's touches and moved the customers: book the day, record it
        for the pipeline (and the event log).  ``counts``: conflicts, out-of-sequence touches and unsubscribes;
        ``need_hcp``, ``need_values``: the needs recorded today (``Territories.need_reports``)."""
        led = self.ledger
        price = self.config.economics.price_per_rx_usd
        if working:
            led.nrx += nrx_total
        led.expected_revenue_usd += expected_rx * price
        led.rx += rx_total
        led.revenue_usd += rx_total * price
        led.confusion_events += int(counts[0])
        led.out_of_sequence += int(counts[1])
        led.unsubscribes += int(counts[2])
        led.blocked_no_consent += outcome.blocked_no_consent
        led.blocked_cap += outcome.blocked_cap
        self._book_field_force(working)
        record = self._make_record(day, outcome, rx, need_hcp, need_values)
        self.pipeline.submit(record)
        if self.efficacy_truth is not None:
            self.efficacy_truth.on_day(day, rx)
        if self._digest is not None:
            self._hash_record(record)
            self.event_log.append(record)
        self.daily_rx.append(rx_total)
        return record

    def _hash_record(self, record: DayRecord) -> None:
        # Fixed dtypes, so that the hash follows the events and not how the arrays happen to be stored.
        touches = record.touches
        for array, dtype in zip((touches.hcp, touches.channel, touches.theme, touches.engaged, touches.conflict,
                                 record.rx), DIGEST_DTYPES):
            self._digest.update(np.ascontiguousarray(array, dtype=dtype).tobytes())

    def _book_field_force(self, working: bool) -> None:
        """A rep is paid every calendar day whether she calls or not; idle capacity is what she could have called."""
        led = self.ledger
        led.fixed_cost_usd += self.field_fixed_cost_per_day_usd
        if working and self.field.capacity_available:
            led.field_capacity_calls += self.field.n_reps * self.field.nominal_calls_per_day

    def _make_record(self, day: int, outcome: TouchOutcome, rx: np.ndarray, need_hcp: np.ndarray,
                     need_values: np.ndarray) -> DayRecord:
        notes = self._pending_notes.pop(day, ())
        record = DayRecord(day=day, touches=outcome, rx=rx)
        if need_hcp.size:
            record.need_hcp, record.need_values = need_hcp, need_values
        for kind, h in notes:
            if kind == "no_see" and h.size:
                record.no_see_hcp = np.concatenate([record.no_see_hcp, h])
            elif kind == "preferred" and h.size:
                record.preferred_hcp = np.concatenate([record.preferred_hcp, h])
            elif kind == "dismissed":
                record.suggestions_dismissed += int(h)
        if record.preferred_hcp.size:
            record.preferred_channel = self.pop.channel_fit[record.preferred_hcp].argmax(axis=1)
        return record

    def marketing_emails(self, day: float) -> None:
        """10:00 of a working day on marketing's calendar: an email to every opted-in customer below the cap."""
        hcp = np.flatnonzero(self.view.email_consent)
        hcp = hcp[self.sent_last_30_days(hcp, EMAIL) < self.config.channels.email.cap_per_30_days]
        open_time = day + self.config.channels.email.open_delay_days
        theme = self._follow_field_records(hcp, day, self.marketing_theme(hcp, day))
        self._queue.push(hcp, EMAIL, theme, ORIGIN_CALENDAR, open_time)

    def marketing_remote(self, day: float) -> None:
        """11:00 on marketing's calendar: inside sales books remote details for the coming days, up to capacity."""
        cal = self.config.marketing
        remote = self.config.channels.remote_detail
        if remote.calls_per_day <= 0:
            return
        hcp = np.flatnonzero((self.pop.decile >= cal.remote_min_decile) & self.view.remote_consent)
        hcp = hcp[self.sent_last_30_days(hcp, REMOTE_DETAIL) < remote.cap_per_30_days]
        capacity = remote.calls_per_day * max(1, int(cal.remote_interval_days * 5 / 7))
        hcp = hcp[:capacity]
        offsets = np.arange(hcp.size) // remote.calls_per_day
        if hcp.size:
            days = np.array([add_working_days(day + remote.delay_days, int(k)) for k in range(int(offsets.max()) + 1)])
            times = days[offsets] + 11 * HOUR
            theme = self._follow_field_records(hcp, day, self.marketing_theme(hcp, day))
            self._queue.push(hcp, REMOTE_DETAIL, theme, ORIGIN_CALENDAR, times)

    def _follow_field_records(self, hcp: np.ndarray, day: float, theme: np.ndarray) -> np.ndarray:
        """Marketing stage 2: an email or inside-sales call to a customer the rep met in the last
        ``FIELD_RECENT_DAYS`` carries the message that follows the one she recorded, so the mix continues her
        conversation instead of contradicting it (the rep records what she discussed at every stage; below stage 2
        marketing does not plan with it)."""
        if not has(self.stage, "marketing_plans_with_field_records") or hcp.size == 0:
            return theme
        recent = day - self.state.last_stakeholder_day[hcp, 0] <= FIELD_RECENT_DAYS  # the field's met calls
        follow_up = np.minimum(self.state.last_stakeholder_theme[hcp, 0].astype(np.int64) + 1, self.pop.n_themes - 1)
        return np.where(recent, follow_up, theme)

    def _register_for_webinar(self, hcp: np.ndarray) -> None:
        web = self.config.channels.webinar
        hcp = hcp[~self._webinar_registered[hcp]]
        event_day = self.next_webinar_day(self.now)
        theme = dispatch.calendar_theme(event_day, self.config.marketing.theme_period_days, self.pop.n_themes)
        p = web.base_registration * (0.4 + 0.6 * self.pop.channel_fit[hcp, WEBINAR])
        p = p * (0.5 + 0.5 * self.pop.need_relevance[hcp, theme])
        registered = hcp[self._rng_webinar.random(hcp.size) < p]
        self._webinar_registered[registered] = True

    def next_webinar_day(self, now: float) -> float:
        web = self.config.channels.webinar
        k = max(0, int(np.ceil((now - web.first_day) / web.interval_days)))
        return web.first_day + k * web.interval_days

    def invite_to_webinar(self, event_day: float) -> None:
        """A week before the event: marketing's calendar invites every opted-in customer (below marketing stage 3
        control; the orchestrator invites with its plays)."""
        if not has(self.stage, "orchestrator_controls_marketing") and self.config.marketing.invite_all_to_webinars:
            self._register_for_webinar(np.flatnonzero(self.view.email_consent))

    def hold_webinar(self, event_day: float) -> None:
        web = self.config.channels.webinar
        registered = np.flatnonzero(self._webinar_registered)
        show = registered[self._rng_webinar.random(registered.size) < web.show_rate]
        if show.size > web.seats:
            show = self._rng_webinar.choice(show, size=web.seats, replace=False)
        self._webinar_registered[:] = False
        if web.seats > 0 and registered.size:
            theme = dispatch.calendar_theme(event_day, self.config.marketing.theme_period_days, self.pop.n_themes)
            self._queue.push(show, WEBINAR, theme, ORIGIN_CALENDAR, self.env.now, 1)
            self.ledger.cost_usd[WEBINAR] += web.fixed_cost_usd
            if self.hcp_cost_usd is not None:  # the event is held for those who registered: they share its cost
                self.hcp_cost_usd[registered] += web.fixed_cost_usd / registered.size
            self.ledger.webinar_events += 1

    def review_access(self, now: float) -> None:
        """Every review interval: payers review the accounts' formulary access."""
        rng = self.streams.daily("access", int(now))
        self.access_upgrades += self.response.review_access(self.state, rng)

    def _customer_declarations(self) -> None:
        """Customer stage 3: a share of HCPs choose an experience package, declaring needs and channel."""
        rng = self.streams.daily("population", 0)
        declared = np.flatnonzero(rng.random(self.pop.n_hcps) < self.config.pipeline.declare_share)
        self._pending_notes[0].append(("need", declared))
        self._pending_notes[0].append(("preferred", declared))
        # the chosen package is in the CRM: a rep who reads it (sales 1 on) leaves these customers off her own picks
        self.field.chose_other_channel[declared] = self.pop.channel_fit[declared].argmax(axis=1) != REP_VISIT

    # ------------------------------------------------------------------------------------------- results
    def close(self) -> None:
        """Release the large arrays now: the SimPy generators hold a reference cycle to the World, so
        without this a dead national-scale World would wait for the cyclic garbage collector."""
        for name in ("state", "pop", "view", "pipeline", "field", "response", "_blocks", "event_log"):
            setattr(self, name, None)
        self._queue.clear()
        self._pending_notes.clear()

    def event_digest(self) -> str:
        if self._digest is None:
            raise RuntimeError("event hashing needs env.record_events: true")
        return self._digest.hexdigest()



# CustomerState fields stored as rows of the batch's arrays (all of them: the batch's phases read and write them)
STATE_ROWS: tuple[str, ...] = (
    "adoption", "goodwill", "confusion", "contact_load", "progress", "email_consent", "remote_consent",
    "last_stakeholder_day", "last_stakeholder_theme", "sent_days", "sent_pointer", "account_access",
    "ever_delivered", "patients", "nrx",
)
LEDGER_ROWS: tuple[str, ...] = ("cost_usd", "delivered", "engaged")
# Population data the batch's phases read (it never changes during an episode: stacked as copies)
POPULATION_ROWS: tuple[str, ...] = ("channel_fit", "need_relevance", "contact_tolerance_per_month", "account",
                                    "class_rx_per_day", "need", "potential_tier", "rep")
FIELD_ROWS: tuple[str, ...] = ("trust", "knows_need", "knows_no_see", "failed_visits", "seen_visits", "rep_progress",
                               "chose_other_channel", "last_visit_day", "pointer")
# The view's arrays a publication writes (replaced only in place: OrchestratorView.sync_ground_truth)
VIEW_ROWS: tuple[str, ...] = ("last_touch_day", "delivered", "engaged", "progress", "email_consent", "remote_consent",
                              "rx_ring", "published_rx", "need_known", "no_see", "need", "preferred_channel")
EXOGENOUS_STREAMS: tuple[str, ...] = ("rx", "transitions", "refills", "website")
# ResponseModel methods a measurement harness may wrap on one territory (calibration's shadow customers): such a
# territory's touches and dynamics go through its own methods, which call the same kernels for one territory
RESPONSE_HOOKS = frozenset({"apply_touches", "advance_day"})
# TouchOutcome's columns a publication reads, and where they stand among its fields (deliver_rows returns them so)
PUBLISHED_FIELDS = ("hcp", "channel", "theme", "origin", "engaged", "unsubscribed")
PUBLISHED_COLUMNS = tuple([f.name for f in dataclass_fields(TouchOutcome)].index(name) for name in PUBLISHED_FIELDS)
NO_NOTES = np.zeros(0, dtype=np.int64)


def offsets_of(sizes: Sequence[int]) -> np.ndarray:
    """Where each territory's rows start in a flat array of all territories' rows (and where the last ends)."""
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    for t, size in enumerate(sizes):
        offsets[t + 1] = offsets[t] + size
    return offsets


@dataclass
class Decisions:
    """Every territory's view of its customers at one time, as the orchestrator decides on it (rows per territory)."""

    now: float
    rx_share: np.ndarray  # (N, n_hcps): observed brand share over the last 28 days of published data
    segment: np.ndarray  # (N, n_hcps): potential tier x believed stage
    mask: np.ndarray  # (N, N_SEGMENTS, N_PLAYS): the plays allowed on each segment
    synced: np.ndarray  # (N,): a territory on the ground-truth view, synced to the truth at this time


def joined(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The territories' rows as one flat array (a batch of one: its own array, no copy)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


class Territories:
    """The territories of one batch: each phase of the day for all of them (``oce_sim.world.batch.Territories``).

    Every territory's customer state, touch queue, ledger arrays and exogenous uniforms are rows of the batch's
    arrays (``oce_sim.world.rows``), so the hot phases (the portal at 00:00, the touches and dynamics at 23:00) are
    one compiled call over all territories; the others run territory by territory.  Built by :meth:`join`, which
    also gives every World the batch it belongs to."""

    def __init__(self, worlds: Sequence[World]):
        if not worlds:
            raise ValueError("a batch holds at least one territory")
        settings = [world.calendar_settings() for world in worlds]
        if not same_calendar(settings):
            raise ValueError("the territories of one batch share one configuration (one calendar); got several")
        self.worlds = list(worlds)
        for t, world in enumerate(self.worlds):
            world._row = t
        self._settings = settings[0]
        self.n = len(self.worlds)
        first = self.worlds[0]
        self.response = first.response  # its parameters: one configuration for the batch
        self.economics = first.config.economics
        self.queues = TouchQueues.gather([world._queue for world in self.worlds])
        self.state = bind_rows([world.state for world in self.worlds], STATE_ROWS)
        self.ledger = bind_rows([world.ledger for world in self.worlds], LEDGER_ROWS)
        self.per_hcp_money = first.hcp_margin_usd is not None
        if self.per_hcp_money:
            self.hcp_money = bind_rows(self.worlds, ("hcp_margin_usd", "hcp_cost_usd"))
        pops = [world.pop for world in self.worlds]
        self.pop = {name: stack_rows(pops, name) for name in POPULATION_ROWS}
        self.visit_cost = stack_rows([world.response for world in self.worlds], "visit_cost")
        self.portal_rate = stack_rows(self.worlds, "_portal_rate")
        self.top_need = stack_rows(self.worlds, "_top_need")
        edges = [pop.kol_edge_kol.size for pop in pops]
        self.kol_offsets = offsets_of(edges)
        self.kol_edge_kol = np.concatenate([pop.kol_edge_kol for pop in pops]).astype(np.int64)
        self.kol_edge_follower = np.concatenate([pop.kol_edge_follower for pop in pops]).astype(np.int64)
        n_hcps = first.pop.n_hcps
        self.blocks: dict[str, np.ndarray] = {}
        # Each territory's 28-day block of a stream: a column of the batch's, day-major, so that a day's uniforms
        # are one contiguous (N, n_hcps) array for any N (one compiled specialisation of the kernels that read them)
        for name in EXOGENOUS_STREAMS:
            cached = first._blocks.get(name)
            if self.n == 1 and cached is not None:  # a batch of one: its block is already its column
                self.blocks[name] = cached[1][:, np.newaxis]
                continue
            parent = np.zeros((EXOGENOUS_BLOCK_DAYS, self.n, n_hcps))
            for t, world in enumerate(self.worlds):
                cached = world._blocks.get(name)
                if cached is not None:
                    parent[:, t] = cached[1]
                    world._blocks[name] = (cached[0], parent[:, t])
                else:
                    world._blocks[name] = (-1, parent[:, t])  # no block drawn yet: block -1 is never a day's
            self.blocks[name] = parent
        self._no_values = np.zeros((self.n, 0))
        self._all_active = np.ones(self.n, dtype=np.bool_)
        self._field: dict[str, np.ndarray] | None = None  # bound at the first field day (a batch may have no reps)
        self._suggestions_from: list[np.ndarray] | None = None
        self._view: dict[str, np.ndarray] | None = None
        # day -> the batch's flat record of that day (touch columns with offsets, Rx rows) and the territories'
        # records made from it: the publication reads it instead of joining the records again
        self._days: dict[int, tuple[list[DayRecord], np.ndarray, list[np.ndarray], np.ndarray]] = {}
        self._portal_reveals: bool | None = None  # one stage for the batch: read at the first end of day
        self._no_notes = np.zeros(self.n + 1, dtype=np.int64)
        self._no_needs = np.zeros((0, first.pop.n_themes))
        self._planning: dict[str, np.ndarray] | None = None
        self._decisions: Decisions | None = None  # every territory's segments and masks at one time
        self._features: tuple[float, np.ndarray] | None = None  # and the observation's per-segment features
        self._controllable = dispatch.controllable_plays(first.stage, first.config, first.field.capacity_available)
        for world in self.worlds[1:]:  # the batch's decisions read one stage's authority for all territories
            if world.stage != first.stage or not np.array_equal(
                    dispatch.controllable_plays(world.stage, world.config, world.field.capacity_available),
                    self._controllable):
                raise ValueError("the territories of one batch share one stage and its plays; got several")

    @classmethod
    def join(cls, worlds: Sequence[World], now: float = 0.0,
             wakes: dict[str, tuple[float, int, str, float]] | None = None) -> WorldBatch:
        """One batch for ``worlds`` (each at time ``now``; ``wakes``: where a pickled batch's processes waited)."""
        batch = WorldBatch(cls(worlds), now=now, wakes=wakes)
        for world in worlds:
            world.batch = batch
        return batch

    def calendar_settings(self) -> CalendarSettings:
        return self._settings

    def uniforms(self, name: str, day: int) -> np.ndarray:
        """Every territory's exogenous uniforms of stream ``name`` on ``day``, ``(N, n_hcps)`` (each territory's
        block drawn where it is not the day's: ``World.exogenous_uniforms``)."""
        block = day // EXOGENOUS_BLOCK_DAYS
        for world in self.worlds:
            if world._blocks[name][0] != block:
                world.exogenous_uniforms(name, day)
        return self.blocks[name][day % EXOGENOUS_BLOCK_DAYS]

    def decisions(self, now: float, row: int) -> Decisions:
        """Every territory's observed brand share, segments and action mask at ``now``, each one compiled call for all
        territories (kept until the time moves on: the view changes only as the calendar runs), for territory ``row``
        to read its row.  A territory on the ground-truth view (the oracles) is synced to the truth when it asks, as it
        would be alone (never as a side effect of another territory's asking), and its row is computed again:
        segmented on its customers' true stages."""
        memo = self._decisions
        if memo is None or memo.now != now:
            n_hcps = self.pop["class_rx_per_day"].shape[1]
            memo = self._decisions = Decisions(now, np.empty((self.n, n_hcps)), np.empty((self.n, n_hcps), np.int64),
                                               np.empty((self.n, dispatch.N_SEGMENTS, dispatch.N_PLAYS), np.bool_),
                                               np.zeros(self.n, dtype=np.bool_))
            self._decide(memo, slice(0, self.n))
        world = self.worlds[row]
        if world.oracle_view and not memo.synced[row]:
            world._refresh_oracle_view()
            self._decide(memo, slice(row, row + 1))
            memo.synced[row] = True
            self._features = None  # its features follow its synced view
        return memo

    def _decide(self, memo: Decisions, rows: slice) -> None:
        """``memo``'s rows ``rows`` from the territories' views as they are now."""
        worlds, view, pop = self.worlds[rows], self._view_rows(), self.pop
        working_days = np.array([max(1, min(world.view.rx_days_seen, RX_WINDOW_DAYS)) * 5.0 / 7.0 for world in worlds])
        segment = memo.segment[rows]
        kernels.segment_rows(pop["potential_tier"][rows], view["rx_ring"][rows], pop["class_rx_per_day"][rows],
                             working_days, TRIALING_BELOW_SHARE, len(dispatch.BELIEFS), memo.rx_share[rows], segment)
        for t, world in enumerate(worlds):
            if world.view.stage_override is not None:
                segment[t] = world.pop.potential_tier.astype(np.int64) * len(dispatch.BELIEFS) + world.view.stage_override
        kernels.action_mask_rows(segment, dispatch.N_SEGMENTS, view["email_consent"][rows], view["remote_consent"][rows],
                                 pop["rep"][rows], view["no_see"][rows], view["need_known"][rows], self._controllable,
                                 dispatch.PLAY_NEEDS, memo.mask[rows])

    def apply_plays(self, plays: dict[int, np.ndarray]) -> None:
        """Execute one play per segment in the territories given (row -> plays) for the next decision epoch,
        starting now: every territory's plan in one compiled call (``dispatch.plan_epoch``), then each territory
        hands its plan to its field force and channels (``World.execute_plan``)."""
        worlds, first = self.worlds, self.worlds[0]
        now = first.now
        if not plays:
            return
        active = np.zeros(self.n, dtype=np.bool_)
        plays_rows = np.zeros((self.n, dispatch.N_SEGMENTS), dtype=np.int64)
        for t, row in plays.items():
            decisions = self.decisions(now, t)  # a territory on the ground-truth view synced
            active[t] = True
            plays_rows[t] = row
        value = np.empty(decisions.segment.shape)
        self._customer_priorities(value)
        plans = dispatch.plan_epoch(plays_rows, decisions.segment, now, first.config.env.decision_interval_days,
                                    first.config, value, first.field_calls_per_epoch, first.field.n_reps,
                                    self._planning_rows(), active)
        for world, plan in zip(worlds, plans):
            if plan is not None:
                world.execute_plan(plan)

    def _planning_rows(self) -> dict[str, np.ndarray]:
        """The arrays the plan reads, as rows of the batch's (the executor's own send days bound at first use)."""
        if self._planning is None:
            own = bind_rows(self.worlds, ("own_send_day",))
            # the view's beliefs (progress, consent), never the customers' true state of the same names
            sources = {**self.pop, **self.state, **own, **self._view_rows()}
            self._planning = {name: sources[name] for name in dispatch.PLANNING_ROWS}
            assert all(self._planning[name] is self._view_rows()[name] for name in dispatch.PLANNING_ROWS
                       if name in VIEW_ROWS)
        return self._planning

    def forget_decisions(self) -> None:
        """A territory switched views mid-decision (the rollout oracle): its segments and masks are computed again."""
        self._decisions = self._features = None

    def segment_features(self, now: float) -> np.ndarray:
        """``(N, N_SEGMENTS, len(SEGMENT_FEATURES))``: every territory's observation features at ``now``, one compiled
        call (``kernels.segment_features`` on each territory's rows)."""
        if self._features is not None and self._features[0] == now:
            return self._features[1]
        decisions, view = self._decisions, self._view_rows()
        assert decisions is not None and decisions.now == now, "World.segment_features asks for its decisions first"
        features = np.empty((self.n, dispatch.N_SEGMENTS, len(SEGMENT_FEATURES)))
        kernels.segment_features_rows(decisions.segment, dispatch.N_SEGMENTS, decisions.rx_share, view["last_touch_day"],
                                      now, STALE_DAYS, view["email_consent"], view["need_known"], view["progress"],
                                      float(self.worlds[0].pop.n_themes), view["engaged"], view["delivered"], features)
        features.flags.writeable = False
        self._features = (now, features)
        return features

    def portal_visits(self, day: int) -> None:
        """00:00: HCP-initiated website visits (digital, aware customers pull the theme they need), queued at noon."""
        u = self.uniforms("website", day)
        queues = self.queues
        while not kernels.portal_rows(u, self.portal_rate, self.state["adoption"], kernels.PORTAL_UNAWARE_FACTOR,
                                      self.top_need, day, day + 12 * HOUR, queues.size, queues.day, queues.hcp,
                                      queues.channel, queues.theme, queues.origin, queues.question,
                                      queues.engaged_hint, queues.time, WEBSITE, ORIGIN_CUSTOMER):
            queues.reserve(2 * queues.capacity)

    def end_of_day(self, day: int) -> None:
        """23:00: every territory's touches of the day are delivered in time order, customers prescribe and move
        (working days) and decay, and each territory books and records its day."""
        worlds, n = self.worlds, self.n
        working = is_working_day(day)
        queues, state, response = self.queues, self.state, self.response
        offsets, hcp, channel, theme, origin, question, hint, time = kernels.take_day_rows(
            day, queues.size, queues.day, queues.hcp, queues.channel, queues.theme, queues.origin, queues.question,
            queues.engaged_hint, queues.time)
        hooked = [t for t, world in enumerate(worlds) if RESPONSE_HOOKS & world.response.__dict__.keys()]
        active = self._all_active
        if hooked:
            active = active.copy()
            active[hooked] = False
        # two uniforms per touch (engagement, unsubscribe), drawn from each territory's own stream
        u = np.empty((int(offsets[-1]), 2))
        bounds = offsets.tolist()
        for t, world in enumerate(worlds):
            if bounds[t + 1] > bounds[t] and active[t]:
                world._rng_touches.random(out=u[bounds[t]:bounds[t + 1]])
        delivered = kernels.deliver_rows(
            active, offsets, hcp, channel, theme, origin, question, hint, time, u, float(day),
            state["email_consent"], state["remote_consent"], state["sent_days"], state["sent_pointer"],
            state["contact_load"], state["confusion"], state["goodwill"], state["progress"],
            state["last_stakeholder_day"], state["last_stakeholder_theme"], state["ever_delivered"],
            self.pop["channel_fit"], self.pop["need_relevance"], self.pop["contact_tolerance_per_month"],
            self.visit_cost, response.caps, response.base_engagement, response.channel_effect, response.unit_cost,
            SOURCE_OF_CHANNEL, CONTACT_LOAD, response._touch_params, self.ledger["cost_usd"],
            self.ledger["delivered"], self.ledger["engaged"],
            self.hcp_money["hcp_cost_usd"] if self.per_hcp_money else self._no_values,
        )  # fmt: skip
        out_offsets, *columns, blocked, counts = delivered
        outcomes: dict[int, TouchOutcome] = {}
        for t in hooked:  # the territory's own (wrapped) methods, on its rows
            world = worlds[t]
            a, b = offsets[t], offsets[t + 1]
            touches = TouchBatch(hcp[a:b], channel[a:b], theme[a:b], origin[a:b], question[a:b], hint[a:b], time[a:b])
            outcome = world.response.apply_touches(world.state, touches, float(day), world._rng_touches)
            counts[t] = kernels.book_touches(
                outcome.channel, outcome.engaged, outcome.cost_usd, outcome.conflict, outcome.out_of_sequence,
                outcome.unsubscribed, world.ledger.cost_usd, world.ledger.delivered, world.ledger.engaged)
            if world.hcp_cost_usd is not None and outcome.hcp.size:
                np.add.at(world.hcp_cost_usd, outcome.hcp, outcome.cost_usd)
            outcomes[t] = outcome

        u_rx, u_transition, u_refill = (self.uniforms(name, day) for name in ("rx", "transitions", "refills"))
        rx = np.empty((n, worlds[0].pop.n_hcps), dtype=np.int32)  # rows go to the day records: a new array a day
        expected_out = np.empty(rx.shape) if self.per_hcp_money else self._no_values
        expected, rx_total, nrx_total = kernels.daily_rows(
            active, working, u_rx, u_refill, u_transition, state["adoption"], state["goodwill"], state["confusion"],
            state["contact_load"], state["patients"], state["account_access"], self.pop["account"],
            self.pop["class_rx_per_day"], response.brand_share, response.access_factor, self.kol_offsets,
            self.kol_edge_kol, self.kol_edge_follower, response._up_base, response._up_slope, response._up_peer,
            response._down_base, response._down_damp, response._day_params, rx, state["nrx"], expected_out,
            self.hcp_money["hcp_margin_usd"] if self.per_hcp_money else self._no_values,
            self.economics.margin_per_rx_usd,
        )  # fmt: skip
        for t in hooked:
            world = worlds[t]
            expected_per_hcp = expected_out[t] if self.per_hcp_money and working else None
            rx[t], expected[t], rx_total[t] = world.response.advance_day(
                world.state, working, u_rx[t], u_transition[t], u_refill[t], expected_out=expected_per_hcp)
            if expected_per_hcp is not None:
                world.hcp_margin_usd += expected_per_hcp * self.economics.margin_per_rx_usd
            nrx_total[t] = int(world.state.nrx.sum()) if working else 0

        bounds, blocked, counts = out_offsets.tolist(), blocked.tolist(), counts.tolist()
        expected, rx_total, nrx_total = expected.tolist(), rx_total.tolist(), nrx_total.tolist()
        day_outcomes = []
        for t in range(n):
            outcome = outcomes.get(t)
            if outcome is None:
                a, b = bounds[t], bounds[t + 1]
                outcome = TouchOutcome(*[column[a:b] for column in columns], blocked_no_consent=blocked[t][0],
                                       blocked_cap=blocked[t][1])
            day_outcomes.append(outcome)
        if outcomes:  # a wrapped territory's touches are its own: the flat columns again
            touch_offsets = offsets_of([outcome.hcp.size for outcome in day_outcomes])
            touch_hcp = joined([outcome.hcp for outcome in day_outcomes])
            touch_channel = joined([outcome.channel for outcome in day_outcomes])
        else:
            touch_offsets, touch_hcp, touch_channel = out_offsets, columns[0], columns[1]
        need_hcp, need_offsets, need_values = self.need_reports(day, touch_hcp, touch_channel, touch_offsets)
        need_bounds = need_offsets.tolist()
        records = []
        for t, world in enumerate(worlds):
            a, b = need_bounds[t], need_bounds[t + 1]
            records.append(world.close_day(day, working, day_outcomes[t], counts[t], rx[t], expected[t], rx_total[t],
                                           nrx_total[t], need_hcp[a:b], need_values[a:b]))
        if not outcomes:  # every record's touches are slices of the day's flat columns
            self._days[day] = (records, out_offsets, [columns[i] for i in PUBLISHED_COLUMNS], rx)

    def need_reports(self, day: int, touch_hcp: np.ndarray, touch_channel: np.ndarray,
                     touch_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The needs each territory records today (flat HCPs, their offsets, the recorded shares): what its reps
        noted or were answered and, once customers reveal it on the portal, the need of a portal visitor the view
        does not know yet; each recorded with noise from the territory's own pipeline stream."""
        worlds = self.worlds
        pending = [world._pending_notes.get(day) for world in worlds]
        if any(pending):
            noted: list[np.ndarray] = []
            noted_offsets = np.zeros(self.n + 1, dtype=np.int64)
            k = 0
            for t, notes in enumerate(pending):
                for kind, h in notes or ():
                    if kind == "need" and h.size:
                        noted.append(h)
                        k += h.size
                noted_offsets[t + 1] = k
            flat = np.concatenate(noted, dtype=np.int64) if noted else NO_NOTES
        else:  # most days of most territories: no rep worked or noted anything
            flat, noted_offsets = NO_NOTES, self._no_notes
        if self._portal_reveals is None:
            self._portal_reveals = has(worlds[0].stage, "customer_reveals_need_on_portal")
        hcp, offsets = kernels.need_reports_rows(flat, noted_offsets, touch_hcp, touch_channel, touch_offsets, WEBSITE,
                                                 self._portal_reveals, self._view_rows()["need_known"])
        need = self.pop["need"]
        if not hcp.size:
            return hcp, offsets, self._no_needs
        n_themes = need.shape[2]
        noise = np.empty((hcp.size, n_themes))
        bounds = offsets.tolist()
        for t, world in enumerate(worlds):
            a, b = bounds[t], bounds[t + 1]
            if b > a:
                noise[a:b] = world._rng_pipeline.normal(0.0, 0.05, size=(b - a, n_themes))
        return hcp, offsets, kernels.noisy_need_rows(need, hcp, offsets, noise)

    def publish(self, now: float) -> None:
        """02:00 (and every batch interval): each territory's pipeline publishes the records old enough to its view,
        day by day, all territories' record of a day in one compiled call (``kernels.absorb_rows``)."""
        worlds = self.worlds
        level = worlds[0].pipeline.level
        for _ in range(worlds[0].pipeline.due(now)):  # one calendar: every territory has the same days pending
            self._absorb([world.pipeline.pending.popleft() for world in worlds], level)
        # each row summed as alone (NumPy sums a contiguous row the same way in a 2-D array)
        published = self._view_rows()["published_rx"].sum(axis=1).tolist()
        for world, total in zip(worlds, published):
            world.ledger.observed_rx = total

    def _absorb(self, records: list[DayRecord], level: PipelineLevel) -> None:
        worlds, view = self.worlds, self._view_rows()
        day = records[0].day
        kept = self._days.pop(day, None)
        for old in [d for d in self._days if d < day]:  # never published (a copy's records): forget
            del self._days[old]
        if kept is not None and all(a is b for a, b in zip(kept[0], records)):  # this batch's own day
            offsets, columns, rx = kept[1], kept[2], kept[3]
        else:  # records made elsewhere (a resumed or copied territory's): join them
            touches = [record.touches for record in records]
            offsets = offsets_of([t.hcp.size for t in touches])
            columns = [joined([getattr(t, name) for t in touches]) for name in PUBLISHED_FIELDS]
            rx = records[0].rx[np.newaxis] if self.n == 1 else np.stack([record.rx for record in records])
        written = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(np.count_nonzero(rx, axis=1), out=written[1:])
        u_keep, noise, u_present = np.empty(offsets[-1]), np.empty(written[-1]), np.empty(written[-1])
        touch_bounds, rx_bounds = offsets.tolist(), written.tolist()
        for t, world in enumerate(worlds):  # each territory's pipeline stream, in the order a view draws them
            rng = world._rng_pipeline
            rng.random(out=u_keep[touch_bounds[t]:touch_bounds[t + 1]])
            a, b = rx_bounds[t], rx_bounds[t + 1]
            noise[a:b], u_present[a:b] = rx_noise(rng, b - a, level)
        suggested = kernels.absorb_rows(
            day, offsets, *columns, u_keep, covered_mask(level.covered_channels), level.missing_share,
            view["last_touch_day"], view["delivered"], view["engaged"], view["progress"], view["email_consent"],
            view["remote_consent"], rx, noise, u_present, written, view["rx_ring"], view["published_rx"],
        )  # fmt: skip
        for t, (world, record) in enumerate(zip(worlds, records)):
            world.view.absorbed(record, int(suggested[t]))

    def _view_rows(self) -> dict[str, np.ndarray]:
        """The views' arrays the publication writes, as rows of the batch's (bound at the first publication)."""
        if self._view is None:
            self._view = bind_rows([world.view for world in self.worlds], VIEW_ROWS)
        return self._view

    def field_day(self, day: int) -> None:
        """08:00 of a working day: every rep's day of calls in every territory (``kernels.field_rows``), the visits
        queued for 23:00; at sales 3 each rep then intervenes on what the other channels have pending for the
        customers she met."""
        worlds, first = self.worlds, self.worlds[0]
        stage = first.stage
        field = self._field_rows()
        for t, world in enumerate(worlds):
            world._rng_field.random(out=self._field_u[t])
        if self._values_from_priority:  # sales 3: her own picks ranked by what the orchestrator knows
            self._customer_priorities(self._pick_value)
        self._stack_suggestions()
        for t, world in enumerate(worlds):
            self._view_progress[t] = world.view.progress
            self._fills_free_slots[t] = world.field.fills_free_slots
        queues = self.queues
        queues.reserve(int(queues.size.max()) + self._field_u.shape[1] * self._field_u.shape[2])
        counts, answered, noted, no_see, offsets = kernels.field_rows(
            float(day), self._field_u, self._suggested_hcp, self._suggested_theme, self._suggested_ask,
            field["pointer"], field["trust"], field["knows_no_see"], field["knows_need"], field["last_visit_day"],
            field["rep_progress"], field["failed_visits"], field["seen_visits"], self._own_order, self._view_progress,
            has(stage, "rep_uses_shared_insight"), has(stage, "rep_records_knowledge"), self.pop["need_relevance"],
            first.field.availability, self._archetype, first.field._params, self._fills_free_slots,
            has(stage, "rep_coached_on_engagement"), field["chose_other_channel"], self._pick_value,
            has(stage, "rep_intervenes_on_channels"), FIELD_RECENT_DAYS, first.pop.n_themes, REP_VISIT, EMAIL,
            REMOTE_DETAIL, queues.size, queues.day, queues.hcp, queues.channel, queues.theme, queues.origin,
            queues.question, queues.engaged_hint, queues.time,
        )  # fmt: skip
        for t, world in enumerate(worlds):
            led = world.ledger
            n_answered = int(offsets[0, t + 1] - offsets[0, t])
            led.suggestions_accepted += int(counts[t, 1])
            led.suggestions_dismissed += int(counts[t, 0])
            led.questions_answered += n_answered
            led.rep_interventions += int(counts[t, 2])
            notes = world._pending_notes[day]
            notes.append(("need", answered[offsets[0, t]:offsets[0, t + 1]]))
            notes.append(("need", noted[offsets[1, t]:offsets[1, t + 1]]))
            notes.append(("no_see", no_see[offsets[2, t]:offsets[2, t + 1]]))
            notes.append(("dismissed", int(counts[t, 0])))

    def _field_rows(self) -> dict[str, np.ndarray]:
        """The reps' arrays as rows of the batch's (bound at the first field day) and the day's work buffers."""
        if self._field is None:
            forces = [world.field for world in self.worlds]
            self._field = bind_rows(forces, FIELD_ROWS)
            first = forces[0]
            self._field_u = np.empty((self.n, first.n_reps, first.slots, 4))
            width = max(force.own_order.shape[1] for force in forces)
            self._own_order = np.full((self.n, first.n_reps, width), -1, dtype=np.int64)
            for t, force in enumerate(forces):
                self._own_order[t, :, :force.own_order.shape[1]] = force.own_order
            self._archetype = stack_rows([world.pop for world in self.worlds], "archetype")
            self._values_from_priority = has(self.worlds[0].stage, "rep_measured_on_outcome")
            self._pick_value = (np.empty((self.n, first.pop.n_hcps)) if self._values_from_priority
                                else stack_rows(forces, "_potential").astype(float))
            self._view_progress = np.empty((self.n, first.pop.n_hcps), dtype=np.int64)
            self._fills_free_slots = np.empty(self.n, dtype=np.bool_)
        return self._field

    def _customer_priorities(self, out: np.ndarray) -> None:
        """Every territory's ``World.customer_priority`` into the rows of ``out``: the public value of all
        territories in one compiled call, the tested rank weights and the oracle's view territory by territory."""
        worlds = self.worlds
        oracle = [world.oracle_view for world in worlds]
        active = ~np.array(oracle) if any(oracle) else self._all_active
        kernels.customer_value_rows(active, self.pop["class_rx_per_day"], self.response.access_factor,
                                    self.state["account_access"], self.pop["account"], self.kol_offsets,
                                    self.kol_edge_kol, self.kol_edge_follower, worlds[0].kol_weight(), out)
        for t, world in enumerate(worlds):
            if oracle[t]:
                out[t] = world.customer_priority()
            elif world.testing_efficacy:
                out[t] *= world.tested_rank_weight()

    def _stack_suggestions(self) -> None:
        """The reps' suggestion queues as one array per column, padded with empty slots (-1) to the longest; stacked
        again only after a territory's queue was replaced (once per decision)."""
        forces = [world.field for world in self.worlds]
        if self._suggestions_from is not None and all(
                force.queue_hcp is source for force, source in zip(forces, self._suggestions_from)):
            return
        width = max(force.queue_hcp.shape[1] for force in forces)
        shape = (self.n, forces[0].n_reps, width)
        self._suggested_hcp = np.full(shape, -1, dtype=np.int64)
        self._suggested_theme = np.zeros(shape, dtype=np.int64)
        self._suggested_ask = np.zeros(shape, dtype=np.bool_)
        for t, force in enumerate(forces):
            w = force.queue_hcp.shape[1]
            self._suggested_hcp[t, :, :w] = force.queue_hcp
            self._suggested_theme[t, :, :w] = force.queue_theme
            self._suggested_ask[t, :, :w] = force.queue_ask
        self._suggestions_from = [force.queue_hcp for force in forces]

    def marketing_emails(self, day: float) -> None:
        for world in self.worlds:
            world.marketing_emails(day)

    def marketing_remote(self, day: float) -> None:
        for world in self.worlds:
            world.marketing_remote(day)

    def next_webinar_day(self, now: float) -> float:
        return self.worlds[0].next_webinar_day(now)  # one configuration: one webinar calendar

    def invite_to_webinar(self, event_day: float) -> None:
        for world in self.worlds:
            world.invite_to_webinar(event_day)

    def hold_webinar(self, event_day: float) -> None:
        for world in self.worlds:
            world.hold_webinar(event_day)

    def review_access(self, now: float) -> None:
        for world in self.worlds:
            world.review_access(now)
