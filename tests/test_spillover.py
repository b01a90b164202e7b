"""The spillover of a segment's play outside its cohort (oce_sim/studies/spillover.py) and its experiment script."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oce_sim.agents.stationary import StationaryPlan
from oce_sim.config import load_scenario
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.studies.evaluation import strategy_config
from oce_sim.studies.gap import paired_ratio
from oce_sim.studies.spillover import Window, measure, summarise
from oce_sim.world import dispatch

FOLLOW_UP = ["rep_visit_plus_email"] * dispatch.N_SEGMENTS


def _episode_reward(plan: StationaryPlan, seed: int, held: int | None, window: Window) -> float:
    """The env's own summed reward (USD) from the window's first week, with ``held`` holding in the window."""
    config = strategy_config(load_scenario("small", overrides={"env": {"reward": "expected"}}), plan)
    env = TerritoryEnv(scenario=config)
    obs, _ = env.reset(seed=seed)
    total, step, done = 0.0, 0, False
    while not done:
        action, _ = plan.predict(obs, action_masks=env.action_masks())
        if held is not None and window.covers(step):
            action[held] = dispatch.HOLD
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward if step >= window.first else 0.0
        done, step = terminated or truncated, step + 1
    env.close()
    return total * config.env.reward_scale_usd


def test_own_and_others_add_up_to_the_plays_whole_effect():
    """The split is of the whole change: own + others is the env's summed expected reward with the play minus
    without it (the field's salaries, in no HCP's reward, do not change; the split leaves the world unchanged)."""
    window = Window(first=10, weeks=20)
    units = measure(load_scenario("small"), FOLLOW_UP, [200_000], segments=[7], window=window)
    plan = StationaryPlan(FOLLOW_UP, 3)
    whole = _episode_reward(plan, 200_000, None, window) - _episode_reward(plan, 200_000, 7, window)
    row = units.iloc[0]
    assert row.own_usd + row.others_usd == pytest.approx(whole, rel=1e-9, abs=1e-6)
    assert row.segment == "high_trialing" and 0 < row.cohort_hcps < 300


def test_holding_a_segment_that_already_holds_moves_nothing():
    plays = list(FOLLOW_UP)
    plays[0] = "hold"
    units = measure(load_scenario("small"), plays, [200_000, 200_001], segments=[0])
    assert (units.own_usd == 0).all() and (units.others_usd == 0).all()
    assert np.isnan(summarise(units).set_index("segment").loc["all", "ratio"])  # no own effect: no ratio


def test_summary_pools_units_with_fiellers_ratio():
    units = pd.DataFrame(dict(seed=[1, 1, 2, 2, 3, 3], segment=["a", "b"] * 3,
                              own_usd=[10.0, 20.0, 12.0, 18.0, 11.0, 25.0],
                              others_usd=[-2.0, -5.0, -3.0, -4.0, -1.0, -6.0], cohort_hcps=[5] * 6))
    summary = summarise(units).set_index("segment")
    pooled = paired_ratio(units.others_usd, units.own_usd)
    assert summary.loc["all", "ratio"] == pytest.approx(pooled.estimate)
    assert summary.loc["all", "ratio_low"] == pytest.approx(pooled.low)
    assert summary.loc["a", "own_usd"] == pytest.approx(11.0) and summary.loc["b", "others_usd"] == pytest.approx(-5.0)
    assert list(summary.index) == ["a", "b", "all"]


def test_strict_input():
    scenario = load_scenario("small")
    with pytest.raises(ValueError, match="distinct indices"):
        measure(scenario, FOLLOW_UP, [200_000], segments=[9])
    with pytest.raises(ValueError, match="at least one seed"):
        measure(scenario, FOLLOW_UP, [])
    with pytest.raises(ValueError, match="a stationary plan is 9 plays"):
        measure(scenario, FOLLOW_UP[:3], [200_000])
    with pytest.raises(ValueError, match="a window starts"):
        Window(first=-1)


def test_the_script_writes_its_table(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "experiments/factored_spillover.py", "--scenario", "small", "--seeds", "2",
                             "--segments", "low_non_prescriber,high_trialing", "--out", str(tmp_path)], cwd=root,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    units = pd.read_csv(tmp_path / "small" / "units.csv")
    assert sorted(set(units.seed)) == [200_000, 200_001]  # validation seeds
    assert set(units.segment) == {"low_non_prescriber", "high_trialing"}
    text = (tmp_path / "small" / "spillover.md").read_text()
    assert "--segments low_non_prescriber,high_trialing" in text and "| **pooled** |" in text
    bad = subprocess.run([sys.executable, "experiments/factored_spillover.py", "--segments", "nobody"], cwd=root,
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "--segments must be distinct names" in bad.stderr
