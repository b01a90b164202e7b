"""One small policy interface for heuristics, controls, the oracle and trained models.

Stable-Baselines3 style: ``predict(observation, state=None, episode_start=None, deterministic=True,
action_masks=None) -> (action, state)``, so a strategy and a trained model run in the same evaluation loop.
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from oce_sim.world import dispatch
from oce_sim.world.observation import GLOBAL_FEATURES, SEGMENT_FEATURES

N_SEG, N_PLAYS = dispatch.N_SEGMENTS, dispatch.N_PLAYS


class Policy:
    """Base class: subclasses implement :meth:`act` on the decoded observation and mask."""

    name: str = "policy"
    #: maturity stage this strategy is designed for (its information and authority)
    stage: int | None = None
    #: extra env config the strategy needs (e.g. the oracle's ground-truth view)
    env_config: Mapping[str, Any] = {}

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        """Called after each ``env.reset``; strategies that keep memory clear it here."""
        self._step = 0

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        mask = np.ones((N_SEG, N_PLAYS), dtype=bool) if action_masks is None else np.asarray(action_masks).reshape(N_SEG, N_PLAYS)
        plays = self.act(Observation(np.asarray(observation, dtype=float)), mask)
        self._step = getattr(self, "_step", 0) + 1
        return apply_mask(plays, mask), state

    def act(self, obs: "Observation", mask: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class Observation:
    """Named access to ``TerritoryEnv`` observations."""

    def __init__(self, vector: np.ndarray):
        per_segment = vector[: N_SEG * len(SEGMENT_FEATURES)].reshape(N_SEG, len(SEGMENT_FEATURES))
        self.segment = {name: per_segment[:, i] for i, name in enumerate(SEGMENT_FEATURES)}
        tail = vector[N_SEG * len(SEGMENT_FEATURES):]
        self.glob = {name: float(tail[i]) for i, name in enumerate(GLOBAL_FEATURES)}


def apply_mask(plays: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Replace plays the mask forbids with the best allowed fallback (a rep play, else hold)."""
    plays = np.asarray(plays, dtype=np.int64).copy()
    for s in range(N_SEG):
        if not mask[s, plays[s]]:
            fallback = [p for p in _FALLBACK[plays[s]] if mask[s, p]]
            plays[s] = fallback[0] if fallback else dispatch.HOLD
    return plays


_FALLBACK = {
    dispatch.HOLD: [],
    dispatch.REP_BIWEEKLY: [dispatch.REP_MONTHLY],
    dispatch.REP_MONTHLY: [],
    dispatch.REP_ASK: [dispatch.REP_BIWEEKLY, dispatch.REP_MONTHLY],
    dispatch.REMOTE: [dispatch.EMAIL_PLAY],
    dispatch.EMAIL_PLAY: [],
    dispatch.WEBINAR_PLAY: [dispatch.EMAIL_PLAY],
    dispatch.REP_PLUS_EMAIL: [dispatch.REP_BIWEEKLY, dispatch.REP_MONTHLY, dispatch.EMAIL_PLAY],
}


def segment_index(tier: str, belief: str) -> int:
    return dispatch.TIERS.index(tier) * len(dispatch.BELIEFS) + dispatch.BELIEFS.index(belief)
