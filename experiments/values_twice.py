"""Every stage and move valued twice, and the mechanism behind each gap (issue 23, item 3; docs/MODEL.md §6b).

Runs (or reads) ``oce-sim compare SCENARIO --seed 900000 --episodes 20 --move ... --drivers``: today, each move and
each stage heuristic, each also with the best plan its stage allows (best@K), on the *test* seeds, with what drives
each difference by channel.  From that folder it writes, per stage and move:

* its value against today twice (with today's rules of thumb, with the best plans) and the gap between the two;
* the mechanism of each column's gap (its best plan minus its rules of thumb, paired per seed): profit, year 1 and
  the value left at the horizon, the touches by channel, confusion events, the promotion cost, and the channel
  parts of the year-1 expected gross margin (``oce_sim.studies.drivers``: real minus a shadow that ignores a channel);
* which segments' plays differ: the best plan's play against the rules of thumb' most frequent play (validation seed
  200,000, as the planner's starts), with each segment's share of customers.

    python experiments/values_twice.py --scenario default --docs            # runs the compare (about 10-20 min)
    python experiments/values_twice.py --scenario default --from DIR [--drivers-from DIR2] --docs   # read them

``--docs`` puts the Markdown into docs/MODEL.md between the scenario's values-twice markers.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from oce_sim.agents import STAGE_STRATEGIES
from oce_sim.agents.base import Observation
from oce_sim.agents.oracle import OBJECTIVE
from oce_sim.agents.organisation import Organisation, stage_text
from oce_sim.config import load_scenario
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.storage.outputs import atomic_replace_block, atomic_write_text
from oce_sim.studies.evaluation import play_episode, strategy_config, t_interval
from oce_sim.studies.planner import _Recorder, best_label, best_plan, most_frequent, planned_stage
from oce_sim.studies.seeds import TEST_SEED, VALIDATION_SEED
from oce_sim.world.dispatch import PLAYS, SEGMENTS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "MODEL.md"
MARKERS = "<!-- values-twice:{}:begin -->", "<!-- values-twice:{}:end -->"
CHANNELS = ("rep_visit", "remote_detail", "email", "webinar", "website")
MECHANISM_KPIS = {"profit_usd": "year-1 profit", "value_at_horizon_usd": "value left at the horizon",
                  "touches_rep_visit": "visits", "touches_email": "emails", "touches_remote_detail": "remote details",
                  "touches_webinar": "webinar attendances", "confusion_events": "confusion events",
                  "cost_variable_usd": "variable promotion cost"}


@dataclass
class Args:
    scenario: str = "default"
    episodes: int = 20
    seed: int = TEST_SEED
    moves: tuple[str, ...] = ("sales=3", "marketing=3")
    budget: int = 200  # K of the best plans (the commands' default)
    source: Path | None = None  # an existing compare folder to read instead of running one
    drivers: Path | None = None  # a compare folder run with --drivers on the same seeds (default: the compare's own)
    out: Path = Path("results/values_twice")
    docs: bool = False


def run_compare(args: Args, folder: Path) -> None:
    """The compare with drivers, on the test seeds, as a strategist would run it."""
    command = [sys.executable, "-m", "oce_sim.cli", "compare", args.scenario, "--episodes", str(args.episodes),
               "--seed", str(args.seed), *(x for m in args.moves for x in ("--move", m)), "--strategies",
               ",".join(STAGE_STRATEGIES), "--best-plan", str(args.budget), "--drivers", "--no-progress", "--out",
               str(folder)]
    subprocess.run(command, check=True)


def _ci(diff: np.ndarray, scale: float = 1e3) -> str:
    ci = t_interval(np.asarray(diff, dtype=float), 0.95)
    return f"{ci['diff_mean'] / scale:+,.0f} [{ci['diff_low'] / scale:+,.0f}, {ci['diff_high'] / scale:+,.0f}]"


def _count(diff: np.ndarray) -> str:
    ci = t_interval(np.asarray(diff, dtype=float), 0.95)
    return f"{ci['diff_mean']:+,.0f} [{ci['diff_low']:+,.0f}, {ci['diff_high']:+,.0f}]"


def values_table(results: pd.DataFrame, names: list[str], budget: int) -> list[str]:
    wide = results[results.metric == OBJECTIVE].pivot_table(index="seed", columns="strategy", values="value")
    today, today_best = wide["today"], wide[best_label("today", budget)]
    lines = ["| stage or move | with today's rules of thumb | with the best plan each stage allows | best plan - rules "
             "of thumb (the value's gap) |", "|---|---|---|---|"]
    for name in names:
        thumb = wide[name] - today
        best = wide[best_label(name, budget)] - today_best
        lines.append(f"| {name} | {_ci(thumb)} | {_ci(best)} | {_ci(best - thumb)} |")
    return lines


def mechanism_table(results: pd.DataFrame, by_seed: pd.DataFrame, names: list[str], budget: int) -> list[str]:
    """Each column's best plan minus its rules of thumb, paired per seed: KPIs and the channel parts (where both
    columns were decomposed: ``n/a`` otherwise)."""
    kpis = {m: results[results.metric == m].pivot_table(index="seed", columns="strategy", values="value")
            for m in (OBJECTIVE, *MECHANISM_KPIS)}
    parts = by_seed[by_seed.component.isin(CHANNELS)].pivot_table(index=["seed", "component"], columns="strategy",
                                                                    values="value")
    header = ["column", "profit (year 1 + tail)", *MECHANISM_KPIS.values(),
              *(f"{c.replace('_', ' ')} part" for c in CHANNELS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in ["today", *names]:
        best = best_label(name, budget)
        cells = [_ci(kpis[OBJECTIVE][best] - kpis[OBJECTIVE][name])]
        for metric in MECHANISM_KPIS:
            diff = kpis[metric][best] - kpis[metric][name]
            cells.append(_ci(diff) if metric.endswith("_usd") else _count(diff))
        for channel in CHANNELS:
            frame = parts.xs(channel, level="component") if not parts.empty else pd.DataFrame()
            # each part is against today; today's own column has no parts (it is the baseline): its part is 0
            if best not in frame or (name not in frame and name != "today"):
                cells.append("n/a")
                continue
            theirs = frame[name] if name in frame else 0.0 * frame[best]
            cells.append(_ci(np.asarray(frame[best] - theirs)))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


class _Shares(_Recorder):
    """A recorder that also keeps each week's share of customers per segment (as the view believes it)."""

    def __init__(self, policy):
        super().__init__(policy)
        self.shares: list[np.ndarray] = []

    def predict(self, observation, **kwargs):
        self.shares.append(np.asarray(Observation(np.asarray(observation)).segment["share_of_customers"]))
        return super().predict(observation, **kwargs)


def plays_table(scenario_name: str, names: list[str], budget: int) -> list[str]:
    """Per column: the segments whose best-plan play differs from the rules of thumb' most frequent play."""
    scenario = load_scenario(scenario_name)
    lines = ["| column (stage) | segments whose play differs: rules of thumb -> best plan (share of customers) |",
             "|---|---|"]
    for name in ["today", *names]:
        stage = planned_stage(name, scenario.stage)
        plan = best_plan(scenario, stage, budget).plan  # the commands' plan, read from the cache
        policy = Organisation(stage) if name == "today" or "=" in name else None
        if policy is None:
            from oce_sim.agents import make_strategy

            policy = make_strategy(name)
        recorder = _Shares(policy)
        env = TerritoryEnv(scenario=strategy_config(scenario, policy, stage))
        play_episode(env, recorder, VALIDATION_SEED)
        env.close()
        share = np.mean(recorder.shares, axis=0)  # the year's mean share of customers per segment
        thumb = most_frequent(recorder.plays)
        changed = [f"{SEGMENTS[s]}: {PLAYS[thumb[s]]} -> {PLAYS[plan[s]]} ({share[s]:.0%})"
                   for s in range(len(SEGMENTS)) if thumb[s] != plan[s]]
        lines.append(f"| {name} (stage {stage_text(stage)}) | {'; '.join(changed) or 'none'} |")
    return lines


def main(args: Args) -> str:
    name = Path(args.scenario).stem  # a built-in name, or a YAML file's
    out = args.out / name
    folder = args.source or out / "compare"
    if args.source is None:
        run_compare(args, folder)
    results = pd.read_csv(folder / "results.csv")
    decomposed = (args.drivers or folder) / "drivers_by_seed.csv"
    by_seed = pd.read_csv(decomposed) if decomposed.exists() else pd.DataFrame(
        columns=["strategy", "component", "seed", "value"])
    names = [n for n in (*args.moves, *STAGE_STRATEGIES) if n in set(results.strategy)]
    seeds = sorted(set(results.seed))
    text = "\n".join([
        f"Measured with `python experiments/values_twice.py --scenario {args.scenario}` (`oce-sim compare "
        f"{args.scenario} --episodes {len(seeds)} --seed {seeds[0]} "
        + " ".join(f"--move {m}" for m in args.moves) + f" --strategies {','.join(STAGE_STRATEGIES)} --best-plan "
        f"{args.budget}" + (" --drivers`" if args.drivers is None else f"`; the channel parts from a compare with "
                            f"`--drivers` of {', '.join(sorted(set(by_seed.strategy)))} on the same seeds")
        + f"): test seeds {seeds[0]:,}-{seeds[-1]:,}, USD thousands per territory, paired 95% CI. Each stage and move "
        "against today:", "",
        *values_table(results, names, args.budget), "",
        "Where each gap comes from: each column played with its stage's best plan minus the same column with the "
        "rules of thumb, paired per seed (counts per territory and year; a channel's part is its effect on year-1 "
        "expected gross margin, real minus a shadow that ignores it, `oce_sim.studies.drivers`):", "",
        *mechanism_table(results, by_seed, names, args.budget), "",
        f"The plays that differ (the best plan's play against the rules of thumb' most frequent play on validation "
        f"seed {VALIDATION_SEED:,}):", "",
        *plays_table(args.scenario, names, args.budget)])
    atomic_write_text(out / "values_twice.md", text + "\n")
    if args.docs:
        atomic_replace_block(DOCS, *(marker.format(name) for marker in MARKERS), text)
    print(text)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=Args.scenario)
    parser.add_argument("--episodes", type=int, default=Args.episodes)
    parser.add_argument("--seed", type=int, default=Args.seed)
    parser.add_argument("--move", action="append", default=None, help="a move (repeatable; default sales=3, "
                        "marketing=3)")
    parser.add_argument("--budget", type=int, default=Args.budget, help="K of the best plans")
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="an existing compare folder to read instead of running one")
    parser.add_argument("--drivers-from", dest="drivers", type=Path, default=None,
                        help="a compare folder run with --drivers on the same seeds (default: the compare's own)")
    parser.add_argument("--out", type=Path, default=Args.out)
    parser.add_argument("--docs", action="store_true", help="write the tables into docs/MODEL.md §6b")
    ns = parser.parse_args()
    main(Args(scenario=ns.scenario, episodes=ns.episodes, seed=ns.seed, moves=tuple(ns.move or Args.moves),
              budget=ns.budget, source=ns.source, drivers=ns.drivers, out=ns.out, docs=ns.docs))
