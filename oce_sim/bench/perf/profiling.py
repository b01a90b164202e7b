"""Sampling profiles (pyinstrument, else cProfile) of env stepping and of the slowest national strategy (5)."""

from __future__ import annotations

import time
from typing import Callable

from oce_sim.bench.perf.helpers import _pin_one_cpu, _random_masked_plays
from oce_sim.bench.perf.national import _national_config
from oce_sim.bench.perf.targets import ENV_ID


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
                if ("oce_sim/" in k or "agents/" in k) and "oce_sim/bench/perf/" not in k}
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
