"""Reference floors: SimPy's bare event rate, a NumPy state update (3), and the model's own floor of a step (3b)."""

from __future__ import annotations

import copy
import time

from oce_sim.bench.perf.helpers import _pin_one_cpu, _random_masked_plays


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
