"""Oracle upper bound: sees the ground truth and plays greedily on the true expected uplift.

It runs at stage 3 with ``env.oracle_view`` (the orchestrator's view is replaced by the truth, so the
executor also targets and sequences on true state), and picks, per segment, the play whose summed
expected profit over the segment's eligible customers is highest.  Greedy per epoch (values each touch over
the rest of the episode and the discounted tail), so a bound to read results against, not a proof of optimality.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from .base import N_SEG, Observation, Policy
from oce_sim.world import dispatch
from oce_sim.world.response import EMAIL, REMOTE_DETAIL, REP_VISIT, WEBINAR
from oce_sim.world.uplift import expected_touch_value_usd, value_horizon_days

D = dispatch
# visits every two weeks dominate monthly ones when a visit pays; asking is moot with the truth in view
PLAY_CHANNEL = {D.REP_BIWEEKLY: REP_VISIT,
                D.REMOTE: REMOTE_DETAIL, D.EMAIL_PLAY: EMAIL, D.WEBINAR_PLAY: WEBINAR}


class Oracle(Policy):
    name = "oracle"
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
