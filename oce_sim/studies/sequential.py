"""``oce-sim roadmap --until-settled``: add seeds in rounds until every sub-market's choice is settled
(``oce_sim/studies/settling.py``) or the budget of seeds is spent.

**Rounds (documented choice).**  Every sub-market starts on the seeds ``seed .. seed + episodes - 1``.  After each
round the sub-markets whose choice is settled stop; each open one grows to the seeds its estimate says would settle it
(``seeds_to_settle``), but at most double its seeds in one round (the estimate rests on few seeds' mean and spread),
and to double where the estimate says seeds alone will not do or cannot tell, never past ``max_episodes``.  New seeds
continue the sequence, so each sub-market stays paired across its options and a run reproduces a fixed run of the same
seeds.  Stopping when a choice looks settled favours "settled" a little (optional stopping); the rule is strict
(P(best) at least 0.9 *and* the runner-up's paired interval below zero) to leave room for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from oce_sim.studies import roadmap as rm


@dataclass(frozen=True)
class Outcome:
    """Each sub-market's seeds at the end, by name, and the seeds every round reached (the largest count)."""

    seeds: dict[str, int]
    rounds: list[int]


def next_seeds(seeds: int, needed: float, max_episodes: int) -> int:
    """A sub-market's seeds in the next round: toward the estimate, at most double, within the budget."""
    grow = int(needed) if np.isfinite(needed) and seeds < needed < 2 * seeds else 2 * seeds
    return min(max_episodes, grow)


def run_until_settled(markets: Sequence[rm.Market], portfolio: rm.Portfolio, episodes: int, seed: int, draws: int,
                      horizon_years: float, max_episodes: int,
                      progress: bool = True) -> tuple[pd.DataFrame, list[rm.Appraisal], Outcome]:
    """:func:`oce_sim.studies.roadmap.run` in rounds (the module's docstring)."""
    seeds = {m.spec.name: episodes for m in markets}
    parts = [rm.simulate(markets, episodes, seed, progress)]
    rounds = [episodes]
    while True:
        results = pd.concat(parts, ignore_index=True)
        appraisals = [rm.appraise(results, m, horizon_years, portfolio.uncertainty, draws, seed) for m in markets]
        grow = {}
        for market, appraisal in zip(markets, appraisals):
            n = seeds[market.spec.name]
            if not rm.table_verdict(appraisal.table).settled and n < max_episodes:
                grow[market.spec.name] = next_seeds(n, float(appraisal.table.seeds_to_settle.iloc[0]), max_episodes)
        if not grow:
            break
        for market in markets:
            name = market.spec.name
            if name in grow:  # only the new seeds: the earlier ones are kept
                parts.append(rm.simulate([market], grow[name] - seeds[name], seed + seeds[name], progress))
                seeds[name] = grow[name]
        rounds.append(max(seeds.values()))
    tidy, appraisals = rm.appraise_all(results, markets, portfolio, seed, draws, horizon_years)
    return tidy, appraisals, Outcome(seeds, rounds)


def outcome_sentence(outcome: Outcome, markets: Sequence[rm.Market], appraisals: Sequence[rm.Appraisal],
                     max_episodes: int) -> str:
    """How many seeds each sub-market took, in words."""
    parts = []
    for market, appraisal in zip(markets, appraisals):
        n = outcome.seeds[market.spec.name]
        state = ("settled" if rm.table_verdict(appraisal.table).settled
                 else f"not settled at the budget of {max_episodes}" if n >= max_episodes else "not settled")
        parts.append(f"{market.spec.name} {state} on {n} seeds")
    rounds = len(outcome.rounds)
    return (f"Run until settled (--until-settled, at most {max_episodes} seeds a sub-market) in {rounds} "
            f"round{'s' if rounds != 1 else ''} ({' -> '.join(map(str, outcome.rounds))} seeds): {'; '.join(parts)}.")


__all__ = ["Outcome", "next_seeds", "outcome_sentence", "run_until_settled"]
