"""The stage roadmap: the portfolio schema, the NPV / payback / break-even arithmetic, leapfrogging, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from oce_sim.studies import roadmap as rm
from oce_sim.cli import app
from oce_sim.config import ENTITIES, StageConfig

from test_cli import assert_clean_exit

COSTS = rm.DEFAULT_STEP_COSTS


@pytest.fixture
def cli():
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


# ------------------------------------------------------------------------------------------------ schema
@pytest.mark.parametrize("text, fragment", [
    ("sub_markets: [{name: a, scenario: small, territory: 3}]", "sub_markets.0.territory: unknown key"),
    ("sub_markets: [{name: a, scenario: small, territories: 0}]", "sub_markets.0.territories"),
    ("sub_markets: [{name: a, scenario: small, stage: 5}]", "sub_markets.0.stage"),
    ("sub_markets: [{name: a, scenario: no_such_market}]", "sub_markets.0.scenario"),
    ("sub_markets: [{name: a, scenario: ../outside.yaml}]", "sub_markets.0.scenario"),
    ("step_costs: {it: {to_3: {one_off_usd: -1}}}\nsub_markets: [{name: a, scenario: small}]",
     "step_costs.it.to_3.one_off_usd"),
    ("step_costs: {it: {to_4: {}}}\nsub_markets: [{name: a, scenario: small}]", "step_costs.it.to_4: unknown key"),
    ("sub_markets: [{name: a, scenario: small, step_costs: {sales: {to_1: {ramp_months: '6'}}}}]",
     "sub_markets.0.step_costs.sales.to_1.ramp_months"),
    ("sub_markets: [{name: a, scenario: small}, {name: a, scenario: default}]", "sub_markets: sub-market names must be unique"),
    ("horizon_years: 3", "sub_markets: Field required"),
    ("horizon: 3\nsub_markets: [{name: a, scenario: small}]", "horizon: unknown key"),
    ("a: &a [1]\na: 2", "duplicate key"),
])
def test_a_bad_portfolio_exits_2_naming_the_field_before_any_work(cli, tmp_path, text, fragment):
    path = tmp_path / "folder" / "bad.yaml"
    path.parent.mkdir()
    path.write_text(text)
    out = tmp_path / "out"
    assert_clean_exit(cli("roadmap", path, "--out", out, "--no-progress"), 2, "invalid portfolio", fragment)
    assert not out.exists()


def test_partial_cost_overrides_merge_over_the_defaults(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("step_costs: {it: {to_3: {one_off_usd: 1}}}\n"
                    "sub_markets: [{name: a, scenario: small, stage: 0, step_costs: {it: {to_2: {ramp_months: 1}}}},"
                    " {name: b, scenario: default}]\n")
    portfolio, markets = rm.load_portfolio(path)
    a, b = (m.spec.step_costs for m in markets)
    assert a.it.to_3.one_off_usd == b.it.to_3.one_off_usd == 1
    assert a.it.to_3.running_usd_per_year == COSTS.it.to_3.running_usd_per_year
    assert a.it.to_2.ramp_months == 1 and b.it.to_2.ramp_months == COSTS.it.to_2.ramp_months
    assert markets[0].today == StageConfig.uniform(0) and markets[1].today == StageConfig()  # default's own stage
    assert markets[0].config.history_stage == StageConfig.uniform(0)  # today's market is that stage's history


def test_the_example_portfolio_is_the_interviews_picture():
    portfolio, markets = rm.load_portfolio(rm.builtin_portfolios()["example"])
    assert [(m.config.name, m.today.overall) for m in markets] == \
        [("emerging_market", 0), ("default", 1), ("specialty_access", 2)]
    assert portfolio.horizon_years == 3


def test_every_default_cost_says_whether_it_is_sourced():
    for entity in ENTITIES:
        for level in (1, 2, 3):
            step = getattr(COSTS, entity).step(level)
            assert step.status in ("sourced", "assumption") and step.source
            assert step.ramp_months > 0  # moving up is not quick
    assert "| sales | 0 -> 1 |" in rm.cost_defaults_markdown()


# ------------------------------------------------------------------------------------------- arithmetic
def test_npv_payback_and_break_even_on_a_known_answer():
    flows = rm.cash_flows(120.0, one_off=100.0, running_per_year=0.0, ramp_months=0.0, horizon_years=1.0)
    assert flows.tolist() == [-100.0] + [10.0] * 12
    assert rm.npv(flows, 0.0) == pytest.approx(20.0)
    assert rm.payback_months(flows) == 10.0
    assert rm.break_even_one_off(flows, 0.0) == pytest.approx(120.0)
    r = 0.10  # monthly discounting at (1 + r) ** (-m / 12)
    expected = -100.0 + sum(10.0 * 1.1 ** (-m / 12) for m in range(1, 13))
    assert rm.npv(flows, r) == pytest.approx(expected)
    break_even = rm.break_even_one_off(flows, r)
    at_break_even = rm.cash_flows(120.0, break_even, 0.0, 0.0, 1.0)
    assert rm.npv(at_break_even, r) == pytest.approx(0.0, abs=1e-9)


def test_the_ramp_phases_the_benefit_in_and_the_value_left_counts_once():
    flows = rm.cash_flows(120.0, 0.0, 0.0, ramp_months=2.0, horizon_years=1.0)
    assert flows[1:3].tolist() == [2.5, 7.5] and np.all(flows[3:] == 10.0)  # linear, at mid-month
    assert rm.npv(flows, 0.0) == pytest.approx(110.0)
    with_tail = rm.cash_flows(120.0, 0.0, 0.0, ramp_months=24.0, horizon_years=1.0, terminal=50.0)
    assert with_tail[-1] - with_tail[-2] == pytest.approx(50.0 * 11.5 / 24 + 120.0 / 12 / 24)
    running = rm.cash_flows(0.0, 10.0, running_per_year=12.0, ramp_months=0.0, horizon_years=2.0)
    assert rm.npv(running, 0.0) == pytest.approx(-34.0)
    assert np.isnan(rm.payback_months(running))  # never paid back within the horizon
    assert rm.payback_months(rm.cash_flows(12.0, 0.0, 0.0, 0.0, 1.0)) == 0.0  # no outlay


# ------------------------------------------------------------------------------------------ leapfrogging
def test_a_leap_pays_every_intermediate_step_and_its_ramps_add_up():
    reps = 7
    direct = rm.move_cost(StageConfig.uniform(0), StageConfig(customer=0, sales=3, marketing=0, it=0), COSTS, reps)
    steps = [COSTS.sales.step(k) for k in (1, 2, 3)]
    assert direct.one_off_usd == pytest.approx(sum(s.one_off_usd + s.one_off_usd_per_rep * reps for s in steps))
    assert direct.running_usd_per_year == pytest.approx(
        sum(s.running_usd_per_year + s.running_usd_per_rep_per_year * reps for s in steps))
    assert direct.ramp_months == sum(s.ramp_months for s in steps)
    assert direct.steps == [("sales", 1), ("sales", 2), ("sales", 3)]
    one = rm.move_cost(StageConfig.uniform(0), StageConfig(customer=0, sales=1, marketing=0, it=0), COSTS, reps)
    assert direct.one_off_usd > one.one_off_usd and direct.ramp_months > one.ramp_months
    # entities move in parallel: a uniform jump's ramp is its slowest entity's, its cost every step of every entity
    uniform = rm.move_cost(StageConfig.uniform(0), StageConfig.uniform(2), COSTS, reps)
    assert uniform.ramp_months == max(sum(getattr(COSTS, e).step(k).ramp_months for k in (1, 2)) for e in ENTITIES)
    assert len(uniform.steps) == 8
    down = rm.move_cost(StageConfig.uniform(2), StageConfig.uniform(1), COSTS, reps)
    assert down.one_off_usd == 0 and down.ramp_months == 0 and down.running_usd_per_year < 0


def test_options_are_today_the_uniform_stages_and_each_single_entity_step_up():
    labels = [o.label for o in rm.options(StageConfig())]  # insight
    assert labels[0] == "today" and "stage=1" not in labels  # today is the uniform stage 1
    assert set(labels) == {"today", "stage=0", "stage=2", "stage=3", *(f"{e}={k}" for e in ENTITIES for k in (2, 3))}
    assert len(rm.options(StageConfig.uniform(3))) == 4


# ------------------------------------------------------------------------------------------- end to end
def test_a_one_sub_market_roadmap_runs_end_to_end(cli, tmp_path):
    (tmp_path / "short.yaml").write_text("extends: small\nenv: {horizon_days: 56}\n")
    portfolio = tmp_path / "one.yaml"
    portfolio.write_text("name: one\nsub_markets: [{name: small market, scenario: short.yaml, territories: 10, "
                         "stage: 2}]\n")
    out = tmp_path / "out"
    result = cli("roadmap", portfolio, "--episodes", 2, "--draws", 50, "--horizon-years", 2, "--out", out,
                 "--no-progress")
    assert_clean_exit(result, 0, "stage roadmap over 2 years", "small market")
    assert {p.name for p in out.iterdir()} >= {"results.csv", "options.csv", "draws.csv", "roadmap.csv", "roadmap.md",
                                              "npv_by_option.png", "roadmap.json", "manifest.json"}
    results = pd.read_csv(out / "results.csv")
    assert set(results.seed) == {0, 1} and results.option.nunique() == 8
    benefit = results[results.metric == "benefit_usd_per_year"].set_index(["option", "seed"]).value
    profit = results[results.metric == "profit_usd"].set_index(["option", "seed"]).value
    assert benefit.loc[("sales=3", 1)] == pytest.approx((profit.loc[("sales=3", 1)] - profit.loc[("today", 1)]) * 365 / 56)
    options = pd.read_csv(out / "options.csv")
    today = options.set_index("option").loc["today"]
    assert today.npv_usd == 0 and today.one_off_usd == 0
    assert options.p_best.sum() == pytest.approx(1.0)
    assert (options.npv_low_usd <= options.npv_high_usd).all()
    roadmap = pd.read_csv(out / "roadmap.csv")
    assert len(roadmap) == 1 and roadmap.loc[0, "today"] == "2 (involvement)"
    assert "| sub-market |" in (out / "roadmap.md").read_text()
    report = (out / "report.md").read_text()
    assert "**small market** (10 territories, today 2 (involvement))" in report and "break-even" in report
    page = (out / "report.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 1 and "<script" not in page


def test_the_roadmap_report_renders_in_headless_chromium(cli, tmp_path):
    from test_report import render

    (tmp_path / "short.yaml").write_text("extends: small\nenv: {horizon_days: 28}\n")
    portfolio = tmp_path / "one.yaml"
    portfolio.write_text("name: one\nsub_markets: [{name: m, scenario: short.yaml, territories: 2, stage: 3}]\n")
    out = tmp_path / "out"
    result = cli("roadmap", portfolio, "--episodes", 2, "--draws", 20, "--out", out, "--no-progress")
    assert_clean_exit(result, 0, "stage roadmap")
    shown, _ = render(out / "report.html", tmp_path)
    assert shown["h2"][0] == "Summary" and shown["errors"] == []
    assert [image["width"] > 0 for image in shown["images"]] == [True]


def test_the_model_page_shows_the_cost_defaults_table():
    text = (Path(__file__).resolve().parent.parent / "docs" / "MODEL.md").read_text()
    block = text.split("<!-- step-costs:begin -->\n", 1)[1].split("\n<!-- step-costs:end -->", 1)[0]
    assert block == rm.cost_defaults_markdown()
