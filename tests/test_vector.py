"""Vectorised environments: Gymnasium Sync/Async and SB3 Dummy/Subproc give the same per-env trajectories.

An env's trajectory depends only on its own seed, never on how many workers run beside it or in which
process it steps.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

from oce_sim.envs.territory import TerritoryEnv
from oce_sim.world import dispatch

from conftest import N_SEGMENTS

HORIZON = 21  # three weekly decisions, so four steps cross an autoreset
N_STEPS = 5
SEED = 40
make = partial(TerritoryEnv, scenario="small", config={"env": {"horizon_days": HORIZON}})


def rollout(vec, n_envs: int, play: int, seed: int = SEED):
    obs, _ = vec.reset(seed=seed)
    observations, rewards, truncations = [obs], [], []
    actions = np.full((n_envs, N_SEGMENTS), play, dtype=np.int64)
    for _ in range(N_STEPS):
        obs, reward, terminated, truncated, _ = vec.step(actions)
        assert not truncated.any(), "with the terminal value in the reward the horizon terminates"
        observations.append(obs)
        rewards.append(reward)
        truncations.append(terminated)
    vec.close()
    return np.array(observations), np.array(rewards), np.array(truncations)


@pytest.fixture(scope="module")
def single():
    """One env, seed SEED, hold and rep-visit plays."""
    return {play: rollout(SyncVectorEnv([make]), 1, play) for play in (dispatch.HOLD, dispatch.REP_BIWEEKLY)}


@pytest.mark.parametrize("vec_cls", [SyncVectorEnv, AsyncVectorEnv], ids=["sync", "async"])
def test_vector_env_steps_with_hold_actions(vec_cls):
    vec = vec_cls([make] * 2)
    assert vec.single_action_space.shape == (N_SEGMENTS,)
    n_obs = make().observation_space.shape[0]
    assert vec.observation_space.shape == (2, n_obs)
    observations, rewards, truncations = rollout(vec, 2, dispatch.HOLD)
    assert observations.shape == (N_STEPS + 1, 2, n_obs) and observations.dtype == np.float32
    assert ((observations >= 0) & (observations <= 1)).all()
    assert rewards.shape == (N_STEPS, 2) and np.isfinite(rewards).all()
    assert truncations[2].all() and not truncations[:2].any(), "terminates at the horizon"
    assert (rewards[3] == 0).all(), "next-step autoreset: the reset step carries no reward"
    assert not np.array_equal(observations[:, 0], observations[:, 1]), "envs get different seeds"


@pytest.mark.parametrize("play", [dispatch.HOLD, dispatch.REP_BIWEEKLY], ids=["hold", "rep_visit"])
@pytest.mark.parametrize("vec_cls", [SyncVectorEnv, AsyncVectorEnv], ids=["sync", "async"])
def test_per_env_trajectory_does_not_depend_on_worker_count(single, vec_cls, play):
    obs1, rew1, trunc1 = single[play]
    obs3, rew3, trunc3 = rollout(vec_cls([make] * 3), 3, play)
    np.testing.assert_array_equal(obs3[:, 0], obs1[:, 0])
    np.testing.assert_array_equal(rew3[:, 0], rew1[:, 0])
    np.testing.assert_array_equal(trunc3[:, 0], trunc1[:, 0])
    # env 1 of the three is env 0 of a single vector env seeded SEED + 1
    obs_next, rew_next, _ = rollout(SyncVectorEnv([make]), 1, play, seed=SEED + 1)
    np.testing.assert_array_equal(obs3[:, 1], obs_next[:, 0])
    np.testing.assert_array_equal(rew3[:, 1], rew_next[:, 0])


def test_sync_and_async_are_identical():
    sync = rollout(SyncVectorEnv([make] * 3), 3, dispatch.REP_BIWEEKLY)
    asyn = rollout(AsyncVectorEnv([make] * 3), 3, dispatch.REP_BIWEEKLY)
    for a, b in zip(sync, asyn):
        np.testing.assert_array_equal(a, b)
    assert np.ptp(sync[1][:3], axis=1).max() > 0, "the three envs differ from one another"


def test_vector_env_matches_a_plain_env():
    observations, rewards, _ = rollout(SyncVectorEnv([make] * 2), 2, dispatch.REP_BIWEEKLY)
    env = make()
    obs, _ = env.reset(seed=SEED + 1)
    np.testing.assert_array_equal(observations[0, 1], obs)
    for step in range(3):
        obs, reward, terminated, _, _ = env.step(np.full(N_SEGMENTS, dispatch.REP_BIWEEKLY))
        np.testing.assert_array_equal(observations[step + 1, 1], obs)
        assert rewards[step, 1] == reward
    assert terminated


def sb3_rollout(vec, play: int, seed: int = SEED):
    vec.seed(seed)
    obs = vec.reset()
    observations, rewards, dones = [obs], [], []
    actions = np.full((vec.num_envs, N_SEGMENTS), play, dtype=np.int64)
    for _ in range(N_STEPS):
        obs, reward, done, _ = vec.step(actions)
        observations.append(obs)
        rewards.append(reward)
        dones.append(done)
    vec.close()
    return np.array(observations), np.array(rewards), np.array(dones)


def test_sb3_subproc_matches_dummy_vec_env(single):
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    dummy = sb3_rollout(DummyVecEnv([make] * 2), dispatch.REP_BIWEEKLY)
    subproc = sb3_rollout(SubprocVecEnv([make] * 2), dispatch.REP_BIWEEKLY)
    for a, b in zip(dummy, subproc):  # DummyVecEnv buffers rewards as float32, SubprocVecEnv as float64
        np.testing.assert_array_equal(a, b.astype(a.dtype))
    observations, rewards, dones = dummy
    assert dones[2].all() and not dones[:2].any()
    assert not np.array_equal(rewards[:, 0], rewards[:, 1])
    # SB3 seeds env i with seed + i, like Gymnasium's vector envs: env 0 is the single env of seed SEED
    obs1, rew1, _ = single[dispatch.REP_BIWEEKLY]
    np.testing.assert_array_equal(observations[:3, 0], obs1[:3, 0])
    np.testing.assert_array_equal(rewards[:3, 0], rew1[:3, 0].astype(rewards.dtype))  # SB3 keeps float32


@pytest.mark.parametrize("vec_name", ["dummy", "subproc"])
def test_masks_from_infos_equal_the_envs_own_masks(vec_name):
    """`ActionMasksFromInfo` answers sb3-contrib's mask request from the infos, across an automatic reset."""
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from oce_sim.learning.training import ActionMasksFromInfo

    vec_cls = {"dummy": DummyVecEnv, "subproc": SubprocVecEnv}[vec_name]
    make_stage_3 = partial(TerritoryEnv, scenario="small", stage=3, config={"env": {"horizon_days": HORIZON}})
    wrapped = ActionMasksFromInfo(vec_cls([make_stage_3] * 2))
    wrapped.seed(SEED)
    wrapped.reset()
    rng = np.random.default_rng(0)
    original = wrapped.venv.env_method
    forwarded: list[str] = []

    def counting_env_method(method_name, *args, **kwargs):
        forwarded.append(method_name)
        return original(method_name, *args, **kwargs)

    wrapped.venv.env_method = counting_env_method
    crossed_autoreset = False
    for _ in range(N_STEPS):
        masks = get_action_masks(wrapped)
        assert forwarded == [], "masks are answered from the infos, without a call to the workers"
        own = np.stack(original("action_masks"))
        assert masks.shape == (2, N_SEGMENTS * dispatch.N_PLAYS) and masks.dtype == bool
        np.testing.assert_array_equal(masks, own)
        grid = masks.reshape(2, N_SEGMENTS, dispatch.N_PLAYS)
        actions = np.array([[rng.choice(np.flatnonzero(row)) for row in env_masks] for env_masks in grid])
        _, _, dones, infos = wrapped.step(actions)
        crossed_autoreset |= bool(dones.any())
        assert all(info["action_mask"].shape == (N_SEGMENTS * dispatch.N_PLAYS,) for info in infos)
    assert crossed_autoreset, "the rollout crosses an automatic reset"
    assert wrapped.env_method("get_wrapper_attr", "horizon_days") == [HORIZON, HORIZON], "other calls pass through"
    assert forwarded == ["get_wrapper_attr"]
    wrapped.close()


def test_kpis_only_at_episode_end_when_asked():
    env = TerritoryEnv(scenario="small", config={"env": {"horizon_days": 14, "info_kpis": "episode_end"}})
    _, info = env.reset(seed=SEED)
    assert "kpis" not in info and info["action_mask"].shape == (N_SEGMENTS * dispatch.N_PLAYS,)
    _, _, terminated, _, info = env.step(np.zeros(N_SEGMENTS, dtype=np.int64))
    assert not terminated and "kpis" not in info
    _, _, terminated, _, info = env.step(np.zeros(N_SEGMENTS, dtype=np.int64))
    every = TerritoryEnv(scenario="small", config={"env": {"horizon_days": 14}})
    every.reset(seed=SEED)
    for _ in range(2):
        *_, every_info = every.step(np.zeros(N_SEGMENTS, dtype=np.int64))
    assert terminated and info["kpis"].keys() == every_info["kpis"].keys()
    np.testing.assert_array_equal(list(info["kpis"].values()), list(every_info["kpis"].values()))  # NaN == NaN
