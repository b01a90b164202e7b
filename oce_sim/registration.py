"""Every environment id, registered in one place."""

from __future__ import annotations

import gymnasium as gym

ENTRY_POINT = "oce_sim.envs.territory:TerritoryEnv"
# gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point"): N territories in one process, in lockstep
# (workers=W: spread over W processes, oce_sim.envs.sharded)
VECTOR_ENTRY_POINT = "oce_sim.envs.sharded:make_territory_vector_env"

# id -> default keyword arguments
ENV_IDS: dict[str, dict] = {
    # mid-size territory of a mature market, 52 weekly decisions
    "oce_sim/Territory-v1": {},
    # one rep, 120 HCPs, half a year: quick experiments and tests
    "oce_sim/TerritorySmall-v1": {"scenario": "small"},
    # default territory, stage 3 (intervention): every channel under the orchestrator's control
    "oce_sim/TerritoryIntervention-v1": {"stage": 3},
}


def register_envs() -> None:
    for env_id, kwargs in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT,
                         kwargs=dict(kwargs), disable_env_checker=False)
