"""The rollout oracle's margins: the oracle against every stage heuristic and the greedy oracle, paired seeds.

The oracle reads the future through its rollouts; it beats its base policies by construction and is not a bound on
what a policy can earn (a trained agent beat it once, docs/MODEL.md §2.14).

Every benchmark scenario, a full year, ``--seeds`` paired seeds: ``profit_multi_period_usd`` of the oracle minus
each strategy's, mean with its 95% t-interval, the number of seeds on which the oracle is below, and the wall time
per oracle episode.  Writes a tidy CSV and a Markdown table (docs/MODEL.md §2.14 quotes it).

    nice -n 10 python experiments/oracle_margins.py --seeds 8
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from oce_sim.agents import make_strategy
from oce_sim.bench.gate import load_suite, scenario_config
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.studies.evaluation import atomic_write_text, play_episode, strategy_config, t_interval

OPPONENTS = ("instruction", "insight", "involvement", "intervention", "random", "oracle_greedy")
METRIC = "profit_multi_period_usd"


def run(scenarios: list[str], seeds: range, oracle_every: int) -> pd.DataFrame:
    rows = []
    for name in scenarios:
        scenario = scenario_config(load_suite("quick"), name)
        for strategy in ("oracle", *OPPONENTS):
            for seed in seeds:
                policy = make_strategy(strategy)
                if strategy == "oracle":
                    policy.reoptimise_every = oracle_every
                env = TerritoryEnv(scenario=strategy_config(scenario, policy))
                start = time.perf_counter()
                kpis = play_episode(env, policy, seed)["kpis"]
                rows.append(dict(scenario=name, strategy=strategy, seed=seed, value=kpis[METRIC],
                                 seconds=time.perf_counter() - start))
                env.close()
            print(name, strategy, flush=True)
    return pd.DataFrame(rows)


def table(results: pd.DataFrame) -> str:
    lines = ["| scenario | oracle s/episode | " + " | ".join(f"vs {o}" for o in OPPONENTS) + " |",
             "|---|---:|" + "---:|" * len(OPPONENTS)]
    for name, group in results.groupby("scenario", sort=False):
        wide = group.pivot(index="seed", columns="strategy", values="value")
        seconds = group[group.strategy == "oracle"].seconds.mean()
        cells = []
        for opponent in OPPONENTS:
            diff = (wide["oracle"] - wide[opponent]).to_numpy() / 1e3
            ci = t_interval(diff, 0.95)
            below = int((diff < 0).sum())
            cells.append(f"{ci['diff_mean']:+,.0f} [{ci['diff_low']:+,.0f}, {ci['diff_high']:+,.0f}]"
                         + (f" ({below} below)" if below else ""))
        lines.append(f"| {name} | {seconds:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--every", type=int, default=4, help="the oracle's reoptimise_every")
    parser.add_argument("--scenarios", default="mature_primary_care,emerging_field,specialty_access,launch_kol")
    parser.add_argument("--out", type=Path, default=Path("results/oracle_margins"))
    args = parser.parse_args()
    results = run(args.scenarios.split(","), range(args.seed, args.seed + args.seeds), args.every)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "results.csv", results.to_csv(index=False))
    text = ("Oracle minus strategy, profit_multi_period_usd (USD thousands), mean [95% paired CI] over "
            f"{args.seeds} seeds from {args.seed}; (n below): seeds on which the oracle earns less.\n\n"
            + table(results))
    atomic_write_text(args.out / "table.md", text + "\n")
    print(text)


if __name__ == "__main__":
    main()
