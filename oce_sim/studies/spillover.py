"""How much of a segment's play lands outside its segment: the spillover factored-ppo's credit ignores (issue 23).

``oce_sim.learning.factored_ppo`` credits the head of segment ``k`` with the rewards of its *cohort*, the HCPs in
segment ``k`` when the play was chosen, wherever they move later.  A play also moves customers it never addresses:
the field's capacity is shared (visits booked in one segment are not made in another; a held segment's slots go to
the reps' own picks), a KOL sways followers in other segments, and the touches change contact load and the reps'
days.  This module measures that part on paired seeds:

1. play a base plan (one play per segment, held all year: :class:`~oce_sim.agents.stationary.StationaryPlan`) on a
   seed, with the env's per-HCP split of the expected reward on (``env.hcp_rewards``, ``env.reward: expected``:
   what factored-ppo trains on by default);
2. on the same seed, play it again with segment ``k``'s play replaced by ``hold`` for weeks ``[first, first+weeks)``
   (the two runs are identical before ``first``);
3. the play's effect on an HCP is his reward from week ``first`` on (the horizon's value included) in the base run
   minus in the held run.  *Own*: summed over the HCPs in segment ``k`` at any decision of those weeks in either run
   (every customer the play could address, so a conversion that moves a customer to another segment stays own);
   *others*: summed over every other HCP.  No play addresses the others: what moves them is spillover, which the
   factored credit hands to other heads (and the seed's shared random streams, which move them both ways and
   average out over seeds).

The spillover ratio is ``mean(others) / mean(own)`` over the (seed, segment) units, with Fieller's interval
(:func:`oce_sim.studies.gap.paired_ratio`): -0.3 means that for each dollar a play earns its own cohort the other
segments lose 30 cents; +1 that they gain as much again.  Results are in USD (reward units x
``env.reward_scale_usd``).  ``experiments/factored_spillover.py`` runs it; docs/PERFORMANCE.md §8 states the number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from oce_sim.agents.base import N_SEG, apply_mask
from oce_sim.agents.stationary import StationaryPlan
from oce_sim.config import ScenarioConfig, load_scenario
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.world import dispatch

from .evaluation import strategy_config, t_interval
from .gap import paired_ratio

UNIT_COLUMNS = ["seed", "segment", "own_usd", "others_usd", "cohort_hcps"]


@dataclass(frozen=True)
class Window:
    """The weeks (decision epochs) the segment holds: ``first`` .. ``first + weeks - 1``."""

    first: int = 0
    weeks: int = 52

    def __post_init__(self) -> None:
        if self.first < 0 or self.weeks < 1:
            raise ValueError(f"a window starts at week >= 0 and lasts >= 1 week, got first={self.first}, "
                             f"weeks={self.weeks}")

    def covers(self, step: int) -> bool:
        return self.first <= step < self.first + self.weeks


def _play(env: TerritoryEnv, plan: StationaryPlan, seed: int, segment: int | None,
          window: Window) -> tuple[np.ndarray, np.ndarray]:
    """One episode: per-step per-HCP rewards ``(T, H)`` and segments ``(T, H)``; ``segment`` held in ``window``."""
    obs, _ = env.reset(seed=seed)
    rewards, segments = [], []
    done, step = False, 0
    while not done:
        mask = env.action_masks().reshape(N_SEG, dispatch.N_PLAYS)
        action, _ = plan.predict(obs, deterministic=True, action_masks=mask)
        if segment is not None and window.covers(step):
            action = np.array(action, dtype=np.int64)
            action[segment] = dispatch.HOLD
            action = apply_mask(action, mask)
        obs, _, terminated, truncated, info = env.step(action)
        done, step = terminated or truncated, step + 1
        rewards.append(np.asarray(info["hcp_reward"], dtype=float))
        segments.append(np.asarray(info["hcp_segment"]))
    return np.stack(rewards), np.stack(segments)


def measure(scenario: ScenarioConfig, plays: Sequence[int | str], seeds: Sequence[int],
            segments: Sequence[int] = tuple(range(N_SEG)), window: Window = Window(),
            stage: int = 3) -> pd.DataFrame:
    """One row per (seed, segment): the play's effect on its own cohort and on every other HCP (USD; module
    docstring), and the cohort's size.  ``plays``: the base plan, one play per segment (indices or names)."""
    if not seeds:
        raise ValueError("the spillover needs at least one seed")
    bad = [s for s in segments if not 0 <= int(s) < N_SEG]
    if bad or not segments or len(set(segments)) != len(segments):
        raise ValueError(f"segments must be distinct indices in 0-{N_SEG - 1}, got {list(segments)}")
    plan = StationaryPlan(plays, stage, name="spillover base")
    config = strategy_config(load_scenario(scenario.model_dump(mode="python"),
                                           overrides={"env": {"hcp_rewards": True, "reward": "expected"}}), plan)
    scale = config.env.reward_scale_usd
    env = TerritoryEnv(scenario=config)
    rows = []
    try:
        for seed in seeds:
            base_reward, base_segment = _play(env, plan, int(seed), None, window)
            last = min(window.first + window.weeks, len(base_reward))
            if window.first >= len(base_reward):
                raise ValueError(f"the window starts at week {window.first}, after the episode's {len(base_reward)}")
            for segment in segments:
                held_reward, held_segment = _play(env, plan, int(seed), int(segment), window)
                in_window = slice(window.first, last)
                cohort = ((base_segment[in_window] == segment) | (held_segment[in_window] == segment)).any(axis=0)
                effect = (base_reward[window.first:] - held_reward[window.first:]).sum(axis=0) * scale
                rows.append(dict(seed=int(seed), segment=dispatch.SEGMENTS[int(segment)],
                                 own_usd=float(effect[cohort].sum()), others_usd=float(effect[~cohort].sum()),
                                 cohort_hcps=int(cohort.sum())))
    finally:
        env.close()
    return pd.DataFrame(rows, columns=UNIT_COLUMNS)


def summarise(units: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per segment and over all units (``segment == "all"``): mean own and others' effect with t-intervals, and the
    spillover ratio others / own with Fieller's interval (NaN where the own effect is not above zero on average, or
    with one unit)."""
    rows = []
    groups = [(segment, frame) for segment, frame in units.groupby("segment", sort=False)] + [("all", units)]
    for segment, frame in groups:
        own, others = frame.own_usd.to_numpy(), frame.others_usd.to_numpy()
        row: dict[str, object] = dict(segment=segment, units=len(frame))
        for name, values in (("own", own), ("others", others)):
            ci = t_interval(values, confidence)
            row.update({f"{name}_usd": ci["diff_mean"], f"{name}_low": ci["diff_low"],
                        f"{name}_high": ci["diff_high"]})
        ratio = paired_ratio(others, own, confidence) if len(frame) >= 2 else None
        row.update(ratio=ratio.estimate if ratio else float("nan"), ratio_low=ratio.low if ratio else float("nan"),
                   ratio_high=ratio.high if ratio else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["UNIT_COLUMNS", "Window", "measure", "summarise"]
