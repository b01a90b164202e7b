"""The sharded vector env (``oce_sim.envs.sharded``): the native vector env's territories spread over worker
processes.  The one-process ``TerritoryVectorEnv`` is the reference: the same observations, rewards, flags and
vector infos, bit for bit, across automatic resets."""

from __future__ import annotations

import pickle
import time

import gymnasium as gym
import numpy as np
import pytest

import oce_sim  # noqa: F401  (registers the ids)
from oce_sim.envs.sharded import (
    ShardedTerritoryVectorEnv,
    check_workers,
    default_workers,
    max_workers,
    merge_infos,
    shard_sizes,
    usable_cpus,
)
from oce_sim.envs.vector import MAX_NUM_ENVS, TerritoryVectorEnv, check_num_envs
from test_native_vector import CONFIG, random_actions, same, same_vector_infos

N_ENVS = 5
SEED = 23


def play(vec, steps: int, seed) -> list:
    """Everything a vector env returns over a reset and ``steps`` random masked steps (two automatic resets)."""
    rng = np.random.default_rng(5)
    obs, info = vec.reset(seed=seed)
    out = [(obs, info)]
    for _ in range(steps):
        out.append(vec.step(random_actions(rng, vec.action_masks())))
    return out


@pytest.mark.parametrize("seed", [SEED, [SEED + 2 * i for i in range(N_ENVS)]])
def test_sharded_env_is_the_one_process_env_bit_for_bit(seed):
    reference = TerritoryVectorEnv(N_ENVS, scenario="small", config=CONFIG)
    sharded = gym.make_vec("oce_sim/TerritorySmall-v1", num_envs=N_ENVS, vectorization_mode="vector_entry_point",
                           workers=3, config=CONFIG)
    assert isinstance(sharded, ShardedTerritoryVectorEnv) and sharded.sizes == [2, 2, 1]
    try:
        expected, got = play(reference, 8, seed), play(sharded, 8, seed)
    finally:
        sharded.close()
        reference.close()
    for want, have in zip(expected, got):
        for a, b in zip(want[:-1], have[:-1]):
            assert a.dtype == b.dtype and same(a, b)
        assert same_vector_infos(want[-1], have[-1])
    assert any(bool(step[2].any() or step[3].any()) for step in got[1:]), "the episode ends inside the test"


def test_merge_infos_fills_what_a_shard_lacks_as_add_info_does():
    first = {"a": np.array([1, 2]), "_a": np.array([True, True]),
             "n": {"x": np.array([0.5, 1.5]), "_x": np.array([True, False])}, "_n": np.array([True, True])}
    second = {"b": np.array([None], dtype=object), "_b": np.array([True])}
    merged = merge_infos([first, second], [2, 1])
    assert list(merged) == ["a", "_a", "n", "_n", "b", "_b"]
    assert merged["a"].tolist() == [1, 2, 0] and merged["_a"].tolist() == [True, True, False]
    assert merged["n"]["x"].tolist() == [0.5, 1.5, 0.0] and merged["n"]["_x"].tolist() == [True, False, False]
    assert merged["_n"].tolist() == [True, True, False]
    assert merged["b"].tolist() == [None, None, None] and merged["_b"].tolist() == [False, False, True]


def test_shard_sizes_and_default_workers():
    assert shard_sizes(8, 3) == [3, 3, 2] and shard_sizes(4, 4) == [1, 1, 1, 1]
    assert default_workers(1) == 1 and 1 <= default_workers(64) <= 64


@pytest.mark.parametrize("workers, error", [(0, ValueError), (6, ValueError), (1.5, TypeError), (True, TypeError),
                                            ("2", TypeError), (2.0, TypeError), (None, TypeError)])
def test_bad_worker_counts_are_refused_before_any_process(workers, error):
    with pytest.raises(error, match="workers must be"):
        gym.make_vec("oce_sim/TerritorySmall-v1", num_envs=N_ENVS, vectorization_mode="vector_entry_point",
                     workers=workers)


@pytest.mark.parametrize("num_envs, error", [(1.5, TypeError), ("3", TypeError), (True, TypeError), (0, ValueError),
                                             (MAX_NUM_ENVS + 1, ValueError)])
def test_num_envs_is_an_integer_in_range_not_coerced(num_envs, error):
    for make in (lambda: gym.make_vec("oce_sim/TerritorySmall-v1", num_envs=num_envs,
                                      vectorization_mode="vector_entry_point"),
                 lambda: TerritoryVectorEnv(num_envs, scenario="small"),
                 lambda: ShardedTerritoryVectorEnv(num_envs, workers=2, scenario="small")):
        with pytest.raises(error, match="num_envs must be"):
            make()


def test_huge_counts_are_refused_at_once():
    """The issue's hangs: num_envs=10**9 built a billion territories, workers=1000 started a process each."""
    started = time.perf_counter()
    with pytest.raises(ValueError, match="num_envs must be between 1 and 4096"):
        gym.make_vec("oce_sim/Territory-v1", num_envs=10**9, vectorization_mode="vector_entry_point")
    with pytest.raises(ValueError, match=f"workers must be between 1 and {max_workers()}"):
        gym.make_vec("oce_sim/Territory-v1", num_envs=1000, vectorization_mode="vector_entry_point", workers=1000)
    assert time.perf_counter() - started < 5.0
    assert max_workers() >= 4 and max_workers() >= usable_cpus()


def test_numpy_integers_and_the_largest_counts_are_accepted():
    vec = gym.make_vec("oce_sim/TerritorySmall-v1", num_envs=np.int64(2), vectorization_mode="vector_entry_point",
                       workers=np.int32(1))
    assert type(vec) is TerritoryVectorEnv and vec.num_envs == 2 and type(vec.num_envs) is int
    vec.close()
    assert check_num_envs(1024) == 1024 and check_num_envs(MAX_NUM_ENVS) == MAX_NUM_ENVS
    assert check_workers(max_workers(), MAX_NUM_ENVS) == max_workers()


def test_one_worker_is_the_one_process_env_and_a_sharded_env_refuses_to_pickle():
    one = gym.make_vec("oce_sim/TerritorySmall-v1", num_envs=2, vectorization_mode="vector_entry_point", workers=1)
    assert type(one) is TerritoryVectorEnv
    one.close()
    sharded = ShardedTerritoryVectorEnv(2, workers=2, scenario="small")
    try:
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(sharded)
    finally:
        sharded.close()
    assert all(not p.is_alive() for p in sharded._processes), "close() ends the workers"


def test_a_worker_error_is_raised_here_and_the_env_stays_usable():
    sharded = ShardedTerritoryVectorEnv(2, workers=2, scenario="small", config=CONFIG)
    try:
        sharded.reset(seed=1)
        bad = np.zeros((2, 9), dtype=np.int64)
        bad[1] = 99  # territory 1 steps in the worker
        with pytest.raises(RuntimeError, match="worker 1 of the sharded vector env failed"):
            sharded.step(bad)
        obs, _ = sharded.reset(seed=1)  # the pipes are still in step
        assert obs.shape[0] == 2
    finally:
        sharded.close()
