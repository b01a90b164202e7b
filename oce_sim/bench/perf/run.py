"""The driver: every phase in its own spawned process, the machine it ran on, and the verdicts against the
targets."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from oce_sim.bench.perf.floors import _measure_floors, _measure_step_floor
from oce_sim.bench.perf.helpers import _clean, _in_subprocess, _loadavg, _log
from oce_sim.bench.perf.measure import (
    _measure_env_stepping,
    _measure_factored_training,
    _measure_reset_retention,
    _measure_training_share,
    _measure_training_wait_subproc,
)
from oce_sim.bench.perf.national import (
    SCALING_HCPS,
    _measure_national,
    _measure_scaling,
)
from oce_sim.bench.perf.profiling import _measure_profiles
from oce_sim.bench.perf.targets import (
    NATIONAL_DAYS,
    NATIONAL_HCPS,
    SCHEMA_VERSION,
    SIZES,
    TARGETS,
)
from oce_sim.bench.perf.vector import _measure_vector_env


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
        root = Path(__file__).resolve().parents[2]  # the checkout, if this is one
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
    result["vector_env"] = phase("vector_env", _measure_vector_env, size["vector_envs"], size["vector_episodes"],
                                 size["vector_rounds"], size["cartpole_steps"], seed)
    result["training"] = phase("training", _measure_training_share, size["train_timesteps"], seed, single_thread=False)
    # As `oce-sim train` runs it: envs in worker processes; the share is the learner's wait for them.
    result["training_subproc"] = phase("training (SubprocVecEnv)", _measure_training_wait_subproc,
                                       size["train_timesteps"], seed, single_thread=False)
    result["training_factored"] = phase("training (factored-ppo, oce-sim train's default)", _measure_factored_training,
                                        size["factored_rollouts"], size["factored_envs"], seed, single_thread=False)
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
    vec = result.get("vector_env")
    if vec:
        ratio = vec["vs_cartpole"]["vector_one_simpy_env"]
        target = TARGETS["vector_territory_steps_vs_cartpole_min"]
        rows.append({"target": f"native vector env, {vec['n_envs']} territories, one core: territory-steps/s vs raw "
                               f"CartPole-v1 steps/s", "measured": ratio, "target_value": target, "direction": ">=",
                     "ratio": ratio / target, "met": ratio >= target, "unit": "x CartPole",
                     "gap": (f"{target / ratio:.1f}x too slow; {vec['vs_single_envs']['vector_one_simpy_env']:.2f}x "
                             f"N single envs in a loop" if ratio < target else "met")})
    fac = result.get("training_factored")
    if fac:
        target = TARGETS["factored_training_steps_per_s_min"]
        rate = fac["steps_per_s"]
        rows.append({"target": f"training env steps/s, factored-ppo ({fac['n_envs']} territories in "
                               f"{fac.get('workers', 1)} process(es), torch 1 thread)",
                     "measured": rate, "target_value": target, "direction": ">=", "ratio": rate / target,
                     "met": rate >= target, "unit": "steps/s",
                     "gap": (f"{target / rate:.1f}x too slow; the env takes {fac['env_share']:.0%} of the time"
                             if rate < target else "met")})
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
