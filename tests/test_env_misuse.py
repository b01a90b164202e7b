"""Misusing the environment raises a clear error instead of passing silently."""

from __future__ import annotations

import numpy as np
import pytest

from oce_sim.envs.territory import TerritoryEnv

from conftest import N_SEGMENTS, make_env

HOLD = np.zeros(N_SEGMENTS, dtype=np.int64)


def short_env() -> TerritoryEnv:
    """Two weekly decisions, so that an episode ends quickly."""
    return make_env(config={"population": {"n_hcps": 40}, "env": {"horizon_days": 14}})


def test_step_after_the_end_asks_for_reset():
    env = short_env()
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(HOLD)
        done = terminated or truncated
    with pytest.raises(RuntimeError, match=r"ended at day 14.*call reset\(\)"):
        env.step(HOLD)
    env.reset(seed=1)  # reset makes it usable again
    env.step(HOLD)


def test_step_before_reset_asks_for_reset():
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        short_env().step(HOLD)


@pytest.mark.parametrize("options", [{"n_hcps": 10}, {"seed": 3, "stage": 2}])
def test_unknown_reset_options_are_refused(options):
    env = short_env()
    with pytest.raises(ValueError, match=r"unknown reset option\(s\).*allowed: none"):
        env.reset(seed=0, options=options)


def test_empty_reset_options_are_fine():
    env = short_env()
    obs, _ = env.reset(seed=0, options={})
    assert obs.shape == env.observation_space.shape


def test_non_mapping_reset_options_are_refused():
    with pytest.raises(TypeError, match=r"options=.*mapping"):
        short_env().reset(seed=0, options=[1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("config", [[1, 2], "population", 3, ("env", 1)])
def test_non_mapping_config_names_the_argument(config):
    with pytest.raises(TypeError, match=r"config must be a mapping.*got (list|str|int|tuple)"):
        TerritoryEnv(config=config)  # type: ignore[arg-type]


def test_bad_config_value_reaches_the_env_as_a_scenario_error():
    from oce_sim import ScenarioError

    with pytest.raises(ScenarioError, match=r"population.n_hcps: Input should be a valid integer \(got True\)"):
        TerritoryEnv(config={"population": {"n_hcps": True}})
