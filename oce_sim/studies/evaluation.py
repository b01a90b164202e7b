"""Evaluate strategies on paired seeds (common random numbers), summarise with paired CIs, draw figures."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from oce_sim.config import (
    CHANNELS,
    STAGE_NAMES,
    ScenarioConfig,
    StageConfig,
    deep_merge,
    load_scenario,
)
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.storage.outputs import atomic_save_figure, atomic_write_text  # noqa: F401  (also imported from here)
from oce_sim.world.batch import MAX_BATCH_CUSTOMERS, play_in_lockstep, seed_batches  # noqa: F401  (re-exported)
from oce_sim.world.kpis import KPIS, TABLE_KPIS, UNDEFINED, definitions, format_value
from oce_sim.world.simulation import Territories

TABLE_METRICS: tuple[str, ...] = TABLE_KPIS
COUNTERFACTUAL = "no_promotion"  # what incremental revenue and ROI are measured against
RESULT_COLUMNS = ["scenario", "stage", "strategy", "seed", "episode", "metric", "value"]
# Touches the organisation sends: the website's are the customers' own visits, always engaged, so a strategy that
# sends none (no_promotion) has an engagement rate of 100% that says nothing about its promotion.
PROMOTION_TOUCHES: tuple[str, ...] = tuple(f"touches_{c}" for c in CHANNELS if c != "website")
# The time of one episode against a stage heuristic's (the rollout oracle plays its base policies ahead on copies of
# the env: measured 40x on small, 60x on default), so that the progress bar's estimate of the time left counts the
# oracle's episodes, which run last, from the start.
EPISODE_WEIGHT: dict[str, float] = {"oracle": 60.0, "oracle_greedy": 2.0}


@dataclass
class Episode:
    kpis: dict[str, float]
    series: list[dict[str, float]]


def strategy_config(scenario: ScenarioConfig, policy: Any, stage: int | None = None) -> ScenarioConfig:
    """The scenario as the strategy runs it: at the strategy's stage, with the env settings it needs."""
    data = scenario.model_dump(mode="python")
    chosen = stage if stage is not None else getattr(policy, "stage", None)
    if isinstance(chosen, (StageConfig, Mapping)):  # a per-entity stage (an organisation, a move)
        data["stage"] = chosen.model_dump() if isinstance(chosen, StageConfig) else dict(chosen)
    elif chosen is not None:
        data["stage"] = int(chosen)
    extra = getattr(policy, "env_config", None) or {}
    return load_scenario(deep_merge(data, extra))


def play_episode(env: TerritoryEnv, policy: Any, seed: int, until_day: float | None = None) -> dict[str, Any]:
    """Reset ``env`` and ``policy`` on ``seed`` and play until the episode ends (or ``until_day``); returns the last
    step's info.  The env stays open, so the caller can read its world."""
    obs, _ = env.reset(seed=seed)
    if hasattr(policy, "reset"):
        policy.reset(env, seed)
    done = False
    info: dict[str, Any] = {}
    while not done and (until_day is None or env.world.now < until_day):
        action, _ = policy.predict(obs, deterministic=True, action_masks=env.action_masks())
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return info


def run_episode(policy: Any, config: ScenarioConfig, seed: int) -> Episode:
    env = TerritoryEnv(scenario=config)
    info = play_episode(env, policy, seed)
    env.close()
    return Episode(info["kpis"], info["series"])


def run_episodes(policy: Any, config: ScenarioConfig, seeds: Sequence[int]) -> list[Episode]:
    """``policy`` on every seed, the seeds' territories advancing together as one batch (one SimPy calendar and one
    compiled call per phase for all of them, ``oce_sim.world.simulation.Territories``).  Each seed plays its own copy
    of ``policy`` (reset on its env, as ``run_episode`` resets it), and each territory runs exactly as it would
    alone: the episodes are ``run_episode``'s, seed by seed (``tests/test_evaluation.py``)."""
    if len(seeds) == 1:
        return [run_episode(policy, config, seeds[0])]
    envs = [TerritoryEnv(scenario=config) for _ in seeds]
    policies = [copy.deepcopy(policy) for _ in seeds]
    try:
        observations = []
        for env, player, seed in zip(envs, policies, seeds):
            obs, _ = env.reset(seed=seed)
            if hasattr(player, "reset"):
                player.reset(env, seed)
            observations.append(obs)
        Territories.join([env.world for env in envs])
        infos = play_in_lockstep(
            envs, lambda i, obs, mask: policies[i].predict(obs, deterministic=True, action_masks=mask)[0], observations)
        return [Episode(info["kpis"], info["series"]) for info in infos]
    finally:
        for env in envs:
            env.close()


def stage_label(config: ScenarioConfig) -> str:
    s = config.stage
    if len({s.customer, s.sales, s.marketing, s.it}) == 1:
        return f"{s.sales}-{STAGE_NAMES[s.sales]}"
    return f"c{s.customer}s{s.sales}m{s.marketing}i{s.it}"


def evaluate(
    policies: Mapping[str, Any],
    scenario: ScenarioConfig,
    episodes: int,
    seed: int,
    stages: Mapping[str, int | None] | None = None,
    progress: bool = True,
    workers: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every policy on the same seeds ``seed .. seed+episodes-1``.  Returns (tidy KPI rows, step series).

    ``workers`` > 1 plays the strategies' seed batches in that many processes (slow strategies' batches split so
    that both cores stay busy); every episode is the one played alone, so the tables are identical whatever
    ``workers`` is (``tests/test_evaluation.py``)."""
    rows: list[dict[str, Any]] = []
    series_rows: list[dict[str, Any]] = []
    runs = dict(policies)
    hidden = COUNTERFACTUAL not in runs
    if hidden:  # the counterfactual of the incremental KPIs runs even when the table does not show it
        from oce_sim.agents import make_strategy

        runs[COUNTERFACTUAL] = make_strategy(COUNTERFACTUAL)
    weights = {label: EPISODE_WEIGHT.get(getattr(policy, "name", label), 1.0) for label, policy in runs.items()}
    seeds = [seed + episode for episode in range(episodes)]
    units = [Unit(label, strategy_config(scenario, policy, (stages or {}).get(label)), batch)
             for label, policy in runs.items()
             for batch in seed_batches(seeds, scenario.population.n_hcps)]
    if workers > 1:
        units = split_units(units, weights, workers)
    played: dict[int, list[Episode]] = {}
    done = 0
    # the bar advances by each episode's weight, so that its estimate of the time left counts slow episodes ahead
    with tqdm(total=sum(weights.values()) * episodes, desc=f"{scenario.name}", bar_format="{l_bar}{bar}| [{elapsed}<{remaining}{postfix}]", disable=not progress) as bar:
        for index, episodes_played in play_units(units, runs, workers, weights):
            played[index] = episodes_played
            unit = units[index]
            done += len(unit.seeds)
            bar.set_postfix_str(f"{done}/{len(runs) * episodes} episodes, {unit.label}", refresh=False)
            bar.update(weights[unit.label] * len(unit.seeds))
    for index, unit in enumerate(units):  # in the serial order, whichever worker finished first
        stage = stage_label(unit.config)
        for episode_seed, result in zip(unit.seeds, played[index]):
            episode = episode_seed - seed
            for metric, value in result.kpis.items():
                rows.append(dict(scenario=scenario.name, stage=stage, strategy=unit.label, seed=episode_seed,
                                 episode=episode, metric=metric, value=float(value)))
            if not (hidden and unit.label == COUNTERFACTUAL):
                for step in result.series:
                    series_rows.append(dict(strategy=unit.label, seed=episode_seed, **step))
    results = add_paired_kpis(pd.DataFrame(rows, columns=RESULT_COLUMNS))
    if hidden:
        results = results[results.strategy != COUNTERFACTUAL].reset_index(drop=True)
    return results, pd.DataFrame(series_rows)


# A process pool pays once the episodes take much longer than starting its workers (a few seconds each): in
# heuristic episodes of the default scenario's territory-year (the main job's ten paired seeds, oracle included,
# weigh about 700).
POOL_MIN_EPISODES = 100


def episode_size(scenario: ScenarioConfig) -> float:
    """One episode of ``scenario`` in heuristic episodes of 600 customers for a year (what a pool's work is counted in)."""
    return scenario.population.n_hcps / 600 * scenario.env.horizon_days / 365


def pool_workers(work: float) -> int:
    """Processes for ``work`` heuristic episodes (:func:`episode_size`): one per usable CPU where that pays for
    starting a pool (``POOL_MIN_EPISODES``), else this process alone."""
    from .processes import local_worker_limit

    return local_worker_limit()[0] if work >= POOL_MIN_EPISODES else 1


def pool_pays(policies: Mapping[str, Any], scenario: ScenarioConfig, episodes: int) -> bool:
    """Whether ``evaluate`` is worth a process pool: its work, in heuristic episodes of 600 customers for a year."""
    weight = sum(EPISODE_WEIGHT.get(getattr(policy, "name", label), 1.0) for label, policy in policies.items())
    return (weight + 1.0) * episodes * episode_size(scenario) >= POOL_MIN_EPISODES  # + 1: the counterfactual


@dataclass(frozen=True)
class Unit:
    """One strategy's seeds played as one batch: the work a process takes."""

    label: str
    config: ScenarioConfig
    seeds: list[int]


def split_units(units: Sequence[Unit], weights: Mapping[str, float], workers: int) -> list[Unit]:
    """``units`` cut so that none holds much more than its share of the work (the rollout oracle's episodes weigh
    60 of a heuristic's: its batch is split between the processes), in the serial order of their seeds."""
    total = sum(weights[unit.label] * len(unit.seeds) for unit in units)
    share = total / (2 * workers)  # at least two units a worker, so that no core waits long for the last one
    out: list[Unit] = []
    for unit in units:
        pieces = min(len(unit.seeds), max(1, int(np.ceil(weights[unit.label] * len(unit.seeds) / share))))
        for part in np.array_split(np.asarray(unit.seeds), pieces):
            out.append(Unit(unit.label, unit.config, [int(s) for s in part]))
    return out


def play_units(units: Sequence[Unit], policies: Mapping[str, Any], workers: int,
               weights: Mapping[str, float]) -> Iterable[tuple[int, list[Episode]]]:
    """Each unit's episodes as ``(index, episodes)``, in this process (``workers`` 1, or a policy that cannot go to
    another process) or in a pool of ``workers`` processes, the heaviest units first (``weights``: an episode's
    weight per label), as they finish."""
    import pickle

    if workers > 1 and len(units) > 1:
        try:
            pickle.dumps(dict(policies))
        except Exception:  # noqa: BLE001 - e.g. a model holding an open handle: it plays here
            workers = 1
    if workers <= 1 or len(units) <= 1:
        for index, unit in enumerate(units):
            yield index, run_episodes(policies[unit.label], unit.config, unit.seeds)
        return
    import concurrent.futures

    from .processes import local_worker_limit, shared_pool

    order = sorted(range(len(units)), key=lambda index: -weights[units[index].label] * len(units[index].seeds))
    pool = shared_pool(min(workers, local_worker_limit()[0]))  # the plan searches' workers, if they ran
    pending = {pool.submit(run_episodes, policies[units[index].label], units[index].config, units[index].seeds):
               index for index in order}
    try:
        for future in concurrent.futures.as_completed(pending):
            yield pending[future], future.result()
    except BaseException:  # Ctrl-C or a failed episode: start nothing more
        for future in pending:
            future.cancel()
        raise


def add_paired_kpis(results: pd.DataFrame, counterfactual: str = COUNTERFACTUAL) -> pd.DataFrame:
    """Append the ``incremental_*`` KPIs of every strategy and seed, against ``counterfactual`` on the same seed
    (no promotion: no field force, no marketing).  ROIs are revenue per promotional dollar, field force included."""
    needed = ["revenue_usd", "revenue_multi_period_usd", "profit_multi_period_usd", "cost_usd"]
    wide = results[results.metric.isin(needed)].pivot_table(
        index=["scenario", "strategy", "seed"], columns="metric", values="value", aggfunc="first")
    if wide.empty or counterfactual not in set(results.strategy) or not set(needed) <= set(wide.columns):
        return results
    base = wide.xs(counterfactual, level="strategy")
    keys = results.drop_duplicates(["scenario", "strategy", "seed"]).set_index(["scenario", "strategy", "seed"])
    rows = []
    for (scenario, strategy, seed), own in wide.iterrows():
        if (scenario, seed) not in base.index:
            continue
        ref = base.loc[(scenario, seed)]
        cost = own["cost_usd"]
        extra = own["revenue_usd"] - ref["revenue_usd"]
        extra_multi = own["revenue_multi_period_usd"] - ref["revenue_multi_period_usd"]
        values = {
            "incremental_revenue_usd": extra,
            "incremental_roi": extra / cost if cost > 0 else UNDEFINED,
            "incremental_revenue_multi_period_usd": extra_multi,
            "incremental_roi_multi_period": extra_multi / cost if cost > 0 else UNDEFINED,
            "incremental_profit_multi_period_usd": own["profit_multi_period_usd"] - ref["profit_multi_period_usd"],
        }
        key = keys.loc[(scenario, strategy, seed)]
        for metric, value in values.items():
            rows.append(dict(scenario=scenario, stage=key["stage"], strategy=strategy, seed=seed,
                             episode=key["episode"], metric=metric, value=float(value)))
    return pd.concat([results, pd.DataFrame(rows, columns=RESULT_COLUMNS)], ignore_index=True)


def paired_summary(results: pd.DataFrame, baseline: str | None = "instruction",
                   metrics: Iterable[str] = TABLE_METRICS, confidence: float = 0.95) -> pd.DataFrame:
    """Mean per strategy and metric, and the paired difference to ``baseline`` with its t-interval."""
    wide = results[results.metric.isin(list(metrics))].pivot_table(
        index=["strategy", "seed"], columns="metric", values="value", aggfunc="first", dropna=False)
    ratios = [m for m in wide.columns if m in KPIS and KPIS[m].ratio]
    wide[ratios] = wide[ratios].where(wide[ratios] != UNDEFINED)  # an undefined ratio is missing, not -1
    promoted = _promoted(results)
    if "engagement_rate" in wide.columns and promoted is not None:  # undefined without a promotional touch: n/a
        wide["engagement_rate"] = wide["engagement_rate"].where(promoted.reindex(wide.index, fill_value=True))
    out = []
    strategies = list(dict.fromkeys(results.strategy))
    has_baseline = baseline in strategies
    for strategy in strategies:
        own = wide.loc[strategy]
        for metric in metrics:
            if metric not in own:
                continue
            values = own[metric]
            row = dict(strategy=strategy, metric=metric, mean=float(values.mean()), std=float(values.std(ddof=1)) if len(values) > 1 else 0.0, n=int(values.notna().sum()))
            if has_baseline and strategy != baseline:
                diff = (values - wide.loc[baseline][metric]).dropna()
                row.update(t_interval(diff.to_numpy(), confidence))
            out.append(row)
    return pd.DataFrame(out)


def _promoted(results: pd.DataFrame) -> pd.Series | None:
    """Per (strategy, seed): whether any promotional touch was delivered; None where ``results`` has no touch
    counts (nothing says otherwise)."""
    touches = results[results.metric.isin(PROMOTION_TOUCHES)]
    if touches.empty:
        return None
    return touches.groupby(["strategy", "seed"]).value.sum() > 0


@dataclass(frozen=True)
class Leader:
    """The strategy with the highest mean of a KPI, those that equal it on every seed (the same organisation
    reached by two names), and its paired difference to the runner-up."""

    best: str
    mean: float
    runner_up: str | None
    diff_mean: float
    diff_low: float
    diff_high: float
    n: int
    same_as: tuple[str, ...] = ()


def leader(results: pd.DataFrame, metric: str, exclude: Iterable[str] = (), confidence: float = 0.95) -> Leader | None:
    """The strategy (not in ``exclude``) with the highest mean ``metric`` and the paired CI of its lead over the
    runner-up, so that a summary calls it the best only when the lead is clear.  Strategies equal to it on every
    seed are not its runner-up but the same result (``same_as``)."""
    frame = results[(results.metric == metric) & ~results.strategy.isin(list(exclude))]
    if frame.empty:
        return None
    wide = frame.pivot_table(index="seed", columns="strategy", values="value", aggfunc="first", sort=False)
    means = wide.mean().sort_values(ascending=False, kind="stable")
    best = str(means.index[0])
    same = tuple(str(s) for s in means.index[1:] if wide[s].equals(wide[best]))
    others = [s for s in means.index[1:] if s not in same]
    if not others:
        return Leader(best, float(means.iloc[0]), None, float("nan"), float("nan"), float("nan"), 0, same)
    runner = str(others[0])
    pair = frame[frame.strategy.isin([best, runner])]
    row = paired_summary(pair, baseline=runner, metrics=[metric], confidence=confidence).set_index("strategy").loc[best]
    return Leader(best, float(means.iloc[0]), runner, float(row.diff_mean), float(row.diff_low), float(row.diff_high),
                  int(row.n), same)


def t_interval(diff: np.ndarray, confidence: float) -> dict[str, float]:
    """The mean of paired differences and its t-interval (``diff_low``, ``diff_high``; NaN below two seeds)."""
    n = diff.size
    if n == 0:
        return {"diff_mean": float("nan"), "diff_low": float("nan"), "diff_high": float("nan")}
    mean = float(diff.mean())
    if n < 2:
        return {"diff_mean": mean, "diff_low": float("nan"), "diff_high": float("nan")}
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * diff.std(ddof=1) / np.sqrt(n))
    return {"diff_mean": mean, "diff_low": mean - half, "diff_high": mean + half}


def format_table(summary: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Wide table: one row per strategy, ``mean [diff CI]`` per metric."""
    cells: dict[str, dict[str, str]] = {}
    for row in summary.itertuples():
        text = _fmt(row.mean, row.metric)
        low = getattr(row, "diff_low", float("nan"))
        if baseline and row.strategy != baseline and not np.isnan(low):
            text += f" [{_fmt(row.diff_low, row.metric, sign=True)}, {_fmt(row.diff_high, row.metric, sign=True)}]"
        cells.setdefault(row.strategy, {})[row.metric] = text
    return pd.DataFrame.from_dict(cells, orient="index")


def _fmt(value: float, metric: str, sign: bool = False) -> str:
    return format_value(metric, value, sign)


# ------------------------------------------------------------------------------------------------ output
def write_results(out: Path, results: pd.DataFrame, summary: pd.DataFrame, meta: dict[str, Any]) -> None:
    atomic_write_text(out / "results.csv", results.to_csv(index=False))
    payload = {**meta, "summary": json.loads(summary.to_json(orient="records")),
               "kpi_definitions": definitions(dict.fromkeys(results.metric))}
    atomic_write_text(out / "summary.json", json.dumps(payload, indent=2, default=str))


FIGURE_KPIS: tuple[str, ...] = (
    "profit_multi_period_usd", "profit_usd", "value_at_horizon_usd", "incremental_roi", "cost_usd", "prescriptions",
)


def plot_kpi_differences(results: pd.DataFrame, path: Path, title: str, baseline: str | None = None,
                         what: str = "strategy") -> Path:
    """The figure KPIs of each strategy (or what-if variant: ``what``) as differences to ``baseline`` with paired
    95% CIs (means with their own CIs without a baseline), USD in thousands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from oce_sim.world.kpis import unit_label

    strategies = list(dict.fromkeys(results.strategy))
    colours = {s: f"C{i % 10}" for i, s in enumerate(strategies)}
    metrics = [m for m in FIGURE_KPIS if m in set(results.metric)]
    summary = paired_summary(results, baseline=baseline, metrics=metrics)
    ncols = 3
    nrows = (len(metrics) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 3.2 * nrows), squeeze=False)
    paired = baseline is not None and baseline in strategies
    shown = [s for s in strategies if not (paired and s == baseline)]
    for ax, metric in zip(axes.ravel(), metrics):
        rows = summary[summary.metric == metric].set_index("strategy").reindex(shown)
        scale = 1e3 if KPIS[metric].unit == "usd" else 1.0
        if paired:
            centre = rows["diff_mean"].to_numpy() / scale
            low, high = rows["diff_low"].to_numpy() / scale, rows["diff_high"].to_numpy() / scale
            ax.axvline(0.0, color="grey", lw=0.8)
        else:
            centre = rows["mean"].to_numpy() / scale
            half = 1.96 * rows["std"].to_numpy() / np.sqrt(np.maximum(rows["n"].to_numpy(), 1)) / scale
            low, high = centre - half, centre + half
        y = np.arange(len(shown))
        ax.barh(y, centre, color=[colours[s] for s in shown], alpha=0.8)
        ax.errorbar(centre, y, xerr=[np.nan_to_num(centre - low), np.nan_to_num(high - centre)], fmt="none",
                    ecolor="black", capsize=3)
        ax.set_yticks(y, shown, fontsize=8)
        ax.invert_yaxis()
        label = unit_label(metric).replace("(USD)", "(USD thousands)")
        ax.set_xlabel(("difference to " + baseline + ": " if paired else "") + label, fontsize=8)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    kind = f"difference to {baseline}, paired seeds, 95% CI" if paired else "mean, 95% CI"
    fig.suptitle(f"{title}: KPIs by {what}, per territory ({kind})")
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
    return path


def plot_figures(results: pd.DataFrame, series: pd.DataFrame, out: Path, title: str,
                 baseline: str | None = None) -> list[Path]:
    """KPI differences to ``baseline`` with paired 95% CIs (means with their own CIs without a baseline),
    cumulative profit over the year, and the channel mix per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = list(dict.fromkeys(results.strategy))
    colours = {s: f"C{i}" for i, s in enumerate(strategies)}
    paths = [plot_kpi_differences(results, out / "kpis_by_strategy.png", title, baseline)]
    if not series.empty:
        fig, ax = plt.subplots(figsize=(8, 5))
        for strategy, frame in series.groupby("strategy", sort=False):
            mean = frame.groupby("day")["profit"].mean().cumsum()
            ax.plot(mean.index, mean.to_numpy() / 1e6, label=strategy, color=colours.get(strategy))
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xlabel("day of the episode (days)")
        ax.set_ylabel("cumulative profit, year 1 (USD millions)")
        ax.set_title(f"{title}: cumulative year-1 profit (gross margin - promotion cost; mean over seeds)\n"
                     "the value left at the horizon is not included", fontsize=10)
        ax.legend(fontsize=8)
        paths.append(out / "cumulative_profit.png")
        atomic_save_figure(fig, paths[-1])
        plt.close(fig)

        channels = [c for c in series.columns if c.startswith("delivered_")]
        n = len(strategies)
        cols = min(3, n)
        rows_n = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.2 * rows_n), sharey=True, squeeze=False)
        for ax, strategy in zip(axes.ravel(), strategies):
            frame = series[series.strategy == strategy].groupby("day")[channels].mean()
            weekly = frame.diff().fillna(frame)
            ax.stackplot(weekly.index, weekly.to_numpy().T, labels=[c.removeprefix("delivered_") for c in channels])
            ax.set_title(strategy, fontsize=9)
            ax.set_xlabel("day of the episode (days)", fontsize=8)
            ax.set_ylabel("delivered touches per decision epoch", fontsize=8)
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        axes.ravel()[0].legend(fontsize=7, loc="upper right")
        fig.suptitle(f"{title}: channel mix over time (mean over seeds)")
        fig.tight_layout()
        paths.append(out / "channel_mix.png")
        atomic_save_figure(fig, paths[-1])
        plt.close(fig)
    return paths
