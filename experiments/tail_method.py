"""Does the block tail move any decision?  The golden suite's paired differences with the block and the daily tail.

The value left at the horizon (``oce_sim.world.tail``) steps up to four weeks at a time; the daily propagation it replaced is
kept as the reference (``method="daily"``).  Neither changes what a strategy does (no policy reads the tail), so
every episode of the suite is played once and valued both ways from the same end state.  For every pair of
strategies of every scenario, the paired difference of ``profit_multi_period_usd`` (year-1 profit + tail) is
compared: the block tail must not move it by more than a quarter of its 95% CI half-width (t-interval over the
seeds).  Also reports each method's CPU time per tail.

    python experiments/tail_method.py --seeds 4
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from oce_sim.agents import make_strategy
from scipy import stats
from tqdm.auto import tqdm

from oce_sim.bench.gate import load_suite, scenario_config
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.studies.evaluation import play_episode, strategy_config
from oce_sim.world.tail import TAIL_METHODS, tail_value

MAX_SHIFT_OF_HALF_WIDTH = 0.25


@dataclass
class Args:
    suite: str = "quick"
    seeds: int | None = None  # None: the suite's episodes
    seed: int | None = None  # None: the suite's first seed


def episode_values(scenario, strategy: str, seed: int) -> dict[str, float]:
    """One episode: year-1 profit and the tail margin (USD) and CPU seconds of each method."""
    policy = make_strategy(strategy)
    env = TerritoryEnv(scenario=strategy_config(scenario, policy))
    values = {"profit_usd": play_episode(env, policy, seed)["kpis"]["profit_usd"]}
    for method in TAIL_METHODS:
        started = time.process_time()
        values[f"tail_{method}"] = tail_value(env.world, method=method).margin_usd
        values[f"seconds_{method}"] = time.process_time() - started
    env.close()
    return values


def paired_shifts(frame: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and pair of strategies: the paired difference of profit (year 1 + tail) with each tail, its 95%
    half-width with the block tail, and the shift as a share of it."""
    rows = []
    for scenario, own in frame.groupby("scenario", sort=False):
        profit = {method: own.pivot_table(index="seed", columns="strategy", values=f"tail_{method}")
                  .add(own.pivot_table(index="seed", columns="strategy", values="profit_usd")) for method in TAIL_METHODS}
        strategies = list(dict.fromkeys(own.strategy))
        n = len(profit["blocks"])
        t = stats.t.ppf(0.975, n - 1) if n > 1 else np.inf
        for a, b in itertools.combinations(strategies, 2):
            blocks = (profit["blocks"][a] - profit["blocks"][b]).to_numpy()
            daily = (profit["daily"][a] - profit["daily"][b]).to_numpy()
            half = t * blocks.std(ddof=1) / np.sqrt(n) if n > 1 else np.inf
            shift = blocks.mean() - daily.mean()
            rows.append(dict(scenario=scenario, pair=f"{a} - {b}", difference_blocks_usd=blocks.mean(),
                             difference_daily_usd=daily.mean(), shift_usd=shift, half_width_usd=half,
                             shift_of_half_width=abs(shift) / half if half > 0 else np.inf))
    return pd.DataFrame(rows)


def main(args: Args) -> tuple[pd.DataFrame, pd.DataFrame]:
    suite = load_suite(args.suite)
    seeds = suite.episodes if args.seeds is None else args.seeds
    first = suite.seed if args.seed is None else args.seed
    rows = []
    jobs = list(itertools.product(suite.scenarios, suite.strategies, range(seeds)))
    for name, strategy, k in tqdm(jobs, desc="tail methods", unit="episode"):
        rows.append(dict(scenario=name, strategy=strategy, seed=first + k,
                         **episode_values(scenario_config(suite, name), strategy, first + k)))
    frame = pd.DataFrame(rows)
    return frame, paired_shifts(frame)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    frame, shifts = main(Args(**vars(parser.parse_args())))
    pd.set_option("display.width", 200)
    print(shifts.sort_values("shift_of_half_width", ascending=False).head(10).to_string(index=False))
    worst = shifts.shift_of_half_width.max()
    print(f"largest shift: {worst:.4f} of its CI half-width (bound {MAX_SHIFT_OF_HALF_WIDTH}); "
          f"tail relative difference blocks/daily: max {np.max(np.abs(frame.tail_blocks / frame.tail_daily - 1)):.2e}")
    for method in TAIL_METHODS:
        print(f"{method}: median {1e3 * frame[f'seconds_{method}'].median():.2f} ms CPU per tail")
