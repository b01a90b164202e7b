"""``oce-sim roadmap --parameter-draws D``: the calibrated parameters drawn, paired across options, pooled with the
seeds; the coverage sentence says so; bad values and combinations are refused before any work."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from oce_sim.cli import app
from oce_sim.envs.steady_start import history_key
from oce_sim.studies import evaluation
from oce_sim.studies import roadmap as rm
from oce_sim.studies import settling as st
from oce_sim.studies.uncertainty import RANGES

from test_cli import assert_clean_exit

PORTFOLIO = "name: p\nsub_markets: [{name: m, scenario: small, territories: 4, stage: 2}]\n"


def _portfolio(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PORTFOLIO)
    return path


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in ("roadmap", *args, "--best-plan", 0)])


def test_parameter_sets_are_fixed_distinct_and_each_has_its_own_history(tmp_path):
    _, markets = rm.load_portfolio(_portfolio(tmp_path))
    first, again = rm.parameter_sets(markets[0], 3), rm.parameter_sets(markets[0], 3)
    assert [c.model_dump() for c in first] == [c.model_dump() for c in again]  # fixed draw seeds: reruns match
    carryover = [c.response.carryover_per_month for c in first]
    assert len(set(carryover)) == 3 and carryover[0] != markets[0].config.response.carryover_per_month
    assert len({history_key(c) for c in [markets[0].config, *first]}) == 4  # one burn-in per draw
    assert all(c.stage == markets[0].config.stage for c in first)


def test_every_option_of_a_sub_market_runs_under_the_same_parameter_sets(monkeypatch, tmp_path):
    seen = []

    def fake_episodes(policy, config, seeds):
        seen.extend((policy.name, config.response.carryover_per_month, config.economics.gross_margin, seed)
                    for seed in seeds)
        return [types.SimpleNamespace(kpis={"profit_usd": 1.0, "value_at_horizon_usd": 0.0}) for _ in seeds]

    monkeypatch.setattr(evaluation, "run_episodes", fake_episodes)
    _, markets = rm.load_portfolio(_portfolio(tmp_path))
    results = rm.simulate(markets, 2, 5, progress=False, parameter_draws=3, workers=1)
    labels = [o.label for o in rm.options(markets[0].today)]
    assert len(seen) == len(labels) * 3 * 2  # D x the episodes per option
    per_option = {label: [s[1:] for s in seen if s[0] == label] for label in labels}
    assert all(v == per_option["today"] for v in per_option.values())  # paired: the same sets and seeds
    assert len({s[1] for s in seen}) == 3
    assert set(results.parameter_draw) == {0, 1, 2} and set(results.seed) == {5, 6}
    assert rm.paired_units(results, markets[0]) == [(d, s) for d in range(3) for s in (5, 6)]
    assert "parameter_draw" not in rm.simulate(markets, 1, 0, progress=False, workers=1).columns  # without: as before


def test_the_pooled_draws_mix_the_parameter_sets_and_stay_paired():
    # two options, set 0: option 1 ahead by 1 on every seed; set 1: behind by 1; no seed noise within a set
    values = np.array([[0.0] * 4, [1.0, 1.0, -1.0, -1.0]])
    drawn = st.parameter_mean_draws(values, np.array([0, 0, 1, 1]), 10, np.random.default_rng(0))
    assert drawn.shape == (10, 2)
    assert list(drawn[:, 1]) == [1.0, -1.0] * 5  # draw k on set k mod D, each set an equal share
    assert np.all(drawn[:, 0] == 0.0)


def _fake_simulate(markets, episodes, seed, progress=True, parameter_draws=0):
    """marketing=3 earns 2M more a year per territory under parameter set 0 and 2M less under set 1."""
    rows = []
    for market in markets:
        for option in rm.options(market.today):
            for d in range(parameter_draws):
                for s in range(seed, seed + episodes):
                    noise = 1e4 * ((s * 7919) % 13 - 6)
                    lead = (2e6 if d == 0 else -2e6) if option.label == "marketing=3" else 0.0
                    for metric, value in (("profit_usd", lead + noise), ("value_at_horizon_usd", noise)):
                        rows.append(dict(sub_market=market.spec.name, scenario=market.config.name,
                                         option=option.label, stage="x", parameter_draw=d, seed=s, metric=metric,
                                         value=value))
    return pd.DataFrame(rows)


def test_the_intervals_cover_the_parameter_sets_and_the_coverage_sentence_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(rm, "simulate", _fake_simulate)
    out = tmp_path / "out"
    result = _invoke(_portfolio(tmp_path), "--episodes", 6, "--draws", 200, "--parameter-draws", 2, "--out", out,
                     "--no-progress")
    flat = assert_clean_exit(result, 0, st.roadmap_covers(2))
    assert st.ROADMAP_COVERS not in flat
    options = pd.read_csv(out / "options.csv").set_index("option")
    # set 1 makes marketing=3 lose: its P(best) is about half, not the 100% one set would give, and its interval
    # spans both sets
    assert 0.3 < options.loc["marketing=3", "p_best"] < 0.7
    assert options.loc["marketing=3", "npv_low_usd"] < 0 < options.loc["marketing=3", "npv_high_usd"]
    assert not options.settled.any() and set(options.seeds) == {12}  # (parameter set, seed) units
    draws = pd.read_csv(out / "draws.csv")
    assert set(draws.parameter_draw) == {0, 1}
    assert draws.groupby("draw").parameter_draw.nunique().eq(1).all()  # every option of a draw on the same set
    report = (out / "report.md").read_text()
    sentence = st.roadmap_coverage(6, 200, 2)
    assert report.count(sentence) == 1 and sentence in (out / "roadmap.md").read_text()
    assert f"the model's {len(RANGES)} calibrated parameters ARE drawn: 2 parameter sets" in sentence
    assert "cost: 2 x the 6 episodes per option and 2 burn-ins per sub-market" in sentence
    assert "not drawn" not in sentence and "not drawn" in st.roadmap_coverage(6, 200)
    results = pd.read_csv(out / "results.csv")
    assert set(results[results.metric == "benefit_usd_per_year"].parameter_draw) == {0, 1}


@pytest.mark.parametrize("extra, fragment", [
    (("--parameter-draws", 65), "--parameter-draws must be in [1, 64] (0: off), got 65"),
    (("--parameter-draws", -1), "--parameter-draws must be in [1, 64] (0: off), got -1"),
    (("--parameter-draws", 2, "--until-settled"), "--parameter-draws and --until-settled do not run together"),
    (("--parameter-draws", 2, "--budget", 1e6), "--parameter-draws and --budget do not run together"),
])
def test_bad_parameter_draws_are_refused_before_any_work(monkeypatch, tmp_path, extra, fragment):
    monkeypatch.setattr(rm, "simulate", lambda *a, **k: pytest.fail("simulated"))
    result = _invoke(_portfolio(tmp_path), "--out", tmp_path / "out", "--no-progress", *extra)
    assert_clean_exit(result, 2, fragment)
    assert not (tmp_path / "out").exists()


def test_a_tiny_roadmap_with_parameter_draws_runs_end_to_end(tmp_path):
    (tmp_path / "short.yaml").write_text("extends: small\nenv: {horizon_days: 28}\n")
    portfolio = tmp_path / "one.yaml"
    portfolio.write_text("name: one\nsub_markets: [{name: tiny, scenario: short.yaml, territories: 2, stage: 2}]\n")
    out = tmp_path / "out"
    result = _invoke(portfolio, "--episodes", 2, "--draws", 40, "--parameter-draws", 2, "--horizon-years", 1,
                     "--out", out, "--no-progress")
    assert_clean_exit(result, 0, st.roadmap_covers(2))
    results = pd.read_csv(out / "results.csv")
    profit = results[results.metric == "profit_usd"]
    assert set(profit.parameter_draw) == {0, 1} and set(profit.seed) == {0, 1} and profit.option.nunique() == 8
    by_draw = profit[profit.option == "today"].set_index(["parameter_draw", "seed"]).value
    assert by_draw.loc[(0, 0)] != by_draw.loc[(1, 0)]  # the sets differ
    options = pd.read_csv(out / "options.csv")
    assert options.p_best.sum() == pytest.approx(1.0) and (options.npv_low_usd <= options.npv_high_usd).all()
    assert st.roadmap_coverage(2, 40, 2) in (out / "report.md").read_text()
