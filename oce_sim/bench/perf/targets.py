"""What the performance benchmark measures against: the issue's targets and the sizes of a full or quick run."""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1
ENV_ID = "oce_sim/Territory-v1"
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
    # native vector env of 64 territories on one core: territory-steps/s as a share of raw CartPole-v1 steps/s
    # (reset, burn-in and terminal value included; at least)
    "vector_territory_steps_vs_cartpole_min": 0.03,
    # training env steps/s of oce-sim train's default (factored-ppo, the configuration that met the learning target)
    "factored_training_steps_per_s_min": 1500.0,
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
        "vector_envs": 64,
        "vector_episodes": 1,  # x 52 steps x 64 territories per round
        "vector_rounds": 2,
        "cartpole_steps": 200_000,
        "factored_rollouts": 3,  # x 16 territories x 52 steps, after one warm-up rollout
        "factored_envs": 16,
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
        "vector_envs": 16,
        "vector_episodes": 1,
        "vector_rounds": 1,
        "cartpole_steps": 50_000,
        "factored_rollouts": 1,
        "factored_envs": 16,
    },
}
