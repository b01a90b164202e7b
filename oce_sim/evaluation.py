"""Evaluate strategies on paired seeds (common random numbers), summarise with paired CIs, draw figures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from oce_sim.config import STAGE_NAMES, ScenarioConfig, deep_merge, load_scenario
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.outputs import atomic_save_figure, atomic_write_text  # noqa: F401  (also imported from here)

TABLE_METRICS: tuple[str, ...] = (
    "prescriptions",
    "profit_usd",
    "cost_usd",
    "roi",
    "reach",
    "frequency",
    "engagement_rate",
    "confusion_events",
    "unsubscribes",
    "suggestion_acceptance",
)
RESULT_COLUMNS = ["scenario", "stage", "strategy", "seed", "episode", "metric", "value"]


@dataclass
class Episode:
    kpis: dict[str, float]
    series: list[dict[str, float]]


def strategy_config(scenario: ScenarioConfig, policy: Any, stage: int | None = None) -> ScenarioConfig:
    """The scenario as the strategy runs it: at the strategy's stage, with the env settings it needs."""
    data = scenario.model_dump(mode="python")
    chosen = stage if stage is not None else getattr(policy, "stage", None)
    if chosen is not None:
        data["stage"] = int(chosen)
    extra = getattr(policy, "env_config", None) or {}
    return load_scenario(deep_merge(data, extra))


def run_episode(policy: Any, config: ScenarioConfig, seed: int) -> Episode:
    env = TerritoryEnv(scenario=config)
    obs, _ = env.reset(seed=seed)
    if hasattr(policy, "reset"):
        policy.reset(env, seed)
    done = False
    info: dict[str, Any] = {}
    while not done:
        action, _ = policy.predict(obs, deterministic=True, action_masks=env.action_masks())
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    env.close()
    return Episode(info["kpis"], info["series"])


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
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every policy on the same seeds ``seed .. seed+episodes-1``.  Returns (tidy KPI rows, step series)."""
    rows: list[dict[str, Any]] = []
    series_rows: list[dict[str, Any]] = []
    total = len(policies) * episodes
    with tqdm(total=total, desc=f"{scenario.name}", unit="episode", disable=not progress) as bar:
        for label, policy in policies.items():
            config = strategy_config(scenario, policy, (stages or {}).get(label))
            stage = stage_label(config)
            for episode in range(episodes):
                episode_seed = seed + episode
                result = run_episode(policy, config, episode_seed)
                for metric, value in result.kpis.items():
                    rows.append(dict(scenario=scenario.name, stage=stage, strategy=label, seed=episode_seed,
                                     episode=episode, metric=metric, value=float(value)))
                for step in result.series:
                    series_rows.append(dict(strategy=label, seed=episode_seed, **step))
                bar.set_postfix(strategy=label)
                bar.update(1)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS), pd.DataFrame(series_rows)


def paired_summary(results: pd.DataFrame, baseline: str | None = "instruction",
                   metrics: Iterable[str] = TABLE_METRICS, confidence: float = 0.95) -> pd.DataFrame:
    """Mean per strategy and metric, and the paired difference to ``baseline`` with its t-interval."""
    wide = results[results.metric.isin(list(metrics))].pivot_table(
        index=["strategy", "seed"], columns="metric", values="value", aggfunc="first")
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
                row.update(_t_interval(diff.to_numpy(), confidence))
            out.append(row)
    return pd.DataFrame(out)


def _t_interval(diff: np.ndarray, confidence: float) -> dict[str, float]:
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
    if np.isnan(value):
        return "n/a"
    plus = "+" if sign else ""
    if metric.endswith("_usd"):
        return f"{value / 1000:{plus},.0f}k"
    if metric in ("reach", "engagement_rate", "suggestion_acceptance"):
        return f"{value:{plus}.1%}"
    if metric in ("roi", "frequency"):
        return f"{value:{plus}.2f}"
    return f"{value:{plus},.0f}"


# ------------------------------------------------------------------------------------------------ output
def write_results(out: Path, results: pd.DataFrame, summary: pd.DataFrame, meta: dict[str, Any]) -> None:
    atomic_write_text(out / "results.csv", results.to_csv(index=False))
    payload = {**meta, "summary": json.loads(summary.to_json(orient="records"))}
    atomic_write_text(out / "summary.json", json.dumps(payload, indent=2, default=str))


def plot_figures(results: pd.DataFrame, series: pd.DataFrame, out: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    strategies = list(dict.fromkeys(results.strategy))
    metrics = [m for m in TABLE_METRICS if m in set(results.metric)]
    fig, axes = plt.subplots(2, (len(metrics) + 1) // 2, figsize=(4 * ((len(metrics) + 1) // 2), 7))
    for ax, metric in zip(np.ravel(axes), metrics):
        data = results[results.metric == metric].groupby("strategy", sort=False)["value"]
        means = data.mean().reindex(strategies)
        sems = (data.std(ddof=1) / np.sqrt(data.count())).reindex(strategies)
        ax.bar(range(len(strategies)), means.to_numpy(), yerr=1.96 * sems.fillna(0).to_numpy(), capsize=3,
               color=[f"C{i}" for i in range(len(strategies))])
        ax.set_xticks(range(len(strategies)), strategies, rotation=45, ha="right", fontsize=8)
        ax.set_title(metric, fontsize=10)
    for ax in np.ravel(axes)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(f"{title}: KPIs by strategy (mean, 95% CI)")
    fig.tight_layout()
    paths.append(out / "kpis_by_strategy.png")
    atomic_save_figure(fig, paths[-1])
    plt.close(fig)

    if not series.empty:
        fig, ax = plt.subplots(figsize=(8, 5))
        for strategy, frame in series.groupby("strategy", sort=False):
            mean = frame.groupby("day")["rx_value"].mean().cumsum()
            ax.plot(mean.index, mean.to_numpy() / 1e6, label=strategy, color=f"C{strategies.index(strategy)}")
        ax.set_xlabel("day")
        ax.set_ylabel("cumulative Rx value (USD millions)")
        ax.set_title(f"{title}: cumulative prescriptions over time (mean over seeds)")
        ax.legend(fontsize=8)
        paths.append(out / "cumulative_prescriptions.png")
        atomic_save_figure(fig, paths[-1])
        plt.close(fig)

        channels = [c for c in series.columns if c.startswith("delivered_")]
        n = len(strategies)
        fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.6), sharey=True, squeeze=False)
        for ax, strategy in zip(axes[0], strategies):
            frame = series[series.strategy == strategy].groupby("day")[channels].mean()
            weekly = frame.diff().fillna(frame)
            ax.stackplot(weekly.index, weekly.to_numpy().T, labels=[c.removeprefix("delivered_") for c in channels])
            ax.set_title(strategy, fontsize=9)
            ax.set_xlabel("day")
        axes[0][0].set_ylabel("touches per epoch")
        axes[0][-1].legend(fontsize=7, loc="upper right")
        fig.suptitle(f"{title}: channel mix over time")
        fig.tight_layout()
        paths.append(out / "channel_mix.png")
        atomic_save_figure(fig, paths[-1])
        plt.close(fig)
    return paths
