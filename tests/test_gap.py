"""The share of the gap closed (oce_sim/studies/gap.py): known answers, Fieller's interval, the ceiling's choice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oce_sim.studies.evaluation import t_interval
from oce_sim.studies.gap import Ratio, best_observed, gap_closed, headroom, paired_ratio


def test_constant_differences_give_the_exact_share_with_no_spread():
    floor = np.array([100.0, 250.0, 80.0])
    share = gap_closed(floor + 5, floor, floor + 10)
    assert (share.estimate, share.low, share.high, share.n_seeds) == (0.5, 0.5, 0.5, 3)
    assert share.percent() == "50% [50%, 50%]"


def test_the_floor_closes_nothing_and_the_ceiling_everything():
    rng = np.random.default_rng(0)
    floor = rng.normal(0, 1, 12)
    ceiling = floor + 3 + rng.normal(0, 0.5, 12)
    assert gap_closed(floor, floor, ceiling).estimate == 0.0
    assert gap_closed(ceiling, floor, ceiling).estimate == pytest.approx(1.0)
    beyond = gap_closed(ceiling + 3, floor, ceiling)  # a privileged learner may pass the best observation-only policy
    assert beyond.estimate > 1.5 and beyond.low > 1.0


def test_with_a_fixed_gap_the_interval_is_the_t_interval_scaled():
    """Fieller's interval with a denominator that does not vary is the numerator's t-interval over the gap."""
    gains = np.array([2.0, 4.0, 6.0, 8.0])
    share = paired_ratio(gains, np.full(4, 10.0))
    ci = t_interval(gains, 0.95)
    assert share.estimate == pytest.approx(0.5)
    assert share.low == pytest.approx(ci["diff_low"] / 10) and share.high == pytest.approx(ci["diff_high"] / 10)
    assert share.low == pytest.approx(0.0892, abs=1e-4) and share.high == pytest.approx(0.9108, abs=1e-4)


def test_no_gap_is_undefined_and_an_insignificant_gap_unbounded():
    floor = np.zeros(5)
    none = gap_closed(floor + 1, floor, floor - np.arange(5.0))  # the ceiling below the floor on average
    assert math.isnan(none.estimate) and none.percent() == "n/a (no gap)"
    assert math.isnan(gap_closed(floor + 1, floor, floor).estimate)
    loose = gap_closed(floor + 1, floor, np.array([10.0, -9.0, 8.0, -7.0, 0.5]))  # mean 0.5, spread 8
    assert loose.estimate == pytest.approx(2.0) and math.isnan(loose.low) and math.isnan(loose.high)
    assert loose.percent() == "200% [unbounded]"


def test_the_interval_covers_the_true_share_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    n, true_share, hits = 20, 0.6, 0
    for _ in range(2000):
        gap = 10 + rng.normal(0, 3, n)  # what the ceiling earns over the floor, per seed
        agent = true_share * gap + rng.normal(0, 2, n)
        share = paired_ratio(agent, gap)
        hits += share.low <= true_share <= share.high
    assert 0.93 <= hits / 2000 <= 0.97


def test_strict_input():
    with pytest.raises(ValueError, match="same seeds"):
        gap_closed([1.0, 2.0], [0.0, 0.0], [3.0, 4.0, 5.0])
    with pytest.raises(ValueError, match=">= 2"):
        paired_ratio([1.0], [2.0])
    with pytest.raises(ValueError, match="finite"):
        paired_ratio([1.0, float("nan")], [2.0, 3.0])
    with pytest.raises(ValueError, match="confidence"):
        paired_ratio([1.0, 2.0], [2.0, 3.0], confidence=1.0)
    assert isinstance(paired_ratio([1.0, 2.0], [2.0, 2.0]), Ratio)


def test_the_ceiling_is_the_best_candidate_on_the_selection_seeds():
    means = {"intervention": 10.0, "follow_up_everywhere": 12.0, "best@1000 (stage 3)": 12.5, "oracle": 20.0}
    chosen = best_observed(means, ["intervention", "follow_up_everywhere", "best@1000 (stage 3)"])
    assert chosen == "best@1000 (stage 3)"
    assert best_observed({"a": 1.0, "b": 1.0}, ["b", "a"]) == "b"  # ties: the first listed
    with pytest.raises(ValueError, match="no finite mean on the selection seeds for learner"):
        best_observed(means, ["intervention", "learner"])
    with pytest.raises(ValueError, match="at least one candidate"):
        best_observed(means, [])


def test_headroom_is_the_paired_difference_and_zero_for_the_plan_itself():
    plan = np.array([5.0, 7.0, 6.0, 9.0])
    assert headroom(plan, plan) == {"diff_mean": 0.0, "diff_low": 0.0, "diff_high": 0.0}
    room = headroom(plan + np.array([1.0, 3.0, 2.0, 2.0]), plan)
    assert room == t_interval(np.array([1.0, 3.0, 2.0, 2.0]), 0.95)
    with pytest.raises(ValueError, match="same seeds"):
        headroom(plan, plan[:3])


def test_measure_chooses_on_the_selection_seeds_and_reports_on_the_test_seeds():
    from oce_sim.agents import make_strategy
    from oce_sim.config import load_scenario
    from oce_sim.studies.gap import FLOOR, candidates, measure, measured_text

    scenario = load_scenario("small")
    pool = candidates(scenario)
    assert list(pool) == ["instruction", "insight", "involvement", "intervention", "follow_up_everywhere"]
    select, report = range(201_000, 201_003), range(900_000, 900_003)
    found = measure(scenario, {"random": make_strategy("random")}, pool, select, report)
    assert set(found.results[found.results.purpose == "select"].seed) == set(select)
    assert "random" not in set(found.results[found.results.purpose == "select"].strategy)  # not a candidate
    means = (found.results[(found.results.purpose == "select") & (found.results.metric == "profit_multi_period_usd")]
             .groupby("strategy").value.mean())
    assert found.ceiling == means.idxmax() and found.best_plan is None and found.candidates == list(pool)
    wide = (found.results[(found.results.purpose == "report") & (found.results.metric == "profit_multi_period_usd")]
            .pivot_table(index="seed", columns="strategy", values="value"))
    table = found.table.set_index("strategy")
    expected = gap_closed(wide["random"], wide[FLOOR], wide[found.ceiling])
    assert table.loc["random", "gap_closed"] == pytest.approx(expected.estimate, nan_ok=True)
    assert not table.loc["random", "candidate"] and table.loc[FLOOR, "gap_closed"] == 0.0
    text = measured_text(found, select, report)
    assert f"Best policy that sees only observations: **{found.ceiling}**" in text
    assert "| random (not a candidate) |" in text and "| intervention | " in text
    with pytest.raises(ValueError, match="overlap"):
        measure(scenario, {}, pool, select, range(201_002, 201_004))
    with pytest.raises(ValueError, match="floor"):
        measure(scenario, {}, {"insight": pool["insight"]}, select, report)


def test_only_a_model_trained_on_the_observed_reward_is_a_candidate():
    from oce_sim.agents import TrainedModel
    from oce_sim.studies.gap import sees_only_observations

    def model(meta: dict) -> TrainedModel:
        fake = object.__new__(TrainedModel)  # the file's description is all that is read
        fake.meta = meta
        return fake

    assert sees_only_observations(model({"reward": "observed"}))
    assert not sees_only_observations(model({"reward": "expected"}))
    assert not sees_only_observations(model({}))  # an older file that does not say
    assert not sees_only_observations(object())
