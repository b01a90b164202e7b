"""Model files are data: weights in a safetensors container plus a JSON description; loading one runs no code.

Stable-Baselines3's own ``.zip`` (and VecNormalize's ``.pkl``) are unpickled on load, so a crafted file runs
code.  ``oce-sim`` saves and loads ``.safetensors`` files instead: a JSON header (tensor names, dtypes, shapes,
and our description under the metadata key ``oce_sim``) followed by raw little-endian arrays.  Nothing in the
file is ever unpickled or executed.

The description (``FORMAT_VERSION`` 1) holds the algorithm, policy class, ``net_arch``, the observation and
action spaces, the environment, scenario and stage it was trained for, the step count, the VecNormalize
statistics and the non-tensor part of the optimizer state.  Tensors are ``policy/*`` (the policy's
``state_dict``), ``optimizer/<param>/<name>``, ``vecnormalize/*`` and ``episodes`` (the learning curve:
step, reward, length, wall seconds).  The same format is a checkpoint and a final model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from oce_sim.world import dispatch

FORMAT = "oce-sim-model"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
ENV = "oce_sim.envs.territory:TerritoryEnv"
META_KEY = "oce_sim"
POLICY_CLASSES = {"maskable-ppo": "MaskableActorCriticPolicy", "ppo": "ActorCriticPolicy", "a2c": "ActorCriticPolicy",
                  "factored-ppo": "MaskableActorCriticPolicy"}  # factored: a value output per segment
MASKED_ALGOS = ("maskable-ppo", "factored-ppo")
MAX_SPACE_SIZE = 1_000_000  # a described space larger than this is refused before anything is allocated
HOW_TO_GET_ONE = ("retrain with `oce-sim train` (its run folder holds final/model.safetensors), or convert a "
                  "Stable-Baselines3 zip you trust with `oce-sim convert-model FILE.zip --trust`")


class ModelFileError(ValueError):
    """Not a usable oce-sim model file (wrong container, format version, spaces or contents)."""


# ------------------------------------------------------------------------------------------------ spaces
def _uniform(values: np.ndarray) -> float | list[float]:
    flat = values.astype(np.float64).ravel()
    return float(flat[0]) if flat.size and (flat == flat[0]).all() else flat.tolist()


def describe_space(space: spaces.Space) -> dict[str, Any]:
    """A JSON description of a Box, Discrete or MultiDiscrete space (equal descriptions, equal spaces)."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": _uniform(space.low), "high": _uniform(space.high)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.astype(int).ravel().tolist(),
                "start": space.start.astype(int).ravel().tolist()}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    raise ModelFileError(f"cannot describe a {type(space).__name__} space")


def build_space(description: dict[str, Any]) -> spaces.Space:
    """The space a description names, refused if malformed or too large (it comes from a file)."""
    try:
        kind = description["type"]
        if kind == "Box":
            shape = tuple(int(n) for n in description["shape"])
            if any(n < 0 for n in shape) or math.prod(shape) > MAX_SPACE_SIZE:
                raise ModelFileError(f"observation shape {shape} out of range")
            dtype = np.dtype(description["dtype"])
            low, high = (float(b) if isinstance(b, (int, float)) else np.asarray(b, dtype=dtype).reshape(shape)
                         for b in (description["low"], description["high"]))
            return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
        if kind == "MultiDiscrete":
            nvec = [int(n) for n in description["nvec"]]
            if not 0 < len(nvec) <= 10_000:
                raise ModelFileError("action nvec out of range")
            return spaces.MultiDiscrete(nvec, start=[int(n) for n in description["start"]])
        if kind == "Discrete":
            return spaces.Discrete(int(description["n"]), start=int(description["start"]))
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"malformed space description ({type(exc).__name__}: {str(exc)[:100]})") from None
    raise ModelFileError(f"unsupported space type {str(kind)[:40]!r}")


# ------------------------------------------------------------------------------------------------ reading
def read_description(path: Path) -> dict[str, Any]:
    """The JSON description of a model file, checked for format and version; no tensor is read yet."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic[:2] == b"PK":
        raise ModelFileError(f"{path} is a zip (a Stable-Baselines3 save?): such files are pickles and loading one "
                             f"can run code from it, so oce-sim does not open them. To get a model file, {HOW_TO_GET_ONE}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error type for any malformed header
        raise ModelFileError(f"{path} is not a model saved by oce-sim train (not a safetensors file: "
                             f"{str(exc)[:120]}). To get a model file, {HOW_TO_GET_ONE}") from None
    try:
        meta = json.loads(metadata[META_KEY])
        assert isinstance(meta, dict)
    except (KeyError, ValueError, AssertionError, RecursionError):
        raise ModelFileError(f"{path} is not a model saved by oce-sim train (no oce-sim description in it). "
                             f"To get a model file, {HOW_TO_GET_ONE}") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path} has model format {str(meta.get('format'))[:40]!r} version "
                             f"{str(meta.get('format_version'))[:20]}; this oce-sim reads {FORMAT!r} version "
                             f"{FORMAT_VERSION}. {HOW_TO_GET_ONE[0].upper()}{HOW_TO_GET_ONE[1:]}")
    algo = meta.get("algo")
    if algo not in POLICY_CLASSES or meta.get("policy_class") != POLICY_CLASSES[algo]:
        raise ModelFileError(f"{path}: unknown algorithm {str(algo)[:40]!r} or policy class")
    return meta


def read_tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:
        raise ModelFileError(f"{path}: unreadable tensors ({str(exc)[:120]})") from None


def check_spaces(meta: dict[str, Any], observation_space: spaces.Space, action_space: spaces.Space,
                 source: str, where: str) -> None:
    """Refuse a model whose spaces are not the environment's, saying how to get a matching one."""
    for kind, space in (("observation", observation_space), ("action", action_space)):
        expected = describe_space(space)
        if meta.get(f"{kind}_space") != expected:
            raise ModelFileError(
                f"{source} was trained for another {kind} space than {where} has "
                f"({_short(meta.get(f'{kind}_space'))} vs {_short(expected)}); retrain it on this scenario with "
                "`oce-sim train`, or evaluate it on the scenario it was trained for")


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _tensors_under(tensors: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)}


def build_policy(meta: dict[str, Any], tensors: dict[str, Any]) -> Any:
    """The policy network the description names, with the file's weights (strict: every weight, no more)."""
    if meta["algo"] in MASKED_ALGOS:
        from sb3_contrib.common.maskable.policies import (
            MaskableActorCriticPolicy as cls,
        )
    else:
        from stable_baselines3.common.policies import ActorCriticPolicy as cls
    try:
        net_arch = [int(n) for n in meta["net_arch"]]
        if not 0 < len(net_arch) <= 64 or any(not 0 < n <= 65_536 for n in net_arch):
            raise ValueError("net_arch out of range")
        observation_space = build_space(meta["observation_space"])
        # the actor and critic layers the description implies must be in the file: a description cannot make
        # us allocate a network far larger than the weights it brings
        dims = [math.prod(observation_space.shape or (1,)), *net_arch]
        implied = 2 * sum(a * b for a, b in zip(dims, dims[1:]))
        if implied > sum(t.numel() for name, t in tensors.items() if name.startswith("policy/")):
            raise ValueError(f"net_arch ({len(net_arch)} layers, up to {max(net_arch)} wide) is larger than the "
                             "weights in the file")
        policy = cls(observation_space, build_space(meta["action_space"]), lr_schedule=lambda _: 0.0,
                     net_arch=net_arch)
        if meta["algo"] == "factored-ppo":
            with_segment_values(policy)
        policy.load_state_dict(_tensors_under(tensors, "policy/"), strict=True)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"weights do not fit the described network ({str(exc)[:160]})") from None
    policy.set_training_mode(False)
    return policy


def with_segment_values(policy: Any) -> Any:
    """Replace the policy's single value output by one per segment (model files of ``factored-ppo`` have it)."""
    from torch import nn

    latent = policy.mlp_extractor.latent_dim_vf
    policy.value_net = nn.Linear(latent, dispatch.N_SEGMENTS)
    nn.init.orthogonal_(policy.value_net.weight, gain=1.0)
    nn.init.zeros_(policy.value_net.bias)
    return policy


# ------------------------------------------------------------------------------------------------ writing
def vecnormalize_state(vec: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """VecNormalize's settings (JSON) and running statistics (arrays), copied now."""
    settings = {name: getattr(vec, name) for name in ("norm_obs", "norm_reward", "clip_obs", "clip_reward",
                                                      "gamma", "epsilon")}
    settings["ret_count"] = float(vec.ret_rms.count)
    arrays = {"ret_mean": np.array(vec.ret_rms.mean, dtype=np.float64),
              "ret_var": np.array(vec.ret_rms.var, dtype=np.float64)}
    if hasattr(vec, "obs_rms") and not isinstance(vec.obs_rms, dict):
        settings["obs_count"] = float(vec.obs_rms.count)
        arrays.update(obs_mean=np.array(vec.obs_rms.mean, dtype=np.float64),
                      obs_var=np.array(vec.obs_rms.var, dtype=np.float64))
    return settings, arrays


def restore_vecnormalize(vec: Any, meta: dict[str, Any], tensors: dict[str, Any], source: str) -> None:
    """Put a checkpoint's statistics into a fresh VecNormalize; a checkpoint without them is an error."""
    settings = meta.get("vecnormalize")
    if not isinstance(settings, dict) or "vecnormalize/ret_mean" not in tensors:
        raise ModelFileError(f"{source} holds no VecNormalize statistics")
    for name in ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon"):
        setattr(vec, name, settings[name])
    vec.ret_rms.mean = tensors["vecnormalize/ret_mean"].double().numpy().reshape(vec.ret_rms.mean.shape)
    vec.ret_rms.var = tensors["vecnormalize/ret_var"].double().numpy().reshape(vec.ret_rms.var.shape)
    vec.ret_rms.count = float(settings["ret_count"])
    if "vecnormalize/obs_mean" in tensors and hasattr(vec, "obs_rms") and not isinstance(vec.obs_rms, dict):
        vec.obs_rms.mean = tensors["vecnormalize/obs_mean"].double().numpy().reshape(vec.obs_rms.mean.shape)
        vec.obs_rms.var = tensors["vecnormalize/obs_var"].double().numpy().reshape(vec.obs_rms.var.shape)
        vec.obs_rms.count = float(settings["obs_count"])


def _optimizer_parts(optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return {"param_groups": state["param_groups"], "scalars": scalars}, tensors


def restore_optimizer(optimizer: Any, meta: dict[str, Any], tensors: dict[str, Any]) -> None:
    saved = meta["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    for name, value in _tensors_under(tensors, "optimizer/").items():
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = value
    for index, entries in saved["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})


def model_bytes(model: Any, algo: str, stage: Any, scenario: str, num_timesteps: int,
                vecnormalize: tuple[dict[str, Any], dict[str, np.ndarray]], episodes: np.ndarray,
                elapsed_seconds: float, net_arch: list[int], extra: dict[str, Any] | None = None) -> bytes:
    """One checkpoint or model file: everything to predict with, and to resume training, as data."""
    import torch
    from safetensors.torch import save

    settings, arrays = vecnormalize
    optimizer_meta, optimizer_tensors = _optimizer_parts(model.policy.optimizer)
    tensors = {f"policy/{name}": value for name, value in model.policy.state_dict().items()}
    tensors.update(optimizer_tensors)
    tensors.update({f"vecnormalize/{name}": torch.from_numpy(value) for name, value in arrays.items()})
    tensors["episodes"] = torch.from_numpy(np.asarray(episodes, dtype=np.float64).reshape(-1, 4))
    tensors = {name: value.detach().cpu().clone().contiguous() for name, value in tensors.items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "algo": algo, "policy_class": POLICY_CLASSES[algo],
            "net_arch": list(net_arch), "observation_space": describe_space(model.observation_space),
            "action_space": describe_space(model.action_space), "env": ENV, "scenario": scenario, "stage": stage,
            "num_timesteps": int(num_timesteps), "n_updates": int(getattr(model, "_n_updates", 0)),
            "elapsed_seconds": float(elapsed_seconds), "vecnormalize": settings, "optimizer": optimizer_meta,
            **(extra or {})}
    return save(tensors, metadata={META_KEY: json.dumps(meta)})


def convert_sb3_zip(path: Path, target: Path, stage: int | dict[str, int] | None, scenario: str) -> dict[str, Any]:
    """Convert a Stable-Baselines3 zip into an oce-sim model file.  This UNPICKLES ``path``: only for files you
    trust (the command asks for ``--trust``).  Returns the new file's description."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.save_util import load_from_zip_file

    from oce_sim.storage.outputs import atomic_write_bytes

    try:
        data, _, _ = load_from_zip_file(path, device="cpu", load_data=True)
        policy_name = getattr(data["policy_class"], "__name__", str(data["policy_class"]))
    except Exception as exc:
        raise ModelFileError(f"{path} is not a Stable-Baselines3 zip ({str(exc)[:120]})") from None
    algo = "maskable-ppo" if "Maskable" in policy_name else "ppo" if "clip_range" in data else "a2c"
    model = {"maskable-ppo": MaskablePPO, "ppo": PPO, "a2c": A2C}[algo].load(path, device="cpu")
    net_arch = model.policy.net_arch
    if isinstance(net_arch, dict):
        if net_arch.get("pi") != net_arch.get("vf"):
            raise ModelFileError(f"{path}: separate actor and critic layers {net_arch} are not supported")
        net_arch = net_arch["pi"]
    identity = ({"norm_obs": False, "norm_reward": False, "clip_obs": 10.0, "clip_reward": 10.0, "gamma": 0.99,
                 "epsilon": 1e-8, "ret_count": 1e-4}, {"ret_mean": np.zeros(()), "ret_var": np.ones(())})
    atomic_write_bytes(Path(target), model_bytes(model, algo, stage, scenario, int(model.num_timesteps), identity,
                                                 np.zeros((0, 4)), 0.0, list(net_arch)))
    return read_description(Path(target))


__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFileError", "SUFFIX", "build_policy", "check_spaces", "convert_sb3_zip",
           "describe_space", "model_bytes", "read_description", "read_tensors", "restore_optimizer",
           "restore_vecnormalize", "vecnormalize_state"]
