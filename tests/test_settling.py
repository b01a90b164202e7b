"""Honest uncertainty (issue 24, item 2): what each interval covers, the few-seeds draw, settled or not, and the
seeds that would settle a choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_cli import assert_clean_exit
from typer.testing import CliRunner

from oce_sim.cli import app
from oce_sim.studies import roadmap as rm
from oce_sim.studies import settling as st
from oce_sim.studies.uncertainty import RANGES


# --------------------------------------------------------------------------------------------- the few-seeds draw
def test_two_agreeing_seeds_no_longer_give_certainty():
    lead = np.array([1.0, 3.0])  # the best ahead on both seeds: a bootstrap of the seeds is always ahead
    bootstrap = np.random.default_rng(0).choice(lead, size=(4000, 2)).mean(axis=1)
    assert (bootstrap > 0).mean() == 1.0
    drawn = st.mean_draws(lead[None, :], 20000, np.random.default_rng(0))[:, 0]
    # the t with one degree of freedom: P(lead > 0) = 1/2 + atan(mean / se) / pi = 0.85 at mean 2, se 1
    assert (drawn > 0).mean() == pytest.approx(0.5 + np.arctan(2.0) / np.pi, abs=0.01)


def test_the_draws_are_paired_and_tend_to_the_normal_with_many_seeds():
    rng = np.random.default_rng(1)
    shared = rng.normal(0.0, 10.0, 400)
    values = np.stack([shared, shared + 1.0 + rng.normal(0.0, 0.1, 400)])  # two options on the same seeds
    drawn = st.mean_draws(values, 4000, np.random.default_rng(2))
    assert drawn.shape == (4000, 2)
    assert drawn.mean(axis=0) == pytest.approx(values.mean(axis=1), abs=0.05)
    assert drawn[:, 0].std() == pytest.approx(values[0].std(ddof=1) / np.sqrt(400), rel=0.05)
    assert ((drawn[:, 1] - drawn[:, 0]) > 0).mean() == 1.0  # the seed noise they share cancels
    assert np.array_equal(st.mean_draws(values[:, :1], 3, rng), np.repeat(values[:, :1].T, 3, axis=0))


# ----------------------------------------------------------------------------------------------- seeds to settle
def test_seeds_to_settle_is_the_first_n_whose_half_width_falls_below_the_mean():
    diffs = np.array([1.0, 3.0, -1.0, 5.0])  # mean 2, sd 2.58
    n = st.seeds_to_settle(diffs, 0.95)
    half = lambda k: stats.t.ppf(0.975, k - 1) * diffs.std(ddof=1) / np.sqrt(k)
    assert half(n) < 2.0 <= half(n - 1) and n == 9
    assert st.seeds_to_settle(np.array([5.0, 5.1, 4.9]), 0.95) == st.MIN_SEEDS  # never below the minimum
    assert st.seeds_to_settle(np.array([1.0, -1.0]), 0.95) is None  # no lead at all
    assert st.seeds_to_settle(np.array([0.01, -5.0, 5.0]), 0.95) is None  # past the cap
    assert st.seeds_to_settle(np.array([1.0]), 0.95) is None


# ------------------------------------------------------------------------------------------------------ verdict
@pytest.mark.parametrize("p_best, separated, seeds, settled", [
    (0.95, True, 8, True), (0.85, True, 8, False), (0.95, False, 8, False), (1.0, True, st.MIN_SEEDS - 1, False)])
def test_settled_needs_p_best_the_runner_up_below_and_enough_seeds(p_best, separated, seeds, settled):
    assert st.Verdict("a", "b", p_best, separated, seeds, 10).settled is settled


def test_the_verdict_says_why_not_and_how_many_seeds():
    few = st.verdict_sentence(st.Verdict("sales=3", "it=2", 0.74, False, 4, 12), " for m", "step costs")
    assert few.startswith("The choice of sales=3 for m is **not settled**: only 4 paired seeds (at least 5")
    assert "it is the best in 74% of the draws (below 90%)" in few and "runner-up it=2 does not lie below it" in few
    assert "About 12 paired seeds would settle it" in few and "--episodes 12" in few
    assert "More than 1000 paired seeds" in st.verdict_sentence(st.Verdict("a", "b", 0.5, False, 8, None))
    costs = st.verdict_sentence(st.Verdict("a", "b", 0.8, False, 20, 6), "", "step costs, ramp-ups")
    assert "More seeds alone will not settle it" in costs and "the draws of step costs, ramp-ups keep it open" in costs
    done = st.verdict_sentence(st.Verdict("a", "b", 0.97, True, 8, 5))
    assert done == ("The choice of a is **settled**: it is the best in 97% of the draws (at least 90%) and the "
                    "runner-up b lies below it, on 8 paired seeds.")


def test_a_comparison_verdict_from_paired_seeds():
    rows = [dict(scenario="s", stage="1", strategy=name, seed=s, episode=s, metric="profit_multi_period_usd",
                 value=base + noise)
            for s, noise in enumerate([0.0, 50.0, -30.0, 10.0, 20.0, -40.0])
            for name, base in (("today", 0.0), ("clear", 100.0), ("copy", 100.0), ("oracle", 500.0))]
    v = st.compare_verdict(pd.DataFrame(rows), "profit_multi_period_usd", exclude=["oracle"])
    assert (v.best, v.runner_up, v.seeds, v.settled) == ("clear", "today", 6, True)  # copy is clear's twin
    assert v.p_best == 1.0


# ------------------------------------------------------------------------------------------------ coverage
def test_the_coverage_sentences_name_what_is_and_is_not_drawn():
    compare = st.seed_noise_coverage(4)
    assert "paired seed noise only, the 95% t-interval of the mean difference over the 4 paired seeds" in compare
    roadmap = st.roadmap_coverage(4, 400)
    assert "over 400 draws of paired seed noise" in roadmap and "step costs, ramp-ups and discount rate" in roadmap
    for text in (compare, roadmap):
        assert f"the model's {len(RANGES)} calibrated parameters" in text and "not drawn" in text


# --------------------------------------------------------------------------------------- a roadmap, simulated away
def _fake_simulate(markets, episodes, seed, progress=True):
    """Every option's profit: 0, but marketing=3 earns 2M more a year per territory; seed noise shared by all."""
    rows = []
    for market in markets:
        for option in rm.options(market.today):
            for s in range(seed, seed + episodes):
                noise = 1e4 * ((s * 7919) % 13 - 6)
                lead = 2e6 if option.label == "marketing=3" else 0.0
                for metric, value in (("profit_usd", lead + noise), ("value_at_horizon_usd", noise)):
                    rows.append(dict(sub_market=market.spec.name, scenario=market.config.name, option=option.label,
                                     stage="x", seed=s, metric=metric, value=value))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("episodes, settled", [(2, False), (6, True)])
def test_the_roadmap_says_whether_each_choice_is_settled(monkeypatch, tmp_path, episodes, settled):
    monkeypatch.setattr(rm, "simulate", _fake_simulate)
    portfolio = tmp_path / "p.yaml"
    portfolio.write_text("name: p\nsub_markets: [{name: m, scenario: small, territories: 4, stage: 2}]\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [str(a) for a in ("roadmap", portfolio, "--episodes", episodes, "--best-plan", 0, "--draws", 200,
                                                       "--out", out, "--no-progress")])
    verdict = "is settled" if settled else "is not settled: only 2 paired seeds"
    flat = assert_clean_exit(result, 0, st.ROADMAP_COVERS, f"The choice of marketing=3 {verdict}")
    report = (out / "report.md").read_text()
    summary = report.split("## Summary", 1)[1].split("## Roadmap", 1)[0]
    assert f"The choice of marketing=3 is **{'settled' if settled else 'not settled'}**" in summary
    assert report.count(st.roadmap_coverage(episodes, 200)) == 1  # in the summary, once
    assert rm.SETTLED_NOTE in report
    options = pd.read_csv(out / "options.csv")
    assert set(options.settled) == {settled} and set(options.seeds) == {episodes}
    roadmap = pd.read_csv(out / "roadmap.csv")
    assert roadmap.loc[0, "settled"] == ("yes" if settled else f"no (about {st.MIN_SEEDS} seeds)")
    assert "**" not in flat


# ------------------------------------------------------------------------------------------- the sequential stop
def test_the_next_round_grows_toward_the_estimate_at_most_doubling():
    from oce_sim.studies.sequential import next_seeds

    assert next_seeds(4, 6.0, 64) == 6 and next_seeds(4, 20.0, 64) == 8 and next_seeds(4, np.nan, 64) == 8
    assert next_seeds(4, 3.0, 64) == 8 and next_seeds(40, 100.0, 64) == 64


def _tied_simulate(markets, episodes, seed, progress=True):
    """marketing=3 and stage=3 earn the same 2M a year more, each with its own noise: never settled by seeds."""
    frame = _fake_simulate(markets, episodes, seed, progress)
    tied = frame.option.isin(["marketing=3", "stage=3"]) & (frame.metric == "profit_usd")
    own = frame.seed * 7 + frame.option.map(len)
    frame.loc[tied, "value"] = 2e6 + 5e5 * np.sin(own[tied].to_numpy())
    return frame


@pytest.mark.parametrize("fake, seeds, rounds, state", [
    (_fake_simulate, 5, "2 -> 4 -> 5", "settled"), (_tied_simulate, 6, "2 -> 4 -> 6", "not settled at the budget of 6")])
def test_until_settled_adds_seeds_in_rounds_and_says_how_many_it_took(monkeypatch, tmp_path, fake, seeds, rounds,
                                                                       state):
    calls = []
    monkeypatch.setattr(rm, "simulate", lambda m, n, s, p=True: calls.append((n, s)) or fake(m, n, s, p))
    portfolio = tmp_path / "p.yaml"
    portfolio.write_text("name: p\nsub_markets: [{name: m, scenario: small, territories: 4, stage: 2}]\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [str(a) for a in ("roadmap", portfolio, "--episodes", 2, "--best-plan", 0, "--until-settled",
                                                       "--max-episodes", 6, "--draws", 200, "--out", out,
                                                       "--no-progress")])
    sentence = f"in 3 rounds ({rounds} seeds): m {state} on {seeds} seeds."
    assert_clean_exit(result, 0, sentence)
    assert calls[0] == (2, 0) and sum(n for n, _ in calls) == seeds  # only the new seeds run each round
    assert [s for _, s in calls] == [0, 2, 4][:len(calls)]
    assert sentence in (out / "report.md").read_text()
    options = pd.read_csv(out / "options.csv")
    assert set(options.seeds) == {seeds}
    assert sorted(set(pd.read_csv(out / "results.csv").seed)) == list(range(seeds))


def test_max_episodes_below_episodes_is_refused(tmp_path):
    result = CliRunner().invoke(app, ["roadmap", "example", "--episodes", "8", "--until-settled", "--max-episodes",
                                      "4", "--out", str(tmp_path / "o")])
    assert_clean_exit(result, 2, "--max-episodes must be >= 8, got 4")


def test_with_parameter_sets_the_advice_counts_units_and_divides_episodes():
    """--parameter-draws D: the verdict's units are (set, seed) pairs; --episodes is seeds per set (review finding)."""
    from oce_sim.studies.settling import Verdict, verdict_sentence

    v = Verdict(best="a", runner_up="b", p_best=0.7, separated=False, seeds=4, seeds_needed=8)
    plain = verdict_sentence(v)
    assert "only 4 paired seeds" in plain and "--episodes 8" in plain
    drawn = verdict_sentence(v, parameter_sets=2)
    assert "(parameter set, seed) units (2 sets per seed)" in drawn and "--episodes 4" in drawn
