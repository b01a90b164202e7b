"""The performance benchmark runs end to end at tiny sizes and reports every target (slow: about a minute)."""

from __future__ import annotations

import json

import pytest

TINY = {
    "env_warmup_episodes": 1, "env_measure_episodes": 4, "env_checkpoint_episodes": 2, "train_timesteps": 1024,
    "national_hcps": 2000, "national_reps": 13, "national_days": 28, "simpy_events": 20_000, "numpy_iterations": 5,
    "scaling_days": 7, "scaling_max_hcps": 600, "profile_env_steps": 52, "profile_national_hcps": 2000,
    "profile_national_days": 7, "retention_hcps": 2000, "retention_days": 14, "retention_episodes": 2,
    "floor_steps": 52, "vector_envs": 2, "vector_episodes": 1, "vector_rounds": 1, "cartpole_steps": 2000,
    "factored_rollouts": 1, "factored_envs": 2,
}


@pytest.mark.slow
def test_perf_reports_every_target_and_the_floor_of_a_step():
    from oce_sim.bench.perf import format_perf_markdown, run_perf

    result = run_perf(quick=True, progress=False, sizes=TINY)
    json.dumps(result)  # JSON-serialisable as written to perf.json
    targets = [v["target"] for v in result["verdicts"]]
    assert targets[0] == "env share of MaskablePPO training wall time"
    assert sum("national scale wall time" in t for t in targets) == 4
    assert sum("national touches/s" in t for t in targets) == 4
    assert 0 < result["training"]["env_share"] < 1 and 0 < result["training_subproc"]["env_share"] < 1
    assert result["training_subproc"]["env_wait_s_by_call"]["env_method"] < 0.05, "masks come from the infos"
    floor = result["step_floor"]
    assert floor["simpy_events_per_step"] > 7, "at least one SimPy event per simulated day"
    parts = floor["dynamics_ms_per_step"] + floor["uniforms_ms_per_step"] + floor["simpy_ms_per_step"]
    assert floor["floor_ms_per_step"] == pytest.approx(parts)
    assert 0 < floor["floor_ms_per_step"] < result["env_stepping"]["env_ms_per_step"], "the floor is part of a step"
    vec = result["vector_env"]
    assert vec["vs_single_envs"]["single_envs_in_a_loop"] == 1.0 and all(r > 0 for r in vec["vs_cartpole"].values())
    assert any("native vector env" in t for t in targets)
    factored = result["training_factored"]
    assert factored["steps"] == 2 * 52 and factored["steps_per_s"] > 0 and 0 < factored["env_share"] < 1
    assert any("factored-ppo" in t for t in targets)
    report = format_perf_markdown(result)
    assert "floor of a step" in report and "model's own floor" in report and "x CartPole" in report
    with pytest.raises(ValueError, match="unknown perf size"):
        run_perf(quick=True, progress=False, sizes={"no_such_size": 1})
