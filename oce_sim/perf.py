"""Performance: measured, reported, and compared with targets.

``run_perf(quick, progress)`` measures, in one run:

1. environment steps/s of ``oce_sim/Territory-v0`` (default scenario, random masked policy) and the share of
   MaskablePPO training wall time spent inside the environment (``step``, ``reset``, ``action_masks``);
2. national scale: 100,000 HCPs over one simulated year for every stage strategy at its own stage, each in
   a fresh (spawned) process pinned to one CPU, so wall time and peak memory are per strategy;
   plus the cost per simulated day against territory size (fixed per-day overhead vs per-HCP cost);
3. reference floors: SimPy's bare event rate and a NumPy vectorised state update over 100,000 HCPs;
4. memory flatness: resident memory over many episodes of env stepping in one process, and resident memory
   over repeated resets of a national-scale env (dead Worlds waiting for the cyclic GC);
5. a sampling profile (pyinstrument, else cProfile) of env stepping and of the slowest national strategy.

Every phase runs in its own spawned process, so the phases do not share caches, imports or heap.
``format_perf_markdown(result)`` renders the Markdown report (absolute figures, ratios against the targets).
Reproduce with ``python experiments/perf_benchmark.py`` or ``oce-sim bench --perf``.
"""

from __future__ import annotations

import copy
import datetime as _dt
import gc
import math
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

SCHEMA_VERSION = 1
ENV_ID = "oce_sim/Territory-v0"
NATIONAL_HCPS = 100_000
NATIONAL_REPS = 667  # 150 HCPs per rep
NATIONAL_DAYS = 364

#: the issue's targets
TARGETS: dict[str, float] = {
    # share of MaskablePPO training wall time spent inside the environment (at most)
    "training_env_share_max": 0.15,
    # national scale (100k HCPs, one year) wall seconds per strategy on one core (less than)
    "national_wall_s_max": 15.0,
    # delivered touches/s at national scale, as a fraction of SimPy's bare event rate (at least)
    "national_touch_rate_vs_simpy_min": 1.0 / 3.0,
    # "no growth over 1M env steps": extrapolated growth we accept as allocator noise (MiB, at most)
    "memory_growth_mib_per_1m_steps_max": 10.0,
}

# Sizes: (full, quick)
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "env_warmup_episodes": 40,  # 2,080 steps: until the heap (and the stale-world backlog) settles
        "env_measure_episodes": 240,  # 12,480 steps
        "env_checkpoint_episodes": 20,
        "train_timesteps": 4096,
        "national_hcps": NATIONAL_HCPS,
        "national_reps": NATIONAL_REPS,
        "national_days": NATIONAL_DAYS,
        "simpy_events": 1_000_000,
        "numpy_iterations": 300,
        "scaling_days": 91,
        "scaling_max_hcps": 40_000,
        "profile_env_steps": 1040,
        "floor_steps": 520,
        "profile_national_hcps": 100_000,
        "profile_national_days": 91,
        "retention_hcps": 100_000,
        "retention_days": 14,
        "retention_episodes": 10,
    },
    "quick": {
        "env_warmup_episodes": 10,
        "env_measure_episodes": 40,  # 2,080 steps
        "env_checkpoint_episodes": 10,
        "train_timesteps": 2048,
        "national_hcps": 20_000,
        "national_reps": 133,
        "national_days": 91,
        "simpy_events": 200_000,
        "numpy_iterations": 60,
        "scaling_days": 28,
        "scaling_max_hcps": 10_000,
        "profile_env_steps": 260,
        "floor_steps": 104,
        "profile_national_hcps": 20_000,
        "profile_national_days": 28,
        "retention_hcps": 20_000,
        "retention_days": 14,
        "retention_episodes": 6,
    },
}


# ------------------------------------------------------------------------------------------------ helpers
def _log(progress: bool, message: str) -> None:
    if progress:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%H:%M:%S")
        print(f"[perf {stamp}] {message}", file=sys.stderr, flush=True)


def current_rss_mib() -> float:
    """Resident set size now (Linux ``/proc/self/statm``; elsewhere the peak, which only grows)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mib()


def ru_maxrss_mib() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MiB (KiB on Linux, bytes on macOS).

    On Linux this survives ``fork`` + ``exec``: a spawned child starts with its parent's high-water mark, so
    it over-states a child's own peak whenever the parent is the larger process.
    """
    if resource is None:  # pragma: no cover
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def peak_rss_mib() -> float:
    """Peak resident set size of this process image: ``VmHWM`` on Linux (reset by ``exec``), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return ru_maxrss_mib()


def _pin_one_cpu() -> int | None:
    """Pin this process to one CPU (the national-scale target is 'on one core')."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become None, NumPy scalars become Python numbers, tuples become lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _in_subprocess(fn: Callable[..., dict], *args: Any, single_thread: bool = True) -> dict:
    """Run ``fn(*args)`` in a fresh spawned interpreter (own heap, own ``ru_maxrss``).

    ``single_thread`` limits BLAS/OpenMP pools to one thread (the one-core measurements); training keeps the
    library defaults, as ``oce-sim train`` does.
    """
    limits = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"} if single_thread else {}
    saved = {k: os.environ.get(k) for k in limits}
    os.environ.update(limits)
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            return pool.submit(fn, *args).result()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _random_masked_plays(rng, mask_flat):
    """A uniformly random allowed play per segment (vectorised; every row has at least *hold*)."""
    import numpy as np

    from oce_sim.world import dispatch

    mask = mask_flat.reshape(dispatch.N_SEGMENTS, -1)
    scores = rng.random(mask.shape) * mask  # allowed entries in (0, 1), forbidden ones 0
    return np.argmax(scores, axis=1).astype(np.int64)


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
            t0 = timer()
            mask = env.unwrapped.action_masks()
            t1 = timer()
            plays = _random_masked_plays(rng, mask)
            t2 = timer()
            _, _, terminated, truncated, _ = env.step(plays)
            env_time += (t1 - t0) + (timer() - t2)
            done = terminated or truncated
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

    from oce_sim.training import TrainArgs, training_scenario

    args = replace(TrainArgs(), seed=seed)
    return args, training_scenario(args)


def _learn_as_oce_sim_train(vec, args, timesteps: int):
    """MaskablePPO as `oce-sim train` builds it (masks from the infos, reward VecNormalize, ``model_kwargs``),
    without log files.

    Returns the model and the wall seconds of ``learn``; closes ``vec``.
    """
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecNormalize

    from oce_sim.training import ActionMasksFromInfo, model_kwargs

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


# ------------------------------------------------------------------------------------------ 2. national scale
def _national_config(strategy: str, n_hcps: int, n_reps: int, days: int):
    from oce_sim.agents import make_strategy
    from oce_sim.config import deep_merge, load_scenario
    from oce_sim.evaluation import strategy_config

    policy = make_strategy(strategy)
    base = strategy_config(load_scenario(None), policy)
    # Inside-sales capacity and webinar seats are per territory in the scenario; scale them with the HCPs,
    # as the reps are, so that a national run is the territory's channel mix at national size.
    scale = n_hcps / base.population.n_hcps
    channels = base.channels
    overrides = {
        "population": {"n_hcps": n_hcps, "n_reps": n_reps},
        "channels": {"remote_detail": {"calls_per_day": round(channels.remote_detail.calls_per_day * scale)},
                     "webinar": {"seats": round(channels.webinar.seats * scale)}},
        "env": {"horizon_days": days},
    }
    return policy, load_scenario(deep_merge(base.model_dump(mode="python"), overrides))


def _measure_national(strategy: str, n_hcps: int, n_reps: int, days: int, seed: int) -> dict:
    """One strategy at its own stage over ``n_hcps`` HCPs and ``days`` days, pinned to one CPU."""
    cpu = _pin_one_cpu()
    from oce_sim.envs.territory import TerritoryEnv

    policy, config = _national_config(strategy, n_hcps, n_reps, days)
    gc.collect()
    rss_before = current_rss_mib()
    timer = time.perf_counter
    cpu0 = time.process_time()
    t0 = timer()
    # The loop of oce_sim.evaluation.run_episode, with construction timed apart from the simulated year.
    env = TerritoryEnv(scenario=config)
    obs, _ = env.reset(seed=seed)
    if hasattr(policy, "reset"):
        policy.reset(env, seed)
    setup = timer() - t0
    done, steps = False, 0
    info: dict[str, Any] = {}
    while not done:
        action, _ = policy.predict(obs, deterministic=True, action_masks=env.action_masks())
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        steps += 1
    wall = timer() - t0
    cpu_s = time.process_time() - cpu0
    env.close()
    kpis = info["kpis"]
    touches = {k.removeprefix("touches_"): float(v) for k, v in kpis.items() if k.startswith("touches_")}
    total_touches = sum(touches.values())
    simulate = wall - setup
    return {
        "strategy": strategy,
        "stage": config.stage.overall,
        "cpu": cpu,
        "n_hcps": n_hcps,
        "n_reps": n_reps,
        "days": days,
        "decision_steps": steps,
        "setup_s": setup,
        "simulate_s": simulate,
        "wall_s": wall,
        "cpu_s": cpu_s,
        "hcp_days_per_s": n_hcps * days / wall,
        "touches": total_touches,
        "touches_by_channel": touches,
        "touches_per_s": total_touches / wall,
        "ms_per_sim_day": 1000 * simulate / days,
        "prescriptions": float(kpis["prescriptions"]),
        "rss_before_world_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "ru_maxrss_mib": ru_maxrss_mib(),
    }


# ------------------------------------------------------------------------------------ 2b. cost per simulated day
SCALING_HCPS = (150, 600, 2_400, 10_000, 40_000, 100_000)


def _measure_scaling(hcps: list[int], days: int, seed: int) -> dict:
    """Seconds per simulated day against territory size (default scenario, random masked policy, 150 HCPs per rep).

    A least-squares line ``ms/day = fixed + per_hcp * n`` splits the cost into the per-day overhead (Python,
    SimPy and per-call NumPy overhead, independent of size) and the marginal cost of one more HCP.
    """
    cpu = _pin_one_cpu()
    import numpy as np

    from oce_sim.envs.territory import TerritoryEnv

    rng = np.random.default_rng(seed)
    points = []
    for n in hcps:
        config = {"population": {"n_hcps": n, "n_reps": max(1, round(n / 150))}, "env": {"horizon_days": days}}
        env = TerritoryEnv(config=config)
        env.reset(seed=seed)
        timer = time.perf_counter
        t0 = timer()
        done, steps = False, 0
        while not done:
            _, _, terminated, truncated, _ = env.step(_random_masked_plays(rng, env.action_masks()))
            done = terminated or truncated
            steps += 1
        seconds = timer() - t0
        points.append({"n_hcps": n, "days": days, "steps": steps, "seconds": seconds,
                       "ms_per_sim_day": 1000 * seconds / days, "us_per_hcp_day": 1e6 * seconds / (days * n)})
    x = np.array([p["n_hcps"] for p in points], dtype=float)
    y = np.array([p["ms_per_sim_day"] for p in points])
    per_hcp, fixed = np.polyfit(x, y, 1)
    return {"cpu": cpu, "points": points, "fixed_ms_per_sim_day": float(fixed), "marginal_us_per_hcp_day": float(1000 * per_hcp),
            "note": "default scenario (stage 1), random masked policy, 150 HCPs per rep; step() time only"}


# ---------------------------------------------------------------------------------------------- 3. floors
def _simpy_bare_rate(events: int) -> float:
    """Events/s of one SimPy process doing ``yield env.timeout(1)`` ``events`` times."""
    import simpy

    def bare(env: simpy.Environment):
        for _ in range(events):
            yield env.timeout(1)

    env = simpy.Environment()
    env.process(bare(env))
    t0 = time.perf_counter()
    env.run()
    return events / (time.perf_counter() - t0)


def _measure_floors(simpy_events: int, numpy_iterations: int, n_hcps: int) -> dict:
    """SimPy's bare event rate and a NumPy vectorised state update over ``n_hcps`` HCPs, pinned to one CPU."""
    cpu = _pin_one_cpu()
    import numpy as np
    import simpy

    timer = time.perf_counter
    rates = [_simpy_bare_rate(simpy_events) for _ in range(3)]  # best of three: what the machine can do
    simpy_rate = max(rates)

    rng = np.random.default_rng(0)
    goodwill = rng.random(n_hcps)
    impact = rng.random(n_hcps) * 0.01
    decay, a, k = 0.7 ** (1 / 30), 1.5, 0.6
    ka = k**a
    best = float("inf")
    for _ in range(3):
        t0 = timer()
        for _ in range(numpy_iterations):
            goodwill *= decay
            goodwill += impact
            g = goodwill**a
            hill = g / (g + ka)
        best = min(best, timer() - t0)
    assert hill.shape == (n_hcps,)
    return {
        "cpu": cpu,
        "simpy": {"events": simpy_events, "events_per_s": simpy_rate, "runs_events_per_s": rates,
                  "note": "one process doing `yield env.timeout(1)` N times; best of 3"},
        "numpy": {"n_hcps": n_hcps, "iterations": numpy_iterations, "hcp_steps_per_s": n_hcps * numpy_iterations / best,
                  "ms_per_update": 1000 * best / numpy_iterations,
                  "note": "goodwill *= decay; goodwill += impact; hill = g**a/(g**a+k**a); best of 3"},
        "numpy_version": np.__version__,
        "simpy_version": simpy.__version__,
    }


# ------------------------------------------------------------------------------------- 3b. floor of a step
def _measure_step_floor(steps: int, seed: int) -> dict:
    """What any implementation of the default scenario's 7-day step must spend, measured on this machine.

    Three parts that the model itself fixes (not the code around them), pinned to one CPU, best of 3:

    * the end-of-day customer dynamics (``ResponseModel.advance_day``, i.e. the compiled ``daily_update``: Hill
      response, Poisson Rx draw, adoption transitions, decay) for the step's 5 working and 2 weekend days, on a
      copy of a mid-episode state;
    * the 3 exogenous uniforms per HCP-day (Rx, transitions, portal visits), drawn in 28-day blocks;
    * SimPy's bare cost of the events one step processes (counted over ``steps`` steps of a random masked
      policy, at the bare rate of one ``yield env.timeout`` process).

    Touch delivery, the field day, the view, the plan, the observation and the mask come on top.
    """
    cpu = _pin_one_cpu()
    import numpy as np
    import simpy

    from oce_sim.envs.territory import TerritoryEnv
    from oce_sim.world.simulation import is_working_day

    timer = time.perf_counter
    env = TerritoryEnv()
    events = [0]

    def count_events(sim: simpy.Environment) -> None:
        simpy_step = sim.step

        def counting_step() -> None:
            events[0] += 1
            simpy_step()

        sim.step = counting_step  # type: ignore[method-assign]

    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    assert env.world is not None
    count_events(env.world.env)
    for step in range(steps):
        *_, truncated, _ = env.step(_random_masked_plays(rng, env.action_masks()))
        if truncated:
            env.reset(seed=seed + step + 1)
            count_events(env.world.env)
    events_per_step = events[0] / steps
    # A mid-episode state for the dynamics.
    env.reset(seed=seed)
    for _ in range(26):
        env.step(_random_masked_plays(rng, env.action_masks()))
    world = env.world
    assert world is not None

    n = world.pop.n_hcps
    interval = env.decision_interval_days
    u_rx = [world.exogenous_uniforms("rx", d).copy() for d in range(interval)]
    u_tr = [world.exogenous_uniforms("transitions", d).copy() for d in range(interval)]
    repeats = 200

    def dynamics() -> float:
        state = copy.deepcopy(world.state)  # the world's own state stays as it is
        t0 = timer()
        for _ in range(repeats):
            for day in range(interval):
                world.response.advance_day(state, is_working_day(day), u_rx[day], u_tr[day])
        return (timer() - t0) / repeats

    block_days = 28

    def uniforms() -> float:
        draw = np.random.default_rng(seed)
        t0 = timer()
        for _ in range(repeats):
            for _stream in range(3):
                draw.random((block_days, n))
        return (timer() - t0) / repeats * interval / block_days

    dynamics()  # load the compiled kernel
    dynamics_s = min(dynamics() for _ in range(3))
    uniforms_s = min(uniforms() for _ in range(3))
    rate = max(_simpy_bare_rate(200_000) for _ in range(3))
    simpy_s = events_per_step / rate
    env.close()
    return {
        "cpu": cpu,
        "n_hcps": n,
        "days_per_step": interval,
        "measured_steps": steps,
        "dynamics_ms_per_step": 1000 * dynamics_s,
        "uniforms_ms_per_step": 1000 * uniforms_s,
        "simpy_events_per_step": events_per_step,
        "simpy_events_per_s": rate,
        "simpy_ms_per_step": 1000 * simpy_s,
        "floor_ms_per_step": 1000 * (dynamics_s + uniforms_s + simpy_s),
        "note": "ResponseModel.advance_day (compiled daily_update) for the step's days + 3 exogenous uniforms per "
                "HCP-day + the step's SimPy events at the bare rate; everything else an env step does comes on top",
    }


# ----------------------------------------------------------------------------------------------- 5. profile
def _profile_tree(root, total: float, top: int) -> dict:
    """Aggregate a pyinstrument frame tree into self and inclusive time per function and per package."""
    self_time: dict[str, float] = {}
    incl_time: dict[str, float] = {}
    by_package: dict[str, float] = {}

    def key_of(frame) -> str:
        return f"{frame.function} ({_short_path(frame.file_path or '<built-in>')}:{frame.line_no})"

    def walk(frame, ancestors: frozenset) -> None:
        if frame.is_synthetic:
            return
        key = key_of(frame)
        own = frame.time - sum(c.time for c in frame.children if not c.is_synthetic)
        self_time[key] = self_time.get(key, 0.0) + own
        package = _package_of(frame.file_path or "")
        by_package[package] = by_package.get(package, 0.0) + own
        if key not in ancestors:
            incl_time[key] = incl_time.get(key, 0.0) + frame.time
        for child in frame.children:
            walk(child, ancestors | {key})

    walk(root, frozenset())
    return _profile_tables(self_time, incl_time, by_package, total, top, "pyinstrument (sampling, 1 ms)")


def _short_path(path: str) -> str:
    """``.../site-packages/numpy/lib/x.py`` -> ``numpy/lib/x.py``; ``/repo/oce_sim/world/y.py`` -> ``oce_sim/world/y.py``."""
    path = path.replace("\\", "/")
    for marker in ("/site-packages/", "/oce_sim/", "/agents/"):
        if marker in path:
            cut = path.rindex(marker)
            return path[cut + len("/site-packages/"):] if marker == "/site-packages/" else path[cut + 1:]
    return path.rsplit("/", 1)[-1]


def _package_of(path: str) -> str:
    path = path.replace("\\", "/")
    for name in ("oce_sim", "agents", "simpy", "numpy", "gymnasium", "stable_baselines3", "torch"):
        if f"/{name}/" in path or path.startswith(f"{name}/"):
            return name
    if path.startswith("<built-in>") or not path:
        return "builtins (C)"
    return "other"


def _profile_tables(self_time, incl_time, by_package, total, top, tool) -> dict:
    def rows(table: dict[str, float]) -> list[dict]:
        ranked = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [{"function": k, "seconds": v, "share": v / total if total else float("nan")} for k, v in ranked]

    own_code = {k: v for k, v in incl_time.items()
                if ("oce_sim/" in k or "agents/" in k) and "oce_sim/perf.py" not in k}
    return {
        "tool": tool,
        "total_s": total,
        "self_top": rows(self_time),
        "inclusive_top_project": rows(own_code),
        "self_by_package": {k: v / total for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])},
    }


def _profile_cprofile(run: Callable[[], None], top: int) -> dict:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.runcall(run)
    total = time.perf_counter() - t0
    stats = pstats.Stats(profiler)
    self_time: dict[str, float] = {}
    incl_time: dict[str, float] = {}
    by_package: dict[str, float] = {}
    for (path, line, func), (_, _, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = _short_path(path) if path != "~" else "<built-in>"
        key = f"{func} ({short}:{line})"
        self_time[key] = self_time.get(key, 0.0) + tottime
        incl_time[key] = max(incl_time.get(key, 0.0), cumtime)
        package = _package_of(path if path != "~" else "<built-in>")
        by_package[package] = by_package.get(package, 0.0) + tottime
    return _profile_tables(self_time, incl_time, by_package, total, top,
                           "cProfile (deterministic; inflates call-heavy code)")


def _profile(run: Callable[[], None], top: int = 15) -> dict:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return _profile_cprofile(run, top)
    profiler = Profiler(interval=0.001)
    profiler.start()
    t0 = time.perf_counter()
    run()
    total = time.perf_counter() - t0
    profiler.stop()
    session = profiler.last_session
    root = session.root_frame() if session is not None else None
    if root is None:
        return _profile_cprofile(run, top)
    return _profile_tree(root, root.time or total, top)


def _measure_profiles(env_steps: int, national_strategy: str, national_hcps: int, national_days: int, seed: int) -> dict:
    cpu = _pin_one_cpu()
    import gymnasium as gym
    import numpy as np

    import oce_sim  # noqa: F401
    from oce_sim.envs.territory import TerritoryEnv

    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)

    def stepping() -> None:
        for i in range(env_steps):
            _, _, terminated, truncated, _ = env.step(_random_masked_plays(rng, env.unwrapped.action_masks()))
            if terminated or truncated:
                env.reset(seed=seed + i)

    stepping_profile = _profile(stepping)
    stepping_profile.update(workload=f"{env_steps} steps of {ENV_ID} (default scenario, random masked policy)")

    policy, config = _national_config(national_strategy, national_hcps, max(1, national_hcps // 150), national_days)

    def national() -> None:
        env = TerritoryEnv(scenario=config)
        obs, _ = env.reset(seed=seed)
        policy.reset(env, seed)
        done = False
        while not done:
            action, _ = policy.predict(obs, deterministic=True, action_masks=env.action_masks())
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated

    national_profile = _profile(national)
    national_profile.update(workload=f"{national_strategy}: {national_hcps:,} HCPs x {national_days} days (incl. setup)")
    return {"cpu": cpu, "env_stepping": stepping_profile, "national": national_profile}


# ----------------------------------------------------------------------------------------------- machine
def _machine() -> dict:
    info: dict[str, Any] = {
        "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "loadavg_start": _loadavg(),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        if names:
            info["cpu_model"] = names[0]
    except OSError:
        pass
    try:
        root = Path(__file__).resolve().parent.parent
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib import metadata

    # Versions from the installed metadata: importing torch here would inflate every spawned child's ru_maxrss.
    for module, dist in (("numpy", "numpy"), ("simpy", "simpy"), ("gymnasium", "gymnasium"), ("torch", "torch"),
                         ("stable_baselines3", "stable-baselines3"), ("sb3_contrib", "sb3-contrib"),
                         ("pyinstrument", "pyinstrument")):
        try:
            info[f"{module}_version"] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[f"{module}_version"] = None
    return info


# -------------------------------------------------------------------------------------------------- driver
def run_perf(quick: bool = False, progress: bool = True, sizes: dict[str, Any] | None = None) -> dict:
    """Measure everything (see the module docstring); returns a JSON-serialisable nested dict.

    ``quick`` uses the small sizes of ``SIZES["quick"]`` (national scale extrapolated, clearly labelled);
    ``sizes`` overrides individual entries (tests, experiments); ``progress`` logs each phase to stderr.
    """
    from oce_sim.agents import STAGE_STRATEGIES

    mode = "quick" if quick else "full"
    size = {**SIZES[mode], **(sizes or {})}
    unknown = set(size) - set(SIZES[mode])
    if unknown:
        raise ValueError(f"unknown perf size(s) {sorted(unknown)}; known: {sorted(SIZES[mode])}")
    seed = 0
    result: dict[str, Any] = {"schema": SCHEMA_VERSION, "mode": mode, "sizes": dict(size), "targets": dict(TARGETS),
                              "machine": _machine(), "phases": {}}
    started = time.perf_counter()

    def phase(name: str, fn: Callable[..., dict], *args: Any, single_thread: bool = True) -> dict:
        _log(progress, f"{name} ...")
        load_before = _loadavg()
        t0 = time.perf_counter()
        out = _in_subprocess(fn, *args, single_thread=single_thread)
        seconds = time.perf_counter() - t0
        result["phases"][name] = {"seconds": seconds, "loadavg_before": load_before, "loadavg_after": _loadavg()}
        _log(progress, f"{name} done in {seconds:.1f} s")
        return out

    result["floors"] = phase("floors", _measure_floors, size["simpy_events"], size["numpy_iterations"], NATIONAL_HCPS)
    result["step_floor"] = phase("step_floor", _measure_step_floor, size["floor_steps"], seed)
    result["env_stepping"] = phase("env_stepping", _measure_env_stepping, size["env_warmup_episodes"],
                                   size["env_measure_episodes"], size["env_checkpoint_episodes"], seed)
    result["training"] = phase("training", _measure_training_share, size["train_timesteps"], seed, single_thread=False)
    # As `oce-sim train` runs it: envs in worker processes; the share is the learner's wait for them.
    result["training_subproc"] = phase("training (SubprocVecEnv)", _measure_training_wait_subproc,
                                       size["train_timesteps"], seed, single_thread=False)
    if not quick:
        # The learner's share depends on torch's thread pool; one thread is the other common setting.
        result["training_one_thread"] = phase("training (torch 1 thread)", _measure_training_share,
                                              size["train_timesteps"], seed, 1)
    national: dict[str, dict] = {}
    for strategy in STAGE_STRATEGIES:
        national[strategy] = phase(f"national:{strategy}", _measure_national, strategy, size["national_hcps"],
                                   size["national_reps"], size["national_days"], seed)
    result["national"] = {"strategies": national, **_national_scaling(national, size)}
    result["scaling"] = phase("scaling", _measure_scaling, [n for n in SCALING_HCPS if n <= size["scaling_max_hcps"]],
                              size["scaling_days"], seed)
    result["reset_retention"] = phase("reset_retention", _measure_reset_retention, size["retention_hcps"],
                                      size["retention_days"], size["retention_episodes"], seed)
    slowest = max(national, key=lambda s: national[s]["wall_s"])
    result["profile"] = phase("profile", _measure_profiles, size["profile_env_steps"], slowest,
                              size["profile_national_hcps"], size["profile_national_days"], seed)
    result["machine"]["loadavg_end"] = _loadavg()
    result["total_seconds"] = time.perf_counter() - started
    result["verdicts"] = _verdicts(result)
    return _clean(result)


def _national_scaling(national: dict[str, dict], size: dict) -> dict:
    """Quick sizes are extrapolated linearly in HCP-days to 100k HCPs x 364 days (clearly labelled)."""
    factor = (NATIONAL_HCPS * NATIONAL_DAYS) / (size["national_hcps"] * size["national_days"])
    measured_at_full = factor == 1.0
    out = {"measured_at_full_scale": measured_at_full, "extrapolation_factor": factor}
    if not measured_at_full:
        out["extrapolated_wall_s"] = {s: r["wall_s"] * factor for s, r in national.items()}
        out["extrapolation_note"] = (f"quick mode: measured at {size['national_hcps']:,} HCPs x {size['national_days']} "
                                     f"days and scaled linearly in HCP-days (x{factor:.0f}) to {NATIONAL_HCPS:,} x "
                                     f"{NATIONAL_DAYS}; NOT a measurement")
    return out


def _verdicts(result: dict) -> list[dict]:
    """One row per target: measured value, target, ratio measured/target, met or not."""
    rows = []
    training = result["training"]
    target = TARGETS["training_env_share_max"]
    rows.append({"target": "env share of MaskablePPO training wall time", "measured": training["env_share"],
                 "target_value": target, "direction": "<=", "ratio": training["env_share"] / target,
                 "met": training["env_share"] <= target, "unit": "share",
                 "gap": f"env must get {training['env_speedup_needed']:.1f}x faster (learner time unchanged)"
                        + (f"; the model's own floor is {result['step_floor']['floor_ms_per_step'] / training['env_ms_per_step_at_target']:.0%}"
                           " of that budget" if "step_floor" in result else "")})
    national = result["national"]
    walls = {s: r["wall_s"] for s, r in national["strategies"].items()}
    label = "" if national["measured_at_full_scale"] else " (EXTRAPOLATED from quick size)"
    if not national["measured_at_full_scale"]:
        walls = national["extrapolated_wall_s"]
    target = TARGETS["national_wall_s_max"]
    for strategy, wall in walls.items():
        rows.append({"target": f"national scale wall time, {strategy}{label}", "measured": wall, "target_value": target,
                     "direction": "<", "ratio": wall / target, "met": wall < target, "unit": "s",
                     "gap": f"{wall / target:.2f}x the budget" if wall >= target else "within budget"})
    simpy_rate = result["floors"]["simpy"]["events_per_s"]
    needed = simpy_rate * TARGETS["national_touch_rate_vs_simpy_min"]
    size_note = "" if national["measured_at_full_scale"] else " (at the quick size, not extrapolated)"
    for strategy, r in national["strategies"].items():
        rate = r["touches_per_s"]
        rows.append({"target": f"national touches/s >= 1/3 SimPy bare rate, {strategy}{size_note}", "measured": rate,
                     "target_value": needed, "direction": ">=", "ratio": rate / needed, "met": rate >= needed,
                     "unit": "touches/s",
                     "gap": f"{needed / rate:.1f}x too slow" if rate < needed else "met"})
    mem = result["env_stepping"]["memory"]
    growth = mem["extrapolated_growth_mib_per_1m_steps"]
    target = TARGETS["memory_growth_mib_per_1m_steps_max"]
    span = mem["two_n_steps"] - mem["n_steps"]
    # Below ~5k steps per half, allocator noise of ~0.1 MiB extrapolates to more than the 10 MiB budget.
    conclusive = span >= 5_000
    rows.append({"target": "no memory growth over 1M env steps",
                 "measured": growth, "target_value": target, "direction": "<=",
                 "ratio": growth / target, "met": (growth <= target) if conclusive else None, "unit": "MiB / 1M steps",
                 "gap": (f"extrapolated from {span:,} steps (N -> 2N), not measured to 1M" if conclusive else
                         f"inconclusive: only {span:,} steps from N to 2N (quick mode); run full mode")})
    return rows


# ------------------------------------------------------------------------------------------------ Markdown
def _met(met: bool | None) -> str:
    return "inconclusive" if met is None else ("yes" if met else "**NO**")


def _f(value: Any, fmt: str = ",.0f") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    return format(value, fmt)


def format_perf_markdown(result: dict) -> str:
    """The Markdown report of :func:`run_perf`'s result."""
    m = result["machine"]
    env = result["env_stepping"]
    tr = result["training"]
    fl = result["floors"]
    nat = result["national"]
    mem = env["memory"]
    lines: list[str] = []
    add = lines.append
    add(f"## Performance ({result['mode']} mode, {m['utc']})")
    add("")
    add(f"Machine: {m.get('cpu_model', m['processor'])}, {m['cpu_count']} CPUs, Python {m['python']}, "
        f"NumPy {m.get('numpy_version')}, SimPy {m.get('simpy_version')}, torch {m.get('torch_version')}; "
        f"load average at start {m.get('loadavg_start')}, at end {m.get('loadavg_end')}; "
        f"commit {m.get('git_commit', 'n/a')}; total {result['total_seconds']:.0f} s.")
    add("")
    add("### Targets")
    add("")
    add("| target | measured | target | measured / target | met? | gap |")
    add("|---|---:|---:|---:|:---:|---|")
    for v in result["verdicts"]:
        unit = v["unit"]
        fmt = ".1%" if unit == "share" else (",.1f" if unit in ("s", "MiB / 1M steps") else ",.0f")
        add(f"| {v['target']} | {_f(v['measured'], fmt)} | {v['direction']} {_f(v['target_value'], fmt)} | "
            f"{_f(v['ratio'], '.2f')} | {_met(v['met'])} | {v['gap']} |")
    add("")
    add("### 1. Environment stepping and training")
    add("")
    add(f"`{ENV_ID}`, default scenario ({env['n_hcps']} HCPs, {env['days_per_step']} days per step), random masked "
        f"policy, {env['steps']:,} steps after {env['warmup_steps']:,} warm-up steps, one process pinned to CPU "
        f"{env['cpu']}:")
    add("")
    add("| measure | value |")
    add("|---|---:|")
    add(f"| env steps/s (time inside `reset`/`step`/`action_masks`) | {_f(env['env_steps_per_s'], ',.1f')} |")
    add(f"| loop steps/s (incl. the random policy) | {_f(env['loop_steps_per_s'], ',.1f')} |")
    add(f"| env ms per step / per simulated day | {_f(env['env_ms_per_step'], '.2f')} / "
        f"{_f(env['env_ms_per_sim_day'], '.3f')} |")
    add(f"| HCP-days/s | {_f(env['env_hcp_days_per_s'])} |")
    add("")
    add(f"MaskablePPO (`MlpPolicy`, DummyVecEnv of {tr['n_envs']} TerritoryEnv, n_steps={tr['n_steps']}, "
        f"batch_size={tr['batch_size']}, n_epochs={tr['n_epochs']}, net_arch {tr['net_arch']}, device {tr['device']}, "
        f"torch threads {tr['torch_threads']}), {tr['timesteps']:,} timesteps:")
    add("")
    add("| measure | value |")
    add("|---|---:|")
    add(f"| training wall s / steps/s | {_f(tr['wall_s'], '.1f')} / {_f(tr['steps_per_s'], ',.1f')} |")
    by = tr["env_s_by_call"]
    add(f"| inside the env s (step / reset / action_masks) | {_f(tr['env_s'], '.1f')} ({_f(by['step'], '.1f')} / "
        f"{_f(by['reset'], '.2f')} / {_f(by['action_masks'], '.2f')}) |")
    add(f"| **env share of training wall time** | **{_f(tr['env_share'], '.1%')}** (target <= "
        f"{TARGETS['training_env_share_max']:.0%}, ratio {_f(tr['env_share'] / TARGETS['training_env_share_max'], '.2f')}) |")
    add(f"| env ms per step / learner ms per step | {_f(tr['env_ms_per_step'], '.2f')} / "
        f"{_f(tr['learner_ms_per_step'], '.2f')} |")
    add(f"| env ms per step that would meet the target | {_f(tr['env_ms_per_step_at_target'], '.2f')} "
        f"(speed-up needed {_f(tr['env_speedup_needed'], '.1f')}x) |")
    one = result.get("training_one_thread")
    if one:
        add(f"| same with torch at 1 thread: env share / env ms / learner ms per step | {_f(one['env_share'], '.1%')} / "
            f"{_f(one['env_ms_per_step'], '.2f')} / {_f(one['learner_ms_per_step'], '.2f')} (speed-up needed "
            f"{_f(one['env_speedup_needed'], '.1f')}x) |")
    sub = result.get("training_subproc")
    if sub:
        waits = sub["env_wait_s_by_call"]
        add(f"| as `oce-sim train` runs it ({sub['vec_env']} of {sub['n_envs']}, torch {sub['torch_threads']} thread): "
            f"share of wall time the learner waits for the envs (step_wait / reset / action-mask calls, s) | "
            f"{_f(sub['env_share'], '.1%')} ({_f(waits['step_wait'], '.1f')} / {_f(waits['reset'], '.2f')} / "
            f"{_f(waits['env_method'], '.2f')}); {_f(sub['steps_per_s'], ',.0f')} steps/s |")
        add(f"| same, without the first reset (it starts the workers: paid once per training run) | "
            f"{_f(sub.get('env_share_steady'), '.1%')} |")
    floor = result.get("step_floor")
    if floor:
        add(f"| floor of a step, any implementation (compiled customer dynamics / exogenous uniforms / "
            f"{_f(floor['simpy_events_per_step'], '.1f')} SimPy events at the bare rate, ms) | "
            f"{_f(floor['floor_ms_per_step'], '.3f')} ({_f(floor['dynamics_ms_per_step'], '.3f')} / "
            f"{_f(floor['uniforms_ms_per_step'], '.3f')} / {_f(floor['simpy_ms_per_step'], '.3f')}) = "
            f"{_f(floor['floor_ms_per_step'] / tr['env_ms_per_step_at_target'], '.0%')} of the env time that would "
            f"meet the target |")
    add("")
    add("### 2. National scale")
    add("")
    first = next(iter(nat["strategies"].values()))
    add(f"{first['n_hcps']:,} HCPs, {first['n_reps']} reps, {first['days']} simulated days, every stage strategy at its "
        f"own stage, each in a fresh spawned process pinned to one CPU (wall includes building the population):")
    if not nat["measured_at_full_scale"]:
        add("")
        add(f"**{nat['extrapolation_note']}.**")
    add("")
    head = ("| strategy | stage | wall s | setup s | HCP-days/s | touches | touches/s | ms / sim day | peak RSS MiB "
            "(before world) |")
    if not nat["measured_at_full_scale"]:
        head += " extrapolated wall s (100k x 364) |"
    add(head)
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if not nat["measured_at_full_scale"] else ""))
    for s, r in nat["strategies"].items():
        row = (f"| {s} | {r['stage']} | {_f(r['wall_s'], '.2f')} | {_f(r['setup_s'], '.2f')} | {_f(r['hcp_days_per_s'])} | "
               f"{_f(r['touches'])} | {_f(r['touches_per_s'])} | {_f(r['ms_per_sim_day'], '.1f')} | "
               f"{_f(r['peak_rss_mib'], ',.0f')} ({_f(r['rss_before_world_mib'], ',.0f')}) |")
        if not nat["measured_at_full_scale"]:
            row += f" {_f(nat['extrapolated_wall_s'][s], '.1f')} |"
        add(row)
    add("")
    add("Peak RSS is the child's `VmHWM` (its own high-water mark). `ru_maxrss` is also in the JSON, but on Linux a "
        "spawned child inherits its parent's `ru_maxrss` through fork+exec, so it over-states a small child's peak. "
        "'before world' is the child's RSS after imports, before the environment is built.")
    add("")
    sc = result.get("scaling")
    if sc:
        add("Cost per simulated day against territory size (" + sc["note"] + f", {sc['points'][0]['days']} days each):")
        add("")
        add("| HCPs | ms per simulated day | us per HCP-day |")
        add("|---:|---:|---:|")
        for p in sc["points"]:
            add(f"| {p['n_hcps']:,} | {_f(p['ms_per_sim_day'], '.2f')} | {_f(p['us_per_hcp_day'], '.2f')} |")
        add("")
        add(f"Least-squares fit: **{_f(sc['fixed_ms_per_sim_day'], '.2f')} ms fixed per simulated day + "
            f"{_f(sc['marginal_us_per_hcp_day'], '.3f')} us per HCP-day**.")
        add("")
    add("### 3. Reference floors (same run, one pinned CPU)")
    add("")
    simpy_rate = fl["simpy"]["events_per_s"]
    np_rate = fl["numpy"]["hcp_steps_per_s"]
    best_days = max(r["hcp_days_per_s"] for r in nat["strategies"].values())
    best_touch = max(r["touches_per_s"] for r in nat["strategies"].values())
    add("| floor | rate | national best / floor |")
    add("|---|---:|---:|")
    add(f"| SimPy bare events/s ({fl['simpy']['events']:,} `timeout(1)` events) | {_f(simpy_rate)} | "
        f"touches/s {_f(best_touch / simpy_rate, '.3f')} (target >= 0.333) |")
    add(f"| NumPy state update, HCP-steps/s ({fl['numpy']['n_hcps']:,} HCPs, "
        f"{_f(fl['numpy']['ms_per_update'], '.2f')} ms per update) | {_f(np_rate)} | HCP-days/s "
        f"{_f(best_days / np_rate, '.4f')} |")
    add("")
    add("### 4. Memory flatness")
    add("")
    add(f"RSS of one process stepping the default scenario (random masked policy), read at episode boundaries "
        f"after {env['warmup_steps']:,} warm-up steps; {mem['measured_steps']:,} steps measured in all (not 1M). "
        f"'collected' is after `gc.collect()`: dead Worlds live in reference cycles until the cyclic GC runs.")
    add("")
    add("| steps after warm-up | RSS MiB (as running) | RSS MiB (collected) |")
    add("|---:|---:|---:|")
    for c in mem["checkpoints"]:
        mark = " (N)" if c["steps"] == mem["n_steps"] else (" (2N)" if c["steps"] == mem["two_n_steps"] else "")
        add(f"| {c['steps']:,}{mark} | {_f(c['rss_mib'], '.1f')} | {_f(c['rss_after_gc_mib'], '.1f')} |")
    add("")
    add(f"Growth N -> 2N (collected): {_f(mem['growth_n_to_2n_mib'], '+.2f')} MiB over {mem['two_n_steps'] - mem['n_steps']:,} "
        f"steps = **{_f(mem['growth_mib_per_100k_steps'], '+.2f')} MiB per 100k steps** "
        f"({_f(mem['extrapolated_growth_mib_per_1m_steps'], '+.1f')} MiB per 1M steps if extrapolated linearly; "
        f"least-squares slope from N on {_f(mem['slope_from_n_mib_per_100k_steps'], '+.2f')} collected, "
        f"{_f(mem['raw_slope_mib_per_100k_steps'], '+.2f')} as running, MiB per 100k steps). The heap grows during the "
        f"first episodes (warm-up) and is not counted.")
    add("")
    ret = result.get("reset_retention")
    if ret:
        add(f"Large Worlds across resets: one process resetting a {ret['n_hcps']:,}-HCP env {len(ret['episodes'])} times "
            f"({ret['days']} days per episode), no forced collection:")
        add("")
        add("| after episode | RSS MiB | Worlds still alive |")
        add("|---:|---:|---:|")
        for r in ret["episodes"]:
            add(f"| {r['episode']} | {_f(r['rss_mib'], ',.0f')} | {r['live_worlds']} |")
        add(f"| then `gc.collect()` | {_f(ret['after_gc_collect']['rss_mib'], ',.0f')} | "
            f"{ret['after_gc_collect']['live_worlds']} |")
        add("")
        add(f"Up to {ret['max_live_worlds'] - 1} dead Worlds (besides the live one) wait for the cyclic GC (a World is referenced by its own SimPy "
            f"process generators), so peak RSS reaches {_f(ret['peak_rss_mib'], ',.0f')} MiB against "
            f"{_f(ret['rss_after_first_episode_mib'], ',.0f')} MiB after the first episode.")
        add("")
    prof = result.get("profile")
    if prof:
        add("### 5. Profile hot spots")
        for key in ("env_stepping", "national"):
            p = prof[key]
            add("")
            add(f"{p['workload']} - {p['tool']}, {p['total_s']:.1f} s profiled. Self time by package: "
                + ", ".join(f"{k} {v:.0%}" for k, v in p["self_by_package"].items() if v >= 0.01) + ".")
            add("")
            add("| self time: function | share |")
            add("|---|---:|")
            for row in p["self_top"][:10]:
                add(f"| `{row['function']}` | {_f(row['share'], '.1%')} |")
            add("")
            add("| inclusive time (project code): function | share |")
            add("|---|---:|")
            for row in p["inclusive_top_project"][:10]:
                add(f"| `{row['function']}` | {_f(row['share'], '.1%')} |")
    add("")
    return "\n".join(lines)


__all__ = ["TARGETS", "SIZES", "run_perf", "format_perf_markdown", "current_rss_mib", "peak_rss_mib"]
