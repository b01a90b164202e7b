"""Trained models behind the same policy interface, loaded from oce-sim model files (data only, no pickle)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from oce_sim.agents.model_file import (
    MASKED_ALGOS,
    POLICY_CLASSES,
    ModelFileError,
    build_policy,
    check_spaces,
    check_statistics,
    read_description,
    read_tensors,
)

ALGOS = tuple(POLICY_CLASSES)


class TrainedModel:
    """A policy network from a ``.safetensors`` model file; masks are passed when the algorithm supports them.

    The file's description is checked (format, version, and every field's type and bounds) before any weight is
    read, and every weight for its type (float32 or float64) and finiteness; nothing in the file is executed.
    ``check_env`` refuses a model trained for other observation or action spaces.
    """

    stage: int | None = None
    env_config: dict[str, Any] = {}

    def __init__(self, path: str | Path, stage: int | None = None):
        self.path = Path(path)
        self.meta = read_description(self.path)
        tensors = read_tensors(self.path)
        self.policy = build_policy(self.meta, tensors)
        self.algo: str = self.meta["algo"]
        self.num_timesteps = int(self.meta.get("num_timesteps", 0))
        self.name = f"rl_{self.algo}"
        trained_at = self.meta.get("stage")
        self.stage = stage if stage is not None else (trained_at if isinstance(trained_at, int) else None)
        self._obs_norm = _obs_normaliser(self.meta, tensors, self.policy.observation_space, self.path)

    def check_env(self, env: gym.Env, where: str) -> None:
        check_spaces(self.meta, env.observation_space, env.action_space, str(self.path), where)

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        return None

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True, action_masks: np.ndarray | None = None):
        if self._obs_norm is not None:
            observation = self._obs_norm(observation)
        if self.algo in MASKED_ALGOS:
            return self.policy.predict(observation, state=state, episode_start=episode_start,
                                       deterministic=deterministic, action_masks=action_masks)
        return self.policy.predict(observation, state=state, episode_start=episode_start, deterministic=deterministic)


def _obs_normaliser(meta: dict[str, Any], tensors: dict[str, Any], observation_space: gym.Space,
                    path: Path) -> Callable[[np.ndarray], np.ndarray] | None:
    """VecNormalize's observation scaling, if the model was trained with it (oce-sim trains without); its
    statistics are checked for shape here, not found wrong at the first observation."""
    settings = meta.get("vecnormalize") or {}
    if not settings.get("norm_obs"):
        return None
    if "vecnormalize/obs_mean" not in tensors:
        raise ModelFileError(f"{path}: norm_obs is set but the file holds no vecnormalize/obs_mean and _var")
    check_statistics(meta, tensors, observation_space, str(path))
    mean, var = (tensors[f"vecnormalize/obs_{name}"].double().numpy().reshape(observation_space.shape)
                 for name in ("mean", "var"))
    scale, clip = np.sqrt(var + float(settings["epsilon"])), float(settings["clip_obs"])
    return lambda obs: np.clip((obs - mean) / scale, -clip, clip).astype(np.float32)
