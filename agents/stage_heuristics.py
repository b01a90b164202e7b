"""What each maturity stage does with what it can see and control.

Each strategy reads only the observation (the orchestrator's view at its stage) and the action mask (its
authority), so a strategy can never use information its stage does not have.
"""

from __future__ import annotations

import numpy as np

from .base import N_SEG, Observation, Policy, segment_index
from oce_sim.world import dispatch
from oce_sim.world.dispatch import BELIEFS, TIERS

D = dispatch
VISITS_PER_WEEK = {D.REP_BIWEEKLY: 0.5, D.REP_MONTHLY: 0.25, D.REP_ASK: 0.5}
QUARTER_STEPS = 13


def tier_share(obs: Observation, tier: str) -> float:
    return float(sum(obs.segment["share_of_customers"][segment_index(tier, b)] for b in BELIEFS))


class Instruction(Policy):
    """Stage 0: the manager's call plan.

    Reach and frequency targets by potential decile (high tier every two weeks, mid monthly, low tier only
    if capacity is left), replanned once a quarter and blind to prescribing signals.  Marketing runs its
    own campaign calendar (the environment does that below marketing stage 3).
    """

    name = "instruction"
    stage = 0

    def reset(self, env, seed=None) -> None:
        super().reset(env, seed)
        self._plan: np.ndarray | None = None

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        if self._plan is None or self._step % QUARTER_STEPS == 0:
            frequency = {"high": D.REP_BIWEEKLY, "mid": D.REP_MONTHLY, "low": D.HOLD}
            capacity = obs.glob["field_capacity_per_customer"]
            demand = sum(tier_share(obs, t) * VISITS_PER_WEEK.get(p, 0.0) for t, p in frequency.items())
            if demand + 0.25 * tier_share(obs, "low") <= capacity:
                frequency["low"] = D.REP_MONTHLY
            self._plan = np.array([frequency[t] for t in TIERS for _ in BELIEFS])
        return self._plan


class Insight(Policy):
    """Stage 1: the rep re-prioritises with shared cross-channel insight, every week.

    Acquire and convert where the value is (non-prescribers and trialists of high and mid potential,
    every two weeks), retain adopters monthly, and leave low-potential non-prescribers alone.  Customers
    whom other channels already reach (recent non-field touches with good engagement) get fewer visits.
    """

    name = "insight"
    stage = 1
    base_plan = {
        ("high", "non_prescriber"): D.REP_BIWEEKLY,
        ("high", "trialing"): D.REP_BIWEEKLY,
        ("high", "adopter"): D.REP_MONTHLY,
        ("mid", "non_prescriber"): D.REP_BIWEEKLY,
        ("mid", "trialing"): D.REP_BIWEEKLY,
        ("mid", "adopter"): D.REP_MONTHLY,
        ("low", "non_prescriber"): D.HOLD,
        ("low", "trialing"): D.REP_MONTHLY,
        ("low", "adopter"): D.HOLD,
    }

    def rep_plan(self, obs: Observation) -> np.ndarray:
        plays = np.array([self.base_plan[(t, b)] for t in TIERS for b in BELIEFS])
        seg = obs.segment
        reached_elsewhere = (seg["days_since_any_touch"] < 0.5 * seg["days_since_rep_visit"]) & (seg["engagement_rate"] > 0.5)
        plays = np.where(reached_elsewhere & (plays == D.REP_BIWEEKLY), D.REP_MONTHLY, plays)
        return plays

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        return self.rep_plan(obs)


class Involvement(Insight):
    """Stage 2: as insight, plus asking what the system does not know.

    Where needs are mostly unknown in a high- or mid-potential segment, the visit comes with the
    questions the system prompts; reps also record what they know (the environment does that at sales
    stage 2), so later messages follow the customer's need.
    """

    name = "involvement"
    stage = 2
    ask_below_known_share = 0.6

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        plays = self.rep_plan(obs)
        unknown = obs.segment["need_known_share"] < self.ask_below_known_share
        ask = unknown & (plays == D.REP_BIWEEKLY)
        return np.where(ask & mask[:, D.REP_ASK], D.REP_ASK, plays)


class Intervention(Involvement):
    """Stage 3: one orchestrator sequences every channel.

    Field visits go where they pay (acquiring and converting high and mid potential); on alternate weeks
    the same customers get an email carrying the same message, so the sequence continues between visits
    without two stakeholders colliding; adopters are retained with email and webinars; low-potential
    customers are served by remote detail and email only.  Nothing runs that the orchestrator did not
    schedule.
    """

    name = "intervention"
    stage = 3

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        plays = super().act(obs, mask)
        week = self._step
        for s in range(N_SEG):
            tier, belief = TIERS[s // 3], BELIEFS[s % 3]
            if tier == "low":
                plays[s] = {"non_prescriber": D.EMAIL_PLAY, "trialing": D.REMOTE, "adopter": D.EMAIL_PLAY}[belief]
            elif belief == "adopter":
                plays[s] = D.REP_MONTHLY if (tier == "high" and week % 2 == 0) else (
                    D.WEBINAR_PLAY if week % 4 == 1 else D.EMAIL_PLAY)
            elif week % 2 == 1 and plays[s] in (D.REP_BIWEEKLY, D.REP_ASK):
                plays[s] = D.EMAIL_PLAY
        return plays
