"""The environment in other libraries' hands: render modes, SB3's make_vec_env, the version."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env

import oce_sim


def test_unsupported_render_mode_warns_and_make_vec_env_works():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vec = make_vec_env("oce_sim/TerritorySmall-v0", n_envs=2, seed=0, env_kwargs={"render_mode": "rgb_array"})
    assert any(issubclass(w.category, UserWarning) and "rgb_array" in str(w.message) for w in caught)
    obs = vec.reset()
    assert obs.shape == (2, 82)
    obs, reward, done, infos = vec.step(np.zeros((2, 9), dtype=np.int64))
    assert reward.shape == (2,) and "action_mask" in infos[0]
    vec.close()
