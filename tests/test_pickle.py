"""deepcopy and pickle of an environment (and of its SimPy world) after reset: the copy continues identically."""

from __future__ import annotations

import copy
import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

from oce_sim.config import load_scenario
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.world.simulation import World

SMALL = {"population": {"n_hcps": 120}, "env": {"horizon_days": 84, "record_events": True}}
CASES = {
    "stage0_calendar": ("small", 0),  # marketing's own email and remote-detail calendars, webinar invitations
    "stage3": ("small", 3),
    "customer3_declarations": ("default", {"customer": 3, "sales": 2, "marketing": 1, "it": 2}),
}


def without_nan(data):
    """NaN -> None, so that Gymnasium's ``data_equivalence`` compares runs that agree (a NaN KPI is undefined)."""
    if isinstance(data, dict):
        return {k: without_nan(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(without_nan(v) for v in data)
    if isinstance(data, float) and math.isnan(data):
        return None
    return data


def assert_same(a, b) -> None:
    assert data_equivalence(without_nan(a), without_nan(b), exact=True)


def roll(env: TerritoryEnv, actions: list[np.ndarray]) -> list[tuple]:
    return [env.step(a) for a in actions]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copy_continues_identically(case, how):
    scenario, stage = CASES[case]
    env = TerritoryEnv(scenario, stage=stage, config=SMALL)
    n_steps = env.horizon_days // env.decision_interval_days
    rng = np.random.default_rng(7)
    actions = [rng.integers(0, 8, size=9) for _ in range(n_steps)]  # stepping past the end raises
    reset = env.reset(seed=11)
    duplicate = copy.deepcopy if how == "deepcopy" else (lambda e: pickle.loads(pickle.dumps(e)))
    copies = {0: duplicate(env)}
    results = []
    for i, action in enumerate(actions):
        results.append(env.step(action))
        if i + 1 in (1, 5, n_steps // 2, n_steps):  # early, mid-episode, at the end
            copies[i + 1] = duplicate(env)
    assert results[n_steps - 1][2] and not results[n_steps - 2][2]  # terminated at the horizon
    for start, twin in copies.items():
        assert_same(roll(twin, actions[start:]), results[start:])
        assert twin.world.event_digest() == env.world.event_digest()
        assert_same(twin.action_masks(), env.action_masks())
        with pytest.raises(RuntimeError, match="reset"):
            twin.step(actions[0])  # the copy has ended too
    # the copy taken after reset also reproduces a fresh env's reset
    fresh = TerritoryEnv(scenario, stage=stage, config=SMALL)
    assert_same(fresh.reset(seed=11), reset)


def test_gym_make_wrapped_env_copies():
    env = gym.make("oce_sim/TerritorySmall-v1", config=SMALL)
    env.reset(seed=3)
    twins = [copy.deepcopy(env), pickle.loads(pickle.dumps(env))]
    actions = [np.full(9, k % 8) for k in range(6)]
    expected = roll(env, actions)
    for twin in twins:
        assert_same(roll(twin, actions), expected)


def test_copies_are_independent():
    env = TerritoryEnv("small", stage=3, config=SMALL)
    env.reset(seed=0)
    twin = copy.deepcopy(env)
    env.step(np.full(9, 5))
    assert twin.world.now == 0.0 and twin.world.ledger.delivered.sum() == 0
    assert env.world.ledger.delivered.sum() > 0


def test_unreset_and_closed_envs_copy():
    env = TerritoryEnv("small")
    assert copy.deepcopy(env).world is None
    env.reset(seed=0)
    env.close()
    assert pickle.loads(pickle.dumps(env)).world is None


@pytest.mark.parametrize("stage", [0, 3])
def test_world_copies_at_any_time_of_day(stage):
    """Pauses inside a day catch every process in every phase (end of day, after the field day, webinar
    invitation / event / next), and the rebuilt processes wake at the same times in the same order."""
    config = load_scenario("small", stage=stage, overrides=SMALL)
    pauses = [0.3, 2.75, 9.5, 13.9, 20.76, 27.4, 33.95, 39.2, 48.8, 55.3, 61.5, 70.1]
    plays = np.random.default_rng(1).integers(0, 8, size=(len(pauses), 9))
    world = World(config, seed=5)
    phases: set[tuple[str, str]] = set()
    twins: list[tuple[int, World]] = []
    for i, (day, play) in enumerate(zip(pauses, plays)):
        world.apply_plays(play)
        world.run_until(day)
        phases |= {(name, wake[2]) for name, wake in world.batch.wakes().items()}
        twins.append((i + 1, pickle.loads(pickle.dumps(world)) if i % 2 else copy.deepcopy(world)))
    world.run_until(84)
    assert {("day_cycle", "end_of_day"), ("field", "after_work"), ("webinars", "invite"), ("webinars", "hold"),
            ("webinars", "next")} <= phases
    for start, twin in twins:
        for day, play in zip(pauses[start:], plays[start:]):
            twin.apply_plays(play)
            twin.run_until(day)
        twin.run_until(84)
        assert twin.event_digest() == world.event_digest()
        assert twin.daily_rx == world.daily_rx
        assert twin.access_upgrades == world.access_upgrades
        assert_same(vars(twin.ledger), vars(world.ledger))
