"""Paired evaluation: tidy results, common random numbers, paired CIs, atomic output and figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from oce_sim.agents import make_strategy
from oce_sim.agents.stage_heuristics import Intervention
from oce_sim.config import load_scenario
from oce_sim.studies.evaluation import (
    RESULT_COLUMNS,
    TABLE_METRICS,
    atomic_write_text,
    evaluate,
    format_table,
    paired_summary,
    plot_figures,
    write_results,
)
from oce_sim.world.metrics import KPI_NAMES

EPISODES, SEED = 3, 10


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("small", overrides={"env": {"horizon_days": 56}})


@pytest.fixture(scope="module")
def evaluated(scenario):
    policies = {name: make_strategy(name) for name in ("instruction", "insight", "intervention")}
    return evaluate(policies, scenario, EPISODES, SEED, progress=False)


def test_results_are_tidy_rows(evaluated, scenario):
    results, _ = evaluated
    assert list(results.columns) == RESULT_COLUMNS == ["scenario", "stage", "strategy", "seed", "episode",
                                                      "metric", "value"]
    assert (results.scenario == scenario.name).all()
    assert set(results.strategy) == {"instruction", "insight", "intervention"}
    stages = results.groupby("strategy")["stage"].unique()
    assert {s: list(v) for s, v in stages.items()} == {
        "instruction": ["0-instruction"], "insight": ["1-insight"], "intervention": ["3-intervention"]}
    assert set(KPI_NAMES) <= set(results.metric)
    assert pd.api.types.is_float_dtype(results.value)
    # exactly one row per (strategy, seed, metric)
    assert not results.duplicated(["strategy", "seed", "metric"]).any()
    assert len(results) == 3 * EPISODES * results.metric.nunique()
    assert sorted(set(results.episode)) == list(range(EPISODES))
    assert (results.seed - results.episode == SEED).all()


def test_every_strategy_sees_the_same_seeds(evaluated):
    results, series = evaluated
    seeds = results.groupby("strategy")["seed"].apply(lambda s: sorted(set(s)))
    for strategy_seeds in seeds:
        assert strategy_seeds == list(range(SEED, SEED + EPISODES))
    assert set(series.strategy) == set(results.strategy)
    assert {"day", "revenue", "profit"} <= set(series.columns)
    assert series.groupby(["strategy", "seed"]).size().eq(8).all(), "one series row per weekly step"


def test_common_random_numbers_make_identical_strategies_identical(scenario):
    """Two instances of the same strategy under different labels produce exactly the same episodes."""
    results, series = evaluate({"a": Intervention(), "b": Intervention()}, scenario, EPISODES, SEED, progress=False)
    a = results[results.strategy == "a"].drop(columns="strategy").reset_index(drop=True)
    b = results[results.strategy == "b"].drop(columns="strategy").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    summary = paired_summary(results, baseline="a")
    b_rows = summary[summary.strategy == "b"]
    assert len(b_rows) == len([m for m in TABLE_METRICS if m in set(results.metric)])
    finite = b_rows.dropna(subset=["diff_mean"])
    assert len(finite) >= len(TABLE_METRICS) - 1  # roi/acceptance may be undefined without spend
    assert (finite.diff_mean == 0).all()
    assert (finite.diff_low == 0).all() and (finite.diff_high == 0).all(), "zero-width CI"


def test_paired_summary_ci_contains_the_mean_difference(evaluated):
    results, _ = evaluated
    summary = paired_summary(results, baseline="instruction")
    assert set(summary.strategy) == {"instruction", "insight", "intervention"}
    base = summary[summary.strategy == "instruction"]
    assert base.get("diff_mean", pd.Series(dtype=float)).isna().all(), "no difference for the baseline itself"
    others = summary[summary.strategy != "instruction"].dropna(subset=["diff_low"])
    assert len(others) > 0
    assert (others.diff_low <= others.diff_mean).all() and (others.diff_mean <= others.diff_high).all()
    assert (others.n == EPISODES).all()
    # the paired difference is the mean of per-seed differences, computed by hand
    wide = results.pivot_table(index=["strategy", "seed"], columns="metric", values="value")
    by_hand = (wide.loc["intervention"]["profit_usd"] - wide.loc["instruction"]["profit_usd"]).mean()
    row = summary[(summary.strategy == "intervention") & (summary.metric == "profit_usd")].iloc[0]
    assert row.diff_mean == pytest.approx(by_hand)
    assert row["mean"] == pytest.approx(wide.loc["intervention"]["profit_usd"].mean())
    assert row.diff_high - row.diff_low > 0, "different strategies: a CI of positive width"


def test_paired_summary_without_baseline_has_no_differences(evaluated):
    results, _ = evaluated
    summary = paired_summary(results, baseline=None)
    assert "diff_mean" not in summary.columns
    table = format_table(summary, None)
    assert list(table.index) == ["instruction", "insight", "intervention"]
    assert not table.stack().str.contains(r"\[").any()


def test_format_table_shows_ci_for_non_baseline_rows(evaluated):
    results, _ = evaluated
    table = format_table(paired_summary(results, baseline="instruction"), "instruction")
    assert list(table.index) == ["instruction", "insight", "intervention"]
    assert "[" not in table.loc["instruction", "profit_usd"]
    assert "[" in table.loc["intervention", "profit_usd"]


def test_atomic_write_text_replaces_content_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "deep" / "folder" / "out.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second, longer content")
    assert target.read_text(encoding="utf-8") == "second, longer content"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_write_text_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")

    with pytest.raises(TypeError):
        atomic_write_text(target, 12345)  # type: ignore[arg-type]  # writing a non-string fails mid-way
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_results_and_figures(evaluated, tmp_path):
    results, series = evaluated
    summary = paired_summary(results, baseline="instruction")
    write_results(tmp_path, results, summary, {"scenario": "small", "episodes": EPISODES})
    back = pd.read_csv(tmp_path / "results.csv")
    assert list(back.columns) == RESULT_COLUMNS
    assert len(back) == len(results)
    payload = json.loads((tmp_path / "summary.json").read_text())
    assert payload["scenario"] == "small" and payload["episodes"] == EPISODES
    assert len(payload["summary"]) == len(summary)
    definitions = payload["kpi_definitions"]
    assert {"profit_multi_period_usd", "incremental_roi"} <= set(definitions), "summary.json defines its KPIs"
    assert definitions["profit_usd"]["unit"] == "usd" and definitions["cost_usd"]["better"] == "lower"

    paths = plot_figures(results, series, tmp_path, "small")
    names = {p.name for p in paths}
    assert names == {"kpis_by_strategy.png", "cumulative_profit.png", "channel_mix.png"}
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 5_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary files left"


# ------------------------------------------------------------------------------------- what a table may claim
def _rows(strategy: str, values: dict[str, list[float]]) -> list[dict]:
    return [dict(scenario="s", stage="1-insight", strategy=strategy, seed=seed, episode=seed, metric=metric, value=v)
            for metric, per_seed in values.items() for seed, v in enumerate(per_seed)]


def test_an_engagement_rate_without_promotional_touches_is_na_not_the_best():
    """no_promotion's only touches are the customers' own portal visits, always engaged: 100% says nothing about
    promotion, so the table shows n/a and no difference (issue 24)."""
    from oce_sim.studies.evaluation import PROMOTION_TOUCHES

    silent = {m: [0.0, 0.0] for m in PROMOTION_TOUCHES}
    results = pd.DataFrame(
        _rows("today", {"engagement_rate": [0.5, 0.4], "touches_rep_visit": [10.0, 12.0], "touches_website": [3.0, 4.0]})
        + _rows("no_promotion", {"engagement_rate": [1.0, 1.0], **silent, "touches_website": [3.0, 2.0]}),
        columns=RESULT_COLUMNS)
    summary = paired_summary(results, baseline="today", metrics=["engagement_rate"]).set_index("strategy")
    assert summary.loc["today", "mean"] == pytest.approx(0.45)
    assert np.isnan(summary.loc["no_promotion", "mean"]) and np.isnan(summary.loc["no_promotion", "diff_mean"])
    assert format_table(paired_summary(results, "today", ["engagement_rate"]), "today").loc[
        "no_promotion", "engagement_rate"] == "n/a"
    # the raw results keep the episode's own value: only what tables claim changes
    assert results[(results.strategy == "no_promotion") & (results.metric == "engagement_rate")].value.tolist() == [1, 1]


def test_the_leader_is_compared_with_the_runner_up_on_paired_seeds():
    from oce_sim.studies.evaluation import leader

    metric = "profit_multi_period_usd"
    clear = pd.DataFrame(_rows("a", {metric: [10.0, 11.0, 12.0]}) + _rows("b", {metric: [5.0, 6.2, 6.9]})
                         + _rows("oracle", {metric: [99.0, 99.0, 99.0]}), columns=RESULT_COLUMNS)
    top = leader(clear, metric, exclude=["oracle"])
    assert (top.best, top.runner_up, top.n) == ("a", "b", 3) and top.diff_low > 0
    assert top.diff_mean == pytest.approx((5.0 + 4.8 + 5.1) / 3)
    close = pd.DataFrame(_rows("a", {metric: [10.0, 11.0, 12.0]}) + _rows("b", {metric: [12.0, 9.0, 11.5]}),
                         columns=RESULT_COLUMNS)
    top = leader(close, metric)
    assert top.best == "a" and top.diff_low < 0 < top.diff_high
    alone = leader(close[close.strategy == "a"], metric)
    assert alone.runner_up is None and alone.best == "a"
    # a strategy equal to the leader on every seed (stage=2 and involvement: one organisation) is not its runner-up
    twins = pd.concat([clear, clear[clear.strategy == "a"].assign(strategy="a2")], ignore_index=True)
    top = leader(twins, metric, exclude=["oracle"])
    assert (top.best, top.same_as, top.runner_up) == ("a", ("a2",), "b") and top.diff_low > 0


def test_the_progress_bar_weights_the_oracles_slow_episodes(monkeypatch, scenario):
    """The bar's estimate of the time left counts the oracle's episodes (about 60 heuristic episodes each) ahead,
    rather than averaging them in after the fast ones."""
    from oce_sim.studies import evaluation

    bars = []

    class Bar:
        def __init__(self, total: float, **_: object) -> None:
            self.total, self.updates = total, []
            bars.append(self)

        def __enter__(self) -> "Bar":
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def update(self, n: float) -> None:
            self.updates.append(n)

        def set_postfix_str(self, _: str, refresh: bool = True) -> None:
            pass

    monkeypatch.setattr(evaluation, "tqdm", Bar)
    short = load_scenario("small", overrides={"env": {"horizon_days": 14}})
    evaluate({n: make_strategy(n) for n in ("instruction", "oracle")}, short, 1, SEED)
    (bar,) = bars
    weight = evaluation.EPISODE_WEIGHT["oracle"]
    assert bar.total == 2 + weight  # instruction, oracle and the hidden no-promotion counterfactual
    assert sorted(bar.updates) == [1.0, 1.0, weight] and sum(bar.updates) == bar.total


@pytest.mark.parametrize("name", ["instruction", "insight", "involvement", "intervention", "no_promotion", "random",
                                  "oracle_greedy"])
def test_paired_seeds_in_one_batch_are_the_episodes_alone(name):
    """``run_episodes`` plays a strategy's paired seeds as the territories of one batch: every episode is the one
    ``run_episode`` plays alone (KPIs and step series), policy state included."""
    from oce_sim.agents import make_strategy
    from oce_sim.studies.evaluation import run_episode, run_episodes, strategy_config

    policy = make_strategy(name)
    config = strategy_config(load_scenario("small", overrides={"env": {"horizon_days": 56}}), policy)
    seeds = [3, 4, 5]
    together = run_episodes(policy, config, seeds)
    alone = [run_episode(make_strategy(name), config, s) for s in seeds]
    for a, b in zip(together, alone):
        assert a.kpis == b.kpis and a.series == b.series
    assert together[0].kpis != together[1].kpis


def test_seed_batches_hold_a_bounded_number_of_customers():
    from oce_sim.studies.evaluation import MAX_BATCH_CUSTOMERS, seed_batches

    assert seed_batches(list(range(10)), 600) == [list(range(10))]
    assert seed_batches(list(range(40)), 600) == [list(range(16)), list(range(16, 32)), list(range(32, 40))]
    assert seed_batches([1, 2, 3], 100_000) == [[1], [2], [3]]
    assert all(len(b) * 600 <= MAX_BATCH_CUSTOMERS for b in seed_batches(list(range(100)), 600))


def test_a_process_pool_gives_the_tables_one_process_gives(scenario, evaluated):
    """``workers`` > 1 plays the seed batches in other processes (the oracle's batch split between them): the same
    rows in the same order, and the series too."""
    from oce_sim.studies.evaluation import Unit, split_units

    policies = {name: make_strategy(name) for name in ("instruction", "insight", "intervention")}
    pooled = evaluate(policies, scenario, EPISODES, SEED, progress=False, workers=2)
    pd.testing.assert_frame_equal(pooled[0], evaluated[0])
    alone = evaluate(policies, scenario, EPISODES, SEED, progress=False)[1]
    pd.testing.assert_frame_equal(pooled[1], alone)
    # a slow strategy's batch is cut into pieces, the fast ones' kept whole, seeds in order
    units = [Unit("oracle", scenario, [1, 2, 3, 4]), Unit("instruction", scenario, [1, 2, 3, 4])]
    split = split_units(units, {"oracle": 60.0, "instruction": 1.0}, workers=2)
    assert [u.seeds for u in split] == [[1], [2], [3], [4], [1, 2, 3, 4]]


def test_the_pool_starts_only_for_long_work():
    from oce_sim.studies.evaluation import pool_pays

    default, small = load_scenario("default"), load_scenario("small", overrides={"env": {"horizon_days": 56}})
    heuristics = {name: make_strategy(name) for name in ("instruction", "intervention")}
    assert pool_pays({**heuristics, "oracle": make_strategy("oracle")}, default, 10)
    assert not pool_pays(heuristics, small, 3)
