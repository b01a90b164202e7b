"""What the orchestrator knows: its view of the world, fed by a data pipeline with latency.

The pipeline publishes each day's records after ``latency_days``, in batches every ``batch_interval_days``,
keeping only channels that are integrated (``covered_channels``) and losing ``missing_share`` of the rows;
observed prescriptions carry multiplicative noise.  Nothing here reads the ground truth directly except
:meth:`OrchestratorView.sync_ground_truth`, used only by the oracles.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from oce_sim.config import CHANNELS, PipelineLevel, ScenarioConfig
from oce_sim.world import kernels
from oce_sim.world.efficacy import EfficacyTest
from oce_sim.world.population import Population
from oce_sim.world.response import N_CHANNELS, CustomerState, TouchOutcome
from oce_sim.world.rows import RowBound

RX_WINDOW_DAYS = 28
TRIALING_BELOW_SHARE = 0.2  # an observed brand share below this (and above 0) reads as trialing, above as adopting
NEVER = -1e9
# Shared read-only "nothing recorded" defaults: most days record no needs, no-sees or preferences.
NO_HCPS = np.zeros(0, dtype=np.int64)
_NO_NEEDS = np.zeros((0, 1))
NO_HCPS.flags.writeable = False
_NO_NEEDS.flags.writeable = False


@dataclass
class DayRecord:
    """Everything that happened on one day, as the company's systems recorded it."""

    day: int
    touches: TouchOutcome
    rx: np.ndarray
    need_hcp: np.ndarray = field(default_factory=lambda: NO_HCPS)
    need_values: np.ndarray = field(default_factory=lambda: _NO_NEEDS)
    no_see_hcp: np.ndarray = field(default_factory=lambda: NO_HCPS)
    preferred_hcp: np.ndarray = field(default_factory=lambda: NO_HCPS)
    preferred_channel: np.ndarray = field(default_factory=lambda: NO_HCPS)
    suggestions_dismissed: int = 0


@functools.lru_cache(maxsize=16)
def covered_mask(covered_channels: tuple[str, ...]) -> np.ndarray:
    """Boolean mask over CHANNELS of the integrated channels (computed once per pipeline level)."""
    mask = np.array([name in covered_channels for name in CHANNELS])
    mask.flags.writeable = False
    return mask


class OrchestratorView(RowBound):
    """The orchestrator's belief arrays, one row per HCP.  In a batch, the arrays its phases read are rows of the
    batch's (``simulation.VIEW_ROWS``): assigning one copies into the row (``RowBound``)."""

    def __init__(self, config: ScenarioConfig, pop: Population):
        n, t = pop.n_hcps, pop.n_themes
        self.pop = pop
        self.n_themes = t
        self.last_touch_day = np.full((n, N_CHANNELS), NEVER)
        self.progress = np.zeros(n, dtype=np.int64)
        # Opt-in lists are known at the start; unsubscribes reach the view through the pipeline.
        self.email_consent = pop.email_consent.copy()
        self.remote_consent = pop.remote_consent.copy()
        self.need = np.full((n, t), 1.0 / t)
        self.need_known = np.zeros(n, dtype=bool)
        self.no_see = np.zeros(n, dtype=bool)
        self.preferred_channel = np.full(n, -1, dtype=np.int64)
        self.delivered = np.zeros((n, N_CHANNELS))
        self.engaged = np.zeros((n, N_CHANNELS))
        self.rx_ring = np.zeros((RX_WINDOW_DAYS, n), dtype=np.float32)
        self.rx_days_seen = 0
        # Rx published to the view from day 0 on, per HCP (what a deployment observes: env.reward observed)
        self.published_rx = np.zeros(n)
        self.published_through_day = -1
        self.suggestions_accepted = 0
        self.suggestions_dismissed = 0
        self.stage_override: np.ndarray | None = None  # the oracles only: believed stages replaced by the truth
        # Class volume comes from syndicated data: known to every stage.
        self.class_rx_per_day = pop.class_rx_per_day
        self._cache: dict[str, np.ndarray] = {}  # derived beliefs, valid until the view next changes
        # IT stage 3: holdout-tested uplift, learned from the Rx the pipeline publishes (set by the World)
        self.efficacy: EfficacyTest | None = None

    # ------------------------------------------------------------------------------------------- beliefs
    def engagement_rate(self) -> np.ndarray:
        return self.engaged.sum(axis=1) / np.maximum(1.0, self.delivered.sum(axis=1))

    def need_relevance(self) -> np.ndarray:
        cached = self._cache.get("need_relevance")
        if cached is None:
            cached = kernels.relative_need(self.need)
            cached.flags.writeable = False
            self._cache["need_relevance"] = cached
        return cached

    # ------------------------------------------------------------------------------------------- updates
    def absorb(self, record: DayRecord, level: PipelineLevel, rng: np.random.Generator) -> None:
        """Take in one day's record (a batch's territories take theirs in one call: ``Territories.publish``)."""
        touches = record.touches
        u_keep = rng.random(touches.hcp.size)
        suggested = kernels.absorb_touches(
            float(record.day), touches.hcp, touches.channel, touches.theme, touches.origin, touches.engaged,
            touches.unsubscribed, u_keep, covered_mask(level.covered_channels), level.missing_share,
            self.last_touch_day, self.delivered, self.engaged, self.progress, self.email_consent, self.remote_consent,
        )  # fmt: skip
        # Prescriptions: syndicated data, always bought, with noise and gaps.
        # Noise and losses only matter where something was prescribed (zero stays zero).
        noise, u_present = rx_noise(rng, int(np.count_nonzero(record.rx)), level)
        slot = self.rx_ring[record.day % RX_WINDOW_DAYS]
        kernels.publish_rx(slot, record.rx, noise, u_present, level.missing_share)
        if record.day >= 0:  # the market's history before day 0 is no episode's
            self.published_rx += slot
        self.absorbed(record, int(suggested))

    def absorbed(self, record: DayRecord, suggested_visits: int) -> None:
        """What follows the compiled part of taking in ``record``: counts, tests, and what the reps recorded."""
        self._cache.clear()
        self.suggestions_accepted += suggested_visits
        self.suggestions_dismissed += record.suggestions_dismissed
        self.rx_days_seen += 1
        if self.efficacy is not None:
            self.efficacy.on_day(record.day, self.rx_ring[record.day % RX_WINDOW_DAYS])
        if record.need_hcp.size:
            self.need[record.need_hcp] = record.need_values
            self.need_known[record.need_hcp] = True
        if record.no_see_hcp.size:  # most days: none (an empty fancy assignment still costs a few microseconds)
            self.no_see[record.no_see_hcp] = True
        if record.preferred_hcp.size:
            self.preferred_channel[record.preferred_hcp] = record.preferred_channel
        self.published_through_day = max(self.published_through_day, record.day)

    def sync_ground_truth(self, pop: Population, state: CustomerState, day: float) -> None:
        """The oracles only: replace beliefs with the truth."""
        self._cache.clear()
        # in place: in a batch these are rows of the batch's arrays
        self.progress[:] = state.progress
        self.email_consent[:] = state.email_consent
        self.remote_consent[:] = state.remote_consent
        self.need[:] = pop.need
        self.need_known[:] = True
        self.no_see[:] = pop.archetype == 2
        self.preferred_channel[:] = pop.channel_fit.argmax(axis=1)
        sent = state.sent_days.max(axis=2).astype(float)
        self.last_touch_day[:] = np.where(sent > NEVER / 2, sent, NEVER)
        self.published_through_day = int(day)


def rx_noise(rng: np.random.Generator, written: int, level: PipelineLevel) -> tuple[np.ndarray, np.ndarray]:
    """The published prescriptions' multiplicative noise and the uniforms that decide which are lost, for the
    ``written`` HCPs who prescribed (drawn in this order, after the touches' ``u_keep``)."""
    noise = rng.lognormal(-0.5 * level.rx_noise_cv**2, level.rx_noise_cv, size=written)
    return noise, rng.random(written)


class DataPipeline:
    """Holds each day's record until the batch that is allowed to publish it runs."""

    def __init__(self, level: PipelineLevel):
        self.level = level
        self.pending: deque[DayRecord] = deque()

    def submit(self, record: DayRecord) -> None:
        self.pending.append(record)

    def publish(self, now: float, view: OrchestratorView, rng: np.random.Generator) -> int:
        """Publish every record at least ``latency_days`` old to one ``view``; returns how many days were published
        (a batch publishes all its territories' records of a day in one call: ``Territories.publish``)."""
        due = self.due(now)
        for _ in range(due):
            view.absorb(self.pending.popleft(), self.level, rng)
        return due

    def due(self, now: float) -> int:
        """How many of the pending records are at least ``latency_days`` old at ``now`` (published now)."""
        k = 0
        while k < len(self.pending) and self.pending[k].day + 1 + self.level.latency_days <= now + 1e-9:
            k += 1
        return k

