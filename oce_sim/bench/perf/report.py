"""The Markdown report of a perf result: absolute figures and ratios against the targets."""

from __future__ import annotations

import math
from typing import Any

from oce_sim.bench.perf.targets import ENV_ID, TARGETS


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
        fmt = ".1%" if unit == "share" else (",.1f" if unit in ("s", "MiB / 1M steps") else
                                             (".4f" if unit == "x CartPole" else ",.0f"))
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
    vec = result.get("vector_env")
    if vec:
        add(f"Native vector env (`gym.make_vec(..., vectorization_mode=\"vector_entry_point\")`), {vec['n_envs']} "
            f"territories of the default scenario, random masked policy, {vec['episodes_per_round']} full episode(s) "
            f"of {vec['steps_per_episode']} steps per round (reset, burn-in and terminal value included), best of "
            f"{vec['rounds']} alternating round(s), process time, pinned to CPU {vec['cpu']}; raw CartPole-v1 "
            f"(unwrapped) {_f(vec['cartpole_steps_per_s'], ',.0f')} steps/s in the same process:")
        add("")
        add("| path | territory-steps/s | ms per territory-step | x CartPole | x N single envs in a loop |")
        add("|---|---:|---:|---:|---:|")
        labels = {"vector_one_simpy_env": "vector env, one SimPy environment (default)",
                  "vector_simpy_env_per_world": "vector env, a SimPy environment per World",
                  "sb3_vec_env": "SB3 `VecEnv` adapter (`make_sb3_vec_env`)",
                  "single_envs_in_a_loop": "N single envs (`gym.make`) in a loop"}
        for name, rate in vec["territory_steps_per_s"].items():
            add(f"| {labels.get(name, name)} | {_f(rate, ',.0f')} | {_f(vec['ms_per_territory_step'][name], '.3f')} | "
                f"{_f(vec['vs_cartpole'][name], '.4f')} | {_f(vec['vs_single_envs'][name], '.2f')} |")
        add("")
    fac = result.get("training_factored")
    if fac:
        add(f"`oce-sim train`'s default, factored-ppo at stage 3 ({fac['n_envs']} territories of the default scenario, "
            f"in {fac.get('workers', 1)} process(es), torch {fac['torch_threads']} thread, {fac['rollouts']} "
            f"whole-episode rollout(s) after a warm-up one): "
            f"**{_f(fac['steps_per_s'], ',.0f')} env steps/s** (target >= "
            f"{_f(TARGETS['factored_training_steps_per_s_min'], ',.0f')}), the vector env "
            f"{_f(fac['env_share'], '.0%')} of the time.")
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
