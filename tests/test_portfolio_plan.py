"""The portfolio plan (issue 24, item 5): the solver on a synthetic appraisal with a known answer (no simulation), the
shadow price's sign, the bounds' validation, the CLI's refusals and one small end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from oce_sim.cli import app
from oce_sim.studies import portfolio_plan as pp
from oce_sim.studies import roadmap as rm

from test_cli import assert_clean_exit

TWO = """
horizon_years: 2
step_costs: {customer: {to_1: {one_off_usd: 100000, running_usd_per_year: 20000, ramp_months: 0}}}
sub_markets:
  - {name: a, scenario: small, territories: 1, stage: 0, max_stage: {customer: 1, sales: 0, marketing: 0, it: 0}}
  - {name: b, scenario: small, territories: 1, stage: 0, max_stage: {customer: 1, sales: 0, marketing: 0, it: 0}}
"""


@pytest.fixture
def cli():
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def synthetic(tmp_path: Path, gains=(500e3, 300e3), spread=(0.0, 0.0), text: str = TWO, draws: int = 50):
    """Two sub-markets, one step each (customer 0 -> 1, USD 100k one-off), a known yearly gain per territory."""
    path = tmp_path / "two.yaml"
    path.write_text(text)
    spec, markets = rm.load_portfolio(path)
    paths = []
    for market, gain, sd in zip(markets, gains, spread):
        flow = np.array([[0.0] * 4, [gain - 1.5 * sd, gain - 0.5 * sd, gain + 0.5 * sd, gain + 1.5 * sd]])
        paths.append(pp.market_paths(market, flow, np.zeros_like(flow), spec.horizon_years, spec.uncertainty, draws, 0))
    return spec, markets, paths


def one_move(market: rm.Market, gain: float, start_year: int, horizon: float = 2.0) -> float:
    """The roadmap's NPV of the customer step, started ``start_year`` years late (its own arithmetic)."""
    rate = market.config.economics.discount_rate_per_year
    flows = rm.cash_flows(gain, 100e3, 20e3, 0.0, horizon - start_year)
    return rm.npv(flows, rate) * (1 + rate) ** -start_year


def test_a_budget_for_one_step_a_year_sequences_the_better_market_first(tmp_path):
    _, markets, paths = synthetic(tmp_path)
    plan = pp.solve(paths, 100e3)
    table = pp.plan_table(paths, plan)
    assert list(zip(table.year, table.sub_market, table.entity)) == [(1, "a", "customer"), (2, "b", "customer")]
    assert list(table.one_off_usd) == [100e3, 100e3] and list(plan.spend_usd) == [100e3, 100e3]
    expected = one_move(markets[0], 500e3, 0) + one_move(markets[1], 300e3, 1)
    assert plan.npv_usd == pytest.approx(expected) and table.cumulative_npv_usd.iloc[-1] == pytest.approx(expected)
    # a plan of one move in year 1 is the roadmap's NPV of that option
    assert table.move_npv_usd.iloc[0] == pytest.approx(one_move(markets[0], 500e3, 0))
    both = pp.solve(paths, 200e3)  # room for both in year 1
    assert list(pp.plan_table(paths, both).year) == [1, 1] and both.npv_usd > plan.npv_usd
    none = pp.solve(paths, 99e3)  # no step fits: stay
    assert none.feasible and none.npv_usd == 0 and pp.plan_table(paths, none).empty


def test_the_solver_is_exact_against_every_combination(tmp_path):
    text = TWO.replace("max_stage: {customer: 1, sales: 0, marketing: 0, it: 0}",
                       "max_stage: {customer: 1, sales: 1, marketing: 0, it: 0}")
    path = tmp_path / "wide.yaml"
    path.write_text(text)
    spec, markets = rm.load_portfolio(path)
    rng = np.random.default_rng(3)
    paths = [pp.market_paths(m, rng.normal(2e5, 2e5, (4, 3)), rng.normal(0, 5e4, (4, 3)), 2.0, spec.uncertainty, 30, 0)
             for m in markets]
    for budget in (0.0, 150e3, 250e3, 400e3, 1e6):
        for objective in pp.OBJECTIVES:
            best = -np.inf
            for i in range(len(paths[0].value)):
                for j in range(len(paths[1].value)):
                    if (paths[0].spend[i] + paths[1].spend[j] <= budget + 1e-6).all():
                        v = (paths[0].value[i] + paths[1].value[j] if objective == "npv"
                             else pp.cvar(paths[0].draws[i] + paths[1].draws[j]))
                        best = max(best, float(v))
            assert pp.solve(paths, budget, objective).objective_usd == pytest.approx(best)


def test_the_shadow_price_is_positive_where_the_budget_binds_and_zero_where_it_does_not(tmp_path):
    _, _, paths = synthetic(tmp_path)
    binding = pp.shadow_price(paths, 150e3)  # one step a year; 165k still one, 135k still one ...
    assert binding.usd_per_usd == 0
    binding = pp.shadow_price(paths, 100e3)  # ... but at 90k nothing fits
    assert binding.usd_per_usd > 0 and binding.low.objective_usd < binding.high.objective_usd
    assert pp.shadow_price(paths, 1e6).usd_per_usd == 0  # everything already fits
    curve = pp.budget_curve(paths, 100e3)
    assert curve.budget_usd_per_year.is_monotonic_increasing and curve.objective_usd.is_monotonic_increasing
    assert curve.budget_usd_per_year.iloc[0] == 0 and 100e3 in set(curve.budget_usd_per_year)


def test_cvar_prefers_the_safe_market_where_the_risky_one_is_better_on_average(tmp_path):
    _, _, paths = synthetic(tmp_path, gains=(400e3, 350e3), spread=(600e3, 0.0), draws=200)
    by_npv = pp.plan_table(paths, pp.solve(paths, 100e3, "npv"))
    by_cvar = pp.plan_table(paths, pp.solve(paths, 100e3, "cvar10"))
    assert by_npv.sub_market.iloc[0] == "a" and by_cvar.sub_market.iloc[0] == "b"


def test_a_floor_forces_a_step_and_an_impossible_floor_has_no_plan(tmp_path):
    floor = TWO.replace("stage: 0, max_stage", "stage: 0, min_stage: {customer: 1, sales: 0, marketing: 0, it: 0}, "
                        "max_stage", 1)
    _, markets, paths = synthetic(tmp_path, gains=(-50e3, 300e3), text=floor)
    plan = pp.plan_table(paths, pp.solve(paths, 100e3))
    assert "a" in set(plan.sub_market)  # it loses money but the floor requires it
    assert not pp.solve(paths, 50e3).feasible
    assert pp.floors_fit(markets, 2.0, 100e3) and not pp.floors_fit(markets, 2.0, 50e3)


def test_move_npv_is_the_roadmaps_cash_flows_shifted():
    rate = np.array([0.1])
    got = pp.move_npv(np.array([3e5]), np.array([1e5]), np.array([2e5]), np.array([3e4]), np.array([9.0]), 12, 3.0,
                      rate)[0]
    flows = rm.cash_flows(3e5, 2e5, 3e4, 9.0, 2.0, 1e5)
    assert got == pytest.approx(rm.npv(flows, 0.1) / 1.1)


@pytest.mark.parametrize("bounds, fragment", [
    ("min_stage: 0", "min_stage.customer 0 is below today's 1"),
    ("max_stage: 0", "max_stage.sales 0 is below today's 1"),
    ("min_stage: 3, max_stage: 2", "max_stage.it 2 is below min_stage.it 3"),
    ("max_stage: {sales: 2}", "sub_markets.0.max_stage: give every entity's stage; missing: customer"),
    ("max_stage: 4", "sub_markets.0.max_stage"),
    ("max_stage: 2, min_satge: 2", "sub_markets.0.min_satge: unknown key"),
])
def test_plan_bounds_are_validated_strictly(tmp_path, bounds, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(f"sub_markets: [{{name: a, scenario: small, territories: 1, stage: 1, {bounds}}}]")
    with pytest.raises(rm.PortfolioError) as err:
        rm.load_portfolio(path)
    assert fragment in str(err.value)


@pytest.mark.parametrize("args, fragment", [
    (["--budget", "-1"], "--budget must be"),
    (["--budget", "nan"], "--budget must be"),
    (["--budget", "inf"], "--budget must be"),
    (["--budget", "2e12"], "--budget must be"),
    (["--budget", "lots"], "--budget"),
    (["--objective", "cvar10"], "--objective needs --budget"),
    (["--budget", "1e6", "--objective", "median"], "--objective must be one of npv, cvar10"),
    (["--budget", "1e6", "--until-settled"], "--budget and --until-settled do not run together yet"),
])
def test_bad_budget_arguments_exit_2_naming_the_argument(cli, tmp_path, args, fragment):
    out = tmp_path / "out"
    result = cli("roadmap", "example", *args, "--out", out, "--no-progress")
    assert result.exit_code == 2 and fragment in result.output
    assert not out.exists()


def test_a_floor_the_budget_cannot_reach_and_a_plan_too_large_are_refused_before_any_work(cli, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("sub_markets: [{name: a, scenario: small, territories: 1, stage: 0, min_stage: 1}]")
    result = cli("roadmap", path, "--budget", 1000, "--out", tmp_path / "out", "--no-progress")
    assert result.exit_code == 2 and "cannot reach every sub-market's min_stage" in result.output
    path.write_text("horizon_years: 5\nsub_markets: [{name: a, scenario: small, territories: 1, stage: 0, "
                    "max_stage: 3}]")
    result = cli("roadmap", path, "--budget", 1e6, "--out", tmp_path / "out", "--no-progress")
    assert result.exit_code == 2 and "search limits" in result.output and "a: 256 configurations" in result.output


def test_a_small_plan_runs_end_to_end(cli, tmp_path):
    (tmp_path / "short.yaml").write_text("extends: small\nenv: {horizon_days: 28}\n")
    portfolio = tmp_path / "tiny.yaml"
    portfolio.write_text("name: tiny\nhorizon_years: 2\nstep_costs: {customer: {to_2: {one_off_usd: 1000, "
                         "running_usd_per_year: 0, ramp_months: 0}}}\nsub_markets: [{name: one, scenario: short.yaml, "
                         "territories: 10, stage: 1, max_stage: {customer: 2, sales: 2, marketing: 1, it: 1}}]\n")
    out = tmp_path / "out"
    result = cli("roadmap", portfolio, "--episodes", 2, "--draws", 20, "--budget", 200000, "--best-plan", 0, "--out", out,
                 "--no-progress")
    assert_clean_exit(result, 0, "Portfolio plan within USD 200,000 a year", "plan.csv")
    assert {"plan.csv", "plan_results.csv", "budget_curve.csv", "budget_curve.png"} <= {p.name for p in out.iterdir()}
    # the configuration the roadmap does not run (customer and sales both at 2) ran on the same seeds
    extra = pd.read_csv(out / "plan_results.csv")
    assert set(extra.option) == {"ladder c2s2m1i1"} and set(extra.seed) == {0, 1}
    plan = pd.read_csv(out / "plan.csv")
    assert list(plan.columns[:5]) == ["year", "sub_market", "entity", "from_level", "to_level"]
    assert (plan.one_off_usd.groupby(plan.year).sum() <= 200000).all()
    assert "## Portfolio plan" in (out / "roadmap.md").read_text()
    meta = json.loads((out / "roadmap.json").read_text())
    assert meta["plan"]["budget_usd_per_year"] == 200000 and meta["plan"]["objective"] == "npv"
    page = (out / "report.html").read_text()
    assert "Portfolio plan" in page and page.count('<img src="data:image/png;base64,') == 2


def test_without_a_budget_nothing_changes(cli, tmp_path):
    (tmp_path / "short.yaml").write_text("extends: small\nenv: {horizon_days: 28}\n")
    portfolio = tmp_path / "tiny.yaml"
    portfolio.write_text("sub_markets: [{name: one, scenario: short.yaml, territories: 1, stage: 3}]\n")
    out = tmp_path / "out"
    assert_clean_exit(cli("roadmap", portfolio, "--episodes", 2, "--draws", 5, "--best-plan", 0, "--out", out,
                          "--no-progress"), 0)
    assert not {"plan.csv", "budget_curve.png"} & {p.name for p in out.iterdir()}
    assert "plan" not in json.loads((out / "roadmap.json").read_text())
