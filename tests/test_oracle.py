"""The rollout oracle matches or beats its base policies on the multi-period objective (issue 10, item 4); it is not
an upper bound on every policy.

Fast tests on a short ``small`` scenario: exact, per-seed guarantees against the base policies (by construction) and
determinism.  The slow test measures the oracle against every stage heuristic on the benchmark scenarios, with
paired confidence intervals (the stage 0-2 heuristics run on differently configured worlds, so the margin is
empirical there).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from oce_sim.agents import STAGE_STRATEGIES, make_strategy
from oce_sim.agents.oracle import (DEFAULT_CANDIDATES, GUARANTEED_CANDIDATES, OBJECTIVE, Candidate, FollowUpEverywhere,
                                   Oracle)
from oce_sim.agents.stage_heuristics import Intervention
from oce_sim.config import load_scenario
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.studies.evaluation import play_episode, strategy_config

SEEDS = (0, 1, 2)


def short_small():
    return load_scenario("small", overrides={"env": {"horizon_days": 91}})


def episode(policy, scenario, seed: int) -> dict[str, float]:
    env = TerritoryEnv(scenario=strategy_config(scenario, policy))
    kpis = play_episode(env, policy, seed)["kpis"]
    env.close()
    return kpis


@pytest.fixture(scope="module")
def runs():
    scenario = short_small()
    out: dict[str, dict[int, dict[str, float]]] = {}
    for name in ("intervention", "oracle_greedy"):
        out[name] = {seed: episode(make_strategy(name), scenario, seed) for seed in SEEDS}
    out["follow_up_everywhere"] = {seed: episode(FollowUpEverywhere(), scenario, seed) for seed in SEEDS}
    out["oracle"] = {}
    for seed in SEEDS:
        oracle = Oracle(reoptimise_every=2)
        out["oracle"][seed] = episode(oracle, scenario, seed)
        assert out["oracle"][seed][OBJECTIVE] == oracle.planned_value_usd, "the realised return is the plan's value"
    return out


def test_oracle_matches_or_beats_its_base_policies_on_every_seed(runs):
    for name in ("intervention", "oracle_greedy", "follow_up_everywhere"):
        for seed in SEEDS:
            assert runs["oracle"][seed][OBJECTIVE] >= runs[name][seed][OBJECTIVE], (name, seed)


def test_a_single_candidate_reproduces_the_base_policys_run_exactly(runs):
    """A rollout on a copy of the env is the real run: one candidate alone replays the base policy's episode (the
    greedy one through the ground-truth view switched on in the copy), every KPI equal."""
    scenario = short_small()
    greedy = next(c for c in DEFAULT_CANDIDATES if c.name == "oracle_greedy")
    for candidate, name in ((Candidate("intervention", Intervention), "intervention"), (greedy, "oracle_greedy")):
        for seed in SEEDS[:2]:
            kpis = episode(Oracle(candidates=[candidate], reoptimise_every=3), scenario, seed)
            assert kpis == runs[name][seed], (name, seed)


def test_oracle_is_deterministic():
    scenario = short_small()
    first, second = Oracle(GUARANTEED_CANDIDATES, 3), Oracle(GUARANTEED_CANDIDATES, 3)
    assert episode(first, scenario, 5) == episode(second, scenario, 5)
    assert first.switches == second.switches


def test_oracle_arguments_are_checked():
    with pytest.raises(ValueError, match="at least one candidate"):
        Oracle(candidates=[])
    with pytest.raises(ValueError, match="reoptimise_every"):
        Oracle(reoptimise_every=0)
    with pytest.raises(RuntimeError, match="reset"):
        Oracle().predict(np.zeros(3))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mature_primary_care", "emerging_field", "specialty_access", "launch_kol"])
def test_no_stage_heuristic_beats_the_oracle_on_the_benchmark(name):
    """Every stage heuristic against the default oracle on a benchmark scenario, 6 paired seeds: exact per-seed
    guarantees against intervention and the greedy oracle; for the others (other worlds: empirical) no heuristic beats
    the oracle in the paired-CI sense (measured in docs/MODEL.md §2.14)."""
    scenario = load_scenario(f"benchmark/{name}")
    seeds = range(1000, 1006)
    oracle = np.array([episode(Oracle(), scenario, seed)[OBJECTIVE] for seed in seeds])
    for opponent in (*STAGE_STRATEGIES, "oracle_greedy"):
        other = np.array([episode(make_strategy(opponent), scenario, seed)[OBJECTIVE] for seed in seeds])
        diff = oracle - other
        if opponent in ("intervention", "oracle_greedy"):
            assert (diff >= 0).all(), (opponent, diff)
        half = stats.t.ppf(0.975, diff.size - 1) * diff.std(ddof=1) / np.sqrt(diff.size)
        # the criterion: no opponent beats the oracle, i.e. the paired 95% interval of (opponent - oracle)
        # does not lie above zero (insight on emerging_field is within noise of it: MODEL.md §2.14)
        assert diff.mean() + half > 0, (opponent, diff.mean(), [diff.mean() - half, diff.mean() + half])
