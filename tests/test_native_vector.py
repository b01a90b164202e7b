"""The native vector env (``oce_sim.envs.vector``): N territories in one process, stepped in lockstep on one
SimPy environment.  The single ``TerritoryEnv`` is the reference: sub-env ``i`` of ``reset(seed=s)`` is a
single env seeded ``s + i``, step for step, across the automatic reset."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, VectorEnv

import oce_sim  # noqa: F401  (registers the ids)
from oce_sim.envs.territory import TerritoryEnv, begin_steps, finish_steps
from oce_sim.envs.vector import TerritoryVectorEnv, make_sb3_vec_env
from oce_sim.world import dispatch

HORIZON = 21  # three weekly decisions: 8 vector steps cross two automatic resets
CONFIG = {"env": {"horizon_days": HORIZON}}
N_ENVS = 3
SEED = 11


def random_actions(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    """A random allowed play per segment for each env (masks ``(n, 72)``)."""
    masks = masks.reshape(masks.shape[0], dispatch.N_SEGMENTS, dispatch.N_PLAYS)
    scores = rng.random(masks.shape) * masks
    return scores.argmax(axis=2).astype(np.int64)


def same(a: Any, b: Any) -> bool:
    """Equal values, NaN equal to NaN, through dicts, lists and arrays."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if a is None or b is None:
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def unbatch_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s info out of Gymnasium vector infos (keys whose ``_key`` mask is set for ``i``)."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        if not infos[f"_{key}"][i]:
            continue
        out[key] = unbatch_info(value, i) if isinstance(value, dict) else value[i]
    return out


def test_make_vec_gives_the_native_vector_env():
    vec = gym.make_vec("oce_sim/TerritorySmall-v1", num_envs=2, vectorization_mode="vector_entry_point")
    assert isinstance(vec, VectorEnv) and isinstance(vec, TerritoryVectorEnv)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert vec.single_observation_space.shape == (82,) and vec.observation_space.shape == (2, 82)
    assert vec.single_action_space == TerritoryEnv(scenario="small").action_space
    obs, infos = vec.reset(seed=0)
    assert obs.shape == (2, 82) and obs.dtype == np.float32 and vec.observation_space.contains(obs)
    assert vec.action_masks().shape == (2, dispatch.N_SEGMENTS * dispatch.N_PLAYS)
    assert infos["action_mask"].shape == (2, 72) and infos["_action_mask"].all()
    vec.close()


@pytest.mark.parametrize("shared", [True, False], ids=["one_simpy_env", "simpy_env_per_world"])
def test_sub_env_i_is_a_single_env_seeded_s_plus_i(shared):
    vec = TerritoryVectorEnv(N_ENVS, scenario="small", config=CONFIG, shared_simulation=shared)
    singles = [TerritoryEnv(scenario="small", config=CONFIG) for _ in range(N_ENVS)]
    obs, infos = vec.reset(seed=SEED)
    ended = [False] * N_ENVS
    for i, env in enumerate(singles):
        o, info = env.reset(seed=SEED + i)
        assert np.array_equal(obs[i], o) and same(unbatch_info(infos, i), info)
    rng = np.random.default_rng(0)
    n_resets = 0
    for _ in range(8):
        actions = random_actions(rng, vec.action_masks())
        obs, rewards, terminations, truncations, infos = vec.step(actions)
        for i, env in enumerate(singles):
            if ended[i]:  # next-step autoreset: this step is the reset (reward 0, the action ignored)
                o, info = env.reset()  # unseeded: the env's own generator, as the vector env's sub-env does
                r, te, tr = 0.0, False, False
                n_resets += i == 0
            else:
                o, r, te, tr, info = env.step(actions[i])
            ended[i] = te or tr
            assert np.array_equal(obs[i], o)
            assert rewards[i] == r and terminations[i] == te and truncations[i] == tr
            assert same(unbatch_info(infos, i), info)
            if tr:
                assert "kpis" in info
        assert not np.array_equal(obs[0], obs[1])
    assert n_resets == 2
    vec.close()


def same_vector_infos(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same vector infos: keys in the same order, and every array of the same dtype and values."""
    if list(a) != list(b):
        return False
    for key, value in a.items():
        other = b[key]
        if isinstance(value, dict):
            if not (isinstance(other, dict) and same_vector_infos(value, other)):
                return False
        elif value.dtype != other.dtype or not all(same(x, y) for x, y in zip(value, other)):
            return False
    return True


def test_batched_infos_are_gymnasiums_add_info():
    """The vector env batches its infos key by key; Gymnasium's ``_add_info``, env by env, is the reference (reset,
    step and episode-end infos, with KPIs and the series)."""
    vec = TerritoryVectorEnv(N_ENVS, scenario="small", config=CONFIG)
    singles = [TerritoryEnv(scenario="small", config=CONFIG) for _ in range(N_ENVS)]
    env_infos = [env.reset(seed=SEED + i)[1] for i, env in enumerate(singles)]
    checked = [env_infos]
    rng = np.random.default_rng(3)
    for _ in range(3):
        actions = random_actions(rng, np.stack([env.action_masks() for env in singles]))
        checked.append([env.step(a)[4] for env, a in zip(singles, actions)])
    assert "series" in checked[-1][0] and "kpis" in checked[-1][0]
    for infos in checked:
        assert same_vector_infos(vec._batch_infos(infos), vec._add_infos_one_by_one(infos))
    mixed = [{"a": 1, "b": {"c": 2.0}}, {"a": 2}, {"b": {"c": 3.0}, "d": None}]  # differing keys: one by one
    assert same_vector_infos(vec._batch_infos(mixed), vec._add_infos_one_by_one(mixed))


@pytest.mark.parametrize("config", [CONFIG, {"env": {"horizon_days": 14, "hcp_rewards": True, "info_kpis": "episode_end"}}],
                         ids=["default_infos", "hcp_rewards"])
def test_step_infos_written_as_arrays_are_the_sub_envs_infos_batched(config):
    """The vector env writes a step's infos as arrays from the batch's results; the same step's infos built env by
    env (``_step_info``, what a single env returns) and batched by Gymnasium's ``_add_info`` are the reference: the
    same keys in the same order, dtypes and values (a step, and the episode's last with KPIs and the series)."""
    vec = TerritoryVectorEnv(N_ENVS, scenario="small", config=config)
    vec.reset(seed=SEED)
    rng = np.random.default_rng(5)
    checked = 0
    while True:
        begun = begin_steps(vec.envs, list(random_actions(rng, vec.action_masks())))
        vec._run_to(vec.envs[0]._day)
        results = finish_steps(vec.envs, begun)
        fast = vec._step_infos(results, begun)
        reference = vec._add_infos_one_by_one([env._step_info(results, i, plays, masked)
                                                for i, (env, (plays, masked, _)) in enumerate(zip(vec.envs, begun))])
        assert same_vector_infos(fast, reference)
        checked += 1
        if results.ended:
            assert "series" in fast and "kpis" in fast
            break
    assert checked == config["env"]["horizon_days"] // 7


def test_seed_list_and_unseeded_resets():
    vec = TerritoryVectorEnv(2, scenario="small", config=CONFIG)
    obs, _ = vec.reset(seed=[SEED + 1, SEED])
    single, _ = TerritoryEnv(scenario="small", config=CONFIG).reset(seed=SEED)
    assert np.array_equal(obs[1], single)
    with pytest.raises(ValueError):
        vec.reset(seed=[1, 2, 3])
    with pytest.raises(RuntimeError):
        TerritoryVectorEnv(1, scenario="small").step(np.zeros((1, 9), dtype=np.int64))


def test_a_copy_of_the_vector_env_continues_identically():
    import copy
    import pickle

    vec = TerritoryVectorEnv(2, scenario="small", config=CONFIG)
    vec.reset(seed=SEED)
    rng = np.random.default_rng(2)
    vec.step(random_actions(rng, vec.action_masks()))
    copies = [copy.deepcopy(vec), pickle.loads(pickle.dumps(vec))]
    for _ in range(5):  # across the automatic reset (the copies' Worlds each run on their own SimPy environment)
        actions = random_actions(rng, vec.action_masks())
        expected = vec.step(actions)
        for other in copies:
            got = other.step(actions)
            assert all(same(a, b) for a, b in zip(expected, got))


def test_sb3_vec_env_matches_dummy_vec_env():
    from stable_baselines3.common.vec_env import DummyVecEnv

    native = make_sb3_vec_env(N_ENVS, scenario="small", config=CONFIG)
    dummy = DummyVecEnv([lambda: TerritoryEnv(scenario="small", config=CONFIG) for _ in range(N_ENVS)])
    native.seed(SEED)
    dummy.seed(SEED)
    obs_n, obs_d = native.reset(), dummy.reset()
    assert np.array_equal(obs_n, obs_d)
    for i in range(N_ENVS):
        assert same(native.reset_infos[i], dummy.reset_infos[i])
    rng = np.random.default_rng(1)
    done_seen = 0
    for _ in range(7):
        masks = np.stack(native.env_method("action_masks"))
        assert np.array_equal(masks, np.stack(dummy.env_method("action_masks")))
        actions = random_actions(rng, masks)
        obs_n, rew_n, done_n, info_n = native.step(actions)
        obs_d, rew_d, done_d, info_d = dummy.step(actions)
        assert np.array_equal(obs_n, obs_d) and np.array_equal(rew_n.astype(np.float32), rew_d) and np.array_equal(done_n, done_d)
        for i in range(N_ENVS):
            assert same(info_n[i], info_d[i])
            if done_n[i]:
                assert info_n[i]["terminal_observation"].shape == (82,)
                assert not info_n[i]["TimeLimit.truncated"], "the terminal value is paid: SB3 must not bootstrap"
                assert same(native.reset_infos[i], dummy.reset_infos[i])
        done_seen += int(done_n.all())
    assert done_seen == 2
    assert native.get_attr("horizon_days") == [HORIZON] * N_ENVS
    assert native.env_is_wrapped(TerritoryEnv) == [True] * N_ENVS
    native.close()


def test_maskable_ppo_learns_on_the_native_vec_env():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
    from stable_baselines3.common.vec_env import VecNormalize

    native = make_sb3_vec_env(4, scenario="small", config=CONFIG, monitor=True)
    vec = VecNormalize(native, norm_obs=False, norm_reward=True)
    assert is_masking_supported(vec)
    vec.seed(0)
    vec.reset()
    assert get_action_masks(vec).shape == (4, 72)
    model = MaskablePPO("MlpPolicy", vec, n_steps=32, batch_size=64, n_epochs=2, seed=0, device="cpu",
                        policy_kwargs={"net_arch": [32, 32]})
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    assert len(model.ep_info_buffer) > 0  # Monitor-style episode infos reached the logger
    vec.close()


def test_a_territory_on_the_ground_truth_view_is_synced_as_alone_beside_a_public_one():
    """Review of the batched decisions: a territory switched to the ground-truth view is synced to the truth when it
    reads its own segments, mask or observation, never because another territory of its batch asked (at sales 3 with
    the holdout test, a public territory's reps read their segments on every field day).  Sub-env 0 on the truth
    view stays a single env switched alike, step for step (this seed diverged at step 21 before the fix)."""
    config = {"env": {"horizon_days": 182}, "pipeline": {"holdout_share": 0.3}}
    stage = {"customer": 3, "sales": 3, "marketing": 3, "it": 3}
    vec = TerritoryVectorEnv(2, scenario="small", stage=stage, config=config)
    single = TerritoryEnv(scenario="small", stage=stage, config=config)
    vec.reset(seed=2)
    single.reset(seed=2)
    vec.envs[0].world.use_oracle_view(True)
    single.world.use_oracle_view(True)
    rngs, rng_single = [np.random.default_rng(1), np.random.default_rng(2)], np.random.default_rng(1)
    while True:
        masks = vec.action_masks()
        actions = np.concatenate([random_actions(rngs[i], masks[i:i + 1]) for i in range(2)])
        assert np.array_equal(actions[0], random_actions(rng_single, single.action_masks()[np.newaxis])[0])
        obs, rewards, terminations, truncations, _ = vec.step(actions)
        o, r, te, tr, _ = single.step(actions[0])
        assert np.array_equal(obs[0], o) and rewards[0] == r
        if te or tr:
            break


def test_step_infos_are_the_consumers_to_change_and_a_bad_action_changes_nothing():
    """The vector infos' arrays are the caller's (changing one in place leaves the episode's series alone), and an
    invalid action of any sub-env is refused before any sub-env's step begins (no masked-play count moves)."""
    vec = TerritoryVectorEnv(2, scenario="small", config={"env": {"horizon_days": 14}})
    vec.reset(seed=SEED)
    rng = np.random.default_rng(0)
    _, _, _, _, infos = vec.step(random_actions(rng, vec.action_masks()))
    profit = vec.envs[0].series()[0]["profit"]
    infos["reward_components"]["profit"] *= 0.0
    assert vec.envs[0].series()[0]["profit"] == profit != 0.0
    counted = [(env._masked_total, env.world.ledger.masked_actions) for env in vec.envs]
    bad = random_actions(rng, vec.action_masks())
    bad[1, 0] = dispatch.N_PLAYS  # outside the space
    with pytest.raises(ValueError, match="action must be"):
        vec.step(bad)
    assert [(env._masked_total, env.world.ledger.masked_actions) for env in vec.envs] == counted
    assert all(env._day == 7 for env in vec.envs)


def test_a_batch_refuses_territories_of_different_stages():
    from oce_sim.world.simulation import Territories, World
    from oce_sim.config import load_scenario

    worlds = [World(load_scenario("small", stage=s), seed=0, standalone=False) for s in (2, 3)]
    with pytest.raises(ValueError, match="one batch share one"):
        Territories.join(worlds)
