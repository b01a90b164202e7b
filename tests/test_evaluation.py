"""Paired evaluation: tidy results, common random numbers, paired CIs, atomic output and figures."""

from __future__ import annotations

import json

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
