"""National scale: 100,000 HCPs over a year per stage strategy (2), and the cost of a simulated day against
territory size (2b)."""

from __future__ import annotations

import gc
import time
from typing import Any

from oce_sim.bench.perf.helpers import (
    _pin_one_cpu,
    _random_masked_plays,
    current_rss_mib,
    peak_rss_mib,
    ru_maxrss_mib,
)


# ------------------------------------------------------------------------------------------ 2. national scale
def _national_config(strategy: str, n_hcps: int, n_reps: int, days: int):
    from oce_sim.agents import make_strategy
    from oce_sim.config import deep_merge, load_scenario
    from oce_sim.studies.evaluation import strategy_config

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
    # The loop of oce_sim.studies.evaluation.run_episode, with construction timed apart from the simulated year.
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
