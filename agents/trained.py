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


def detect_algorithm(path: Path) -> str:
    """The algorithm of a saved SB3 zip, from its stored data (policy class and PPO's clip range)."""
    from stable_baselines3.common.save_util import load_from_zip_file

    try:
        data, _, _ = load_from_zip_file(path, device="cpu", load_data=True)
    except Exception as exc:  # not a zip, or not an SB3 save
        raise ValueError(f"{path} is not a model saved by oce-sim train ({exc})") from None
    if not data or "policy_class" not in data:
        raise ValueError(f"{path} is not a model saved by oce-sim train (no policy in the archive)")
    policy = getattr(data["policy_class"], "__name__", str(data["policy_class"]))
    if "Maskable" in policy:
        return "maskable-ppo"
    return "ppo" if "clip_range" in data else "a2c"


def load_model(path: Path):
    """Load a zip saved by ``oce-sim train`` with the class it was trained with."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import A2C, PPO

    algo = detect_algorithm(path)
    cls = {"maskable-ppo": MaskablePPO, "ppo": PPO, "a2c": A2C}[algo]
    try:
        return cls.load(path, device="cpu"), algo
    except Exception as exc:
        raise ValueError(f"{path} could not be loaded as {algo}: {exc}") from None
