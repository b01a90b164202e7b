"""The stage roadmap: the portfolio schema, the NPV / payback / break-even arithmetic, leapfrogging, end to end."""

from __future__ import annotations

import json
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
    ("sub_markets: [{name: a, scenario: small, territory: 3, stage: 1}]", "sub_markets.0.territory: unknown key"),
    ("sub_markets: [{name: a, scenario: small, territories: 0, stage: 1}]", "sub_markets.0.territories"),
    ("sub_markets: [{name: a, scenario: small, territories: 1, stage: 5}]", "sub_markets.0.stage"),
    ("sub_markets: [{name: a, scenario: no_such_market, territories: 1, stage: 1}]", "sub_markets.0.scenario"),
    ("sub_markets: [{name: a, scenario: ../outside.yaml, territories: 1, stage: 1}]", "sub_markets.0.scenario"),
    ("step_costs: {it: {to_3: {one_off_usd: -1}}}\nsub_markets: [{name: a, scenario: small, territories: 1, stage: 1}]",
     "step_costs.it.to_3.one_off_usd"),
    ("step_costs: {it: {to_4: {}}}\nsub_markets: [{name: a, scenario: small, territories: 1, stage: 1}]",
     "step_costs.it.to_4: unknown key"),
    ("sub_markets: [{name: a, scenario: small, territories: 1, stage: 1, step_costs: {sales: {to_1: {ramp_months: '6'}}}}]",
     "sub_markets.0.step_costs.sales.to_1.ramp_months"),
    ("sub_markets: [{name: a, scenario: small, territories: 1, stage: 1}, {name: a, scenario: default, territories: 1, "
     "stage: 1}]", "sub_markets: sub-market names must be unique"),
    ("horizon_years: 3", "sub_markets: Field required"),
    ("horizon: 3\nsub_markets: [{name: a, scenario: small, territories: 1, stage: 1}]", "horizon: unknown key"),
    # what changes the answer is never defaulted (issue 24): a missing one is named with what it is
    ("sub_markets: [{name: a, scenario: small, stage: 1}]", "sub_markets.0.territories: Field required: how many "
     "territories"),
    ("sub_markets: [{name: a, scenario: small, territories: 4}]", "sub_markets.0.stage: Field required: today's stage"),
    ("sub_markets: [{name: a, scenario: small, territories: 4, stage: {sales: 2}}]",
     "sub_markets.0.stage: give every entity's stage; missing: customer, marketing, it"),
    ("uncertainty: {discount_rate_low: 1.5, discount_rate_high: 0.5}\n"
     "sub_markets: [{name: a, scenario: small, territories: 1, stage: 1}]",
     "uncertainty.discount_rate_high: must be at least discount_rate_low (1.5), got 0.5"),
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
                    "sub_markets: [{name: a, scenario: small, territories: 2, stage: 0, step_costs: {it: {to_2: "
                    "{ramp_months: 1}}}}, {name: b, scenario: default, territories: 3, stage: 1}]\n")
    portfolio, markets = rm.load_portfolio(path)
    a, b = (m.spec.step_costs for m in markets)
    assert a.it.to_3.one_off_usd == b.it.to_3.one_off_usd == 1
    assert a.it.to_3.running_usd_per_year == COSTS.it.to_3.running_usd_per_year
    assert a.it.to_2.ramp_months == 1 and b.it.to_2.ramp_months == COSTS.it.to_2.ramp_months
    assert markets[0].today == StageConfig.uniform(0) and markets[1].today == StageConfig()
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
    result = cli("roadmap", portfolio, "--episodes", 2, "--draws", 50, "--horizon-years", 2, "--best-plan", 0, "--out", out,
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


def test_simulate_plays_each_option_as_one_batch_the_same_rows_whatever_the_workers(tmp_path):
    """An option's seeds play as one batch, the batches in a pool of processes: the rows are those of playing every
    episode alone, one after another, in the same order."""
    from oce_sim.studies.evaluation import run_episode, strategy_config

    (tmp_path / "short.yaml").write_text("extends: small\nenv: {horizon_days: 28}\n")
    path = tmp_path / "one.yaml"
    path.write_text("name: one\nsub_markets: [{name: m, scenario: short.yaml, territories: 2, stage: 1}]\n")
    _, markets = rm.load_portfolio(path)
    one = rm.simulate(markets, 3, 7, progress=False, workers=1)
    two = rm.simulate(markets, 3, 7, progress=False, workers=2)
    pd.testing.assert_frame_equal(one, two)
    option = rm.options(markets[0].today)[2]
    policy = rm.player(markets[0], option)
    alone = run_episode(policy, strategy_config(markets[0].config, policy), 8).kpis
    rows = one[(one.option == option.label) & (one.seed == 8)]
    assert list(rows.metric) == list(alone) and list(rows.value) == [float(v) for v in alone.values()]


def test_the_roadmap_report_renders_in_headless_chromium(cli, tmp_path):
    from test_report import render

    (tmp_path / "short.yaml").write_text("extends: small\nenv: {horizon_days: 28}\n")
    portfolio = tmp_path / "one.yaml"
    portfolio.write_text("name: one\nsub_markets: [{name: m, scenario: short.yaml, territories: 2, stage: 3}]\n")
    out = tmp_path / "out"
    result = cli("roadmap", portfolio, "--episodes", 2, "--draws", 20, "--best-plan", 0, "--out", out, "--no-progress")
    assert_clean_exit(result, 0, "stage roadmap")
    shown, _ = render(out / "report.html", tmp_path)
    assert shown["h2"][0] == "Summary" and shown["errors"] == []
    assert [image["width"] > 0 for image in shown["images"]] == [True]


def test_the_model_page_shows_the_cost_defaults_table():
    text = (Path(__file__).resolve().parent.parent / "docs" / "MODEL.md").read_text()
    block = text.split("<!-- step-costs:begin -->\n", 1)[1].split("\n<!-- step-costs:end -->", 1)[0]
    assert block == rm.cost_defaults_markdown()


# ------------------------------------------------------------------------------- defaults, scale, claims (issue 24)
def _market(name: str = "m", territories: int = 10) -> rm.Market:
    from oce_sim.config import load_scenario

    spec = rm.SubMarket(name=name, scenario="small", territories=territories, stage=1)
    return rm.Market(spec, load_scenario("small"))


def _table(rows: list[tuple[str, float, float, float, float, float]]) -> pd.DataFrame:
    """Options as (label, npv, low, high, gap low, gap high), USD; the first is the recommended one."""
    return pd.DataFrame([dict(sub_market="m", option=o, stage=o, npv_usd=n, npv_low_usd=lo, npv_high_usd=hi,
                              payback_months=12.0, p_best=0.5, gap_to_recommended_low_usd=glo,
                              gap_to_recommended_high_usd=ghi) for o, n, lo, hi, glo, ghi in rows])


def test_the_recommendation_says_whether_it_is_distinguishable_and_at_what_scale():
    scale = "for the sub-market's 10 territories in all (each 120 customers, 1 rep)"
    today = ("today", 0.0, 0.0, 0.0, 0.0, 0.0)
    clear = rm.recommendation_sentence(_market(), _table([("sales=2", 900e3, 500e3, 1.3e6, 0, 0),
                                                          ("it=2", 300e3, 100e3, 500e3, 200e3, 900e3), today]), 3)
    assert f"move to **sales=2: sales=2**, NPV +900 [+500, +1,300] USD thousands over 3 years against today {scale}" \
        in clear
    assert "ahead of the runner-up it=2 by +600 [+200, +900] USD thousands" in clear
    assert "not distinguishable" not in clear
    close = rm.recommendation_sentence(_market(), _table([("sales=2", 900e3, -50e3, 1.3e6, 0, 0),
                                                          ("it=2", 800e3, 100e3, 900e3, -200e3, 400e3), today]), 3)
    assert "not distinguishable from staying where it is (its interval includes zero)" in close
    assert "not distinguishable from the runner-up it=2 (ahead by +100 [-200, +400] USD thousands)" in close
    stay = rm.recommendation_sentence(_market(), _table([today, ("it=2", -100e3, -300e3, 50e3, -50e3, 300e3)]), 3)
    assert "**stay** where it is: no move has a positive expected NPV over 3 years for the sub-market's 10" in stay
    assert "the best move, it=2, has NPV -100 [-300, +50] USD thousands against today" in stay


def test_defaults_that_change_the_answer_are_listed(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("sub_markets: [{name: a, scenario: small, territories: 2, stage: 1, step_costs: {it: {to_2: "
                    "{ramp_months: 1}}}}]\n")
    portfolio, markets = rm.load_portfolio(path)
    lines = rm.defaults_used(portfolio, markets)
    assert lines[0].startswith("horizon: 3 years (the default")
    assert lines[1].startswith("uncertainty: cost_sigma 0.5, ramp_sigma 0.3, discount_rate_low 0.5, "
                               "discount_rate_high 1.5 (the defaults")
    assert lines[2] == "a: step costs the defaults of docs/MODEL.md §4b except it.to_2.ramp_months (given in the portfolio)"
    assert not any(line.startswith("horizon") for line in rm.defaults_used(portfolio, markets, horizon_given=True))
    path.write_text("horizon_years: 5\nuncertainty: {cost_sigma: 0.2}\n"
                    "sub_markets: [{name: a, scenario: small, territories: 2, stage: 1}]\n")
    portfolio, markets = rm.load_portfolio(path)
    assert rm.defaults_used(portfolio, markets) == [
        "uncertainty: ramp_sigma 0.3, discount_rate_low 0.5, discount_rate_high 1.5 (the defaults; set them under "
        "uncertainty:)", "a: step costs all the defaults of docs/MODEL.md §4b"]


def test_the_npv_figure_axis_and_caption_agree_with_the_data(monkeypatch, tmp_path):
    import matplotlib.pyplot as plt

    drawn = []
    monkeypatch.setattr(plt, "close", lambda fig=None: drawn.append(fig))
    table = _table([("sales=2", 2.5e6, 1e6, 4e6, 0, 0), ("today", 0.0, 0.0, 0.0, 2e6, 3e6)])
    rm.plot_npv([table], tmp_path / "npv.png", "t")
    (ax,) = drawn[0].axes
    assert "USD millions" in ax.get_xlabel() and rm.NPV_FIGURE_UNIT == "USD millions"
    assert [round(bar.get_width(), 6) for bar in ax.patches] == [2.5, 0.0]  # millions, as the axis says


def test_a_two_sub_market_report_shows_every_assumption_the_defaults_and_the_scale(cli, tmp_path):
    from test_report import assert_every_amount_has_its_scale, assert_wide_tables_scroll, render

    (tmp_path / "short.yaml").write_text("extends: small\nenv: {horizon_days: 28}\n")
    (tmp_path / "bigger.yaml").write_text("extends: small\nenv: {horizon_days: 28}\npopulation: {n_hcps: 150, "
                                          "n_reps: 2}\n")
    portfolio = tmp_path / "two.yaml"
    portfolio.write_text("name: two\nsub_markets:\n  - {name: first, scenario: short.yaml, territories: 7, stage: 2}\n"
                         "  - {name: second, scenario: bigger.yaml, territories: 3, stage: 3}\n")
    out = tmp_path / "out"
    flat = assert_clean_exit(cli("roadmap", portfolio, "--episodes", 2, "--draws", 20, "--best-plan", 0, "--out", out,
                                 "--no-progress"),
                             0, "defaults used (not given in the portfolio):", "horizon: 3 years (the default",
                             "first: step costs all the defaults", "each sub-market's total over its territories",
                             "first: the sub-market's 7 territories in all (each 120 customers, 1 rep)",
                             "second: the sub-market's 3 territories in all (each 150 customers, 2 reps)")
    assert flat.index("defaults used") < flat.index("stage roadmap over")  # said before the work
    report = (out / "report.md").read_text()
    summary = report.split("## Summary", 1)[1].split("## Roadmap", 1)[0]
    assert_every_amount_has_its_scale(summary, "territories in all (each ")
    assert "Defaults used (not given in the portfolio): horizon: 3 years" in summary
    assert report.count("Defaults used (not given in the portfolio)") == 1
    assumptions = report.split("## Assumptions", 1)[1].split("## Reproduce", 1)[0]
    assert "| assumption | first | second |" in assumptions
    assert "| territories in the sub-market | 7 | 3 |" in assumptions
    assert "| territory | 120 healthcare professionals, 1 field rep | 150 healthcare professionals, 2 field reps |" \
        in assumptions
    assert "NPV of each option against today per sub-market, the sub-market's total in USD millions" in report
    roadmap = pd.read_csv(out / "roadmap.csv")
    assert "runner-up (NPV vs recommended, USD k) [90%]" in roadmap.columns
    assert json.loads((out / "roadmap.json").read_text())["defaults_used"][0].startswith("horizon: 3 years")
    shown, _ = render(out / "report.html", tmp_path)
    assert shown["errors"] == [] and assert_wide_tables_scroll(shown)  # the every-option table scrolls
