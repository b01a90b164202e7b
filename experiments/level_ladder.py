"""Does every level add an option and never take one away?  The metamorphic test of the stage matrix.

For every benchmark scenario, every uniform organisation at level L (0-2) is compared with the same organisation one
level higher on one entity (and with the uniform organisation at L + 1), each played with *the best plan its stage
allows* among the candidates below.  The planner that searches a stage's plays (issue 23) has not landed, so "best"
is the best of: the organisation's own heuristic for that stage, the four stage heuristics and the fixed plan
``follow_up_everywhere``, each run at the organisation's stage (its masks decide which plays it may use), chosen by
mean multi-period profit on the same validation seeds (200,000 and up; never the test range).  A level passes when
the paired 95% CI of (higher - lower) multi-period profit has an upper bound >= 0.

    python experiments/level_ladder.py --seeds 20 --workers 2           # all four benchmark scenarios
    python experiments/level_ladder.py --seeds 4 --scenarios mature_primary_care

Writes a tidy CSV of every episode and a Markdown table (``results/level_ladder``); ``--docs`` puts the table into
docs/MODEL.md between the level-ladder markers.  Cost: (16 organisations x 6 plans) episodes per scenario and seed.
"""

from __future__ import annotations

import argparse
import itertools
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from oce_sim.agents.oracle import FollowUpEverywhere
from oce_sim.agents.organisation import Organisation
from oce_sim.agents.stage_heuristics import Insight, Instruction, Intervention, Involvement
from oce_sim.bench.gate import load_suite, scenario_config
from oce_sim.config import ENTITIES, StageConfig
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.studies.evaluation import atomic_write_text, play_episode, strategy_config, t_interval
from oce_sim.studies.seeds import VALIDATION_SEED  # design and tuning seeds; reports use the test seeds

PLANS = {"organisation": None, "instruction": Instruction, "insight": Insight, "involvement": Involvement,
         "intervention": Intervention, "follow_up_everywhere": FollowUpEverywhere}
OUTCOMES = ("profit_usd", "trx", "nrx", "value_at_horizon_usd")  # besides multi-period profit ("profit")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "MODEL.md"
BEGIN, END = "<!-- level-ladder:begin -->", "<!-- level-ladder:end -->"


@dataclass
class Args:
    seeds: int = 20
    seed: int = VALIDATION_SEED
    scenarios: tuple[str, ...] = ()
    workers: int = 1
    out: Path = Path("results/level_ladder")
    docs: bool = False


def stage_key(stage: StageConfig) -> str:
    return "c{}s{}m{}i{}".format(*(getattr(stage, e) for e in ENTITIES))


def steps() -> list[tuple[str, StageConfig, StageConfig]]:
    """(label, lower, higher): one entity one level up from each uniform level, and the next uniform level."""
    out = []
    for level in range(3):
        low = StageConfig.uniform(level)
        for entity in ENTITIES:
            out.append((f"{entity} {level}->{level + 1}", low, StageConfig(**{**low.model_dump(), entity: level + 1})))
        out.append((f"uniform {level}->{level + 1}", low, StageConfig.uniform(level + 1)))
    return out


def episode(job: tuple[str, str, str, int]) -> dict:
    """One episode of ``plan`` at ``stage`` on a benchmark scenario: multi-period profit."""
    scenario, key, plan, seed = job
    stage = StageConfig(**dict(zip(ENTITIES, (int(ch) for ch in re.findall(r"\d", key)))))
    policy = Organisation(stage) if PLANS[plan] is None else PLANS[plan]()
    config = strategy_config(scenario_config(load_suite("quick"), scenario), policy, stage)
    env = TerritoryEnv(scenario=config)
    kpis = play_episode(env, policy, seed)["kpis"]
    env.close()
    return dict(scenario=scenario, stage=key, plan=plan, seed=seed, profit=kpis["profit_multi_period_usd"],
                **{kpi: kpis[kpi] for kpi in OUTCOMES})


def best_plan(frame: pd.DataFrame, key: str) -> tuple[str, pd.Series]:
    """The plan with the highest mean profit at ``key`` and its profit by seed."""
    wide = frame[frame.stage == key].pivot_table(index="seed", columns="plan", values="profit")
    plan = str(wide.mean().idxmax())
    return plan, wide[plan]


def table(episodes: pd.DataFrame, seeds: int, first_seed: int) -> tuple[str, pd.DataFrame]:
    rows = []
    for scenario, frame in episodes.groupby("scenario", sort=False):
        for label, low, high in steps():
            low_plan, low_profit = best_plan(frame, stage_key(low))
            high_plan, high_profit = best_plan(frame, stage_key(high))
            ci = t_interval((high_profit - low_profit).to_numpy(), 0.95)
            rows.append(dict(scenario=scenario, step=label, lower_plan=low_plan, higher_plan=high_plan,
                             mean_usd=ci["diff_mean"], ci_low_usd=ci["diff_low"], ci_high_usd=ci["diff_high"],
                             passes=bool(ci["diff_high"] >= 0)))
    result = pd.DataFrame(rows)
    lines = [f"Measured with `python experiments/level_ladder.py --seeds {seeds}` (validation seeds {first_seed:,}-"
             f"{first_seed + seeds - 1:,}): multi-period profit of the higher organisation minus the lower, each with "
             "its best plan among its own heuristic, the four stage heuristics and `follow_up_everywhere` (chosen on "
             "these seeds; the planner of issue 23 will replace this proxy), USD thousands per territory, mean "
             f"[95% paired CI]. **{int(result.passes.sum())} of {len(result)} steps pass** (upper bound >= 0).", "",
             "| scenario | step | best plan (lower -> higher) | difference | passes |", "|---|---|---|---|---|"]
    for row in result.itertuples():
        lines.append(f"| {row.scenario} | {row.step} | {row.lower_plan} -> {row.higher_plan} | "
                     f"{row.mean_usd / 1e3:+,.0f} [{row.ci_low_usd / 1e3:+,.0f}, {row.ci_high_usd / 1e3:+,.0f}] | "
                     f"{'yes' if row.passes else '**no**'} |")
    lines += ["", "What each step moves on its own, with the organisation's heuristic on both sides (the same seeds): "
              "the outcome KPIs whose paired 95% CI excludes zero (+ up, - down); '-' where none moves.", "",
              "| scenario | step | outcomes moved |", "|---|---|---|"]
    for scenario, frame in episodes.groupby("scenario", sort=False):
        own = frame[frame.plan == "organisation"]
        for label, low, high in steps():
            wide = {k: own[own.stage == stage_key(k)].set_index("seed") for k in (low, high)}
            moved = []
            for kpi in ("profit", *OUTCOMES):
                ci = t_interval((wide[high][kpi] - wide[low][kpi]).to_numpy(), 0.95)
                if ci["diff_low"] > 0 or ci["diff_high"] < 0:  # the CI excludes zero
                    moved.append(("+" if ci["diff_mean"] > 0 else "-") + ("profit_multi_period_usd" if kpi == "profit" else kpi))
            lines.append(f"| {scenario} | {label} | {', '.join(moved) or '-'} |")
    return "\n".join(lines), result


def main(args: Args) -> pd.DataFrame:
    scenarios = list(args.scenarios or load_suite("quick").scenarios)
    keys = sorted({stage_key(s) for _, low, high in steps() for s in (low, high)})
    jobs = list(itertools.product(scenarios, keys, PLANS, range(args.seed, args.seed + args.seeds)))
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            rows = list(tqdm(pool.map(episode, jobs, chunksize=4), total=len(jobs), desc="level ladder"))
    else:
        rows = [episode(job) for job in tqdm(jobs, desc="level ladder")]
    episodes = pd.DataFrame(rows)
    report, result = table(episodes, args.seeds, args.seed)
    atomic_write_text(args.out / "episodes.csv", episodes.to_csv(index=False))
    atomic_write_text(args.out / "ladder.csv", result.to_csv(index=False))
    atomic_write_text(args.out / "ladder.md", report + "\n")
    if args.docs:
        text = DOCS.read_text(encoding="utf-8")
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: f"{BEGIN}\n{report}\n{END}", text,
                      flags=re.S)
        atomic_write_text(DOCS, text)
    print(report)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=Args.seeds)
    parser.add_argument("--seed", type=int, default=Args.seed)
    parser.add_argument("--scenarios", default="", help="comma-separated benchmark scenarios (default: all four)")
    parser.add_argument("--workers", type=int, default=Args.workers)
    parser.add_argument("--out", type=Path, default=Args.out)
    parser.add_argument("--docs", action="store_true", help="write the table into docs/MODEL.md")
    ns = parser.parse_args()
    main(Args(seeds=ns.seeds, seed=ns.seed, scenarios=tuple(s for s in ns.scenarios.split(",") if s),
              workers=ns.workers, out=ns.out, docs=ns.docs))
