"""The drivers of a gain (``oce_sim.studies.drivers``, ``oce-sim compare --drivers``): each difference to the
baseline split by channel with the calibration harness's muting, the parts plus the residual equal to the total on
every seed, a tidy CSV, a table and a waterfall in the report, and a flag refused where it cannot apply."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from oce_sim.agents.organisation import Organisation, move_label, parse_move
from oce_sim.cli import app
from oce_sim.config import CHANNELS, load_scenario
from oce_sim.studies import calibration, drivers
from oce_sim.studies.evaluation import evaluate, strategy_config

from test_cli import assert_clean_exit

EPISODES = 2


@pytest.fixture(scope="module")
def small():
    config = load_scenario("small")
    today = Organisation(config.stage, name="today")
    move = Organisation(parse_move("marketing=3", config.stage), name=move_label("marketing=3"))
    return config, {"today": today, "marketing=3": move}


@pytest.fixture(scope="module")
def by_seed(small):
    config, policies = small
    results, _ = evaluate(policies, config, EPISODES, 0, progress=False)
    return drivers.run(policies, config, EPISODES, 0, "today", results=results, progress=False)


def test_parts_plus_residual_equal_the_total_on_every_seed(by_seed):
    parts = [*CHANNELS, "interactions", "rx_draws", "cost", "value_at_horizon"]
    assert list(drivers.PARTS) == parts
    assert sorted(by_seed.seed.unique()) == list(range(EPISODES))
    for seed, frame in by_seed.groupby("seed"):
        value = frame.set_index("component").value
        total = value[drivers.TOTAL]
        assert math.isclose(value[parts].sum(), total, rel_tol=1e-12, abs_tol=1e-6), (seed, value)
        assert value[list(CHANNELS)].abs().sum() > 0, "the move changes what the channels earn"
        assert total != 0


def test_the_residual_holds_interactions_only_every_channel_muted_the_shadows_coincide(small):
    config, policies = small
    shadows = []
    for label in ("today", "marketing=3"):
        cfg = strategy_config(config, policies[label])
        trace = calibration.run(policies[label], cfg, 0, mute=tuple(range(len(CHANNELS))))
        shadows.append((sum(trace.shadow_expected_rx_by_day.values()), trace.shadow_tail_revenue_usd,
                        sum(trace.expected_rx_by_day.values())))
    (rx_a, tail_a, real_a), (rx_b, tail_b, real_b) = shadows
    assert (rx_a, tail_a) == (rx_b, tail_b), "the unpromoted market is the same for both on one seed"
    assert real_a != real_b


def test_a_channel_part_is_its_effect_in_the_move_minus_in_the_baseline(small):
    config, policies = small
    cfg = {label: strategy_config(config, p) for label, p in policies.items()}
    own, base = (drivers.measure(policies[label], cfg[label], 1) for label in ("marketing=3", "today"))
    trace = calibration.run(policies["marketing=3"], cfg["marketing=3"], 1, mute=CHANNELS.index("email"))
    margin = config.economics.price_per_rx_usd * config.economics.gross_margin
    effect = (sum(trace.expected_rx_by_day.values()) - sum(trace.shadow_expected_rx_by_day.values())) * margin
    assert own.effect_usd["email"] == pytest.approx(effect, rel=1e-12)
    parts = drivers.decompose(own, base)
    assert parts["email"] == own.effect_usd["email"] - base.effect_usd["email"]
    assert parts["cost"] == -(own.kpis["cost_usd"] - base.kpis["cost_usd"])


def test_the_summary_is_tidy(by_seed):
    summary = drivers.summarise(by_seed)
    assert list(summary.columns) == drivers.SUMMARY_COLUMNS
    assert not summary.duplicated(["strategy", "component"]).any()
    assert set(summary.component) == {*drivers.PARTS, drivers.TOTAL, *drivers.DIAGNOSTICS}
    assert (summary.n_seeds == EPISODES).all() and set(summary.strategy) == {"marketing=3"}
    money = summary[summary.kind != "diagnostic"]
    assert (money.unit == drivers.USD).all()
    assert (money.ci_low <= money["mean"]).all() and (money["mean"] <= money.ci_high).all()
    assert list(by_seed.columns) == drivers.SEED_COLUMNS


def test_compare_drivers_writes_the_csv_the_table_and_a_waterfall(tmp_path):
    out = tmp_path / "compare"
    scenario = tmp_path / "short.yaml"  # small cut to 8 weeks: a few seconds
    scenario.write_text("extends: small\nenv: {horizon_days: 56}\n")
    result = CliRunner().invoke(app, ["compare", str(scenario), "--episodes", "2", "--best-plan", "0", "--move", "marketing=3",
                                      "--strategies", "intervention", "--drivers", "--no-progress", "--out", str(out)])
    assert_clean_exit(result, 0, "drivers:", "drivers.csv")
    summary = pd.read_csv(out / "drivers.csv")
    assert list(summary.columns) == drivers.SUMMARY_COLUMNS
    assert list(dict.fromkeys(summary.strategy)) == ["marketing=3", "intervention"]
    # the totals are the compared episodes' paired differences
    compared = json.loads((out / "summary.json").read_text())
    assert compared["drivers"] == {"decomposed": ["marketing=3", "intervention"], "not decomposed": []}
    profit = {r["strategy"]: r["diff_mean"] for r in compared["summary"] if r["metric"] == "profit_multi_period_usd"
              and "diff_mean" in r}
    totals = summary[summary.component == drivers.TOTAL].set_index("strategy")["mean"]
    for strategy in totals.index:
        assert totals[strategy] == pytest.approx(profit[strategy], rel=1e-9)
    for name in ("drivers_marketing-3.png", "drivers_intervention.png"):
        assert (out / name).stat().st_size > 5_000
    md = (out / "report.md").read_text()
    assert "## What drives each difference" in md
    assert "| interactions between channels (residual) |" in md and "![drivers_marketing-3](drivers_marketing-3.png)" in md
    html = (out / "report.html").read_text()
    assert "What drives each difference" in html and html.count("data:image/png;base64,") == 5


def test_the_oracle_is_left_out_and_said_so(by_seed):
    from oce_sim.agents import make_strategy

    policies = {"today": None, "oracle": make_strategy("oracle"), "oracle_greedy": make_strategy("oracle_greedy"),
                "marketing=3": None}
    assert drivers.decomposable(policies, "today") == ["oracle_greedy", "marketing=3"]
    _, text, figures = drivers.section(drivers.summarise(by_seed), EPISODES, "per territory", [], skipped=["oracle"])
    assert "Not decomposed: oracle" in text and figures == []


@pytest.mark.parametrize("args, message", [
    (["--strategies", "oracle"], "--drivers has nothing to decompose"),
    (["--strategies", "intervention,oracle", "--baseline", "oracle"], "cannot decompose against --baseline oracle"),
])
def test_drivers_is_refused_where_it_cannot_apply(tmp_path, args, message):
    out = tmp_path / "refused"
    result = CliRunner().invoke(app, ["compare", "small", "--episodes", "2", "--best-plan", "0", "--drivers", "--no-progress",
                                      "--out", str(out), *args])
    assert_clean_exit(result, 2, message)
    assert not out.exists(), "refused before any episode or output"


def test_help_states_the_cost():
    output = CliRunner().invoke(app, ["compare", "--help"], env={"COLUMNS": "250"}).output
    output = " ".join(output.replace("│", " ").split())
    assert "--drivers" in output and "five more replays per strategy and seed" in output
