"""Field reps: territories, a working day of timed visits, suggestion acceptance, trust and private knowledge.

Reps are people: a suggestion is executed only if the rep accepts it (probability = the rep's trust in
suggestions); a rep dismisses suggestions she knows are pointless (a no-see HCP) and fills the slot with her
own pick, the highest-potential customer she has not seen lately (the reach-and-frequency habit).  Trust grows
when suggested visits go well and shrinks when they fail.  All reps' days are computed together (arrays of
shape ``[n_reps, slots]``) inside one SimPy process per working day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from oce_sim.config import ScenarioConfig, StageConfig
from oce_sim.world import kernels
from oce_sim.world.population import Population
from oce_sim.world.response import (
    ORIGIN_ORCHESTRATOR,
    ORIGIN_REP_OWN,
    REP_VISIT,
    TouchBatch,
)
from oce_sim.world.rows import RowBound
from oce_sim.world.stages import has

assert (ORIGIN_ORCHESTRATOR, ORIGIN_REP_OWN) == (0, 1)  # the field_day kernel writes these codes

NEVER = -1e9
DAY_START_HOURS = 8.0


def choose_theme(progress: np.ndarray, relevance: np.ndarray, repeat_weight: float = 0.5) -> np.ndarray:
    """Next theme in the intended order, unless a known need makes an earlier theme worth repeating.

    Never jumps ahead of ``progress`` (the themes the sender believes were heard), so a sender whose belief
    is current never sends out of sequence.
    """
    n_themes = relevance.shape[1]
    themes = np.arange(n_themes)[None, :]
    progress = progress.astype(np.int64)[:, None]
    allowed = themes <= np.minimum(progress, n_themes - 1)
    score = np.where(allowed, relevance * np.where(themes == progress, 1.0, repeat_weight), -1.0)
    return score.argmax(axis=1)


@dataclass
class FieldDay:
    batch: TouchBatch
    dismissed: int
    accepted: int
    answered_hcp: np.ndarray
    noted_hcp: np.ndarray
    no_see_hcp: np.ndarray
    expired: int = 0


class FieldForce(RowBound):
    """A territory's reps (in a batch, their per-rep and per-customer arrays are rows of the batch's)."""

    def __init__(self, config: ScenarioConfig, pop: Population, rng: np.random.Generator):
        visit = config.channels.rep_visit
        self.config = config
        self.pop = pop
        self.n_reps = config.population.n_reps
        self.trust = np.full(self.n_reps, config.reps.initial_trust)
        self.knows_need = pop.rep_knows_need.copy()
        self.knows_no_see = pop.rep_knows_need & (pop.archetype == 2)
        self.failed_visits = np.zeros(pop.n_hcps, dtype=np.int16)
        self.seen_visits = np.zeros(pop.n_hcps, dtype=np.int16)
        self.rep_progress = np.zeros(pop.n_hcps, dtype=np.int64)
        # customers whose experience package (customer stage 3) names another channel than the rep's: in the CRM
        self.chose_other_channel = np.zeros(pop.n_hcps, dtype=bool)
        self.last_visit_day = np.full(pop.n_hcps, NEVER)
        mean_call = visit.visit_minutes + visit.travel_minutes
        self.nominal_calls_per_day = visit.working_minutes_per_day / mean_call if mean_call > 0 else 0.0
        self.slots = max(1, math.ceil(visit.working_minutes_per_day / (visit.visit_minutes + 0.5 * visit.travel_minutes)))
        self.availability = np.array([visit.availability.get(a, 0.5) for a in ("traditional", "digital_first", "no_see")])
        # Each rep's own habit list: her HCPs by potential, highest first.
        territory_size = np.bincount(pop.rep[pop.rep >= 0], minlength=self.n_reps) if self.n_reps else np.zeros(0)
        width = int(territory_size.max()) if territory_size.size else 0
        self.own_order = np.full((self.n_reps, max(1, width)), -1, dtype=np.int64)
        if self.n_reps:
            assigned = np.flatnonzero(pop.rep >= 0)
            tie = rng.random(assigned.size)
            order = assigned[np.lexsort((tie, -pop.decile[assigned], pop.rep[assigned]))]
            reps = pop.rep[order]
            first = np.searchsorted(reps, np.arange(self.n_reps))
            self.own_order[reps, np.arange(order.size) - first[reps]] = order
        self.queue_hcp = np.full((self.n_reps, 0), -1, dtype=np.int64)
        self.queue_theme = np.zeros((self.n_reps, 0), dtype=np.int64)
        self.queue_ask = np.zeros((self.n_reps, 0), dtype=bool)
        self.pointer = np.zeros(self.n_reps, dtype=np.int64)
        # Reps work the time the plan leaves free, at every stage; a measurement protocol (the calibration harness's
        # idle field, the tail's continuation without promotion) turns it off to see the plays' touches alone.
        self.fills_free_slots = True
        self._potential = pop.decile + 1.0  # what a coached rep below sales 3 ranks her own picks by
        values = {
            "travel_minutes": visit.travel_minutes,
            "visit_minutes": visit.visit_minutes,
            "question_minutes": visit.question_minutes,
            "working_minutes_per_day": visit.working_minutes_per_day,
            "own_pick_revisit_days": config.reps.own_pick_revisit_days,
            "trust_learning_rate": config.reps.trust_learning_rate,
            "learn_need_per_visit": config.reps.learn_need_per_visit,
            "day_start_hours": DAY_START_HOURS,
        }
        self._params = np.array([values[name] for name in kernels.FIELD_PARAMS], dtype=float)

    def _pick_value(self, stage: StageConfig, customer_value: np.ndarray | None) -> np.ndarray:
        """What a coached rep ranks her own picks by: potential (decile + 1) below sales 3; from it she is measured
        on outcome and ranks them by what the orchestrator knows each customer is worth."""
        if customer_value is None or not has(stage, "rep_measured_on_outcome"):
            return self._potential
        return np.asarray(customer_value, dtype=float)

    @property
    def capacity_available(self) -> bool:
        return self.n_reps > 0 and self.nominal_calls_per_day >= 1.0

    def set_queue(self, hcp: np.ndarray, theme: np.ndarray, ask: np.ndarray) -> int:
        """Replace the suggestion queues; returns how many suggestions of the old queue were never worked."""
        expired = int(((self.queue_hcp >= 0) & (np.arange(self.queue_hcp.shape[1])[None, :] >= self.pointer[:, None])).sum())
        self.queue_hcp, self.queue_theme, self.queue_ask = hcp, theme, ask
        self.pointer = np.zeros(self.n_reps, dtype=np.int64)
        return expired

    def work_day(self, day: int, rng: np.random.Generator, view_progress: np.ndarray, stage: StageConfig,
                 customer_value: np.ndarray | None = None) -> FieldDay:
        """All reps' working day (see :func:`oce_sim.world.kernels.field_day`).  ``customer_value``: what the
        orchestrator knows each customer is worth (``World.customer_priority``); a rep measured on outcome (sales 3)
        ranks her own picks by it instead of potential alone."""
        if not self.capacity_available:
            return FieldDay(TouchBatch.empty(), 0, 0, *(np.zeros(0, dtype=np.int64),) * 3)
        u = rng.random((self.n_reps, self.slots, 4))
        (hcp, theme, origin, asked, met, start, answered, noted, no_see, dismissed, accepted) = kernels.field_day(
            float(day), u, self.queue_hcp, self.queue_theme, self.queue_ask, self.pointer, self.trust,
            self.knows_no_see, self.knows_need, self.last_visit_day, self.rep_progress, self.failed_visits,
            self.seen_visits, self.own_order, view_progress, has(stage, "rep_uses_shared_insight"),
            has(stage, "rep_records_knowledge"), self.pop.need_relevance,
            self.availability, self.pop.archetype, self._params, self.fills_free_slots,
            has(stage, "rep_coached_on_engagement"),
            self.chose_other_channel, self._pick_value(stage, customer_value),
        )  # fmt: skip
        batch = TouchBatch(hcp=hcp, channel=np.full(hcp.size, REP_VISIT, dtype=np.int8), theme=theme,
                           origin=origin, question=asked, engaged_hint=met, time=start)
        return FieldDay(batch, int(dismissed), int(accepted), answered, noted, no_see)
