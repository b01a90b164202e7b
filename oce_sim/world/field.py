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

from oce_sim.config import ScenarioConfig
from oce_sim.world.population import Population
from oce_sim.world.response import ORIGIN_ORCHESTRATOR, ORIGIN_REP_OWN, REP_VISIT, TouchBatch

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


class FieldForce:
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

    @property
    def capacity_available(self) -> bool:
        return self.n_reps > 0 and self.nominal_calls_per_day >= 1.0

    def set_queue(self, hcp: np.ndarray, theme: np.ndarray, ask: np.ndarray) -> int:
        """Replace the suggestion queues; returns how many suggestions of the old queue were never worked."""
        expired = int(((self.queue_hcp >= 0) & (np.arange(self.queue_hcp.shape[1])[None, :] >= self.pointer[:, None])).sum())
        self.queue_hcp, self.queue_theme, self.queue_ask = hcp, theme, ask
        self.pointer = np.zeros(self.n_reps, dtype=np.int64)
        return expired

    def _own_picks(self, day: float, wanted: np.ndarray) -> np.ndarray:
        """Up to ``wanted[r]`` own picks per rep, in her habit order, as an ``[n_reps, slots]`` matrix."""
        order = self.own_order
        safe = np.maximum(order, 0)
        eligible = (order >= 0) & (day - self.last_visit_day[safe] >= self.config.reps.own_pick_revisit_days)
        eligible &= ~self.knows_no_see[safe]
        take = eligible & (np.cumsum(eligible, axis=1) <= wanted[:, None])
        idx = np.argsort(~take, axis=1, kind="stable")[:, : self.slots]
        picks = np.where(np.take_along_axis(take, idx, axis=1), np.take_along_axis(order, idx, axis=1), -1)
        if picks.shape[1] < self.slots:
            picks = np.pad(picks, ((0, 0), (0, self.slots - picks.shape[1])), constant_values=-1)
        return picks

    def work_day(self, day: int, rng: np.random.Generator, view_progress: np.ndarray, sales_stage: int) -> FieldDay:
        visit = self.config.channels.rep_visit
        reps = self.config.reps
        n_reps, k = self.n_reps, self.slots
        empty = FieldDay(TouchBatch.empty(), 0, 0, *(np.zeros(0, dtype=np.int64),) * 3)
        if not self.capacity_available:
            return empty
        cols = self.pointer[:, None] + np.arange(k)[None, :]
        in_queue = cols < self.queue_hcp.shape[1]
        cols_c = np.minimum(cols, max(0, self.queue_hcp.shape[1] - 1))
        if self.queue_hcp.shape[1]:
            sugg = np.where(in_queue, np.take_along_axis(self.queue_hcp, cols_c, axis=1), -1)
            sugg_theme = np.take_along_axis(self.queue_theme, cols_c, axis=1)
            sugg_ask = np.take_along_axis(self.queue_ask, cols_c, axis=1) & in_queue
        else:
            sugg = np.full((n_reps, k), -1)
            sugg_theme = np.zeros((n_reps, k), dtype=np.int64)
            sugg_ask = np.zeros((n_reps, k), dtype=bool)
        u = rng.random((n_reps, k, 4))
        has = sugg >= 0
        safe = np.maximum(sugg, 0)
        accept = has & ~self.knows_no_see[safe] & (u[..., 0] < self.trust[:, None])
        dismissed = has & ~accept
        if not (has.any()):
            return empty
        own = self._own_picks(day, dismissed.sum(axis=1))
        own_rank = np.cumsum(dismissed, axis=1) - 1
        own_slot = np.where(dismissed, np.take_along_axis(own, np.maximum(own_rank, 0), axis=1), -1)
        hcp = np.where(accept, sugg, own_slot)
        valid = hcp >= 0
        hs = np.maximum(hcp, 0)
        # Own picks carry the rep's own message: what she believes comes next, shaped by what she knows.
        belief = self.rep_progress[hs] if sales_stage == 0 else np.maximum(self.rep_progress[hs], view_progress[hs])
        n_themes = self.pop.n_themes
        relevance = np.where(self.knows_need[hs][..., None], self.pop.need_relevance[hs], 1.0)
        own_theme = choose_theme(belief.ravel(), relevance.reshape(-1, n_themes)).reshape(n_reps, k)
        theme = np.where(accept, sugg_theme, own_theme)
        ask = accept & sugg_ask
        success = valid & (u[..., 1] < self.availability[self.pop.archetype[hs]])
        travel = visit.travel_minutes * np.exp(0.3 * (u[..., 2] - 0.5))
        minutes = np.where(valid, travel + np.where(success, visit.visit_minutes + ask * visit.question_minutes, 5.0), 0.0)
        finish = np.cumsum(minutes, axis=1)
        executed = valid & (finish <= visit.working_minutes_per_day)
        # A suggestion accepted but not reached today stays in the queue for tomorrow.
        stuck = accept & ~executed
        consumed = np.where(stuck.any(axis=1), stuck.argmax(axis=1), k)
        consumed = np.minimum(consumed, np.maximum(0, self.queue_hcp.shape[1] - self.pointer))
        self.pointer += consumed
        dismissed_counted = dismissed & (np.arange(k)[None, :] < consumed[:, None])

        ex_h = hcp[executed]
        ex_success = success[executed]
        ex_theme = theme[executed]
        # Trust follows the track record of accepted suggestions.
        acc_ex = accept & executed
        good = (acc_ex & success).sum(axis=1)
        bad = (acc_ex & ~success).sum(axis=1)
        worked = good + bad
        success_share = good / np.maximum(1, worked)
        self.trust = np.where(worked > 0, self.trust + reps.trust_learning_rate * (success_share - self.trust), self.trust)
        # What the rep learns on her visits.
        self.last_visit_day[ex_h] = day
        self.rep_progress[ex_h] = np.where(ex_success & (ex_theme == self.rep_progress[ex_h]), ex_theme + 1,
                                           self.rep_progress[ex_h])
        learned = ex_h[ex_success & (u[..., 3][executed] < reps.learn_need_per_visit)]
        self.knows_need[learned] = True
        failed = ex_h[~ex_success]
        np.add.at(self.failed_visits, failed, 1)
        np.add.at(self.seen_visits, ex_h[ex_success], 1)
        # Two failed calls and never a meeting: the rep concludes the HCP does not see reps.
        self.knows_no_see[failed[(self.failed_visits[failed] >= 2) & (self.seen_visits[failed] == 0)]] = True

        answered = hcp[ask & executed & success]
        noted = ex_h[ex_success & self.knows_need[ex_h]] if sales_stage >= 2 else np.zeros(0, dtype=np.int64)
        no_see = sugg[dismissed_counted & self.knows_no_see[safe]] if sales_stage >= 2 else np.zeros(0, dtype=np.int64)
        times = day + DAY_START_HOURS / 24.0 + (finish[executed] - minutes[executed]) / 1440.0
        batch = TouchBatch(
            hcp=ex_h.astype(np.int64),
            channel=np.full(ex_h.size, REP_VISIT, dtype=np.int8),
            theme=ex_theme.astype(np.int8),
            origin=np.where(accept[executed], ORIGIN_ORCHESTRATOR, ORIGIN_REP_OWN).astype(np.int8),
            question=ask[executed],
            engaged_hint=ex_success.astype(np.int8),
            time=times,
        )
        return FieldDay(batch, int(dismissed_counted.sum()), int((accept & executed).sum()), answered, noted, no_see)
