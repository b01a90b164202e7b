"""The best plan each stage allows (issue 23): search stationary plans on validation seeds, score them on test seeds.

For one scenario and each uniform stage 0-3, the planner (``oce_sim.studies.planner``: coordinate ascent over one
play per segment held all year, started from the stage heuristics' most frequent plays and from
``follow_up_everywhere``) spends a budget of K episodes on validation seeds (200,000 and up).  The plan it finds
(``best@K``), the stage's own heuristic, the heuristic with its constants tuned the same way
(``oce_sim.studies.planner.tune_rules``: coordinate ascent over ``RULE_GRID``'s constants, K_tune episodes) and
``follow_up_everywhere`` are then played at that stage on the *test* seeds (900,000 and up), which no choice looked
at, and compared pairwise on multi-period profit.

    python experiments/best_plan.py --scenario small --budget 600
    python experiments/best_plan.py --scenario default --budget 600 --docs

Writes to ``results/best_plan/<scenario>``: ``results.csv`` (tidy: every test episode's KPIs), ``search.csv`` (each
search's value against the episodes it spent), ``plans.csv``, ``rules.csv`` (the tuned constants), ``best_plan.md`` and ``best_plan_search.png``.
``--docs`` puts the Markdown into docs/MODEL.md between the scenario's best-plan markers.  Searches are cached
(``oce_sim.studies.planner.best_plan``, ``tune_rules``), so a rerun only scores.  Cost: about K + K_tune + 5 x 20 test
episodes per stage (the heuristics' references on the search seeds besides).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from oce_sim.agents import STAGE_STRATEGIES, make_strategy
from oce_sim.agents.oracle import OBJECTIVE, FollowUpEverywhere
from oce_sim.agents.stationary import StationaryPlan
from oce_sim.config import load_scenario
from oce_sim.storage.outputs import atomic_replace_block, atomic_save_figure, atomic_write_text
from oce_sim.studies.evaluation import evaluate, paired_summary
from oce_sim.studies.planner import (
    FOLLOW_UP,
    RULES_READ,
    SEARCH_SEEDS,
    Search,
    Tuning,
    best_plan,
    default_rules,
    tune_rules,
    tuned_heuristic,
)
from oce_sim.studies.seeds import TEST_SEED, TEST_SEEDS, validation_seeds
from oce_sim.world.dispatch import PLAYS, SEGMENTS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "MODEL.md"
MARKERS = "<!-- best-plan:{}:begin -->", "<!-- best-plan:{}:end -->"  # one block per scenario


@dataclass
class Args:
    scenario: str = "small"
    budget: int = 600  # K: episodes per stage's search, the starts' included
    tune_budget: int = 200  # K_tune: episodes per stage's search of its heuristic's constants
    search_seeds: int = SEARCH_SEEDS  # validation seeds per evaluation of a plan
    test_seeds: int = len(TEST_SEEDS)
    stages: tuple[int, ...] = (0, 1, 2, 3)
    out: Path = Path("results/best_plan")
    cache: Path | None = None  # the plan cache (default: the user's oce-sim cache)
    docs: bool = False


def search(args: Args, stage: int) -> Search:
    """The stage's best plan (searched once, then read from the plan cache)."""
    return best_plan(load_scenario(args.scenario), stage, args.budget, validation_seeds(args.search_seeds),
                     cache=args.cache, references=True)


def tune(args: Args, stage: int) -> Tuning:
    """The stage heuristic's constants searched (once, then read from the plan cache)."""
    return tune_rules(load_scenario(args.scenario), stage, args.tune_budget, validation_seeds(args.search_seeds),
                      cache=args.cache)


def tuned_name(stage: int) -> str:
    return f"{STAGE_STRATEGIES[stage]} tuned"


def score(args: Args, stage: int, found: Search, tuning: Tuning) -> pd.DataFrame:
    """best@K, the stage heuristic, the tuned heuristic and follow_up_everywhere at ``stage`` on the test seeds: tidy
    KPI rows."""
    best = f"best@{args.budget}"
    tuned = tuned_heuristic(stage, tuning.rules)
    tuned.name = tuned_name(stage)
    policies = {best: StationaryPlan(found.plan, stage, name=best),
                STAGE_STRATEGIES[stage]: make_strategy(STAGE_STRATEGIES[stage]), tuned.name: tuned,
                FOLLOW_UP: FollowUpEverywhere()}
    results, _ = evaluate(policies, load_scenario(args.scenario), args.test_seeds, TEST_SEED,
                          stages=dict.fromkeys(policies, stage), progress=False)
    return results.assign(stage_level=stage)


def difference(results: pd.DataFrame, best: str, other: str) -> str:
    """best minus other, paired over the test seeds: mean [95% CI], USD thousands."""
    pair = results[results.strategy.isin([best, other])]
    row = paired_summary(pair, baseline=other, metrics=[OBJECTIVE]).set_index("strategy").loc[best]
    return f"{row.diff_mean / 1e3:+,.0f} [{row.diff_low / 1e3:+,.0f}, {row.diff_high / 1e3:+,.0f}]"


def report(args: Args, results: pd.DataFrame, searches: dict[int, Search], tunings: dict[int, Tuning]) -> str:
    best = f"best@{args.budget}"
    first = validation_seeds(args.search_seeds)
    lines = [f"Measured with `python experiments/best_plan.py --scenario {args.scenario} --budget {args.budget} "
             f"--tune-budget {args.tune_budget}`: "
             f"each stage's plan searched on validation seeds {first[0]:,}-{first[-1]:,} with K = {args.budget:,} "
             f"episodes, then scored on test seeds {TEST_SEED:,}-{TEST_SEED + args.test_seeds - 1:,}. Mean "
             "multi-period profit per territory (USD thousands) and best@K's paired difference [95% CI].", "",
             f"| stage | {best} | stage heuristic | follow_up_everywhere | {best} - heuristic | "
             f"{best} - follow_up_everywhere | search: value on validation seeds (start) | search time |",
             "|---|---|---|---|---|---|---|---|"]
    for stage, found in searches.items():
        frame = results[(results.stage_level == stage) & (results.metric == OBJECTIVE)]
        mean = frame.groupby("strategy").value.mean() / 1e3
        heuristic = STAGE_STRATEGIES[stage]
        lines.append(f"| {stage} | {mean[best]:,.0f} | {heuristic} {mean[heuristic]:,.0f} | {mean[FOLLOW_UP]:,.0f} | "
                     f"{difference(frame, best, heuristic)} | {difference(frame, best, FOLLOW_UP)} | "
                     f"{found.value / 1e3:,.0f} ({found.start}; {found.accepted} changes, {found.episodes} episodes) | "
                     f"{found.seconds:.0f} s |")
    defaults = default_rules()
    lines += ["", f"The heuristics with their constants tuned (K_tune = {args.tune_budget:,} episodes on the same "
              "validation seeds, from the defaults; `oce_sim.studies.planner.RULE_GRID`), on the same test seeds:", "",
              "| stage | heuristic | tuned | tuned - heuristic | " + best + " - tuned | constants changed (default -> tuned) "
              "| search: defaults -> tuned on validation seeds | search time |", "|---|---|---|---|---|---|---|---|"]
    for stage, tuning in tunings.items():
        frame = results[(results.stage_level == stage) & (results.metric == OBJECTIVE)]
        mean = frame.groupby("strategy").value.mean() / 1e3
        heuristic, tuned = STAGE_STRATEGIES[stage], tuned_name(stage)
        changed = ", ".join(f"{k} {defaults[k]:g} -> {v:g}" for k, v in tuning.rules.items() if v != defaults[k]) \
            or "none"
        lines.append(f"| {stage} | {heuristic} {mean[heuristic]:,.0f} | {mean[tuned]:,.0f} | "
                     f"{difference(frame, tuned, heuristic)} | {difference(frame, best, tuned)} | {changed} | "
                     f"{tuning.default_value / 1e3:,.0f} -> {tuning.value / 1e3:,.0f} ({tuning.accepted} changes, "
                     f"{tuning.episodes} episodes; searched: {', '.join(RULES_READ[stage])}) | {tuning.seconds:.0f} s |")
    lines += ["", "The plans found (one play per segment, held all year; the env's mask applies every week):", "",
              "| segment | " + " | ".join(f"stage {s}" for s in searches) + " |",
              "|---|" + "---|" * len(searches)]
    for i, segment in enumerate(SEGMENTS):
        lines.append(f"| {segment} | " + " | ".join(PLAYS[found.plan[i]] for found in searches.values()) + " |")
    return "\n".join(lines)


def figure(args: Args, searches: dict[int, Search], path: Path) -> None:
    """Each search's incumbent value against the episodes spent, with the stage heuristic's value as played."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(searches), figsize=(4.2 * len(searches), 3.4), squeeze=False)
    for ax, (stage, found) in zip(axes[0], searches.items()):
        spent, value = zip(*found.history)
        ax.step(spent, np.array(value) / 1e3, where="post", label="best plan found")
        heuristic = STAGE_STRATEGIES[stage]
        ax.axhline(found.references[heuristic] / 1e3, color="grey", ls="--", lw=1, label=f"{heuristic} (as played)")
        ax.set_title(f"stage {stage}", fontsize=10)
        ax.set_xlabel("episodes simulated (of the budget K)", fontsize=8)
        ax.set_ylabel("multi-period profit, validation mean\n(USD thousands per territory)", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(f"{args.scenario}: coordinate ascent over stationary plans, K = {args.budget:,} episodes")
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)


def main(args: Args) -> pd.DataFrame:
    out = args.out / args.scenario
    searches: dict[int, Search] = {}
    tunings: dict[int, Tuning] = {}
    scored = []
    for stage in args.stages:
        searches[stage] = search(args, stage)
        tunings[stage] = tune(args, stage)
        scored.append(score(args, stage, searches[stage], tunings[stage]))
        print(f"stage {stage}: plan searched in {searches[stage].seconds:.0f} s ({searches[stage].episodes} "
              f"episodes), constants in {tunings[stage].seconds:.0f} s ({tunings[stage].episodes})", flush=True)
    results = pd.concat(scored, ignore_index=True)
    history = pd.DataFrame([dict(stage=stage, episodes=e, value_usd=v)
                            for stage, found in searches.items() for e, v in found.history])
    plans = pd.DataFrame([dict(stage=stage, segment=segment, play=PLAYS[found.plan[i]])
                          for stage, found in searches.items() for i, segment in enumerate(SEGMENTS)])
    rules = pd.DataFrame([dict(stage=stage, constant=k, value=v) for stage, t in tunings.items()
                          for k, v in t.rules.items()])
    text = report(args, results, searches, tunings)
    atomic_write_text(out / "rules.csv", rules.to_csv(index=False))
    atomic_write_text(out / "results.csv", results.to_csv(index=False))
    atomic_write_text(out / "search.csv", history.to_csv(index=False))
    atomic_write_text(out / "plans.csv", plans.to_csv(index=False))
    atomic_write_text(out / "best_plan.md", text + "\n")
    figure(args, searches, out / "best_plan_search.png")
    if args.docs:
        atomic_replace_block(DOCS, *(marker.format(args.scenario) for marker in MARKERS), text)
    print(text)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=Args.scenario)
    parser.add_argument("--budget", type=int, default=Args.budget, help="K: episodes per stage's search")
    parser.add_argument("--tune-budget", type=int, default=Args.tune_budget,
                        help="K_tune: episodes per stage's search of its heuristic's constants")
    parser.add_argument("--search-seeds", type=int, default=Args.search_seeds)
    parser.add_argument("--test-seeds", type=int, default=Args.test_seeds)
    parser.add_argument("--stages", default="0,1,2,3", help="comma-separated uniform stages")
    parser.add_argument("--out", type=Path, default=Args.out)
    parser.add_argument("--cache", type=Path, default=None, help="plan cache folder (default: the user's cache)")
    parser.add_argument("--docs", action="store_true", help="write the table into docs/MODEL.md")
    ns = parser.parse_args()
    if not 1 <= ns.test_seeds <= len(TEST_SEEDS) or ns.budget < 1 or ns.tune_budget < 1:
        parser.error(f"--test-seeds must be 1-{len(TEST_SEEDS)}, --budget and --tune-budget >= 1")
    main(Args(scenario=ns.scenario, budget=ns.budget, tune_budget=ns.tune_budget, search_seeds=ns.search_seeds,
              test_seeds=ns.test_seeds,
              stages=tuple(int(s) for s in ns.stages.split(",")), out=ns.out, cache=ns.cache, docs=ns.docs))
