"""Trained Stable-Baselines3 models behind the same policy interface."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

ALGOS = ("maskable-ppo", "ppo", "a2c")


class TrainedModel:
    """Wraps a saved SB3 / sb3-contrib model; masks are passed when the algorithm supports them."""

    stage: int | None = None
    env_config: dict[str, Any] = {}

    def __init__(self, path: str | Path, stage: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"model file not found: {self.path}")
        self.model, self.algo = load_model(self.path)
        self.name = f"rl_{self.algo}"
        self.stage = stage

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        return None

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True, action_masks: np.ndarray | None = None):
        if self.algo == "maskable-ppo":
            return self.model.predict(observation, state=state, episode_start=episode_start,
                                      deterministic=deterministic, action_masks=action_masks)
        return self.model.predict(observation, state=state, episode_start=episode_start, deterministic=deterministic)


def load_model(path: Path):
    """Load a zip saved by ``oce-sim train``; the algorithm is read from the zip's metadata."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import A2C, PPO

    errors = []
    for algo, cls in (("maskable-ppo", MaskablePPO), ("ppo", PPO), ("a2c", A2C)):
        try:
            return cls.load(path, device="cpu"), algo
        except Exception as exc:  # the wrong class fails on its policy kwargs; try the next
            errors.append(f"{algo}: {exc}")
    raise ValueError(f"{path} is not a model saved by oce-sim train ({'; '.join(errors)})")
