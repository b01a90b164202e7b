"""What each maturity stage does with what it can see and control.

Each strategy reads only the observation (the orchestrator's view at its stage) and the action mask (its
authority), so a strategy can never use information its stage does not have, plus the public economics a
planner has (:mod:`agents.planning`: the value of an Rx, the marginal cost of a call or a touch, tier volumes).
"""

from __future__ import annotations

import numpy as np

from oce_sim.world import dispatch
from oce_sim.world.dispatch import BELIEFS, TIERS

from .base import N_SEG, Observation, Policy, segment_index
from .planning import DEFAULT_RULES, PlannerEconomics, RulesOfThumb

D = dispatch
VISITS_PER_WEEK = {D.REP_BIWEEKLY: 0.5, D.REP_MONTHLY: 0.25, D.REP_ASK: 0.5, D.REP_PLUS_EMAIL: 0.5}
QUARTER_STEPS = 13


def tier_share(obs: Observation, tier: str) -> float:
    return float(sum(obs.segment["share_of_customers"][segment_index(tier, b)] for b in BELIEFS))


def field_demand(obs: Observation, plays: np.ndarray) -> float:
    """Visits per customer and week that a plan books (nominal: before caps, cadences and no-see customers)."""
    share = obs.segment["share_of_customers"]
    return float(sum(share[s] * VISITS_PER_WEEK.get(int(plays[s]), 0.0) for s in range(N_SEG)))


class PlannedPolicy(Policy):
    """A stage heuristic that plans with the scenario's public economics (read at reset)."""

    _economics: PlannerEconomics | None = None
    rules: RulesOfThumb = DEFAULT_RULES  # the constants it plans with (an instance may carry tuned ones)

    def reset(self, env, seed=None) -> None:
        super().reset(env, seed)
        self._economics = PlannerEconomics.of_env(env, self.rules)

    @property
    def economics(self) -> PlannerEconomics:
        if self._economics is None:  # predict() without reset(): the default scenario's economics
            self._economics = PlannerEconomics.of_env(None, self.rules)
        return self._economics

    def tier_pays(self) -> np.ndarray:
        """Per segment: does a call to the segment's potential tier cover its marginal cost?"""
        return np.array([self.economics.visit_pays(t) for t in TIERS for _ in BELIEFS])


class Instruction(PlannedPolicy):
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
            frequency = {t: p if self.economics.visit_pays(t) else D.HOLD for t, p in frequency.items()}
            capacity = obs.glob["field_capacity_per_customer"]
            demand = sum(tier_share(obs, t) * VISITS_PER_WEEK.get(p, 0.0) for t, p in frequency.items())
            if demand + 0.25 * tier_share(obs, "low") <= capacity and self.economics.visit_pays("low"):
                frequency["low"] = D.REP_MONTHLY
            self._plan = np.array([frequency[t] for t in TIERS for _ in BELIEFS])
        return self._plan


class Insight(PlannedPolicy):
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
        return np.where(self.tier_pays(), plays, D.HOLD)

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

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        plays = self.rep_plan(obs)
        unknown = obs.segment["need_known_share"] < self.rules.ask_below_known_share
        ask = unknown & (plays == D.REP_BIWEEKLY)
        return np.where(ask & mask[:, D.REP_ASK], D.REP_ASK, plays)


class Intervention(Involvement):
    """Stage 3: one orchestrator sequences every channel.

    The field force is paid for whatever it does, so its capacity goes where a visit pays, as at involvement;
    the orchestrator adds what the other stages cannot: an email between visits carrying the same message
    (``rep_visit_plus_email``), so the sequence continues without two stakeholders colliding; webinar invitations
    for adopters once a month; and remote detail and email for low-potential customers where those pay and a
    visit does not go.  Nothing runs that the orchestrator did not schedule (no marketing calendar).
    """

    name = "intervention"
    stage = 3

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        plays = self.orchestrate_marketing(super().act(obs, mask))
        return self.fill_field_capacity(obs, mask, plays)

    def orchestrate_marketing(self, plays: np.ndarray) -> np.ndarray:
        """The marketing plays of the orchestrator (marketing stage 3) added to a field plan."""
        plays = np.array(plays, copy=True)  # a field plan may be cached (instruction's quarterly plan)
        econ = self.economics
        week = self._step
        for s in range(N_SEG):
            tier, belief = TIERS[s // 3], BELIEFS[s % 3]
            if tier == "low":
                digital = {"non_prescriber": D.EMAIL_PLAY, "trialing": D.REMOTE, "adopter": D.EMAIL_PLAY}[belief]
                pays = econ.remote_pays(tier) if digital == D.REMOTE else econ.email_pays(tier)
                if pays:
                    plays[s] = digital
            elif belief == "adopter":
                if week % 4 == 1 and econ.webinar_pays(tier):
                    plays[s] = D.WEBINAR_PLAY
                elif plays[s] == D.HOLD and econ.email_pays(tier):
                    plays[s] = D.EMAIL_PLAY
            elif plays[s] == D.REP_BIWEEKLY and econ.email_pays(tier):
                plays[s] = D.REP_PLUS_EMAIL
        return plays

    def fill_field_capacity(self, obs: Observation, mask: np.ndarray, plays: np.ndarray,
                            target: float | None = None) -> np.ndarray:
        """The reps are paid anyway: while the plan leaves field capacity unused, add visits where they pay most.

        A plan's nominal demand overstates the calls it yields (the CRM keeps each customer's cadence and cap,
        no-see customers drop out), so the planner books up to ``rules.field_overbooking`` x the field's capacity, or up
        to ``target`` visits per customer and week where given."""
        plays = plays.copy()
        share = obs.segment["share_of_customers"]
        demand = field_demand(obs, plays)
        if target is None:
            target = self.rules.field_overbooking * obs.glob["field_capacity_per_customer"]
        upgrade = {D.HOLD: D.REP_MONTHLY, D.EMAIL_PLAY: D.REP_PLUS_EMAIL, D.REMOTE: D.REP_MONTHLY,
                   D.WEBINAR_PLAY: D.WEBINAR_PLAY, D.REP_MONTHLY: D.REP_BIWEEKLY}
        by_value = sorted(range(N_SEG), key=lambda s: (-self.economics.detail_value_usd[TIERS[s // 3]], s % 3))
        for s in by_value:
            if demand >= target:
                break
            tier = TIERS[s // 3]
            new = upgrade.get(int(plays[s]), int(plays[s]))
            if new == plays[s] or not self.economics.visit_pays(tier) or not mask[s, new]:
                continue
            demand += share[s] * (VISITS_PER_WEEK.get(new, 0.0) - VISITS_PER_WEEK.get(int(plays[s]), 0.0))
            plays[s] = new
        return plays
