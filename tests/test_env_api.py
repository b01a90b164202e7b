"""Gymnasium / SB3 API of the territory environments: checkers, determinism, masks, validation, info."""

from __future__ import annotations

import math
import re

import gymnasium as gym
import numpy as np

from oce_sim.world.kpis import UNDEFINED
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import oce_sim
from oce_sim.config import builtin_scenarios
from oce_sim.world import dispatch
from oce_sim.world.response import EMAIL, ORIGIN_ORCHESTRATOR

from conftest import COST_COMPONENTS, N_PLAYS, N_SEGMENTS, constant, make_env, masked_random, plays, run_episode

SHORT = {"env": {"horizon_days": 28}}
# The error message must name the allowed range of plays.
RANGE_MESSAGE = rf"\[0, {N_PLAYS - 1}\]"
SCENARIOS = sorted(builtin_scenarios())
KPI_KEYS = (
    "prescriptions",
    "profit_usd",
    "cost_usd",
    "cost_fixed_usd",
    "cost_variable_usd",
    "revenue_usd",
    "gross_margin_usd",
    "value_at_horizon_usd",
    "profit_multi_period_usd",
    "field_utilisation",
    "reach",
    "frequency",
    "engagement_rate",
    "confusion_events",
    "unsubscribes",
    "suggestion_acceptance",
)


def test_every_registered_id_and_scenario_is_covered():
    assert set(oce_sim.ENV_IDS) == {
        "oce_sim/Territory-v1",
        "oce_sim/TerritorySmall-v1",
        "oce_sim/TerritoryIntervention-v1",
    }
    assert {"default", "small"} <= set(SCENARIOS)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_v0_ids_point_to_v1():
    """v0 ended with a truncation that made SB3 count the terminal value twice: it is gone, and Gymnasium says so."""
    with pytest.raises(gym.error.DeprecatedEnv, match="use `oce_sim/Territory-v1`"):
        gym.make("oce_sim/Territory-v0")


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("env_id", sorted(oce_sim.ENV_IDS))
def test_env_checkers_pass(env_id, scenario, gym_make):
    env = gym_make(env_id, scenario=scenario, config=SHORT)
    assert env.unwrapped.scenario.env.horizon_days == 28
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)


@pytest.mark.parametrize("env_id", sorted(oce_sim.ENV_IDS))
def test_gym_make_registered_defaults(env_id, gym_make):
    assert env_id in gym.registry
    env = gym_make(env_id)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_space == gym.spaces.MultiDiscrete([N_PLAYS] * N_SEGMENTS)
    obs, reward, terminated, truncated, info = env.step(np.zeros(N_SEGMENTS, dtype=np.int64))
    assert env.observation_space.contains(obs)
    assert isinstance(reward, float) and not terminated and not truncated
    scenario = env.unwrapped.scenario
    if env_id == "oce_sim/TerritorySmall-v1":
        assert scenario.name == "small"
        assert scenario.population.n_hcps == 120 and scenario.population.n_reps == 1
        assert scenario.env.horizon_days == 182
    elif env_id == "oce_sim/TerritoryIntervention-v1":
        assert scenario.stage.overall == 3
    else:
        assert scenario.name == "default" and scenario.stage.overall == 1


def _trajectory(seed, actions, config=None):
    env = make_env(config=config)
    obs, info = env.reset(seed=seed)
    observations, rewards, kpis = [obs], [], [info["kpis"]]
    for action in actions:
        obs, reward, _, _, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        kpis.append(info["kpis"])
    return observations, rewards, kpis


def _actions(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, N_PLAYS, size=N_SEGMENTS) for _ in range(n)]


def test_same_seed_is_deterministic():
    actions = _actions(8)
    obs_a, rew_a, kpi_a = _trajectory(123, actions)
    obs_b, rew_b, kpi_b = _trajectory(123, actions)
    np.testing.assert_array_equal(np.stack(obs_a), np.stack(obs_b))
    assert rew_a == rew_b
    for a, b in zip(kpi_a, kpi_b):
        assert a.keys() == b.keys()
        np.testing.assert_equal(a, b)  # NaN-aware (roi without spend)


def test_same_seed_identical_event_log():
    config = {"env": {"record_events": True}}
    digests = []
    for _ in range(2):
        env = make_env(config=config)
        run_episode(env, masked_random, seed=7, policy_seed=3)
        digests.append(env.world.event_digest())
    assert digests[0] == digests[1]


def test_different_seeds_differ():
    actions = _actions(8)
    obs_a, rew_a, kpi_a = _trajectory(1, actions)
    obs_b, rew_b, kpi_b = _trajectory(2, actions)
    assert not np.array_equal(np.stack(obs_a), np.stack(obs_b))
    assert rew_a != rew_b
    assert kpi_a[-1]["prescriptions"] != kpi_b[-1]["prescriptions"]


def test_reset_without_seed_draws_fresh_worlds():
    env = make_env()
    env.reset(seed=5)
    first = env.world.pop.class_rx_per_day.copy()
    env.reset()
    second = env.world.pop.class_rx_per_day.copy()
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_action_masks_shape_and_hold(stage):
    env = make_env(stage=stage)
    env.reset(seed=stage)
    rng = np.random.default_rng(0)
    for step in range(4):
        mask = env.action_masks()
        assert mask.shape == (N_SEGMENTS * N_PLAYS,)
        assert mask.dtype == np.bool_
        grid = mask.reshape(N_SEGMENTS, N_PLAYS)
        assert grid.any(axis=1).all()
        assert grid[:, dispatch.HOLD].all()
        if stage < 3:
            assert not grid[:, list(dispatch.MARKETING_PLAYS)].any()
        if stage < 2:
            assert not grid[:, dispatch.REP_ASK].any()
        # Sampling only allowed plays never counts as masked.
        _, _, _, _, info = env.step(masked_random(step, env, rng))
        assert info["masked_actions"] == 0


@pytest.mark.parametrize("stage", [1, 3])
def test_masked_count_matches_the_mask(stage):
    env = make_env(stage=stage)
    env.reset(seed=21)
    rng = np.random.default_rng(21)
    total = 0
    for _ in range(8):
        grid = env.action_masks().reshape(N_SEGMENTS, N_PLAYS)
        action = rng.integers(0, N_PLAYS, size=N_SEGMENTS)
        forbidden = np.argwhere(~grid)
        if forbidden.size:  # always try one forbidden play, so the count is exercised at every stage
            segment, play = forbidden[rng.integers(len(forbidden))]
            action[segment] = play
        allowed = grid[np.arange(N_SEGMENTS), action]
        _, _, _, _, info = env.step(action)
        assert info["masked_actions"] == int((~allowed).sum())
        np.testing.assert_array_equal(info["plays"], np.where(allowed, action, dispatch.HOLD))
        total += info["masked_actions"]
    assert info["masked_actions_total"] == info["kpis"]["masked_actions"] == total > 0


def test_action_masks_requires_reset():
    env = make_env()
    with pytest.raises(RuntimeError):
        env.action_masks()
    with pytest.raises(RuntimeError):
        env.step(np.zeros(N_SEGMENTS, dtype=np.int64))


@pytest.mark.parametrize(
    "action",
    [
        np.zeros(N_SEGMENTS - 1, dtype=np.int64),
        np.zeros(N_SEGMENTS + 1, dtype=np.int64),
        np.zeros((N_SEGMENTS, 1), dtype=np.int64),
        np.full(N_SEGMENTS, N_PLAYS, dtype=np.int64),
        np.r_[np.zeros(N_SEGMENTS - 1, dtype=np.int64), N_PLAYS + 3],
        np.r_[-1, np.zeros(N_SEGMENTS - 1, dtype=np.int64)],
        np.full(N_SEGMENTS, 0.5),
        np.full(N_SEGMENTS, np.nan),
        "hold",
        3,
        None,
    ],
    ids=["short", "long", "2d", "n_plays", "one_too_big", "negative", "fractional", "nan", "string", "scalar", "none"],
)
def test_invalid_action_raises_value_error(small_env, action):
    small_env.reset(seed=0)
    with pytest.raises(ValueError, match=RANGE_MESSAGE):
        small_env.step(action)


def test_invalid_action_through_gym_make(gym_make):
    env = gym_make("oce_sim/TerritorySmall-v1")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=RANGE_MESSAGE):
        env.step([N_PLAYS] * N_SEGMENTS)


def test_integral_floats_and_lists_are_accepted(small_env):
    small_env.reset(seed=0)
    _, _, _, _, info = small_env.step([0.0] * N_SEGMENTS)
    assert info["masked_actions"] == 0
    _, _, _, _, info = small_env.step([dispatch.REP_BIWEEKLY] * N_SEGMENTS)
    assert info["plays"].dtype.kind == "i"
    assert set(np.unique(info["plays"])) <= {dispatch.HOLD, dispatch.REP_BIWEEKLY}


def test_masked_play_is_not_executed():
    """Stage 1: marketing is not controllable, so an email play is replaced by hold and counted."""
    env = make_env(stage=1, config={"env": {"record_events": True}})
    env.reset(seed=11)
    total = 0
    for _ in range(6):
        _, _, _, _, info = env.step(constant(dispatch.EMAIL_PLAY)(0, env, None))
        assert info["masked_actions"] == N_SEGMENTS
        assert np.all(info["plays"] == dispatch.HOLD)
        total += info["masked_actions"]
        assert info["masked_actions_total"] == total
    assert info["kpis"]["masked_actions"] == total > 0
    origins = np.concatenate([rec.touches.origin[rec.touches.channel == EMAIL] for rec in env.world.event_log])
    assert origins.size > 0, "the marketing calendar still emails at stage 1"
    assert not np.any(origins == ORIGIN_ORCHESTRATOR)


def test_unmasked_email_play_is_executed_at_stage_3():
    env = make_env(stage=3, config={"env": {"record_events": True}})
    env.reset(seed=11)
    for _ in range(3):
        env.step(constant(dispatch.EMAIL_PLAY)(0, env, None))
    origins = np.concatenate([rec.touches.origin[rec.touches.channel == EMAIL] for rec in env.world.event_log])
    assert np.sum(origins == ORIGIN_ORCHESTRATOR) > 0


@pytest.mark.parametrize("scale", [10_000.0, 250.0])
def test_reward_components(scale):
    env = make_env(config={"env": {"reward_scale_usd": scale}})
    _, rewards, infos = run_episode(env, masked_random, seed=4, policy_seed=4)
    assert infos[0]["reward_components"] == {}
    margin = env.scenario.economics.gross_margin
    for step, (reward, info) in enumerate(zip(rewards, infos[1:])):
        parts = info["reward_components"]
        last = step == len(rewards) - 1
        expected_keys = {"revenue", "expected_revenue", "gross_margin", "expected_gross_margin", "profit",
                         "expected_profit", "observed_revenue", "observed_gross_margin", "observed_profit",
                         "field_fixed_cost", *COST_COMPONENTS}
        assert set(parts) == expected_keys | ({"terminal_value"} if last else set())
        costs = sum(parts[c] for c in COST_COMPONENTS) + parts["field_fixed_cost"]
        assert parts["gross_margin"] == pytest.approx(parts["revenue"] * margin)
        assert parts["expected_profit"] == pytest.approx(parts["expected_revenue"] * margin - costs)
        assert all(parts[name] >= 0 for name in ("revenue", "field_fixed_cost", *COST_COMPONENTS))
        assert parts["profit"] == pytest.approx(parts["gross_margin"] - costs)
        assert parts["observed_profit"] == pytest.approx(parts["observed_revenue"] * margin - costs)
        terminal = parts["terminal_value"] if last else 0.0
        assert reward == pytest.approx((parts["profit"] + terminal) / scale)
    assert infos[-1]["reward_components"]["terminal_value"] > 0, "prescribers still prescribe after the horizon"
    assert sum(info["reward_components"]["revenue"] for info in infos[1:]) > 0


def test_the_docstring_names_the_reward_components_info_holds():
    env = make_env()
    _, _, infos = run_episode(env, constant(dispatch.HOLD), seed=0)
    section = type(env.unwrapped).__doc__.split("## Rewards")[1].split("##")[0]
    named = set(re.findall(r"``(\w+)``", section.split('info["reward_components"]')[1].split(").")[0]))
    assert named == set(infos[-1]["reward_components"])


@pytest.mark.parametrize("horizon,interval", [(56, 7), (30, 7), (28, 14), (21, 1)])
@pytest.mark.parametrize("terminal_value", [True, False])
def test_ends_at_horizon(horizon, interval, terminal_value):
    """run_episode checks the flags: terminated with the terminal value in the reward, truncated without it."""
    env = make_env(config={"env": {"horizon_days": horizon, "decision_interval_days": interval,
                                   "terminal_value": terminal_value}})
    _, _, infos = run_episode(env, constant(dispatch.HOLD), seed=0)
    assert len(infos) - 1 == math.ceil(horizon / interval)
    assert infos[-1]["day"] == horizon
    assert env.world.now == horizon
    assert "series" in infos[-1] and len(infos[-1]["series"]) == len(infos) - 1
    assert all("series" not in info for info in infos[:-1])


def test_info_kpis():
    env = make_env()
    _, _, infos = run_episode(env, masked_random, seed=2, policy_seed=2)
    kpis = infos[-1]["kpis"]
    for key in KPI_KEYS:
        assert key in kpis, key
        assert isinstance(kpis[key], float)
    assert kpis["prescriptions"] > 0
    assert kpis["profit_usd"] == pytest.approx(kpis["gross_margin_usd"] - kpis["cost_usd"])
    assert kpis["cost_usd"] == pytest.approx(kpis["cost_fixed_usd"] + kpis["cost_variable_usd"])
    assert kpis["profit_multi_period_usd"] == pytest.approx(kpis["profit_usd"] + kpis["value_at_horizon_usd"])
    assert kpis["value_at_horizon_usd"] > 0
    assert 0.0 <= kpis["reach"] <= 1.0
    assert 0.0 <= kpis["engagement_rate"] <= 1.0
    assert 0.0 <= kpis["field_utilisation"] <= 1.0
    acceptance = kpis["suggestion_acceptance"]
    assert acceptance == UNDEFINED or 0.0 <= acceptance <= 1.0
    assert all(math.isfinite(v) for v in kpis.values()), "infos are NaN-free"


def test_render_ansi():
    env = make_env()
    env.render_mode = "ansi"
    env.reset(seed=0)
    env.step(plays())
    text = env.render()
    assert isinstance(text, str) and "Rx" in text and "profit" in text
    with pytest.warns(UserWarning, match="render_mode='human' is not supported"):
        assert type(env)(scenario="small", render_mode="human").render() is None


def test_expected_reward_has_the_same_mean_with_less_noise():
    """``env.reward: expected`` values the expected Rx given the true state: close to realised, smoother."""
    import gymnasium as gym

    rewards, rx_value = {}, {}
    for mode in ("realized", "expected"):
        env = gym.make("oce_sim/TerritorySmall-v1", config={"env": {"reward": mode}}).unwrapped
        env.reset(seed=3)
        done, got = False, []
        while not done:
            _, reward, terminated, truncated, info = env.step(np.ones(9, dtype=np.int64))
            parts = info["reward_components"]
            key = "profit" if mode == "realized" else "expected_profit"
            terminal = parts.get("terminal_value", 0.0)  # the same in both modes: an expectation
            assert reward == pytest.approx((parts[key] + terminal) / env.reward_scale_usd)
            got.append(reward)
            done = terminated or truncated
        rewards[mode] = np.array(got)
        rx_value[mode] = (env.world.ledger.revenue_usd * env.scenario.economics.gross_margin,
                          env.world.ledger.expected_revenue_usd * env.scenario.economics.gross_margin)
    # common random numbers: the same world whatever the reward, so the runs are identical ...
    assert rx_value["realized"] == rx_value["expected"]
    # ... and the two rewards differ only in valuing expected instead of drawn Rx: the same mean, within the
    # Poisson noise of one small territory-year (costs are common to both and cancel out).
    realized_rx_value, expected_rx_value = rx_value["realized"]
    n_rx = env.world.ledger.rx
    assert expected_rx_value == pytest.approx(realized_rx_value, rel=3.0 / np.sqrt(n_rx))  # 3 Poisson sd
    assert rewards["expected"].sum() - rewards["realized"].sum() == pytest.approx(
        (expected_rx_value - realized_rx_value) / env.reward_scale_usd)
    # (the last step also carries the value left at the horizon, an expectation in both modes)
    assert np.std(np.diff(rewards["expected"][:-1])) < np.std(np.diff(rewards["realized"][:-1]))
