"""The native vector env (``oce_sim.envs.vector``) against raw CartPole-v1 and against N single envs stepped in a
loop, all in one process pinned to one CPU, so that the ratios hold on any machine (6.)."""

from __future__ import annotations

import time

from oce_sim.bench.perf.helpers import _pin_one_cpu
from oce_sim.bench.perf.targets import ENV_ID


def _cartpole_steps_per_s(steps: int, seed: int) -> float:
    """Raw CartPole-v1 (the unwrapped env: its own dynamics, no wrappers), random actions, resets included."""
    import gymnasium as gym
    import numpy as np

    env = gym.make("CartPole-v1").unwrapped
    actions = np.random.default_rng(seed).integers(0, 2, size=steps).tolist()
    env.reset(seed=seed)
    clock = time.process_time
    t0 = clock()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    seconds = clock() - t0
    env.close()
    return steps / seconds


def _random_batch(rng, masks):
    """A uniformly random allowed play per segment for each env (masks ``(n, 72)``)."""
    import numpy as np

    from oce_sim.world import dispatch

    masks = masks.reshape(masks.shape[0], dispatch.N_SEGMENTS, dispatch.N_PLAYS)
    return np.argmax(rng.random(masks.shape) * masks, axis=2).astype(np.int64)


def _time_vector(vec, n_envs: int, episodes: int, seed: int, rng) -> tuple[float, int]:
    """Process seconds inside ``reset``/``step``/``action_masks`` of a Gymnasium vector env, and territory-steps."""
    clock = time.process_time
    env_s, steps = 0.0, 0
    for ep in range(episodes):
        t0 = clock()
        vec.reset(seed=seed + ep * n_envs)
        env_s += clock() - t0
        done = False
        while not done:
            t0 = clock()
            masks = vec.action_masks()
            t1 = clock()
            actions = _random_batch(rng, masks)
            t2 = clock()
            _, _, terminations, truncations, _ = vec.step(actions)
            env_s += (t1 - t0) + (clock() - t2)
            steps += n_envs
            done = bool((terminations | truncations).all())
    return env_s, steps


def _time_sb3(vec, n_envs: int, episodes: int, seed: int, rng) -> tuple[float, int]:
    """Same for the SB3 ``VecEnv`` adapter (same-step reset: one episode is ``horizon`` steps, resets inside)."""
    import numpy as np

    clock = time.process_time
    env_s, steps = 0.0, 0
    vec.seed(seed)
    t0 = clock()
    vec.reset()
    env_s += clock() - t0
    finished = 0
    while finished < episodes:
        t0 = clock()
        masks = np.stack(vec.env_method("action_masks"))
        t1 = clock()
        actions = _random_batch(rng, masks)
        t2 = clock()
        _, _, dones, _ = vec.step(actions)
        env_s += (t1 - t0) + (clock() - t2)
        steps += n_envs
        finished += int(dones.all())
    return env_s, steps


def _time_singles(envs, episodes: int, seed: int, rng) -> tuple[float, int]:
    """N single envs (``gym.make``), stepped one after the other in a loop, as a user would without a vector env."""
    from oce_sim.bench.perf.helpers import _timed_random_step

    clock = time.process_time
    env_s, steps = 0.0, 0
    n_envs = len(envs)
    for ep in range(episodes):
        t0 = clock()
        for i, env in enumerate(envs):
            env.reset(seed=seed + ep * n_envs + i)
        env_s += clock() - t0
        done = False
        while not done:
            for env in envs:
                seconds, done = _timed_random_step(env, rng, clock)
                env_s += seconds
                steps += 1
    return env_s, steps


def _measure_vector_env(n_envs: int, episodes: int, rounds: int, cartpole_steps: int, seed: int) -> dict:
    """Territory-steps/s of the native vector env (one SimPy environment for all territories, and one per World),
    its SB3 adapter and N single envs in a loop, each the best of ``rounds`` alternating rounds of ``episodes``
    full episodes (reset, burn-in and terminal value included), against raw CartPole-v1 steps/s in the same run."""
    import gymnasium as gym
    import numpy as np

    import oce_sim  # noqa: F401  (registers the environment ids)
    from oce_sim.envs.vector import TerritoryVectorEnv, make_sb3_vec_env

    cpu = _pin_one_cpu()
    rng = np.random.default_rng(seed)
    shared = gym.make_vec(ENV_ID, num_envs=n_envs, vectorization_mode="vector_entry_point")
    per_world = TerritoryVectorEnv(n_envs, shared_simulation=False)
    sb3 = make_sb3_vec_env(n_envs)
    singles = [gym.make(ENV_ID) for _ in range(n_envs)]
    runners = {
        "vector_one_simpy_env": lambda: _time_vector(shared, n_envs, episodes, seed, rng),
        "vector_simpy_env_per_world": lambda: _time_vector(per_world, n_envs, episodes, seed, rng),
        "sb3_vec_env": lambda: _time_sb3(sb3, n_envs, episodes, seed, rng),
        "single_envs_in_a_loop": lambda: _time_singles(singles, episodes, seed, rng),
    }
    # Warm up every path once (compiled kernels, steady-start table, the heap), then alternate the rounds.
    _time_vector(shared, n_envs, 1, seed + 10_000, rng)
    _time_singles(singles[:1], 1, seed + 10_000, rng)
    best: dict[str, float] = {}
    cartpole: list[float] = []
    for _ in range(rounds):
        cartpole.append(_cartpole_steps_per_s(cartpole_steps, seed))
        for name, run in runners.items():
            seconds, steps = run()
            best[name] = max(best.get(name, 0.0), steps / seconds)
    cartpole_rate = max(cartpole)
    steps_per_episode = -(-per_world.horizon_days // per_world.decision_interval_days)
    for env in singles:
        env.close()
    shared.close()
    per_world.close()
    sb3.close()
    return {
        "cpu": cpu,
        "scenario": "default",
        "n_envs": n_envs,
        "episodes_per_round": episodes,
        "rounds": rounds,
        "steps_per_episode": steps_per_episode,
        "cartpole_steps_per_s": cartpole_rate,
        "territory_steps_per_s": best,
        "vs_cartpole": {name: rate / cartpole_rate for name, rate in best.items()},
        "vs_single_envs": {name: rate / best["single_envs_in_a_loop"] for name, rate in best.items()},
        "ms_per_territory_step": {name: 1000.0 / rate for name, rate in best.items()},
    }
