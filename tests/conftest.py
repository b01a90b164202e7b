"""Shared helpers for the oce-sim test suite.

Everything here keeps territories small (120 HCPs, one rep) and horizons short so the suite stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import oce_sim  # noqa: F401  (registers the environment ids)
from oce_sim.config import deep_merge
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.world import dispatch

ENV_ID = "oce_sim/Territory-v1"
N_SEGMENTS = dispatch.N_SEGMENTS
N_PLAYS = dispatch.N_PLAYS

# A one-rep territory of 120 HCPs over eight weekly decisions.
SMALL: dict[str, Any] = {"population": {"n_hcps": 120, "n_reps": 1}, "env": {"horizon_days": 56}}

# KPIs that count things (never negative).
COUNT_KPIS = (
    "prescriptions",
    "revenue_usd",
    "gross_margin_usd",
    "cost_usd",
    "cost_fixed_usd",
    "cost_variable_usd",
    "value_at_horizon_usd",
    "reach",
    "frequency",
    "engagement_rate",
    "confusion_events",
    "out_of_sequence_touches",
    "unsubscribes",
    "questions_answered",
    "blocked_touches",
    "masked_actions",
    "adopters_end",
)
COST_COMPONENTS = ("rep_visit_cost", "remote_detail_cost", "email_cost", "webinar_cost")

Policy = Callable[[int, TerritoryEnv, np.random.Generator], np.ndarray]


def pytest_configure(config: pytest.Config) -> None:
    """Compile the kernels on every core once, before the test processes start (``oce_sim.world.warm``): on a
    fresh install each xdist worker would otherwise compile the same kernels itself.  A no-op once cached."""
    if not hasattr(config, "workerinput"):  # the controller (or the only process), not an xdist worker
        from oce_sim.world.warm import warm

        warm()


def small_config(*overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``SMALL`` deep-merged with each override in turn."""
    merged: dict[str, Any] = dict(SMALL)
    for override in overrides:
        merged = deep_merge(merged, override)
    return merged


def make_env(stage: Any = None, config: Mapping[str, Any] | None = None, scenario: Any = None) -> TerritoryEnv:
    """An unwrapped small TerritoryEnv (``config`` is merged over ``SMALL``)."""
    return TerritoryEnv(scenario=scenario, stage=stage, config=small_config(config or {}))


def plays(*pairs: tuple[Any, int], default: int = dispatch.HOLD) -> np.ndarray:
    """Action with ``default`` everywhere and ``play`` on the given segment index (or slice)."""
    action = np.full(N_SEGMENTS, default, dtype=np.int64)
    for where, play in pairs:
        action[where] = play
    return action


def constant(play: int) -> Policy:
    return lambda step, env, rng: np.full(N_SEGMENTS, play, dtype=np.int64)


def masked_random(step: int, env: TerritoryEnv, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random play per segment among the plays ``action_masks()`` allows."""
    mask = env.action_masks().reshape(N_SEGMENTS, N_PLAYS)
    return np.array([rng.choice(np.flatnonzero(row)) for row in mask], dtype=np.int64)


def run_episode(env: TerritoryEnv, policy: Policy, seed: int, policy_seed: int = 0):
    """Reset with ``seed`` and play ``policy`` to the horizon; returns (observations, rewards, infos)."""
    rng = np.random.default_rng(policy_seed)
    obs, info = env.reset(seed=seed)
    observations, rewards, infos = [obs], [], [info]
    for step in range(10_000):
        obs, reward, terminated, truncated, info = env.step(policy(step, env, rng))
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        assert_episode_end(env, terminated, truncated, at_horizon=env.unwrapped._day >= env.unwrapped.horizon_days)
        if terminated or truncated:
            break
    else:  # pragma: no cover - guards against a missing end
        pytest.fail("episode did not end")
    return observations, rewards, infos


def assert_episode_end(env, terminated: bool, truncated: bool, at_horizon: bool) -> None:
    """The episode ends only at the horizon: it terminates when the terminal value is in the reward (the
    default), and truncates under the year-1 objective (``env.terminal_value: false``)."""
    with_tail = env.unwrapped.scenario.env.terminal_value
    assert (bool(terminated), bool(truncated)) == ((at_horizon and with_tail), (at_horizon and not with_tail))


def episode_kpis(stage: Any, policy: Policy, seed: int, config: Mapping[str, Any] | None = None) -> dict[str, float]:
    env = make_env(stage=stage, config=config)
    _, _, infos = run_episode(env, policy, seed)
    return infos[-1]["kpis"]


@pytest.fixture
def small_env() -> TerritoryEnv:
    return make_env()


@pytest.fixture
def gym_make() -> Callable[..., gym.Env]:
    """``gymnasium.make`` that closes what it made at teardown."""
    made: list[gym.Env] = []

    def _make(*args: Any, **kwargs: Any) -> gym.Env:
        env = gym.make(*args, **kwargs)
        made.append(env)
        return env

    yield _make
    for env in made:
        env.close()


@pytest.fixture(autouse=True, scope="session")
def _sb3_logs_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory):
    """Stable-Baselines3 makes a log folder for every model without a TensorBoard folder (``$TMPDIR/SB3-<time>``
    by default); keep those inside pytest's temporary folder instead of leaving them in ``/tmp``."""
    import os

    previous = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3_logs"))
    yield
    if previous is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = previous


def rewrite_model(path: Path, meta: Callable[[dict[str, Any]], Any] | None = None,
                  tensors: Callable[[dict[str, Any]], Any] | None = None,
                  raw_meta: Callable[[dict[str, Any]], str] | None = None) -> Path:
    """Rewrite an oce-sim model file as a hostile or damaged one: ``meta`` edits its description and ``tensors`` its
    tensors (in place); ``raw_meta`` gives the description's JSON text from the (edited) description."""
    from safetensors.torch import load, save

    data = Path(path).read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    description = json.loads(header["__metadata__"]["oce_sim"])
    weights = load(data)
    if meta is not None:
        meta(description)
    if tensors is not None:
        tensors(weights)
    text = raw_meta(description) if raw_meta is not None else json.dumps(description)
    Path(path).write_bytes(save(weights, metadata={"oce_sim": text}))
    return Path(path)


@pytest.fixture(scope="module")
def sb3_model() -> tuple[Any, Any]:
    """An untrained MaskablePPO (two layers of 16) on a small territory at stage 3, and its VecNormalize."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    vec = VecNormalize(DummyVecEnv([lambda: make_env(stage=3)]), norm_obs=False, norm_reward=True)
    model = MaskablePPO("MlpPolicy", vec, n_steps=64, batch_size=64, seed=0, device="cpu",
                        policy_kwargs=dict(net_arch=[16, 16]))
    return model, vec


def save_model(model: Any, vec: Any, path: Path, stage: Any = 3,
               mutate: Callable[[dict[str, Any]], Any] | None = None) -> Path:
    """``model`` as an oce-sim model file (trained on ``small``, 123 steps), its description edited by ``mutate``."""
    from oce_sim.agents import model_file

    path.write_bytes(model_file.model_bytes(model, "maskable-ppo", stage, "small", 123,
                                            model_file.vecnormalize_state(vec), np.zeros((0, 4)), 0.0, [16, 16]))
    return rewrite_model(path, mutate) if mutate is not None else path
