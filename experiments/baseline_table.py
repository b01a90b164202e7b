"""The baseline table RL benchmark papers print: every stage heuristic, the best stationary plan each stage allows,
``follow_up_everywhere``, the oracle, random and six RL agents, on every benchmark scenario, several training seeds
each, evaluated on the test seeds, with each agent's share of the gap from intervention to the best policy that sees
only observations closed, and each scenario's adaptivity headroom.

    python experiments/baseline_table.py                      # the full budget: 500,032 env steps per RL run, every learner
    python experiments/baseline_table.py --timesteps 16384 --workers 2 --docs   # a small budget, into the README

Not part of CI.  The grid (scenarios x agents x training seeds) is data (``AGENTS``, ``Args``); every cell is a
resumable unit: a finished cell's numbers are kept in ``<out>.cache/cells/`` (``oce_sim.studies.sweep.EpisodeCache``, keyed
by a hash of the scenario, the agent's settings, the training seed, the budget, the evaluation seeds and the code
version), and an RL run in ``<out>.cache/runs/`` resumes from its last checkpoint.  An interrupted table, killed
included, resumes where it stopped when the same command is run again.

RL agents train at stage 3 (every entity at intervention: the orchestrator controls every channel) with
``oce-sim train``'s pipeline (oce_sim/learning/training.py): factored masked PPO (``oce-sim train``'s default: one advantage
per segment head, oce_sim/learning/factored_ppo.py) on the privileged expected reward and on the observed one
(``factored-ppo-observed``), MaskablePPO from scratch, PPO and A2C (no action masks: a masked play is not executed),
and ``cloned-ppo`` (behaviour-cloned from the intervention heuristic, then MaskablePPO at 3e-4).  Heuristics run at
their own stage; ``best-plan-S`` is the planner's best stationary plan at stage S (``best@K``,
oce_sim/studies/planner.py, searched with ``--plan-budget`` K episodes on ``--plan-seeds`` validation seeds from
200,000, cached in ``<out>.cache/plans/``); ``follow_up_everywhere`` plays at stage 3.

Seeds follow the protocol of oce_sim/studies/seeds.py.  Every agent is evaluated on the test seeds (``--eval-seed``
onwards, default 900,000-900,019), which only report, and on ``--select-seeds`` selection seeds (validation, from
201,000), which choose the best policy that sees only observations (oce_sim/studies/gap.py): the best by its mean
there among the stage heuristics, ``follow_up_everywhere``, the ``best-plan-S`` rows and the learners trained on the
observed reward that are in the grid.  On the test seeds each agent's share of the gap from intervention to that
policy closed is reported with its Fieller 95% interval, and each scenario's adaptivity headroom: that policy minus
the best stationary plan (the best ``best-plan-S`` on the selection seeds), paired 95% t-interval.  Evaluation seeds
are disjoint from the training seeds (0..N-1; factored-ppo's 1,000,000 x (1 + seed) and up), the cloning teacher's
(1,000,000+), the planner's search seeds and the selection seeds (refused otherwise).

The metric is ``profit_multi_period_usd`` (oce_sim/world/kpis.py): year-1 profit plus the value the customer state
leaves at the horizon.  ``table.md``: per scenario and agent, the median and min-max across training seeds of the
mean over evaluation seeds, the paired 95% CI of the difference to the intervention heuristic (per evaluation seed,
the agent's mean over training seeds minus intervention; t-interval over evaluation seeds), the share of the gap
closed, training wall time and environment steps, then each scenario's best observation-only policy and headroom
(also ``headroom.csv``).  ``results.csv`` is tidy (scenario, agent, train_seed, eval_seed, purpose: ``report`` for a
test seed or ``select`` for a selection seed, metric, value);
``learning_curves.csv`` and ``learning_curves.png`` hold the RL training curves.  The output folder is written as
one set (oce_sim.storage.outputs.transaction).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import multiprocessing
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from oce_sim.agents import STAGE_STRATEGIES  # noqa: E402
from oce_sim.bench.gate import load_suite, scenario_config  # noqa: E402
from oce_sim.storage.outputs import atomic_save_figure, atomic_write_text, transaction  # noqa: E402
from oce_sim.studies.evaluation import run_episode, strategy_config, t_interval  # noqa: E402
from oce_sim.studies.gap import FLOOR, best_observed, gap_closed, headroom  # noqa: E402
from oce_sim.studies.planner import FOLLOW_UP, SEARCH_SEEDS  # noqa: E402
from oce_sim.studies.report import git_commit  # noqa: E402
from oce_sim.studies.seeds import SELECTION_SEED, TEST_SEED, TEST_SEEDS, selection_seeds, validation_seeds  # noqa: E402
from oce_sim.studies.sweep import EpisodeCache, code_version, default_cache  # noqa: E402

# ------------------------------------------------------------------------------------------------ the grid, as data
METRIC = "profit_multi_period_usd"
KEPT_METRICS = (METRIC, "profit_usd", "value_at_horizon_usd", "cost_usd", "prescriptions")
BASELINE = FLOOR  # intervention: the differences' baseline and the gap's floor
RL_STAGE = 3
# best-plan-S: the planner's best stationary plan at stage S (best@K, K = --plan-budget)
PLAN_STAGES: dict[str, int] = {f"best-plan-{stage}": stage for stage in range(4)}
# name -> None for a strategy that is not trained (agents/, follow_up_everywhere, a best plan), or the TrainArgs
# fields of an RL agent
AGENTS: dict[str, dict[str, Any] | None] = {
    "instruction": None,
    "insight": None,
    "involvement": None,
    "intervention": None,
    FOLLOW_UP: None,
    **dict.fromkeys(PLAN_STAGES),
    "oracle": None,
    "random": None,
    "factored-ppo": dict(algo="factored-ppo"),
    "factored-ppo-observed": dict(algo="factored-ppo", reward="observed"),
    "maskable-ppo": dict(algo="maskable-ppo"),
    "ppo": dict(algo="ppo"),
    "a2c": dict(algo="a2c"),
    "cloned-ppo": dict(algo="maskable-ppo", init_from="intervention", learning_rate=3e-4),
}
SCENARIOS = tuple(load_suite("full").scenarios)  # scenarios/benchmark/*.yaml


def observation_only(agent: str) -> bool:
    """A candidate for the best policy that sees only observations: no hidden state and no future, when it acts or
    when it learns (a learner on the expected reward learns from the customers' true state; the oracle reads the
    future; random is a control, not a candidate)."""
    spec = AGENTS[agent]
    if spec is not None:
        return spec.get("reward") == "observed"
    return agent in STAGE_STRATEGIES or agent == FOLLOW_UP or agent in PLAN_STAGES
README = ROOT / "README.md"
BEGIN, END = "<!-- baseline-table:begin -->", "<!-- baseline-table:end -->"


@dataclass
class Args:
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    agents: list[str] = field(default_factory=lambda: list(AGENTS))
    train_seeds: int = 3  # RL agents train on seeds 0 .. train_seeds-1
    eval_seeds: int = len(TEST_SEEDS)  # every agent is reported on seeds eval_seed .. eval_seed+eval_seeds-1
    eval_seed: int = TEST_SEED
    select_seeds: int = 10  # selection seeds (validation, from 201,000): choose the best observation-only policy
    plan_budget: int = 1000  # K of the best-plan-S rows: episodes per stage's search
    plan_seeds: int = SEARCH_SEEDS  # validation seeds per evaluation of a plan in the search
    # per RL run: the same environment steps for every learner (the learning target's budget), or, with
    # --train-minutes, the same wall clock instead (unequal steps: the learners differ in speed)
    timesteps: int | None = 500_032
    train_minutes: float | None = None
    workers: int = 1  # cells run at once (each in its own process, one torch thread)
    out: Path = Path("results/baselines")
    docs: bool = False  # write the table into README.md between the baseline-table markers
    progress: bool = True


@dataclass(frozen=True)
class Cell:
    scenario: str
    agent: str
    train_seed: int | None  # None: a strategy that is not trained (one cell per scenario)


def grid(args: Args) -> list[Cell]:
    """Every cell, RL runs first (they are the long ones: a pool of workers finishes sooner)."""
    cells = []
    for scenario in args.scenarios:
        for agent in args.agents:
            seeds = range(args.train_seeds) if AGENTS[agent] is not None else [None]
            cells += [Cell(scenario, agent, seed) for seed in seeds]
    return sorted(cells, key=lambda c: AGENTS[c.agent] is None)


def budget(args: Args) -> dict[str, Any]:
    """What a training run gets: the budget is part of every RL cell's key."""
    if args.timesteps is not None:
        return {"timesteps": args.timesteps}
    return {"train_minutes": args.train_minutes}


def settings(cell: Cell, args: Args) -> dict[str, Any] | None:
    """What decides a cell's policy beyond its name: an RL run's budget, a best plan's search."""
    if AGENTS[cell.agent] is not None:
        return budget(args)
    if cell.agent in PLAN_STAGES:
        return {"plan_budget": args.plan_budget, "plan_seeds": args.plan_seeds}
    return None


def cell_seeds(args: Args) -> list[int]:
    """Every seed a cell plays: the selection seeds, then the evaluation (test) seeds."""
    return [*selection_seeds(args.select_seeds), *range(args.eval_seed, args.eval_seed + args.eval_seeds)]


def cell_key(cell: Cell, args: Args) -> str:
    config = scenario_config(load_suite("full"), cell.scenario)
    payload = [config.model_dump(mode="json"), cell.agent, AGENTS[cell.agent], cell.train_seed,
               settings(cell, args), RL_STAGE, cell_seeds(args), list(KEPT_METRICS), code_version()]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def run_folder(cache: Path, cell: Cell, key: str) -> Path:
    """Where a cell's training run lives (``oce-sim train``'s run folders are created under it)."""
    return cache / "runs" / f"{cell.scenario}__{cell.agent}__{cell.train_seed}__{key[:12]}"


# ------------------------------------------------------------------------------------------------ one cell
def run_cell(cell: Cell, args: Args, key: str, cache: Path) -> dict[str, float]:
    """Train (RL agents: resuming an interrupted run), then evaluate on the evaluation seeds.  Returns flat floats:
    ``<eval_seed>/<metric>`` and ``train_wall_seconds``, ``train_env_steps``, ``eval_wall_seconds``."""
    from oce_sim.agents import make_strategy

    spec = AGENTS[cell.agent]
    out: dict[str, float] = {"train_wall_seconds": 0.0, "train_env_steps": 0.0}
    if cell.agent in PLAN_STAGES:
        from oce_sim.agents.stationary import StationaryPlan
        from oce_sim.studies.planner import best_plan

        stage = PLAN_STAGES[cell.agent]
        found = best_plan(scenario_config(load_suite("full"), cell.scenario), stage, args.plan_budget,
                          validation_seeds(args.plan_seeds), cache=cache / "plans")
        policy = StationaryPlan(found.plan, stage, name=label(cell.agent, args))
    elif cell.agent == FOLLOW_UP:
        from oce_sim.agents.oracle import FollowUpEverywhere

        policy = FollowUpEverywhere()
    elif spec is None:
        policy = make_strategy(cell.agent)
    else:
        from oce_sim.agents.model_file import read_description
        from oce_sim.learning.training import TrainArgs, model_path, train

        runs = run_folder(cache, cell, key)
        started = sorted(runs.glob("*/args.json"))
        finished = [p.parent for p in started if model_path(p.parent).exists()]
        if finished:
            run = finished[-1]
        else:
            limit = budget(args)
            # factored-ppo's own worker processes would compete with the table's (same weights either way)
            processes = {"workers": 1} if spec.get("algo") == "factored-ppo" and args.workers > 1 else {}
            train_args = TrainArgs(scenario=f"benchmark/{cell.scenario}", stage=RL_STAGE, seed=cell.train_seed,
                                   out=str(runs), resume=bool(started), progress_bar=False,
                                   timesteps=limit.get("timesteps", 10**10), max_minutes=limit.get("train_minutes"),
                                   checkpoint_every=10_000, **processes, **spec)
            run = train(train_args, log=lambda line: None)
        meta = read_description(model_path(run))
        out.update(train_wall_seconds=float(meta["elapsed_seconds"]), train_env_steps=float(meta["num_timesteps"]))
        policy = make_strategy(str(model_path(run)))
    config = strategy_config(scenario_config(load_suite("full"), cell.scenario), policy)
    started_at = time.time()
    for seed in cell_seeds(args):
        kpis = run_episode(policy, config, seed).kpis
        out.update({f"{seed}/{metric}": float(kpis[metric]) for metric in KEPT_METRICS})
    out["eval_wall_seconds"] = time.time() - started_at
    return out


def _worker_init() -> None:
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: finished cells stay cached
    torch.set_num_threads(1)


def run_grid(cells: list[Cell], args: Args, cache: Path) -> dict[Cell, dict[str, float]]:
    """Every cell's numbers, from the cell cache where finished, else run (and cached as each finishes)."""
    store = EpisodeCache(cache / "cells")
    keys = {cell: cell_key(cell, args) for cell in cells}
    results = {cell: store.get(keys[cell]) for cell in cells}
    todo = [cell for cell in cells if results[cell] is None]
    print(f"{len(cells) - len(todo)} of {len(cells)} cells read from the cache {cache}")
    with tqdm(total=len(cells), initial=len(cells) - len(todo), desc="baseline table", unit="cell",
              disable=not args.progress) as bar:
        def finish(cell: Cell, values: dict[str, float]) -> None:
            store.put(keys[cell], values)
            results[cell] = values
            bar.set_postfix_str(f"{cell.scenario} {cell.agent} {cell.train_seed}")
            bar.update(1)

        if args.workers <= 1:
            for cell in todo:
                finish(cell, run_cell(cell, args, keys[cell], cache))
        elif todo:
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=context,
                                                        initializer=_worker_init) as pool:
                pending = {pool.submit(run_cell, cell, args, keys[cell], cache): cell for cell in todo}
                try:
                    for future in concurrent.futures.as_completed(pending):
                        finish(pending[future], future.result())
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    return results  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------ tables and figures
def tidy(results: dict[Cell, dict[str, float]], args: Args) -> pd.DataFrame:
    """Tidy rows; ``purpose`` is ``select`` on a selection seed, ``report`` on an evaluation seed (NaN: a cell-wide
    number such as the training time)."""
    select = set(selection_seeds(args.select_seeds))
    rows = []
    for cell, values in results.items():
        for name, value in values.items():
            seed, _, metric = name.rpartition("/")
            purpose = ("select" if int(seed) in select else "report") if seed else None
            rows.append(dict(scenario=cell.scenario, agent=cell.agent, train_seed=cell.train_seed,
                             eval_seed=int(seed) if seed else None, purpose=purpose, metric=metric, value=value))
    frame = pd.DataFrame(rows, columns=["scenario", "agent", "train_seed", "eval_seed", "purpose", "metric", "value"])
    frame["train_seed"] = frame["train_seed"].astype("Int64")
    frame["eval_seed"] = frame["eval_seed"].astype("Int64")
    return frame


def by_seed(frame: pd.DataFrame, purpose: str) -> pd.DataFrame:
    """``METRIC`` per seed (rows) and agent (columns), each agent's mean over its training seeds."""
    profit = frame[(frame.metric == METRIC) & (frame.purpose == purpose)]
    return profit.pivot_table(index="eval_seed", columns="agent", values="value", aggfunc="mean")


def paired(wide: pd.DataFrame, **roles: str) -> pd.DataFrame:
    """The agents in ``roles`` (role -> agent, one agent may take several roles) on the seeds all of them played."""
    return pd.concat([wide[agent].rename(role) for role, agent in roles.items()], axis=1).dropna()


def privileged(agent: str) -> bool:
    """An RL agent that learns from a reward computed from the customers' true state (expected or realised, the
    value at the horizon included): everything but ``reward: observed``."""
    spec = AGENTS[agent]
    return spec is not None and spec.get("reward", "expected") != "observed"


def model_commit() -> str:
    """The checkout's commit, short (``+ uncommitted changes`` if any): the model a table was measured on."""
    commit = git_commit()
    return "unknown" if commit is None else commit[:7] + commit[40:]


def label(agent: str, args: Args) -> str:
    """An agent's name in the table: a best plan shows its budget and stage (``best@1000 (stage 3)``)."""
    return f"best@{args.plan_budget} (stage {PLAN_STAGES[agent]})" if agent in PLAN_STAGES else agent


def headroom_rows(results: pd.DataFrame, agents: list[str], args: Args) -> pd.DataFrame:
    """Per scenario: the best policy that sees only observations (chosen on the selection seeds among the
    candidates in the grid), the best stationary plan, and the adaptivity headroom on the evaluation seeds."""
    rows = []
    for scenario, frame in results.groupby("scenario", sort=False):
        select, report = by_seed(frame, "select"), by_seed(frame, "report")
        candidates = [a for a in agents if observation_only(a) and a in select]
        row: dict[str, Any] = dict(scenario=scenario, candidates=",".join(candidates), best_observed=None,
                                   best_plan=None, diff_mean=np.nan, diff_low=np.nan, diff_high=np.nan)
        if candidates:
            row["best_observed"] = best_observed(select.mean().to_dict(), candidates)
        plans = [a for a in agents if a in PLAN_STAGES and a in select]
        if plans and row["best_observed"] is not None:
            row["best_plan"] = best_observed(select.mean().to_dict(), plans)
            pair = paired(report, best=row["best_observed"], plan=row["best_plan"])
            row.update(headroom(pair["best"].to_numpy(), pair["plan"].to_numpy()))
        rows.append(row)
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame, agents: list[str], ceilings: dict[str, str | None]) -> pd.DataFrame:
    """One row per scenario x agent on the evaluation seeds: median and min-max across training seeds of the mean
    over evaluation seeds, the paired 95% CI of the difference to the baseline, the share of the gap from the
    baseline to the scenario's best observation-only policy (``ceilings``) closed with its Fieller interval, mean
    training wall time and env steps."""
    rows = []
    for scenario, frame in results.groupby("scenario", sort=False):
        profit = frame[(frame.metric == METRIC) & (frame.purpose == "report")]
        wide = by_seed(frame, "report")
        ceiling = ceilings.get(scenario)
        for agent in [a for a in agents if a in set(frame.agent)]:
            own = profit[profit.agent == agent]
            per_seed = own.groupby("train_seed", dropna=False)["value"].mean()
            row = dict(scenario=scenario, agent=agent, train_seeds=int(own.train_seed.nunique()),
                       eval_seeds=int(own.eval_seed.nunique()), median=float(per_seed.median()),
                       low=float(per_seed.min()), high=float(per_seed.max()), gap_closed=np.nan, gap_low=np.nan,
                       gap_high=np.nan)
            if agent != BASELINE and BASELINE in wide:
                row.update(t_interval((wide[agent] - wide[BASELINE]).dropna().to_numpy(), 0.95))
            if ceiling is not None and BASELINE in wide:
                pair = paired(wide, agent=agent, floor=BASELINE, ceiling=ceiling)
                share = gap_closed(pair["agent"].to_numpy(), pair["floor"].to_numpy(), pair["ceiling"].to_numpy())
                row.update(gap_closed=share.estimate, gap_low=share.low, gap_high=share.high)
            cost = frame[(frame.agent == agent) & frame.eval_seed.isna()].groupby("metric")["value"].mean()
            row.update(train_minutes=cost.get("train_wall_seconds", 0.0) / 60.0,
                       train_env_steps=cost.get("train_env_steps", 0.0))
            rows.append(row)
    return pd.DataFrame(rows)


def _k(value: float, sign: bool = False) -> str:
    return f"{value / 1e3:{'+' if sign else ''},.0f}"


def _share(row: Any, ceiling: str | None) -> str:
    if row.agent == BASELINE and ceiling is not None:
        return "0% (the floor)"
    if row.agent == ceiling:
        return "100% (the best)"
    if np.isnan(row.gap_closed):
        return "n/a"
    interval = "unbounded" if np.isnan(row.gap_low) else f"{row.gap_low:.0%}, {row.gap_high:.0%}"
    return f"{row.gap_closed:.0%} [{interval}]"


def headroom_text(row: Any, args: Args) -> str:
    """The scenario's best observation-only policy, the set it was chosen from, and the adaptivity headroom."""
    seeds = selection_seeds(args.select_seeds)
    if row.best_observed is None:
        return "No policy that sees only observations is in the grid: no gap and no headroom."
    names = ", ".join(label(a, args) for a in row.candidates.split(","))
    text = (f"Best policy that sees only observations: **{label(row.best_observed, args)}** (the best mean on "
            f"selection seeds {seeds[0]:,}-{seeds[-1]:,} among {names}; the gap-closed column measures each agent "
            f"from {BASELINE} (0%) to it (100%)).")
    if row.best_plan is None:
        return text + " No best-plan row in the grid: adaptivity headroom not measured."
    if row.best_plan == row.best_observed:
        return text + (" **Adaptivity headroom**: none measured, the best policy that sees only observations is "
                       "itself a stationary plan (0 by definition).")
    return text + (f" **Adaptivity headroom**: it minus the best stationary plan, {label(row.best_plan, args)}: "
                   f"{_k(row.diff_mean, True)} [{_k(row.diff_low, True)}, {_k(row.diff_high, True)}] USD k "
                   "(paired 95% CI).")


def markdown(summary: pd.DataFrame, rooms: pd.DataFrame, header: str, args: Args) -> str:
    lines = [header, ""]
    for scenario, frame in summary.groupby("scenario", sort=False):
        room = next(rooms[rooms.scenario == scenario].itertuples())
        lines += [f"**{scenario}**", "",
                  f"| agent | {METRIC}, USD k: median [min, max] over training seeds | vs {BASELINE}, USD k: mean "
                  "[paired 95% CI] | gap closed [Fieller 95% CI] | training wall time (min) | training env steps |",
                  "|---|---|---|---|---|---|"]
        for row in frame.itertuples():
            spread = f" [{_k(row.low)}, {_k(row.high)}]" if row.train_seeds > 1 else ""
            diff = "(baseline)" if row.agent == BASELINE else "n/a"
            if row.agent != BASELINE and "diff_mean" in frame and not np.isnan(row.diff_mean):
                diff = f"{_k(row.diff_mean, True)} [{_k(row.diff_low, True)}, {_k(row.diff_high, True)}]"
            trained = row.train_env_steps > 0
            share = _share(row, room.best_observed)
            lines.append(f"| {label(row.agent, args)} | {_k(row.median)}{spread} | {diff} | {share} | "
                         f"{f'{row.train_minutes:.1f}' if trained else '-'} | "
                         f"{f'{row.train_env_steps:,.0f}' if trained else '-'} |")
        lines += ["", headroom_text(room, args), ""]
    return "\n".join(lines)


def learning_curves(cells: list[Cell], args: Args, cache: Path) -> pd.DataFrame:
    """Every RL run's training episodes, with returns in USD (reward x the scenario's reward_scale_usd)."""
    frames = []
    for cell in cells:
        if AGENTS[cell.agent] is None:
            continue
        runs = sorted(run_folder(cache, cell, cell_key(cell, args)).glob("*/final/learning_curve.csv"))
        if not runs:
            continue
        curve = pd.read_csv(runs[-1])
        scale = scenario_config(load_suite("full"), cell.scenario).env.reward_scale_usd
        frames.append(pd.DataFrame(dict(scenario=cell.scenario, agent=cell.agent, train_seed=cell.train_seed,
                                        timesteps=curve.timesteps, wall_seconds=curve.wall_seconds,
                                        episode_return_usd=curve.episode_reward * scale)))
    columns = ["scenario", "agent", "train_seed", "timesteps", "wall_seconds", "episode_return_usd"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def plot_learning_curves(curves: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(curves.scenario)) or ["(no RL runs)"]
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 3.8), squeeze=False)
    agents = [a for a in AGENTS if AGENTS[a] is not None]
    for ax, scenario in zip(axes.ravel(), scenarios):
        for i, agent in enumerate(agents):
            runs = curves[(curves.scenario == scenario) & (curves.agent == agent)]
            for k, (_, run) in enumerate(runs.groupby("train_seed")):
                window = max(1, len(run) // 10)
                ax.plot(run.timesteps / 1e3, run.episode_return_usd.rolling(window, min_periods=1).mean() / 1e6,
                        color=f"C{i}", alpha=0.8, lw=1, label=agent if k == 0 else None)
        ax.set_title(scenario, fontsize=10)
        ax.set_xlabel("environment steps (thousands)")
        ax.set_ylabel("training episode return (USD millions)")
        if ax.get_legend_handles_labels()[0]:  # a grid without RL agents has no curves
            ax.legend(fontsize=7)
    fig.suptitle(f"{title}: learning curves (rolling mean, one line per training seed)", fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ main
def main(args: Args) -> str:
    cells = grid(args)
    cache = default_cache(args.out)
    rl_runs = sum(AGENTS[c.agent] is not None for c in cells)
    per_run = (f"{args.timesteps:,} env steps" if args.timesteps is not None else f"{args.train_minutes:g} min")
    training = (f"{rl_runs} RL runs x {args.train_minutes:g} min = {rl_runs * (args.train_minutes or 0) / 60:.1f} "
                "CPU-hours" if args.timesteps is None else f"{rl_runs} RL runs x {args.timesteps:,} env steps "
                f"= {rl_runs * args.timesteps:,} steps (about {rl_runs * args.timesteps / 250 / 3600:.1f} CPU-hours "
                "at 250 steps/s)")
    searches = sum(c.agent in PLAN_STAGES for c in cells)
    plans = (f"; {searches} plan searches x {args.plan_budget:,} episodes" if searches else "")
    print(f"compute budget: {len(args.scenarios)} scenarios x {len(args.agents)} agents: {len(cells)} cells; "
          f"{training}{plans}; {len(cells) * len(cell_seeds(args))} evaluation episodes ({args.select_seeds} "
          f"selection + {args.eval_seeds} test seeds per cell); {args.workers} worker(s)")
    started = time.time()
    results = tidy(run_grid(cells, args, cache), args)
    rooms = headroom_rows(results, args.agents, args)
    summary = summarise(results, args.agents, dict(zip(rooms.scenario, rooms.best_observed)))
    select = selection_seeds(args.select_seeds)
    trained = (f"{per_run} of training per RL run (stage 3), {args.train_seeds} training seed(s)" if rl_runs
               else "no RL agents")
    header = (f"Measured with `python experiments/baseline_table.py {command_line(args)}`: {trained}, "
              f"{args.eval_seeds} paired evaluation seeds "
              f"from {args.eval_seed:,}; the best policy that sees only observations chosen on selection seeds "
              f"{select[0]:,}-{select[-1]:,}; best plans searched with K = {args.plan_budget:,} episodes on "
              f"validation seeds {validation_seeds(args.plan_seeds)[0]:,}-{validation_seeds(args.plan_seeds)[-1]:,}; "
              f"model commit {model_commit()}, code {code_version()}. Heuristics and best plans run at their own "
              f"stage. {privileged_text(args.agents)} Table: mean "
              f"`{METRIC}` over the evaluation seeds, median [min, max] across training seeds; the difference to "
              f"{BASELINE} is per evaluation seed (mean over training seeds), with its paired 95% t-interval; gap "
              f"closed: the share of the gap from {BASELINE} to the best policy that sees only observations "
              "(docs/MODEL.md §4e).")
    table = markdown(summary, rooms, header, args)
    curves = learning_curves(cells, args, cache)
    with transaction(args.out, "baselines") as staging:
        atomic_write_text(staging / "results.csv", results.to_csv(index=False))
        atomic_write_text(staging / "summary.csv", summary.to_csv(index=False))
        atomic_write_text(staging / "headroom.csv", rooms.to_csv(index=False))
        atomic_write_text(staging / "table.md", table + "\n")
        atomic_write_text(staging / "learning_curves.csv", curves.to_csv(index=False))
        atomic_write_text(staging / "args.json", json.dumps(asdict(args), indent=2, default=str))
        plot_learning_curves(curves, staging / "learning_curves.png", "baseline table")
    if args.docs:
        text = README.read_text(encoding="utf-8")
        if BEGIN not in text:
            raise SystemExit(f"{README} has no {BEGIN} marker")
        block = f"{BEGIN}\n{table}\n{END}"
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
        atomic_write_text(README, text)
    print(table)
    print(f"outputs: {args.out}/ (table.md, results.csv, summary.csv, headroom.csv, learning_curves.csv/.png); "
          f"{time.time() - started:.0f} s")
    return table


def privileged_text(agents: list[str]) -> str:
    """Which rows learn from privileged signals, and which read the future."""
    learners = [a for a in agents if privileged(a)]
    parts = [f"Trained on a privileged reward (the customers' true state): {', '.join(learners)}." if learners
             else "No row trains on a privileged reward."]
    if "oracle" in agents:
        parts.append("The oracle reads the true state and the future.")
    return " ".join(parts)


def command_line(args: Args) -> str:
    """The arguments that differ from the defaults, as they are typed."""
    default, parts = Args(), []
    for name in ("scenarios", "agents", "train_seeds", "eval_seeds", "eval_seed", "select_seeds", "plan_budget",
                 "plan_seeds", "train_minutes", "timesteps", "workers"):
        value = getattr(args, name)
        if value != getattr(default, name):
            text = ",".join(value) if isinstance(value, list) else (f"{value:g}" if isinstance(value, float) else value)
            parts.append(f"--{name.replace('_', '-')} {text}")
    return " ".join(parts)


def parse(argv: list[str] | None = None) -> Args:
    """Typed arguments; a bad one exits 2 with a message (argparse's convention), before any work."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--agents", default=",".join(AGENTS), help=f"comma-separated, of {', '.join(AGENTS)}")
    parser.add_argument("--train-seeds", type=int, default=Args.train_seeds)
    parser.add_argument("--eval-seeds", type=int, default=Args.eval_seeds)
    parser.add_argument("--eval-seed", type=int, default=Args.eval_seed, help="the first test seed (reports only)")
    parser.add_argument("--select-seeds", type=int, default=Args.select_seeds,
                        help=f"selection seeds from {SELECTION_SEED:,}: choose the best observation-only policy")
    parser.add_argument("--plan-budget", type=int, default=Args.plan_budget,
                        help="K of the best-plan-S rows (episodes per stage's search)")
    parser.add_argument("--plan-seeds", type=int, default=Args.plan_seeds,
                        help="validation seeds per evaluation of a plan in the search")
    parser.add_argument("--timesteps", type=int, default=None,
                        help=f"environment steps per RL run, the same for every learner (default {Args.timesteps:,})")
    parser.add_argument("--train-minutes", type=float, default=None,
                        help="wall-clock minutes per RL run instead of a step budget (the learners then get unequal "
                        "steps)")
    parser.add_argument("--workers", type=int, default=Args.workers)
    parser.add_argument("--out", type=Path, default=Args.out)
    parser.add_argument("--docs", action="store_true", help="write the table into README.md")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    ns = parser.parse_args(argv)
    scenarios = [s for s in ns.scenarios.split(",") if s]
    agents = [a for a in ns.agents.split(",") if a]
    for name, chosen, allowed in (("--scenarios", scenarios, SCENARIOS), ("--agents", agents, tuple(AGENTS))):
        unknown = [c for c in chosen if c not in allowed]
        if unknown or not chosen or len(set(chosen)) != len(chosen):
            parser.error(f"{name} must be distinct names among {', '.join(allowed)}; got {','.join(chosen)!r}")
    for name, value, low in (("--train-seeds", ns.train_seeds, 1), ("--eval-seeds", ns.eval_seeds, 2),
                             ("--eval-seed", ns.eval_seed, ns.train_seeds), ("--workers", ns.workers, 1),
                             ("--select-seeds", ns.select_seeds, 1), ("--plan-budget", ns.plan_budget, 1),
                             ("--plan-seeds", ns.plan_seeds, 1)):
        if value < low:
            parser.error(f"{name} must be >= {low}, got {value}")
    if ns.eval_seed + ns.eval_seeds > 1_000_000:
        parser.error("evaluation seeds must stay below 1,000,000 (the behaviour-cloning teacher's seeds)")
    if ns.select_seeds > 1_000 or ns.plan_seeds > 1_000:
        parser.error("--select-seeds and --plan-seeds must be <= 1000 (the two validation ranges stay apart)")
    evaluation = set(range(ns.eval_seed, ns.eval_seed + ns.eval_seeds))
    for name, chosen in (("--select-seeds", selection_seeds(ns.select_seeds)),
                         ("--plan-seeds", validation_seeds(ns.plan_seeds))):
        if evaluation & set(chosen):
            parser.error(f"evaluation seeds {ns.eval_seed:,}-{ns.eval_seed + ns.eval_seeds - 1:,} overlap the "
                         f"{name} ({chosen[0]:,}-{chosen[-1]:,}): a seed that chose cannot report")
    if ns.train_minutes is not None and ns.timesteps is not None:
        parser.error("give --timesteps or --train-minutes, not both")
    if ns.train_minutes is not None and not 0 < ns.train_minutes <= 24 * 60:
        parser.error(f"--train-minutes must be in (0, 1440], got {ns.train_minutes}")
    if ns.timesteps is not None and not 1 <= ns.timesteps <= 10**10:
        parser.error(f"--timesteps must be in [1, 10^10], got {ns.timesteps}")
    timesteps = None if ns.train_minutes is not None else (ns.timesteps or Args.timesteps)
    if ns.out.exists() and not ns.out.is_dir():
        parser.error(f"--out {ns.out} exists and is not a folder")
    return Args(scenarios=scenarios, agents=agents, train_seeds=ns.train_seeds, eval_seeds=ns.eval_seeds,
                eval_seed=ns.eval_seed, select_seeds=ns.select_seeds, plan_budget=ns.plan_budget,
                plan_seeds=ns.plan_seeds, train_minutes=ns.train_minutes, timesteps=timesteps, workers=ns.workers,
                out=ns.out, docs=ns.docs, progress=ns.progress)


if __name__ == "__main__":
    from oce_sim.storage.outputs import OutputError

    try:
        main(parse())
    except OutputError as exc:  # --out unusable or written by another process: found before any cell runs
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished cells are cached; run the same command again to resume", file=sys.stderr)
        sys.exit(130)
