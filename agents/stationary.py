"""A stationary plan: one play per segment, held every week of the episode.

The plans a stage permits are the space that :mod:`oce_sim.studies.planner` searches for "the best plan each stage
allows" (``best@K``).  The plan is played through :meth:`Policy.predict`, so the env's mask applies every week: a
play the stage (or an empty segment) forbids falls back as :func:`agents.base.apply_mask` says.

``best@K`` names the plan found with an evaluation budget of K episodes.  It depends on the scenario and the stage,
which a strategy's name does not carry, so it is resolved above this layer
(``oce_sim.studies.planner.make_strategy(name, scenario, stage)``); :func:`best_budget` only reads the name.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

from oce_sim.config import StageConfig
from oce_sim.world import dispatch

from .base import N_SEG, Observation, Policy

BEST_PREFIX = "best@"
_BEST = re.compile(r"best@([1-9][0-9]*)")


def best_budget(name: str) -> int | None:
    """K of a ``best@K`` strategy name (K >= 1 episodes), else None."""
    match = _BEST.fullmatch(name)
    return int(match.group(1)) if match else None


def plan_text(plays: Sequence[int]) -> str:
    """``segment=play`` for every segment, comma-separated (for tables and logs)."""
    return ", ".join(f"{seg}={dispatch.PLAYS[int(p)]}" for seg, p in zip(dispatch.SEGMENTS, plays))


class StationaryPlan(Policy):
    """Play ``plays`` (one play per segment, by index or name) every week, at ``stage`` (None: the scenario's)."""

    def __init__(self, plays: Sequence[int | str], stage: int | StageConfig | Mapping[str, int] | None = None,
                 name: str = "stationary"):
        codes = [dispatch.PLAYS.index(p) if isinstance(p, str) else int(p) for p in plays]
        if len(codes) != N_SEG or not all(0 <= p < dispatch.N_PLAYS for p in codes):
            raise ValueError(f"a stationary plan is {N_SEG} plays in 0-{dispatch.N_PLAYS - 1} (or their names), "
                             f"got {list(plays)!r}")
        self.plays = np.array(codes, dtype=np.int64)
        self.stage = stage  # read by strategy_config: the env runs at this stage
        self.name = name

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        return self.plays.copy()  # predict() masks it

    def describe(self) -> str:
        return plan_text(self.plays)


__all__ = ["BEST_PREFIX", "StationaryPlan", "best_budget", "plan_text"]
