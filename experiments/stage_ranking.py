"""How robust is the ranking of stages?  Every benchmark scenario over a grid of rep cost x discount rate.

Both settings are pure accounting: the fully loaded rep cost is fixed within the year (no plan depends on it) and
the discount rate only weighs the tail, so every strategy is simulated once per paired seed and the grid is
re-priced from the same episodes: year-1 profit with the fixed field cost x {0.7, 1, 1.3}, plus the value left at
the horizon discounted at the scenario's rate x {0.5, 1, 1.5}.  Writes a tidy CSV and a Markdown report (and, with
``--docs``, the report into docs/MODEL.md between the ranking markers).

Two axes that plans respond to cannot be re-priced: the variable cost of a call (the planners book a visit only
where its value covers it) and the price per prescription (it sets the value of every touch).  ``--call-cost`` and
``--price`` (multipliers, comma-separated) simulate every strategy again for each combination other than x1, x1,
with the market's own history re-run at that economics (a market where calls cost three times as much has been
promoted differently); the report ranks each variant at rep cost x1 and discount x1 and states what it cost
(episodes and seconds).

    python experiments/stage_ranking.py --seeds 10
    python experiments/stage_ranking.py --seeds 10 --call-cost 1,3 --price 0.7,1,1.3   # 5 more variants: 6x the time
    python experiments/stage_ranking.py --seeds 20 --seed 900000 --scenarios default,mature_primary_care   # test seeds

A scenario of the quick suite runs with the suite's overrides (``bench.gate.scenario_config``); any other name or
path (``default``) runs as given.
"""

from __future__ import annotations

import argparse
import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from oce_sim.agents import STRATEGIES as known_strategies
from oce_sim.agents import make_strategy
from oce_sim.bench.gate import load_suite, scenario_config
from oce_sim.config import load_scenario
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.studies.evaluation import atomic_write_text, play_episode, strategy_config
from oce_sim.world.tail import tail_value

STRATEGIES = ("instruction", "insight", "involvement", "intervention", "no_promotion", "random", "oracle")
REP_COST = (0.7, 1.0, 1.3)
DISCOUNT = (0.5, 1.0, 1.5)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "MODEL.md"
BEGIN, END = "<!-- stage-ranking:begin -->", "<!-- stage-ranking:end -->"


@dataclass
class Args:
    seeds: int = 10
    seed: int = 2000
    out: Path = Path("results/stage_ranking")
    docs: bool = False
    call_cost: tuple[float, ...] = (1.0,)  # variable cost per call multipliers (simulated)
    price: tuple[float, ...] = (1.0,)  # price per prescription multipliers (simulated)
    scenarios: tuple[str, ...] | None = None  # None: the quick suite's
    strategies: tuple[str, ...] = field(default=STRATEGIES)


def with_economics(scenario, call_cost: float, price: float):
    """The scenario with its variable cost per call and its price per prescription scaled."""
    if (call_cost, price) == (1.0, 1.0):
        return scenario
    data = scenario.model_dump(mode="python")
    visit = data["channels"]["rep_visit"]
    for key in ("variable_cost_specialist_usd", "variable_cost_primary_care_usd"):
        visit[key] = visit[key] * call_cost
    data["economics"]["price_per_rx_usd"] = data["economics"]["price_per_rx_usd"] * price
    return load_scenario(data)


def episode_values(scenario, strategy: str, seed: int) -> dict[str, float]:
    """One episode: year-1 P&L parts and the tail margin at every discount multiplier."""
    policy = make_strategy(strategy)
    config = strategy_config(scenario, policy)
    env = TerritoryEnv(scenario=config)
    kpis = play_episode(env, policy, seed)["kpis"]
    rate = config.economics.discount_rate_per_year
    values = {"gross_margin": kpis["gross_margin_usd"], "fixed": kpis["cost_fixed_usd"],
              "variable": kpis["cost_variable_usd"], "revenue": kpis["revenue_usd"]}
    for mult in DISCOUNT:
        tail = tail_value(env.world, discount_rate=rate * mult)
        values[f"tail_margin_{mult}"] = tail.margin_usd
    env.close()
    return values


def ranking(frame: pd.DataFrame, column: str) -> str:
    """Strategies by mean ``column``, best first; '>' where the paired 95% CI of the gap to the next excludes 0,
    '≈' where it does not."""
    wide = frame.pivot_table(index="seed", columns="strategy", values=column)
    order = wide.mean().sort_values(ascending=False).index.tolist()
    text = order[0]
    for better, worse in zip(order, order[1:]):
        gap = (wide[better] - wide[worse]).to_numpy()
        half = 1.96 * gap.std(ddof=1) / np.sqrt(gap.size) if gap.size > 1 else np.inf
        text += (" > " if gap.mean() - half > 0 else " ≈ ") + worse
    return text


def main(args: Args) -> str:
    suite = load_suite("quick")
    scenarios = suite.scenarios if args.scenarios is None else list(args.scenarios)
    variants = [v for v in itertools.product(args.call_cost, args.price) if v != (1.0, 1.0)]
    rows, variant_rows, seconds = [], [], {}
    jobs = list(itertools.product([(1.0, 1.0), *variants], scenarios, args.strategies, range(args.seeds)))
    for (call_cost, price), name, strategy, k in tqdm(jobs, desc="stage ranking", unit="episode"):
        started = time.perf_counter()
        given = scenario_config(suite, name) if name in suite.scenarios else load_scenario(name)
        scenario = with_economics(given, call_cost, price)
        values = episode_values(scenario, strategy, args.seed + k)
        seconds[(call_cost, price)] = seconds.get((call_cost, price), 0.0) + time.perf_counter() - started
        row = dict(scenario=name, strategy=strategy, seed=args.seed + k, **values)
        if (call_cost, price) == (1.0, 1.0):
            rows.append(row)
        else:
            variant_rows.append(dict(call_cost=call_cost, price=price, **row))
    episodes = pd.DataFrame(rows)
    tidy, lines = [], [
        f"Measured with `python experiments/stage_ranking.py --seeds {args.seeds} --seed {args.seed}"
        f"{'' if args.scenarios is None else ' --scenarios ' + ','.join(args.scenarios)}"
        f"{'' if tuple(args.strategies) == STRATEGIES else ' --strategies ' + ','.join(args.strategies)}` "
        f"(paired seeds {args.seed:,}-{args.seed + args.seeds - 1:,}, every strategy at its own stage). Ranked by mean profit; `>`: the paired 95% CI of the gap to the next "
        "strategy excludes zero, `≈`: it does not.", ""]
    for name, frame in episodes.groupby("scenario", sort=False):
        lines += [f"**{name}**", "", "| rep cost | discount | year 1 | year 1 + tail |", "|---|---|---|---|"]
        for cost, disc in itertools.product(REP_COST, DISCOUNT):
            frame = frame.copy()
            frame["profit"] = frame.gross_margin - frame.variable - cost * frame.fixed
            frame["profit_multi"] = frame.profit + frame[f"tail_margin_{disc}"]
            for metric in ("profit", "profit_multi"):
                for row in frame.itertuples():
                    tidy.append(dict(scenario=name, strategy=row.strategy, seed=row.seed, rep_cost=cost,
                                     discount=disc, metric=metric, value=getattr(row, metric)))
            lines.append(f"| ×{cost} | ×{disc} | {ranking(frame, 'profit')} | {ranking(frame, 'profit_multi')} |")
        lines.append("")
    if variants:
        lines += simulated_axes(pd.DataFrame(variant_rows), episodes, seconds, len(jobs) // (len(variants) + 1))
    report = "\n".join(lines)
    atomic_write_text(args.out / "ranking.csv", pd.DataFrame(tidy).to_csv(index=False))
    atomic_write_text(args.out / "ranking.md", report + "\n")
    if args.docs:
        text = DOCS.read_text(encoding="utf-8")
        block = f"{BEGIN}\n{report}\n{END}"
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
        atomic_write_text(DOCS, text)
    print(report)
    return report


def simulated_axes(variants: pd.DataFrame, base: pd.DataFrame, seconds: dict[tuple[float, float], float],
                   episodes_per_variant: int) -> list[str]:
    """The ranking of every simulated variant (call cost x price) at rep cost x1 and discount x1, and its cost."""
    lines = ["**Axes that plans respond to** (simulated: every strategy and the market's history run again per "
             f"variant, {episodes_per_variant} episodes each; the x1, x1 row is the grid above's)", "",
             "| scenario | call cost | price | year 1 | year 1 + tail |", "|---|---|---|---|---|"]
    frames = [base.assign(call_cost=1.0, price=1.0), variants]
    for name, by_scenario in pd.concat(frames, ignore_index=True).groupby("scenario", sort=False):
        for (call_cost, price), frame in by_scenario.groupby(["call_cost", "price"], sort=True):
            frame = frame.copy()
            frame["profit"] = frame.gross_margin - frame.variable - frame.fixed
            frame["profit_multi"] = frame.profit + frame["tail_margin_1.0"]
            lines.append(f"| {name} | ×{call_cost:g} | ×{price:g} | {ranking(frame, 'profit')} | "
                         f"{ranking(frame, 'profit_multi')} |")
    cost = ", ".join(f"call cost ×{c:g}, price ×{p:g}: {t:.0f} s" for (c, p), t in seconds.items())
    return [*lines, "", f"Wall-clock time per variant (all scenarios, history included): {cost}.", ""]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=Args.seeds)
    parser.add_argument("--seed", type=int, default=Args.seed)
    parser.add_argument("--out", type=Path, default=Args.out)
    parser.add_argument("--docs", action="store_true", help="write the report into docs/MODEL.md")
    parser.add_argument("--call-cost", default="1", help="variable cost per call multipliers, e.g. 1,3 (simulated)")
    parser.add_argument("--price", default="1", help="price per prescription multipliers, e.g. 0.7,1,1.3 (simulated)")
    parser.add_argument("--scenarios", default="", help="comma-separated scenarios (default: the quick suite's)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated strategies")
    ns = parser.parse_args()
    strategies = tuple(s for s in ns.strategies.split(",") if s)
    unknown = [s for s in strategies if s not in known_strategies]
    if unknown or not strategies or len(set(strategies)) != len(strategies):
        parser.error(f"--strategies must be distinct names among {', '.join(known_strategies)}; got {ns.strategies!r}")
    main(Args(seeds=ns.seeds, seed=ns.seed, out=ns.out, docs=ns.docs,
              call_cost=tuple(float(v) for v in ns.call_cost.split(",")),
              price=tuple(float(v) for v in ns.price.split(",")),
              scenarios=tuple(s for s in ns.scenarios.split(",") if s) or None, strategies=strategies))
