"""The environment in other libraries' hands: render modes, SB3's make_vec_env, a PPO written without SB3."""

from __future__ import annotations

import runpy
import sys
import warnings
from pathlib import Path

import numpy as np
from stable_baselines3.common.env_util import make_vec_env

import oce_sim  # noqa: F401  (registers the environment ids)


def test_unsupported_render_mode_warns_and_make_vec_env_works():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vec = make_vec_env("oce_sim/TerritorySmall-v1", n_envs=2, seed=0, env_kwargs={"render_mode": "rgb_array"})
    assert any(issubclass(w.category, UserWarning) and "rgb_array" in str(w.message) for w in caught)
    obs = vec.reset()
    assert obs.shape == (2, 82)
    obs, reward, done, infos = vec.step(np.zeros((2, 9), dtype=np.int64))
    assert reward.shape == (2,) and "action_mask" in infos[0]
    vec.close()


def test_single_file_masked_ppo_runs_a_few_hundred_steps(monkeypatch, capsys):
    """``experiments/masked_ppo_single_file.py``: masked PPO without SB3 (the CI wheel smoke test runs it too)."""
    import torch

    script = Path(__file__).resolve().parent.parent / "experiments" / "masked_ppo_single_file.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--total-timesteps", "256", "--num-envs", "2", "--num-steps", "64"])
    threads = torch.get_num_threads()
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("update ")]
    assert len(lines) == 2 and "steps 256" in lines[-1] and "episodes" in lines[-1]
