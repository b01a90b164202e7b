"""Environment measurements: steps/s and memory over many episodes (1a), the environment's share of
MaskablePPO training in-process and under ``SubprocVecEnv`` (1b), large Worlds across resets (4b)."""

from __future__ import annotations

import gc
import time

from oce_sim.bench.perf.helpers import (
    _pin_one_cpu,
    _random_masked_plays,
    _timed_random_step,
    current_rss_mib,
    peak_rss_mib,
)
from oce_sim.bench.perf.targets import ENV_ID, TARGETS


# ---------------------------------------------------------------------------------- 1a. env steps/s + memory
def _measure_env_stepping(warmup_episodes: int, measure_episodes: int, checkpoint_episodes: int, seed: int) -> dict:
    """Random masked policy on the default scenario: steps/s and RSS at episode boundaries (4.)."""
    import gymnasium as gym
    import numpy as np

    import oce_sim  # noqa: F401  (registers the environment ids)

    cpu = _pin_one_cpu()
    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    timer = time.perf_counter

    def episode(ep_seed: int) -> tuple[int, float]:
        t0 = timer()
        env.reset(seed=ep_seed)
        env_time = timer() - t0
        steps, done = 0, False
        while not done:
            seconds, done = _timed_random_step(env, rng, timer)
            env_time += seconds
            steps += 1
        return steps, env_time

    def checkpoint(steps: int, episodes: int) -> dict:
        # RSS as the process runs, then after a full collection: dead Worlds sit in reference cycles (SimPy
        # processes are generators holding the World) until the cyclic GC runs, which makes the raw figure
        # noisy; growth of the collected figure is memory that stays reachable, i.e. a leak.
        raw = current_rss_mib()
        gc.collect()
        return {"steps": steps, "episodes": episodes, "rss_mib": round(raw, 2), "rss_after_gc_mib": round(current_rss_mib(), 2)}

    for ep in range(warmup_episodes):
        episode(seed + ep)
    checkpoints = [checkpoint(0, 0)]
    steps = 0
    env_time = 0.0
    gc_time = 0.0
    started = timer()
    for ep in range(measure_episodes):
        n, t = episode(seed + warmup_episodes + ep)
        steps += n
        env_time += t
        if (ep + 1) % checkpoint_episodes == 0 or ep + 1 == measure_episodes:
            t0 = timer()
            checkpoints.append(checkpoint(steps, ep + 1))
            gc_time += timer() - t0
    wall = timer() - started - gc_time
    env.close()

    steps_per_episode = steps / max(1, measure_episodes)
    unwrapped = env.unwrapped
    n_hcps = unwrapped.scenario.population.n_hcps
    days_per_step = unwrapped.decision_interval_days
    # Memory: growth of the collected RSS from N (half the measured steps) to 2N, and the least-squares slope
    # over the checkpoints from N on (the first half lets the heap settle).
    xs = np.array([c["steps"] for c in checkpoints], dtype=float)
    ys = np.array([c["rss_after_gc_mib"] for c in checkpoints], dtype=float)
    raw = np.array([c["rss_mib"] for c in checkpoints], dtype=float)
    first_half = xs <= xs[-1] / 2
    n_mid = int(xs[first_half].max())
    rss_mid = float(ys[first_half][-1])
    late = xs >= n_mid
    slope = float(np.polyfit(xs[late], ys[late], 1)[0]) if late.sum() >= 2 else float("nan")
    raw_slope = float(np.polyfit(xs[late], raw[late], 1)[0]) if late.sum() >= 2 else float("nan")
    growth_per_step = (float(ys[-1]) - rss_mid) / max(1, steps - n_mid)
    return {
        "cpu": cpu,
        "scenario": "default",
        "n_hcps": n_hcps,
        "days_per_step": days_per_step,
        "steps_per_episode": steps_per_episode,
        "warmup_steps": int(warmup_episodes * steps_per_episode),
        "steps": steps,
        "wall_s": wall,
        "env_s": env_time,
        "loop_steps_per_s": steps / wall,
        "env_steps_per_s": steps / env_time,
        "env_ms_per_step": 1000 * env_time / steps,
        "env_ms_per_sim_day": 1000 * env_time / (steps * days_per_step),
        "env_hcp_days_per_s": steps * days_per_step * n_hcps / env_time,
        "policy_share_of_loop": 1.0 - env_time / wall,
        "memory": {
            "checkpoints": checkpoints,
            "rss_after_warmup_mib": float(ys[0]),
            "n_steps": n_mid,
            "rss_after_n_mib": rss_mid,
            "two_n_steps": steps,
            "rss_after_2n_mib": float(ys[-1]),
            "growth_n_to_2n_mib": float(ys[-1] - rss_mid),
            "growth_mib_per_100k_steps": growth_per_step * 1e5,
            "extrapolated_growth_mib_per_1m_steps": growth_per_step * 1e6,
            "slope_from_n_mib_per_100k_steps": slope * 1e5,
            "raw_rss_range_mib": [float(raw.min()), float(raw.max())],
            "raw_slope_mib_per_100k_steps": raw_slope * 1e5,
            "measured_steps": steps + int(warmup_episodes * steps_per_episode),
            "peak_rss_mib": peak_rss_mib(),
        },
    }


# ------------------------------------------------------------------------------- 1b. env share in training
def _train_defaults(seed: int):
    """`oce-sim train`'s defaults (TrainArgs) with ``seed``, and the default scenario with its training reward."""
    from dataclasses import replace

    from oce_sim.learning.training import TrainArgs, resolved, training_scenario

    args = resolved(replace(TrainArgs(), algo="maskable-ppo", seed=seed))  # the SB3 path this phase measures
    return args, training_scenario(args)


def _learn_as_oce_sim_train(vec, args, timesteps: int):
    """MaskablePPO as `oce-sim train` builds it (masks from the infos, reward VecNormalize, ``model_kwargs``),
    without log files.

    Returns the model and the wall seconds of ``learn``; closes ``vec``.
    """
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecNormalize

    from oce_sim.learning.training import ActionMasksFromInfo, model_kwargs

    vec.seed(args.seed)
    vec = VecNormalize(ActionMasksFromInfo(vec), norm_obs=False, norm_reward=True, gamma=args.gamma)
    model = MaskablePPO("MlpPolicy", vec, **model_kwargs(args))
    model.set_logger(Logger(folder=None, output_formats=[]))  # no SB3-<time> folder left in the temp dir
    started = time.perf_counter()
    model.learn(total_timesteps=timesteps, progress_bar=False)
    wall = time.perf_counter() - started
    vec.close()
    return model, wall


def _measure_training_share(timesteps: int, seed: int, torch_threads: int | None = None) -> dict:
    """MaskablePPO as ``oce-sim train`` runs it (TrainArgs defaults), over a DummyVecEnv of TerritoryEnv with the
    env calls timed by wrapping.

    ``torch_threads`` None keeps torch's default thread pool (``oce-sim train`` itself sets one thread, with
    its envs in worker processes: see ``_measure_training_wait_subproc``).
    """
    import gymnasium as gym
    import torch

    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    from stable_baselines3.common.vec_env import DummyVecEnv

    from oce_sim.envs.territory import TerritoryEnv

    timer = time.perf_counter
    totals = {"step": 0.0, "reset": 0.0, "action_masks": 0.0}
    counts = {"step": 0, "reset": 0, "action_masks": 0}

    class TimedEnv(gym.Wrapper):
        def step(self, action):
            t0 = timer()
            try:
                return self.env.step(action)
            finally:
                totals["step"] += timer() - t0
                counts["step"] += 1

        def reset(self, **kwargs):
            t0 = timer()
            try:
                return self.env.reset(**kwargs)
            finally:
                totals["reset"] += timer() - t0
                counts["reset"] += 1

        def action_masks(self):
            t0 = timer()
            try:
                return self.env.unwrapped.action_masks()
            finally:
                totals["action_masks"] += timer() - t0
                counts["action_masks"] += 1

    # A DummyVecEnv instead of `oce-sim train`'s SubprocVecEnv, so that the env's time can be measured in this process.
    args, config = _train_defaults(seed)
    n_envs = args.n_envs
    vec = DummyVecEnv([lambda: TimedEnv(TerritoryEnv(scenario=config)) for _ in range(n_envs)])
    model, wall = _learn_as_oce_sim_train(vec, args, timesteps)
    env_s = sum(totals.values())
    steps = int(model.num_timesteps)
    other_s = wall - env_s
    share = env_s / wall
    target = TARGETS["training_env_share_max"]
    # Env time that would make the share exactly the target, with the learner's time unchanged.
    env_s_at_target = other_s * target / (1.0 - target)
    return {
        "algo": "MaskablePPO",
        "n_envs": n_envs,
        "n_steps": args.n_steps,
        "batch_size": args.batch_size,
        "n_epochs": args.n_epochs,
        "learning_rate": args.learning_rate,
        "reward": args.reward,
        "vec_normalize": "reward",
        "net_arch": list(args.net_arch),
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "torch_threads_setting": "default" if torch_threads is None else "set",
        "timesteps": steps,
        "wall_s": wall,
        "env_s": env_s,
        "env_s_by_call": dict(totals),
        "env_calls": dict(counts),
        "other_s": other_s,
        "env_share": share,
        "steps_per_s": steps / wall,
        "env_ms_per_step": 1000 * env_s / steps,
        "learner_ms_per_step": 1000 * other_s / steps,
        "env_ms_per_step_at_target": 1000 * env_s_at_target / steps,
        "env_speedup_needed": env_s / env_s_at_target if env_s_at_target > 0 else float("nan"),
        "peak_rss_mib": peak_rss_mib(),
    }


def _measure_training_wait_subproc(timesteps: int, seed: int) -> dict:
    """MaskablePPO exactly as ``oce-sim train`` runs it: SubprocVecEnv workers, torch with one thread.

    The envs step in other processes, so "time in the env" is the time the learner's process waits for them:
    ``step_wait``, ``reset`` and the ``env_method`` calls that fetch the action masks.
    """
    import torch
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnvWrapper

    from oce_sim.envs.territory import TerritoryEnv

    timer = time.perf_counter
    waits = {"step_wait": 0.0, "reset": 0.0, "env_method": 0.0}

    class TimedVec(VecEnvWrapper):
        def reset(self):
            t0 = timer()
            try:
                return self.venv.reset()
            finally:
                waits["reset"] += timer() - t0

        def step_wait(self):
            t0 = timer()
            try:
                return self.venv.step_wait()
            finally:
                waits["step_wait"] += timer() - t0

        def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
            t0 = timer()
            try:
                return self.venv.env_method(method_name, *method_args, indices=indices, **method_kwargs)
            finally:
                waits["env_method"] += timer() - t0

    torch.set_num_threads(1)
    args, config = _train_defaults(seed)
    vec = SubprocVecEnv([lambda: TerritoryEnv(scenario=config) for _ in range(args.n_envs)])
    model, wall = _learn_as_oce_sim_train(TimedVec(vec), args, timesteps)
    wait_s = sum(waits.values())
    steps = int(model.num_timesteps)
    return {
        "algo": "MaskablePPO",
        "vec_env": "SubprocVecEnv",
        "n_envs": args.n_envs,
        "torch_threads": torch.get_num_threads(),
        "timesteps": steps,
        "wall_s": wall,
        "env_wait_s": wait_s,
        "env_wait_s_by_call": dict(waits),
        "env_share": wait_s / wall,
        # Without the first VecEnv reset, which includes starting the workers (imports, loading the kernels):
        # paid once per training run, so this is the share of a long run.
        "env_share_steady": (wait_s - waits["reset"]) / (wall - waits["reset"]),
        "steps_per_s": steps / wall,
        "peak_rss_mib": peak_rss_mib(),
    }


# ------------------------------------------------------------------------------ 4b. large Worlds across resets
def _measure_reset_retention(n_hcps: int, days: int, episodes: int, seed: int) -> dict:
    """RSS and live Worlds over repeated ``reset`` of one large env (no forced GC until the end).

    A World is only freed by the cyclic GC (its SimPy processes are generators that hold it), and the GC's
    trigger counts Python objects, not bytes: large dead Worlds can pile up between collections.
    """
    cpu = _pin_one_cpu()
    import weakref

    import numpy as np

    from oce_sim.envs.territory import TerritoryEnv

    env = TerritoryEnv(config={"population": {"n_hcps": n_hcps, "n_reps": max(1, round(n_hcps / 150))},
                               "env": {"horizon_days": days}})
    rng = np.random.default_rng(seed)
    refs: list = []
    rows = []
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        refs.append(weakref.ref(env.world))
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(_random_masked_plays(rng, env.action_masks()))
            done = terminated or truncated
        rows.append({"episode": ep + 1, "rss_mib": current_rss_mib(), "live_worlds": sum(r() is not None for r in refs)})
    gc.collect()
    after = {"rss_mib": current_rss_mib(), "live_worlds": sum(r() is not None for r in refs)}
    return {"cpu": cpu, "n_hcps": n_hcps, "days": days, "episodes": rows, "after_gc_collect": after,
            "max_live_worlds": max(r["live_worlds"] for r in rows), "peak_rss_mib": peak_rss_mib(),
            "rss_after_first_episode_mib": rows[0]["rss_mib"]}


# ------------------------------------------------------------------------- 1c. the default trainer, factored-ppo
def _measure_factored_training(rollouts: int, n_envs: int, seed: int, workers: int | None = None) -> dict:
    """``oce-sim train``'s default, ``factored-ppo`` at stage 3 with its defaults (the configuration that met the
    learning target, docs/PERFORMANCE.md section 8), one torch thread, the territories spread over ``oce-sim train``'s
    default worker processes (one per usable CPU; ``workers`` to choose): env steps/s of whole rollouts (collect and update) after one
    warm-up rollout, and the share of that time the learner spends in the vector env's ``reset`` and ``step``."""
    import torch

    from oce_sim.envs.sharded import default_workers
    from oce_sim.learning.factored_ppo import FactoredPPO, FactoredSettings
    from oce_sim.learning.training import TrainArgs, resolved, training_scenario

    torch.set_num_threads(1)
    args = resolved(TrainArgs(stage=3, seed=seed, n_envs=n_envs))
    settings = FactoredSettings(n_envs=n_envs, learning_rate=float(args.learning_rate), gamma=float(args.gamma),
                                n_epochs=args.n_epochs)
    workers = default_workers(n_envs) if workers is None else int(workers)
    model = FactoredPPO(training_scenario(args), settings, list(args.net_arch), seed, workers=workers)
    model.update(model.collect())  # warm-up: the steady-start table, first allocations
    env_s = [0.0]
    envs = model.envs
    plain_step, plain_reset = envs.step, envs.reset

    def timed(call):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return call(*a, **k)
            finally:
                env_s[0] += time.perf_counter() - t0
        return wrapper

    envs.step, envs.reset = timed(plain_step), timed(plain_reset)
    started = time.perf_counter()
    for _ in range(rollouts):
        model.update(model.collect())
    wall = time.perf_counter() - started
    model.close()
    steps = rollouts * model.rollout_steps
    return {"algo": "factored-ppo", "n_envs": n_envs, "rollouts": rollouts, "steps": steps, "wall_s": wall,
            "steps_per_s": steps / wall, "env_share": env_s[0] / wall, "torch_threads": 1, "workers": workers}
