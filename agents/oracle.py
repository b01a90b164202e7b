"""The rollout oracle: a fortified rollout with hindsight on the multi-period objective.

It is a benchmark with foresight, not an upper bound on what a policy can earn: it is guaranteed to match or beat
its own base policies (below), and a policy outside them may beat it (a trained agent did, MODEL.md §2.14).

:class:`Oracle` ("oracle") sees everything, the future included: the env can be deep-copied and a copy continues
identically (its random streams included), so at a decision point the oracle clones the env, plays each candidate
base policy from the current state to the end of the episode (terminal value included) on the *true* future, and
keeps the best whole trajectory found so far (the incumbent).  It then plays the incumbent's next action; every
``reoptimise_every`` decisions it tries the candidates again from where it stands and switches only to a trajectory
worth strictly more ("fortified rollout", Bertsekas).  Since the env is deterministic given its state and actions,
the realised ``profit_multi_period_usd`` is exactly the incumbent's value, which never decreases.

What it is guaranteed to beat, and what only measured:

* **By construction** (every seed, exactly): the oracle earns at least what each candidate base policy earns on
  that seed *when the base policy runs in the same env config* as the oracle (stage 3, public view at the start).
  That covers the stage-3 ``intervention`` heuristic as evaluated, and the greedy oracle (:class:`GreedyOracle`,
  which runs with ``env.oracle_view``): the executor's view is part of the oracle's action (``World.use_oracle_view``,
  chosen per decision), so the greedy trajectory is reproduced exactly too.
* **Empirically** only: the stage 0-2 heuristics run on envs configured at a lower stage (marketing calendar,
  other data pipeline: a different world), ``no_promotion`` runs without a field force, and trained agents or any
  other policy are not among the candidates.  The oracle's margin over them is measured (docs/MODEL.md §2.14).

The oracle starts on the public view (``env_config`` leaves ``oracle_view`` off) so that the intervention heuristic's
run is reproduced exactly; it switches the ground-truth view on for the trajectories that use it (the greedy
oracle's, ``intervention_truth``).  It reads the truth anyway: the future itself, through its rollouts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

from oce_sim.world import dispatch
from oce_sim.world.batch import play_in_lockstep
from oce_sim.world.response import EMAIL, REMOTE_DETAIL, REP_VISIT, WEBINAR
from oce_sim.world.simulation import Territories
from oce_sim.world.uplift import expected_touch_value_usd, value_horizon_days

from .base import N_SEG, Observation, Policy
from .stage_heuristics import Insight, Intervention, Involvement

D = dispatch
# visits every two weeks dominate monthly ones when a visit pays; asking is moot with the truth in view
PLAY_CHANNEL = {D.REP_BIWEEKLY: REP_VISIT,
                D.REMOTE: REMOTE_DETAIL, D.EMAIL_PLAY: EMAIL, D.WEBINAR_PLAY: WEBINAR}
OBJECTIVE = "profit_multi_period_usd"  # the episode return with env.terminal_value on (realised reward), in USD


class GreedyOracle(Policy):
    """The greedy oracle ("oracle_greedy"): ground-truth view, one touch valued per customer.

    It runs at stage 3 with ``env.oracle_view`` (the orchestrator's view is replaced by the truth, so the executor
    also targets and sequences on true state), and picks, per segment, the play whose summed expected profit over
    the segment's eligible customers is highest (:mod:`oce_sim.world.uplift`, valued over the rest of the episode
    and the discounted tail).  Greedy per epoch, so *not* a bound: heuristics can beat it on the multi-period
    objective.  It is one of the base policies of :class:`Oracle`, which is.
    """

    name = "oracle_greedy"
    stage = 3
    env_config = {"env": {"oracle_view": True}}

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        super().reset(env, seed)
        self._env = env.unwrapped

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        world = self._env.world
        model = world.response
        n = world.pop.n_hcps
        days_left = value_horizon_days(world)  # the multi-period objective: the tail counts too
        segment = world.segments()
        value = {c: expected_touch_value_usd(world, c, days_left) for c in set(PLAY_CHANNEL.values())}
        show_rate = world.config.channels.webinar.show_rate
        cost = {REP_VISIT: model.visit_cost, REMOTE_DETAIL: np.full(n, model.unit_cost[REMOTE_DETAIL]),
                EMAIL: np.full(n, model.unit_cost[EMAIL]), WEBINAR: np.full(n, model.unit_cost[WEBINAR] * show_rate)}
        plays = np.full(N_SEG, D.HOLD)
        for s in range(N_SEG):
            members = segment == s
            best_gain = 0.0
            for play, channel in PLAY_CHANNEL.items():
                if not mask[s, play]:
                    continue
                net = value[channel][members] - cost[channel][members]
                gain = net[net > 0].sum()  # the executor reaches the customers for whom the touch pays
                if gain > best_gain:
                    plays[s], best_gain = play, gain
        return plays


class HoldAll(Policy):
    """Hold every segment (the field force stays, unlike ``no_promotion``): a base policy of the oracle."""

    name = "hold"
    stage = 3

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        return np.full(N_SEG, D.HOLD)


class Broadcast(Intervention):
    """The lower stages' marketing calendar, emulated by the orchestrator on insight's field plan: a base policy of
    the oracle (the stage 0-2 worlds run a calendar that the stage-3 world does not, so no stage-3 heuristic plays it).

    Webinar invitations once a month to every segment without a visit every two weeks, an email between the visits
    of those, remote detail (else email) for the held segments, and the field filled up as at intervention."""

    name = "broadcast"

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        plan = self.rep_plan(obs)
        plays = plan.copy()
        for s in range(N_SEG):
            if self._step % 4 == 1 and plan[s] != D.REP_BIWEEKLY and mask[s, D.WEBINAR_PLAY]:
                plays[s] = D.WEBINAR_PLAY
            elif plan[s] == D.REP_BIWEEKLY and mask[s, D.REP_PLUS_EMAIL]:
                plays[s] = D.REP_PLUS_EMAIL
            elif plan[s] == D.HOLD:
                plays[s] = D.REMOTE if mask[s, D.REMOTE] else D.EMAIL_PLAY
        return self.fill_field_capacity(obs, mask, plays)


class FollowUpEverywhere(Intervention):
    """Visits every two weeks with a follow-up email between them, in every segment the field may reach: a base policy
    of the oracle.  Found by training (``oce-sim train``'s factored PPO converged to it on the default scenario,
    docs/PERFORMANCE.md section 8); the intervention heuristic emails only where its rule of thumb says an email
    pays, which undervalues an email opened as a rep's follow-up and reinforcing her message (MODEL.md §2.3-2.4)."""

    name = "follow_up_everywhere"

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        plays = super().act(obs, mask)
        return np.where(mask[:, D.REP_PLUS_EMAIL], D.REP_PLUS_EMAIL, plays)


@dataclass(frozen=True)
class Candidate:
    """A base policy of the rollout oracle and the executor's view it runs with (True: ground truth)."""

    name: str
    make: Callable[[], Policy]
    truth_view: bool = False


#: the default base policies: the stage-3 heuristic with either view, the greedy oracle, holding everything, the
#: stage-1 and stage-2 field plans played at stage 3 (no calendar: the orchestrator schedules nothing else), and
#: insight's field plan with the calendar's marketing (broadcast), and a follow-up email between visits everywhere
DEFAULT_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("intervention", Intervention, False),
    Candidate("oracle_greedy", GreedyOracle, True),
    Candidate("hold", HoldAll, False),
    Candidate("intervention_truth", Intervention, True),
    Candidate("insight", Insight, False),
    Candidate("involvement", Involvement, False),
    Candidate("broadcast", Broadcast, False),
    Candidate("follow_up_everywhere", FollowUpEverywhere, False),
)
#: a cheap setting for CI-speed tests: the two base policies the oracle is guaranteed to match or beat
GUARANTEED_CANDIDATES: tuple[Candidate, ...] = DEFAULT_CANDIDATES[:2]

Step = tuple[bool, np.ndarray]  # (ground-truth view on, plays)


class Oracle(Policy):
    """Fortified rollout of base policies on the true future (hindsight): at least each base policy's return on
    every seed, not an upper bound on every policy.

    ``candidates``: the base policies (default :data:`DEFAULT_CANDIDATES`); ``reoptimise_every``: try them again
    every this many decisions (1: every week; the episode's start always).  The return on every seed is at least
    every candidate's return in the oracle's own env config (exact, see the module docstring); ``planned_value_usd``
    holds the incumbent's value, which the episode's ``profit_multi_period_usd`` equals at the end.
    """

    name = "oracle"
    stage = 3
    env_config: dict[str, Any] = {}  # starts on the public view: the intervention run is then reproduced exactly

    def __init__(self, candidates: Sequence[Candidate] = DEFAULT_CANDIDATES, reoptimise_every: int = 4,
                 objective: str = OBJECTIVE):
        if not candidates:
            raise ValueError("the oracle needs at least one candidate base policy")
        if reoptimise_every < 1:
            raise ValueError(f"reoptimise_every must be >= 1, got {reoptimise_every}")
        self.candidates = tuple(candidates)
        self.reoptimise_every = int(reoptimise_every)
        self.objective = objective
        self.planned_value_usd = -np.inf
        self.switches: list[tuple[int, str, float]] = []  # (decision, candidate, value) each time the plan improved

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        super().reset(env, seed)
        self._env = env.unwrapped
        self._decision = 0
        self._plan: list[Step] = []
        self.planned_value_usd = -np.inf
        self.switches = []
        # one instance per candidate follows the real episode, so that its memory (week counter, quarterly plan)
        # is right when a rollout starts from a copy of it
        self._shadows: list[Policy] = []
        for candidate in self.candidates:
            policy = candidate.make()
            policy.reset(self._env, seed)
            self._shadows.append(policy)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        if not hasattr(self, "_env"):
            raise RuntimeError("Oracle.reset(env, seed) must be called after env.reset: the oracle plays on the env")
        if not self._plan or self._decision % self.reoptimise_every == 0:
            self._improve()
        truth_view, plays = self._plan.pop(0)
        for policy in self._shadows:  # advance their memory on the real episode (their actions are not used)
            policy.predict(observation, deterministic=True, action_masks=action_masks)
        # The plays go to the env as recorded: the env masks them exactly as in the rollout (the mask the caller
        # passed may predate the view switch, so it is not applied here).
        self._env.world.use_oracle_view(truth_view)
        self._decision += 1
        self._step = getattr(self, "_step", 0) + 1
        return plays.copy(), state

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:  # pragma: no cover - predict is overridden
        raise NotImplementedError("the oracle plays through predict(), on the env it was reset with")

    # -------------------------------------------------------------------------------------------- rollouts
    def _improve(self) -> None:
        """Roll every candidate out from the current state; adopt the best trajectory if it beats the incumbent."""
        best: tuple[float, str, list[Step]] | None = None
        for candidate, (value, plan) in zip(self.candidates, self._rollouts()):
            if best is None or value > best[0]:
                best = (value, candidate.name, plan)
        assert best is not None
        if best[0] > self.planned_value_usd or not self._plan:
            self.planned_value_usd, self._plan = best[0], best[2]
            self.switches.append((self._decision, best[1], best[0]))

    def _rollouts(self) -> list[tuple[float, list[Step]]]:
        """Play a copy of each candidate's shadow on a copy of the env from now to the episode's end, the copies
        advancing together as the territories of one batch (one calendar, one compiled call per phase for all of
        them; each copy runs exactly as it would alone); each candidate's value and steps."""
        copies = [copy.deepcopy((self._env, shadow)) for shadow in self._shadows]  # together: references follow
        envs = [env for env, _ in copies]
        try:
            first = envs[0].world.batch
            Territories.join([env.world for env in envs], now=first.now, wakes=first.wakes())
            observations = []
            for env, candidate in zip(envs, self.candidates):
                env.world.use_oracle_view(candidate.truth_view)
                observations.append(env._observation())  # as the candidate sees the current state with its view
            plans: list[list[Step]] = [[] for _ in envs]

            def act(i: int, observation: np.ndarray, mask: np.ndarray) -> np.ndarray:
                plays, _ = copies[i][1].predict(observation, deterministic=True, action_masks=mask)
                plays = np.asarray(plays, dtype=np.int64)
                plans[i].append((self.candidates[i].truth_view, plays))
                return plays

            infos = play_in_lockstep(envs, act, observations)
            return [(float(info["kpis"][self.objective]), plan) for info, plan in zip(infos, plans)]
        finally:
            for env in envs:
                env.close()
