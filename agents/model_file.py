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

A model file comes from outside, so it is read within bounds before anything is built from it: the file's and
the header's size, the description through one typed reader (:class:`Description`: strict types, strings of at
most ``MAX_TEXT_CHARS``, spaces of bounded size and only the dtypes the environments use), and tensors of float32
or float64 only, all finite.  Every refusal is a ``ModelFileError`` that names the field or tensor.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from gymnasium import spaces
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from oce_sim.config import ENTITIES, format_validation_error, parse_json
from oce_sim.config.errors import _clip, _excerpt
from oce_sim.world import dispatch

FORMAT = "oce-sim-model"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
ENV = "oce_sim.envs.territory:TerritoryEnv"
META_KEY = "oce_sim"
POLICY_CLASSES = {"maskable-ppo": "MaskableActorCriticPolicy", "ppo": "ActorCriticPolicy", "a2c": "ActorCriticPolicy",
                  "factored-ppo": "MaskableActorCriticPolicy"}  # factored: a value output per segment
MASKED_ALGOS = ("maskable-ppo", "factored-ppo")
HOW_TO_GET_ONE = ("retrain with `oce-sim train` (its run folder holds final/model.safetensors), or convert a "
                  "Stable-Baselines3 zip you trust with `oce-sim convert-model FILE.zip --trust`")

# Bounds on a model file, checked before anything is allocated from it.  oce-sim's own files are ~100 KB with a
# header of a few KB (82 observations, 9 x 8 actions, two layers of 64); every bound is far above any real model
# and far below what could exhaust memory or time.
MAX_FILE_BYTES = 1 << 30  # 1 GiB: every tensor is read into memory
MAX_HEADER_BYTES = 1 << 20  # the safetensors header: the tensor table and the JSON description
MAX_TENSORS = 4096
MAX_TEXT_CHARS = 200  # a description's strings (scenario, env) label tables and notes: a name, never a document
MAX_NAME_CHARS = 64  # keys of the optimizer's and the trainer's settings
MAX_SPACE_SIZE = 1_000_000  # observations of a Box
MAX_SPACE_DIMS = 8  # dimensions of a Box's shape
MAX_ACTIONS = 65_536  # choices of one action, and the action network's outputs (the sum of a MultiDiscrete's nvec)
MAX_ACTION_DIMS = 1024  # entries of a MultiDiscrete's nvec
MAX_LAYERS, MAX_WIDTH = 64, 65_536  # net_arch
MAX_COUNT = 10**15  # step and update counts
SPACE_DTYPES = ("float32", "float64", "int64")  # what the environments observe in
WEIGHT_DTYPES = ("F32", "F64")  # what oce-sim saves; anything else (int8, bool, float16) would be cast silently
# The optimizer state each algorithm's trainer keeps per parameter (SB3's A2C uses RMSprop, the others Adam): a
# state without them would fail at the first update after a resume.
OPTIMIZER_STATE_KEYS = {"a2c": ("step", "square_avg")}
ADAM_STATE_KEYS = ("step", "exp_avg", "exp_avg_sq")


class ModelFileError(ValueError):
    """Not a usable oce-sim model file (wrong container, format version, spaces or contents)."""


# ------------------------------------------------------------------------------------------------ the description
class _Record(BaseModel):
    # strict: a bool is not an int and a string is not a number (an int where a float goes is fine); finite floats
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
Name = Annotated[str, Field(max_length=MAX_NAME_CHARS)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Offset = Annotated[int, Field(ge=-MAX_COUNT, le=MAX_COUNT)]
NonNegative = Annotated[float, Field(ge=0.0)]
Positive = Annotated[float, Field(gt=0.0)]
NetArch = Annotated[list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]], Field(min_length=1, max_length=MAX_LAYERS)]


def _box_bound(value: Any) -> Any:
    """A Box's low or high: one number for every element, or a list of them (infinite is fine, NaN is not)."""
    values = value if isinstance(value, list) else [value]
    if len(values) > MAX_SPACE_SIZE:
        raise ValueError(f"more than {MAX_SPACE_SIZE:,} values")
    for item in values:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or math.isnan(item):
            raise ValueError(f"must be a number or a list of numbers (not NaN), got {_excerpt(item)}")
    return value


def _stage(value: Any) -> Any:
    """The stage a model was trained at: 0-3, a mapping of entity -> 0-3, or None (not recorded)."""
    def ok(stage: Any) -> bool:
        return type(stage) is int and 0 <= stage <= 3

    if value is None or ok(value) or (isinstance(value, dict) and set(value) <= set(ENTITIES)
                                      and all(ok(v) for v in value.values())):
        return value
    raise ValueError(f"must be a stage 0-3 or a mapping of {', '.join(ENTITIES)} to 0-3, got {_excerpt(value)}")


def _scalar(value: Any) -> Any:
    """A plain setting: a bool, a bounded integer, a finite number, a short string or None."""
    if value is None or isinstance(value, bool) or (isinstance(value, int) and abs(value) <= MAX_COUNT) \
            or (isinstance(value, float) and math.isfinite(value)) \
            or (isinstance(value, str) and len(value) <= MAX_NAME_CHARS):
        return value
    raise ValueError(f"must be a bool, a number, a string of at most {MAX_NAME_CHARS} characters or null, "
                     f"got {_excerpt(value)}")


BoxBound = Annotated[Any, AfterValidator(_box_bound)]
Scalar = Annotated[Any, AfterValidator(_scalar)]


class BoxSpace(_Record):
    type: Literal["Box"]
    shape: Annotated[list[Annotated[int, Field(ge=0, le=MAX_SPACE_SIZE)]], Field(max_length=MAX_SPACE_DIMS)]
    dtype: Literal[SPACE_DTYPES]
    low: BoxBound
    high: BoxBound

    @model_validator(mode="after")
    def _sized(self) -> BoxSpace:
        size = math.prod(self.shape)
        if size > MAX_SPACE_SIZE:
            raise ValueError(f"shape {_excerpt(self.shape)} has {size:,} elements; at most {MAX_SPACE_SIZE:,}")
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, list) and len(value) != size:
                raise ValueError(f"{name} has {len(value):,} values for a shape of {size:,} elements")
        return self


class MultiDiscreteSpace(_Record):
    type: Literal["MultiDiscrete"]
    nvec: Annotated[list[Annotated[int, Field(ge=1, le=MAX_ACTIONS)]], Field(min_length=1, max_length=MAX_ACTION_DIMS)]
    start: Annotated[list[Offset], Field(max_length=MAX_ACTION_DIMS)]

    @model_validator(mode="after")
    def _sized(self) -> MultiDiscreteSpace:
        if len(self.start) != len(self.nvec):
            raise ValueError(f"start has {len(self.start)} entries for {len(self.nvec)} in nvec")
        if sum(self.nvec) > MAX_ACTIONS:
            raise ValueError(f"nvec adds up to {sum(self.nvec):,} choices; at most {MAX_ACTIONS:,}")
        return self


class DiscreteSpace(_Record):
    type: Literal["Discrete"]
    n: Annotated[int, Field(ge=1, le=MAX_ACTIONS)]
    start: Offset


Space = Annotated[BoxSpace | MultiDiscreteSpace | DiscreteSpace, Field(discriminator="type")]
_SPACE = TypeAdapter(Space)


class VecNormalizeSettings(_Record):
    """VecNormalize's settings (SB3 algorithms); factored-ppo's checkpoints hold none (an empty mapping)."""

    norm_obs: bool | None = None
    norm_reward: bool | None = None
    clip_obs: Positive | None = None
    clip_reward: Positive | None = None
    gamma: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    epsilon: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    ret_count: NonNegative | None = None
    obs_count: NonNegative | None = None

    @model_validator(mode="after")
    def _all_or_none(self) -> VecNormalizeSettings:
        given = {name for name, value in self if value is not None} - {"obs_count"}
        if given and given != set(type(self).model_fields) - {"obs_count"}:
            missing = sorted(set(type(self).model_fields) - given - {"obs_count"})
            raise ValueError(f"missing {', '.join(missing)} (all of VecNormalize's settings, or none)")
        return self


class ParamGroup(BaseModel):
    """One of the optimizer's parameter groups: the parameters' indices and the group's settings (torch adds keys
    between versions: any other key is a plain setting)."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    __pydantic_extra__: dict[Name, Scalar]
    params: Annotated[list[Annotated[int, Field(ge=0, lt=MAX_TENSORS)]], Field(max_length=MAX_TENSORS)]
    lr: NonNegative | None = None
    eps: NonNegative | None = None
    weight_decay: NonNegative | None = None
    momentum: NonNegative | None = None
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    betas: Annotated[list[Annotated[float, Field(ge=0.0, lt=1.0)]], Field(min_length=2, max_length=2)] | None = None


class OptimizerState(_Record):
    """The optimizer state's non-tensor part (its tensors are ``optimizer/<index>/<name>``)."""

    param_groups: Annotated[list[ParamGroup], Field(min_length=1, max_length=64)]
    scalars: dict[Annotated[str, Field(pattern=r"^[0-9]{1,4}$")], dict[Name, Scalar]]


class Description(_Record):
    """A model file's description: every field typed and bounded (it comes from a file)."""

    format: Literal[FORMAT]
    format_version: Literal[FORMAT_VERSION]
    algo: Literal[tuple(POLICY_CLASSES)]
    policy_class: Literal[tuple(dict.fromkeys(POLICY_CLASSES.values()))]
    net_arch: NetArch
    observation_space: Space
    action_space: Space
    env: Text = ENV
    scenario: Text = ""
    stage: Annotated[Any, AfterValidator(_stage)] = None
    num_timesteps: Count = 0
    n_updates: Count = 0
    elapsed_seconds: NonNegative = 0.0
    vecnormalize: VecNormalizeSettings | None = None
    optimizer: OptimizerState | None = None
    value_scale: Positive | None = None  # factored-ppo: cohort returns per value unit (None before the first rollout)
    settings: Annotated[dict[Name, Scalar], Field(max_length=64)] | None = None  # factored-ppo's hyper-parameters
    # the training reward (env.reward): expected and realized are privileged, observed is what a deployment sees;
    # None in files from before it was recorded
    reward: Literal["realized", "expected", "observed"] | None = None


def _problems(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    problems = format_validation_error(exc, model)
    shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
    return _clip(shown, 400)


def _tensor_name(name: str) -> str:
    return repr(_clip(name, 100))  # real names are under 50 characters: quoted whole


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


def build_space(description: Any) -> spaces.Space:
    """The space a description names, refused if malformed or too large (it comes from a file): checked against
    the bounds above before any array exists."""
    try:
        space = _SPACE.validate_python(description)
    except ValidationError as exc:
        raise ModelFileError(f"malformed space description ({_problems(exc)})") from None
    try:
        if isinstance(space, BoxSpace):
            shape, dtype = tuple(space.shape), np.dtype(space.dtype)
            low, high = (float(b) if not isinstance(b, list) else np.asarray(b, dtype=dtype).reshape(shape)
                         for b in (space.low, space.high))
            return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
        if isinstance(space, MultiDiscreteSpace):
            return spaces.MultiDiscrete(space.nvec, start=space.start)
        return spaces.Discrete(space.n, start=space.start)
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. an infinite bound of an int64 Box
        raise ModelFileError(f"malformed space description ({type(exc).__name__}: {str(exc)[:100]})") from None


def _width(space: spaces.Space) -> int:
    """Inputs (an observation space) or outputs (an action space) of the network layer that takes or gives it."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(space.nvec.sum())
    return math.prod(space.shape or (1,))


# ------------------------------------------------------------------------------------------------ reading
def _check_container(path: Path) -> None:
    """Refuse what is not a bounded safetensors file before a parser sees it: a zip (SB3's pickles), a file over
    ``MAX_FILE_BYTES`` or a header over ``MAX_HEADER_BYTES`` (the first 8 bytes give its length)."""
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head[:2] == b"PK":
        raise ModelFileError(f"{path} is a zip (a Stable-Baselines3 save?): such files are pickles and loading one "
                             f"can run code from it, so oce-sim does not open them. To get a model file, {HOW_TO_GET_ONE}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"{path} is {size / 2**30:.1f} GiB; a model file is at most "
                             f"{MAX_FILE_BYTES / 2**30:g} GiB")
    header = int.from_bytes(head, "little") if len(head) == 8 else 0
    if MAX_HEADER_BYTES < header <= size - 8:  # (a longer one than the file is no safetensors file: said below)
        raise ModelFileError(f"{path}: its header is {header:,} bytes; a model file's is at most "
                             f"{MAX_HEADER_BYTES:,} (to get a model file, {HOW_TO_GET_ONE})")


def read_description(path: Path) -> dict[str, Any]:
    """The JSON description of a model file, checked for format, version and every field's type and bounds
    (:class:`Description`); no tensor is read yet."""
    from safetensors import safe_open

    path = Path(path)
    _check_container(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error type for any malformed header
        raise ModelFileError(f"{path} is not a model saved by oce-sim train (not a safetensors file: "
                             f"{str(exc)[:120]}). To get a model file, {HOW_TO_GET_ONE}") from None
    if META_KEY not in metadata:
        raise ModelFileError(f"{path} is not a model saved by oce-sim train (no oce-sim description in it). "
                             f"To get a model file, {HOW_TO_GET_ONE}")
    try:
        meta = parse_json(metadata[META_KEY], MAX_HEADER_BYTES)
    except ValueError as exc:
        raise ModelFileError(f"{path}: unreadable model description ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: the model description is not a JSON object (got {_excerpt(meta)})")
    version = meta.get("format_version")
    if meta.get("format") != FORMAT or type(version) is not int or version != FORMAT_VERSION:
        raise ModelFileError(f"{path} has model format {str(meta.get('format'))[:40]!r} version "
                             f"{str(version)[:20]}; this oce-sim reads {FORMAT!r} version "
                             f"{FORMAT_VERSION}. {HOW_TO_GET_ONE[0].upper()}{HOW_TO_GET_ONE[1:]}")
    algo = meta.get("algo")
    if not isinstance(algo, str) or algo not in POLICY_CLASSES or meta.get("policy_class") != POLICY_CLASSES[algo]:
        raise ModelFileError(f"{path}: unknown algorithm {str(algo)[:40]!r} or policy class")
    try:
        Description.model_validate(meta)
    except ValidationError as exc:
        raise ModelFileError(f"{path}: invalid model description: {_problems(exc, Description)}") from None
    return meta  # as written (the checks above guarantee its types): equal to what describe_space gives


def read_tensors(path: Path) -> dict[str, Any]:
    """Every tensor of a model file, refused (naming the tensor) unless float32 or float64 and finite: a file of
    other types would be cast silently, and NaN weights would fail in the middle of an evaluation."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    _check_container(path)
    try:
        with safe_open(str(path), framework="pt") as handle:  # the header only: types before any data is read
            names = list(handle.keys())
            if len(names) > MAX_TENSORS:
                raise ModelFileError(f"{path} holds {len(names):,} tensors; a model file holds at most {MAX_TENSORS:,}")
            for name in names:
                dtype = handle.get_slice(name).get_dtype()
                if dtype not in WEIGHT_DTYPES:
                    raise ModelFileError(f"{path}: tensor {_tensor_name(name)} is {dtype}; model files hold float32 "
                                         "(F32) or float64 (F64) tensors only")
        tensors = load_file(str(path), device="cpu")
    except ModelFileError:
        raise
    except Exception as exc:
        raise ModelFileError(f"{path}: unreadable tensors ({str(exc)[:120]})") from None
    for name, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"{path}: tensor {_tensor_name(name)} holds NaN or infinite values (a training run "
                                 "that diverged?); use an earlier checkpoint or retrain")
    return tensors


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


_NET_ARCH = TypeAdapter(NetArch, config=ConfigDict(strict=True))


def build_policy(meta: dict[str, Any], tensors: dict[str, Any]) -> Any:
    """The policy network the description names, with the file's weights (strict: every weight, no more)."""
    if meta["algo"] in MASKED_ALGOS:
        from sb3_contrib.common.maskable.policies import (
            MaskableActorCriticPolicy as cls,
        )
    else:
        from stable_baselines3.common.policies import ActorCriticPolicy as cls
    try:
        net_arch = _NET_ARCH.validate_python(meta["net_arch"])
        observation_space, action_space = build_space(meta["observation_space"]), build_space(meta["action_space"])
        # the layers the description implies (actor and critic, action and value outputs) must be in the file: a
        # description cannot make us allocate a network far larger than the weights it brings
        dims = [_width(observation_space), *net_arch]
        values = dispatch.N_SEGMENTS if meta["algo"] == "factored-ppo" else 1
        implied = 2 * sum(a * b for a, b in zip(dims, dims[1:])) + net_arch[-1] * (_width(action_space) + values)
        if implied > sum(t.numel() for name, t in tensors.items() if name.startswith("policy/")):
            raise ValueError(f"net_arch ({len(net_arch)} layers, up to {max(net_arch)} wide) is larger than the "
                             "weights in the file")
        policy = cls(observation_space, action_space, lr_schedule=lambda _: 0.0, net_arch=net_arch)
        if meta["algo"] == "factored-ppo":
            with_segment_values(policy)
        policy.load_state_dict(_tensors_under(tensors, "policy/"), strict=True)
    except ModelFileError:
        raise
    except ValidationError as exc:
        raise ModelFileError(f"net_arch: {_problems(exc)}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"weights do not fit the described network ({' '.join(str(exc).split())[:160]})") \
            from None
    policy.set_training_mode(False)
    return policy


def check_training_state(meta: dict[str, Any], tensors: dict[str, Any], observation_space: spaces.Space,
                         action_space: spaces.Space, source: str) -> None:
    """Everything a resumed run restores from a checkpoint, checked before any of it is used: the spaces are the
    run's, every weight fits the described network, the optimizer state fits those weights (one group over the
    policy's parameters, as both trainers build it), and the statistics and learning curve have their shapes."""
    check_spaces(meta, observation_space, action_space, source, "this run")
    policy = build_policy(meta, tensors)
    check_optimizer_state(meta, tensors, [[tuple(p.shape) for p in policy.parameters()]], source)
    episodes = tensors.get("episodes")
    if episodes is None or episodes.ndim != 2 or episodes.shape[1] != 4:
        raise ModelFileError(f"{source}: no learning curve in it (a tensor 'episodes' of n rows of 4)")
    check_statistics(meta, tensors, observation_space, source)


def check_statistics(meta: dict[str, Any], tensors: dict[str, Any], observation_space: spaces.Space,
                      source: str) -> None:
    """VecNormalize's tensors, where the file has them: one value each for the returns, one per observation for the
    observations, with a count in the settings; variances are not negative."""
    settings = meta.get("vecnormalize") or {}
    for part, size, count in (("ret", 1, "ret_count"), ("obs", _width(observation_space), "obs_count")):
        mean, var = tensors.get(f"vecnormalize/{part}_mean"), tensors.get(f"vecnormalize/{part}_var")
        if mean is None and var is None:
            continue
        if mean is None or var is None or mean.numel() != size or var.numel() != size or bool((var < 0).any()) \
                or settings.get(count) is None:
            raise ModelFileError(f"{source}: malformed VecNormalize statistics vecnormalize/{part}_mean and _var "
                                 f"({size} value(s) each, variances not negative, and {count} in the description)")


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
    if not isinstance(settings, dict) or settings.get("ret_count") is None or "vecnormalize/ret_mean" not in tensors:
        raise ModelFileError(f"{source} holds no VecNormalize statistics")
    check_statistics(meta, tensors, vec.observation_space, source)
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


def _optimizer_state(meta: dict[str, Any], tensors: dict[str, Any], source: str) -> dict[int, dict[str, Any]]:
    """The per-parameter optimizer state of a file: its ``optimizer/<index>/<name>`` tensors and saved scalars."""
    saved = meta.get("optimizer")
    if not isinstance(saved, dict):
        raise ModelFileError(f"{source}: no optimizer state in it")
    state: dict[int, dict[str, Any]] = {}
    for name, value in _tensors_under(tensors, "optimizer/").items():
        index, _, key = name.partition("/")
        if not (index.isdigit() and len(index) <= 4 and key):
            raise ModelFileError(f"{source}: tensor {_tensor_name('optimizer/' + name)} is not "
                                 "optimizer/<index>/<name>")
        state.setdefault(int(index), {})[key] = value
    for index, entries in saved["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    return state


def check_optimizer_state(meta: dict[str, Any], tensors: dict[str, Any], groups: list[list[tuple[int, ...]]],
                          source: str) -> None:
    """Refuse an optimizer state that does not fit an optimizer over ``groups`` (the shapes of each group's
    parameters): the same groups and parameters, each parameter's state complete and of its parameter's shape."""
    state = _optimizer_state(meta, tensors, source)
    saved = [group["params"] for group in meta["optimizer"]["param_groups"]]
    shapes = [shape for group in groups for shape in group]
    if [len(g) for g in saved] != [len(g) for g in groups] or [i for g in saved for i in g] != list(range(len(shapes))):
        raise ModelFileError(f"{source}: the optimizer state's parameter groups {_excerpt(saved)} are not those of "
                             f"the network ({len(shapes)} parameters in {len(groups)} group(s))")
    required = OPTIMIZER_STATE_KEYS.get(meta["algo"], ADAM_STATE_KEYS)
    for index, entries in sorted(state.items()):
        if index >= len(shapes):
            raise ModelFileError(f"{source}: optimizer state for parameter {index}; the network has {len(shapes)}")
        missing = [key for key in required if key not in entries]
        if missing:
            raise ModelFileError(f"{source}: the optimizer state of parameter {index} lacks {', '.join(missing)}")
        for key, value in entries.items():
            shape = tuple(getattr(value, "shape", ()))
            if shape and shape != shapes[index]:
                raise ModelFileError(f"{source}: optimizer/{index}/{key[:40]} has shape {shape}; its parameter "
                                     f"has {shapes[index]}")


def restore_optimizer(optimizer: Any, meta: dict[str, Any], tensors: dict[str, Any], source: str = "the checkpoint"
                      ) -> None:
    check_optimizer_state(meta, tensors, [[tuple(p.shape) for p in group["params"]]
                                          for group in optimizer.param_groups], source)
    state = _optimizer_state(meta, tensors, source)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{source}: the optimizer state does not fit ({str(exc)[:160]})") from None


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


__all__ = ["Description", "FORMAT", "FORMAT_VERSION", "ModelFileError", "SUFFIX", "build_policy", "build_space",
           "check_optimizer_state", "check_spaces", "check_statistics", "check_training_state", "convert_sb3_zip",
           "describe_space", "model_bytes", "read_description", "read_tensors", "restore_optimizer",
           "restore_vecnormalize", "vecnormalize_state"]
