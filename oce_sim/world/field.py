"""Field reps: territories, a working day of timed visits, suggestion acceptance, trust and private knowledge.

Reps are people: a suggestion is executed only if the rep accepts it (probability = the rep's trust in
suggestions); a rep dismisses suggestions she knows are pointless (a no-see HCP) and fills the slot with her
own pick, the highest-potential customer she has not seen lately (the reach-and-frequency habit).  Trust grows
when suggested visits go well and shrinks when they fail.  All reps' days are computed together (arrays of
shape ``[n_reps, slots]``) inside one SimPy process per working day.
"""

from __future__ import annotations

import math

import numpy as np

from oce_sim.config import ScenarioConfig
from oce_sim.world import kernels
from oce_sim.world.population import Population
from oce_sim.world.response import (
    ORIGIN_ORCHESTRATOR,
    ORIGIN_REP_OWN,
)
from oce_sim.world.rows import RowBound

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

    @property
    def capacity_available(self) -> bool:
        return self.n_reps > 0 and self.nominal_calls_per_day >= 1.0

    def set_queue(self, hcp: np.ndarray, theme: np.ndarray, ask: np.ndarray) -> int:
        """Replace the suggestion queues; returns how many suggestions of the old queue were never worked."""
        expired = int(((self.queue_hcp >= 0) & (np.arange(self.queue_hcp.shape[1])[None, :] >= self.pointer[:, None])).sum())
        self.queue_hcp, self.queue_theme, self.queue_ask = hcp, theme, ask
        self.pointer = np.zeros(self.n_reps, dtype=np.int64)
        return expired
