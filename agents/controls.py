"""Controls: no promotion at all, and random masked plays."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from oce_sim.world import dispatch

from .base import N_SEG, Observation, Policy


class NoPromotion(Policy):
    """No promotion at all: no field force (no reps, so no fixed field cost) and no marketing (stage 3, so no
    calendar runs; every segment held).  The counterfactual that incremental revenue and ROI are measured against."""

    name = "no_promotion"
    stage = 3
    env_config = {"population": {"n_reps": 0}}

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        return np.full(N_SEG, dispatch.HOLD)


class RandomMasked(Policy):
    """A uniformly random allowed play per segment (all channels, stage 3)."""

    name = "random"
    stage = 3

    def __init__(self, seed: int | None = None):
        self._rng = np.random.default_rng(seed)

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        super().reset(env, seed)
        if seed is not None:
            self._rng = np.random.default_rng([seed, 7])

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        return np.array([self._rng.choice(np.flatnonzero(row)) for row in mask])
