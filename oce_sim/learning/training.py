"""Train an orchestration policy with Stable-Baselines3 / sb3-contrib on the CPU.

Run folders are named ``scenario__algo__seed__time[-N]`` and hold the resolved scenario (``config.yaml``), the
arguments (``args.json``), TensorBoard logs (``tb/``), checkpoints (``checkpoints/model_<steps>_steps.safetensors``,
each complete or absent, with its optimizer state, VecNormalize statistics and learning curve) and ``final/``
(``model.safetensors`` and ``learning_curve.csv``/``.png``, replaced as one set).  Model files are data
(``oce_sim.agents.model_file``): loading one runs no code.  A run folder is locked while it trains, so a second
``--resume`` of it is refused.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import struct
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from oce_sim.agents.model_file import NetArch
from oce_sim.config import (
    ScenarioConfig,
    ScenarioError,
    dump_yaml,
    format_validation_error,
    load_scenario,
    parse_yaml,
    read_json,
    read_yaml_mapping,
)
from oce_sim.config.errors import _clip, _excerpt
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.storage.outputs import (
    OutputError,
    atomic_save_figure,
    atomic_write_bytes,
    atomic_write_text,
    transaction,
)

ALGOS = ("factored-ppo", "maskable-ppo", "ppo", "a2c")
VEC_KINDS = ("subproc", "native")
# Per-algorithm defaults of the TrainArgs fields left None.  factored-ppo: whole-episode rollouts of 16 territories,
# the KPI's own weighting (gamma 1; the tail is discounted inside the terminal value), Adam 3e-4 (docs/PERFORMANCE.md
# section 8).  The SB3 algorithms: tuned for a 15-minute CPU budget (the closing note of the RL issue).
ALGO_DEFAULTS: dict[str, dict[str, Any]] = {
    "factored-ppo": dict(n_envs=16, learning_rate=3e-4, gamma=1.0),
    "maskable-ppo": dict(n_envs=4, learning_rate=1e-3, gamma=0.99),
    "ppo": dict(n_envs=4, learning_rate=1e-3, gamma=0.99),
    "a2c": dict(n_envs=4, learning_rate=1e-3, gamma=0.99),
}


@dataclass
class TrainArgs:
    scenario: str = "default"
    # factored-ppo: masked PPO with one advantage per segment head (oce_sim.learning.factored_ppo); the only one measured to
    # beat the intervention heuristic from scratch in 15 minutes (docs/PERFORMANCE.md section 8)
    algo: str = "factored-ppo"
    timesteps: int = 200_000
    seed: int = 0
    out: str = "runs"
    stage: int | None = None
    n_envs: int | None = None  # None: the algorithm's default (ALGO_DEFAULTS)
    checkpoint_every: int = 50_000
    resume: bool = False
    learning_rate: float | None = None  # None: the algorithm's default
    n_steps: int = 256  # SB3 algorithms (factored-ppo's rollout is one whole episode of every territory)
    batch_size: int = 256  # SB3 algorithms (factored-ppo: 4 minibatches per rollout)
    n_epochs: int = 10
    gamma: float | None = None  # None: the algorithm's default
    ent_coef: float = 0.0
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    progress_bar: bool = True
    reward: str = "expected"  # expected-value reward: same mean as realised profit, far less noise
    init_from: str | None = None  # behaviour-clone this strategy before PPO (kickstarting)
    init_episodes: int = 40
    init_epochs: int = 40
    value_warmup_steps: int = 0  # after a warm start: train only the critic this long (opt-in)
    # native (default): oce_sim.envs.vector in the learner's process; subproc: a SubprocVecEnv worker per env.  Same
    # seeds, rollouts and weights either way; native measured 239 vs 144 steps/s (default scenario, 4 envs, 2 busy
    # cores; docs/PERFORMANCE.md section 6).
    vec: str = "native"
    # factored-ppo: processes the territories step in, at the same time (oce_sim.envs.sharded); None: one per CPU this
    # process may use, at most n_envs.  The same weights for any count (the territories never interact).
    workers: int | None = None
    # a wall-clock budget: stop once training has run this long in all (resumed sessions included), whatever
    # ``timesteps`` says; the final model is the one at the stop (experiments/baseline_table.py --train-minutes)
    max_minutes: float | None = None


# What a resumed session may change: how long and how it runs, never what the run is.  learning_rate applies from the
# resume on (as SB3's load does); the rest does not change the weights (workers and vec: tested).
RESUMABLE_FIELDS = frozenset({"timesteps", "out", "checkpoint_every", "resume", "learning_rate", "progress_bar",
                              "workers", "vec", "max_minutes"})


class ResumeMismatchError(ValueError):
    """``--resume`` of a run with settings that would make it a different run, or whose run folder cannot be read
    (the run folder is left as it was)."""


MAX_ARGS_BYTES = 64 * 1024  # args.json: about 1 KB as train writes it
_Path = Annotated[str, Field(max_length=4096)]  # PATH_MAX on Linux
_Name = Annotated[str, Field(max_length=64)]
_Count = Annotated[int, Field(ge=0, le=2**63 - 1)]


class RecordedArgs(BaseModel):
    """``args.json`` as :func:`train` writes it (``TrainArgs``, every field optional: an older run folder lacks some),
    typed and bounded: it is read back from a folder anyone may have edited."""

    # strict: a bool is not an int and a string is not a number; finite floats only; unknown keys are refused
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    scenario: _Path | None = None
    algo: _Name | None = None
    timesteps: _Count | None = None
    seed: _Count | None = None
    out: _Path | None = None
    stage: Annotated[int, Field(ge=0, le=3)] | None = None
    n_envs: _Count | None = None
    checkpoint_every: _Count | None = None
    resume: bool | None = None
    learning_rate: float | None = None
    n_steps: _Count | None = None
    batch_size: _Count | None = None
    n_epochs: _Count | None = None
    gamma: float | None = None
    ent_coef: float | None = None
    net_arch: NetArch | None = None
    progress_bar: bool | None = None
    reward: _Name | None = None
    init_from: _Name | None = None
    init_episodes: _Count | None = None
    init_epochs: _Count | None = None
    value_warmup_steps: _Count | None = None
    vec: _Name | None = None
    workers: _Count | None = None
    max_minutes: float | None = None


def read_recorded_args(path: Path) -> dict[str, Any] | None:
    """A run folder's ``args.json`` (None if absent), read within ``MAX_ARGS_BYTES`` and checked against
    :class:`RecordedArgs`; anything else is a ``ResumeMismatchError`` naming the file and what is wrong."""
    try:
        recorded = read_json(path, MAX_ARGS_BYTES)
        if not isinstance(recorded, dict):
            raise ValueError(f"it must hold a JSON object of the run's arguments, not a {type(recorded).__name__}")
        RecordedArgs.model_validate(recorded)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ResumeMismatchError(f"--resume: cannot read {path} ({exc.strerror}); start a new run") from None
    except ValidationError as exc:
        problems = format_validation_error(exc, RecordedArgs)
        raise ResumeMismatchError(f"--resume: {path} is not the arguments of a run: {'; '.join(problems[:3])}; "
                                  "start a new run") from None
    except ValueError as exc:
        raise ResumeMismatchError(f"--resume: cannot read {path} ({exc}); start a new run") from None
    return recorded


def resolved(args: TrainArgs) -> TrainArgs:
    """``args`` with every field left None set to its algorithm's default."""
    if args.algo not in ALGOS:
        raise ValueError(f"--algo must be one of {', '.join(ALGOS)}, got {args.algo!r}")
    defaults = {k: v for k, v in ALGO_DEFAULTS[args.algo].items() if getattr(args, k) is None}
    args = replace(args, **defaults) if defaults else args
    if args.algo == "factored-ppo" and args.workers is None:
        from oce_sim.envs.sharded import default_workers

        args = replace(args, workers=default_workers(args.n_envs))
    return args


def model_kwargs(args: TrainArgs) -> dict[str, Any]:
    """Constructor arguments of the SB3 model for ``args`` (besides the policy, env and log folder)."""
    args = resolved(args)
    kwargs: dict[str, Any] = dict(learning_rate=args.learning_rate, gamma=args.gamma, ent_coef=args.ent_coef,
                                  n_steps=args.n_steps, seed=args.seed, device="cpu", verbose=0,
                                  policy_kwargs=dict(net_arch=list(args.net_arch)))
    if args.algo != "a2c":
        kwargs.update(batch_size=args.batch_size, n_epochs=args.n_epochs)
    else:
        kwargs["n_steps"] = 16
    return kwargs


def training_scenario(args: TrainArgs) -> ScenarioConfig:
    """The scenario as training runs it: the training reward, and KPIs only at episode end (training reads the
    Monitor's episode returns, not per-step KPIs)."""
    return load_scenario(args.scenario, stage=args.stage,
                         overrides={"env": {"reward": args.reward, "info_kpis": "episode_end"}})


def make_env_fn(config: ScenarioConfig, rank: int = 0):
    """An env factory for the VecEnv.  Monitor (no file) adds ``info["episode"]``, which the checkpoint callback
    records: the learning curve lives in the checkpoints, so that a resume never counts a step twice."""

    def _init():
        import multiprocessing
        import signal

        from stable_baselines3.common.monitor import Monitor

        if multiprocessing.parent_process() is not None:
            # A SubprocVecEnv worker: Ctrl-C is for the learner, which stops cleanly and writes a checkpoint;
            # a worker that died of it would take the pipes (and the final checkpoint) down with it.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return Monitor(TerritoryEnv(scenario=config))

    return _init


class ActionMasksFromInfo(VecEnvWrapper):
    """Answer sb3-contrib's ``env_method("action_masks")`` from the masks the envs put in their infos.

    ``TerritoryEnv`` returns the next decision's mask as ``info["action_mask"]`` from ``reset`` and ``step``.
    Under ``SubprocVecEnv`` this saves one pipe round trip to every worker per step.  After an automatic reset
    the mask comes from the reset's info.  Any other method call, or envs whose infos carry no mask, go to the
    wrapped VecEnv as usual.
    """

    KEY = "action_mask"

    def __init__(self, venv: VecEnv):
        super().__init__(venv)
        self._masks: list[np.ndarray | None] = [None] * self.num_envs

    def reset(self):
        obs = self.venv.reset()
        self.reset_infos = list(self.venv.reset_infos)
        self._masks = [info.get(self.KEY) for info in self.reset_infos]
        return obs

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.reset_infos = list(self.venv.reset_infos)
        self._masks = [(self.reset_infos[i] if done else infos[i]).get(self.KEY) for i, done in enumerate(dones)]
        return obs, rewards, dones, infos

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        if method_name == "action_masks" and not method_args and not method_kwargs:
            wanted = range(self.num_envs) if indices is None else ([indices] if isinstance(indices, int) else indices)
            masks = [self._masks[i] for i in wanted]
            if all(mask is not None for mask in masks):
                return [mask.copy() for mask in masks]  # type: ignore[union-attr]
        return self.venv.env_method(method_name, *method_args, indices=indices, **method_kwargs)


RUN_LOCK = ".lock"
MODEL_FILE = "model.safetensors"
CHECKPOINT = re.compile(r"^model_(\d+)_steps\.safetensors$")


def model_path(run: Path) -> Path:
    """The final model of a run folder."""
    return run / "final" / MODEL_FILE


def _run_sort_key(path: Path) -> tuple[str, int]:
    """Run folders by start time, then by the ``-N`` suffix of runs started in the same second."""
    stamp = path.name.rpartition("__")[2]
    suffix = stamp[16:]
    return stamp[:15], int(suffix) if suffix.isdigit() else 1


def _latest_run(out: Path, prefix: str) -> Path | None:
    runs = sorted((p for p in out.glob(f"{prefix}__*") if p.is_dir() and (p / "args.json").exists()),
                  key=_run_sort_key)
    return runs[-1] if runs else None


def _checkpoints(run: Path) -> list[tuple[Path, int]]:
    """A run's checkpoints, most steps first."""
    found = []
    for path in (run / "checkpoints").glob("model_*_steps.safetensors"):
        match = CHECKPOINT.match(path.name)
        if match:
            found.append((path, int(match.group(1))))
    return sorted(found, key=lambda item: -item[1])


def _latest_checkpoint(run: Path) -> tuple[Path | None, int]:
    checkpoints = _checkpoints(run)
    return checkpoints[0] if checkpoints else (None, 0)


def _safe_name(name: str) -> str:
    """A scenario name as one path component: a name like ``../../x`` must not lead outside ``--out``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "scenario"


def _new_run_folder(out: Path, prefix: str, config: ScenarioConfig, args: TrainArgs) -> Path:
    """Create ``out/prefix__TIME[-N]`` complete with config.yaml and args.json, or not at all.

    The folder is filled under a hidden name and renamed into place; a rename onto an existing run fails
    (a non-empty folder), so two runs started in the same second get ``-2``, ``-3``, ...
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    for path in out.glob(f".{prefix}.creating-*"):  # left by a killed start; a minute is ample to fill one
        if time.time() - path.stat().st_mtime > 60:
            shutil.rmtree(path, ignore_errors=True)
    staging = out / f".{prefix}.creating-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot write in it ({exc.strerror})") from None
    try:
        atomic_write_text(staging / "config.yaml", dump_yaml(config))
        atomic_write_text(staging / "args.json", json.dumps(asdict(args), indent=2))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1, 10_000):
            run = out / f"{prefix}__{stamp}{'' if n == 1 else f'-{n}'}"
            if run.exists():
                continue
            try:
                os.rename(staging, run)
                return run
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        raise RuntimeError(f"no free run folder name for {prefix}__{stamp}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def truncate_event_files(tb: Path, step: int) -> int:
    """Drop TensorBoard events after ``step`` (and a torn last record), so that a resumed run's steps never
    go backwards.  Returns the number of records dropped."""
    from tensorboard.compat.proto import event_pb2

    dropped = 0
    for path in sorted(tb.rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        kept, pos = bytearray(), 0
        while pos + 12 <= len(data):  # TFRecord: u64 length, u32 crc, payload, u32 crc
            (length,) = struct.unpack_from("<Q", data, pos)
            end = pos + 12 + length + 4
            if end > len(data):
                break
            try:
                event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            except Exception:  # a torn record: nothing after it is trustworthy
                break
            if event.step <= step:
                kept += data[pos:end]
            else:
                dropped += 1
            pos = end
        if len(kept) != len(data):
            dropped += pos < len(data)
            atomic_write_bytes(path, bytes(kept))
    return dropped


Episode = tuple[float, float, float, float]  # step it ended at, reward, length, wall seconds of training


class Checkpointer(BaseCallback):
    """Checkpoints at rollout boundaries, the learning curve as it goes, and a clean stop on Ctrl-C.

    At a boundary the weights have just been updated and the step count is a multiple of the rollout size, so a
    resumed run ends at the same step count as an uninterrupted one.  After Ctrl-C the run stops at its next
    step and checkpoints the last boundary: the weights have not changed since, and the reward statistics are
    the ones snapshotted there.
    """

    def __init__(self, every: int, save: Callable[[int, Any, list[Episode]], Path], episodes: list[Episode],
                 elapsed: Callable[[], float], saved_at: int | None = None):
        super().__init__()
        self.every = every
        self.save = save
        self.episodes = episodes
        self.elapsed = elapsed
        self.stop_requested = False
        self.stopped = False  # stopped inside a rollout (so the model is not at a boundary)
        self.saved_at = saved_at  # the step of the checkpoint on disk that matches the model now
        self.last_path: Path | None = None
        self._boundary: tuple[int, Any] | None = None

    def checkpoint(self, steps: int, stats: Any) -> None:
        if self.saved_at != steps:
            self.last_path = self.save(steps, stats, [e for e in self.episodes if e[0] <= steps])
            self.saved_at = steps

    def _on_rollout_start(self) -> None:
        from oce_sim.agents.model_file import vecnormalize_state

        steps = int(self.model.num_timesteps)
        self._boundary = (steps, vecnormalize_state(self.model.get_vec_normalize_env()))
        if self.saved_at is None or steps - self.saved_at >= self.every or self.stop_requested:
            self.checkpoint(*self._boundary)

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            episode = info.get("episode")
            if episode is not None:
                self.episodes.append((float(self.num_timesteps), float(episode["r"]), float(episode["l"]),
                                      self.elapsed()))
        if self.stop_requested and self._boundary is not None:
            self.checkpoint(*self._boundary)
            self.stopped = True
            return False
        return True


def train(args: TrainArgs, log: Callable[[str], None] = print, warn: Callable[[str], None] | None = None) -> Path:
    """Train (or resume) and return the run folder; ``log`` gets the lines a user should read, ``warn`` (default:
    ``log``) the notes about what was skipped (a damaged checkpoint).

    Ctrl-C (SIGINT) stops at the next step, writes a checkpoint, says where and raises KeyboardInterrupt.
    """
    from oce_sim.storage.outputs import exclusive_lock

    args = resolved(args)
    if args.algo == "factored-ppo":  # what it cannot honour is refused before any work, not ignored
        if args.init_from:
            raise ValueError("init_from (behaviour cloning) needs algo maskable-ppo")
        if args.reward == "realized":
            raise ValueError("factored-ppo trains on reward expected (privileged) or observed: the environment splits "
                             "those by customer, not the realised Poisson draws")
        if args.vec != "native":
            raise ValueError("factored-ppo steps the native vector env (vec='native'); workers=W spreads it over W "
                             "processes")
        if not 1 <= args.workers <= args.n_envs:
            raise ValueError(f"workers must be between 1 and n_envs ({args.n_envs}), got {args.workers}")
    elif args.workers not in (None, 1):
        raise ValueError(f"workers is for algo factored-ppo; {args.algo} spreads its envs over processes with "
                         "vec='subproc'")
    config = training_scenario(args)
    out = Path(args.out)
    prefix = f"{_safe_name(config.name)}__{args.algo}__{args.seed}"
    if args.resume:
        run = _latest_run(out, prefix)
        if run is None:
            raise FileNotFoundError(f"--resume: no earlier run {prefix}__* under {out} (a run of another algorithm "
                                    f"resumes with its --algo; the default is {TrainArgs.algo})")
    else:
        run = _new_run_folder(out, prefix, config, args)
    with exclusive_lock(run / RUN_LOCK, f"run folder {run}"):
        if args.resume:  # under the lock: a run another process is writing is refused as that first
            _check_resume_settings(run, args, config)
        for temp in [*run.glob("checkpoints/.*.tmp"), *run.glob("tb/**/.*.tmp")]:
            temp.unlink()  # a checkpoint or log rewrite a kill cut short (the lock says no one is writing it)
        start = _resume_point(run, args, config, log, warn or log) if args.resume else None
        if start is not None:
            dropped = truncate_event_files(run / "tb", int(start[0]["num_timesteps"]))
            log(f"resuming {run.name} from step {start[0]['num_timesteps']:,} ({start[2].name})"
                + (f"; dropped {dropped} TensorBoard record(s) logged after it" if dropped else ""))
        from oce_sim.world.warm import warm

        warm(notify=lambda processes, seconds: log(f"compiling the simulation kernels once for this install "
                                                   f"({processes} processes, about {seconds:.0f} s)..."))
        if args.algo == "factored-ppo":
            _train_factored_session(args, config, run, start, log)
        else:
            _train_session(args, config, run, start, log)
    return run


def _train_session(args: TrainArgs, config: ScenarioConfig, run: Path,
                   start: tuple[dict[str, Any], dict[str, Any], Path] | None, log: Callable[[str], None]) -> None:
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.vec_env import (
        DummyVecEnv,
        SubprocVecEnv,
        VecNormalize,
    )

    from oce_sim.agents import model_file

    # The learner keeps one torch thread (with SubprocVecEnv workers: measured 166 vs 49 steps/s against in-process
    # DummyVecEnv stepping with torch's default threads on this 2-core machine).
    torch.set_num_threads(1)
    if args.vec == "native":
        # The native vector env: every territory in this process, stepped in lockstep; masks from the batch.
        from oce_sim.envs.vector import make_sb3_vec_env

        venv = make_sb3_vec_env(args.n_envs, scenario=config, monitor=True)
    elif args.vec == "subproc":
        vec_cls = SubprocVecEnv if args.n_envs > 1 else DummyVecEnv
        venv = ActionMasksFromInfo(vec_cls([make_env_fn(config, i) for i in range(args.n_envs)]))
    else:
        raise ValueError(f"vec must be one of {VEC_KINDS}, got {args.vec!r}")
    try:
        venv.seed(args.seed)
        # Episode returns are hundreds of reward units: normalise rewards (not observations, already in [0, 1])
        # so that the value function can learn; the statistics are in every checkpoint.
        vec = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=args.gamma)
        cls = {"maskable-ppo": MaskablePPO, "ppo": PPO, "a2c": A2C}[args.algo]
        model = cls("MlpPolicy", vec, tensorboard_log=str(run / "tb"), **model_kwargs(args))
        episodes, elapsed_before = _restore(model, start)
        if start is not None:
            meta, tensors, source = start
            model_file.restore_vecnormalize(vec, meta, tensors, str(source))
        elif args.init_from:
            if args.algo != "maskable-ppo":
                raise ValueError("--init-from needs --algo maskable-ppo")
            behaviour_clone(model, config, args.init_from, args.init_episodes, args.init_epochs, args.seed)
        session_start = time.time()

        def elapsed() -> float:
            return elapsed_before + time.time() - session_start

        def save(steps: int, stats: Any, kept: list[Episode]) -> Path:
            path = run / "checkpoints" / f"model_{steps}_steps{model_file.SUFFIX}"
            atomic_write_bytes(path, model_file.model_bytes(
                model, args.algo, _stage_of(config), config.name, steps, stats, np.array(kept), elapsed(),
                list(args.net_arch), extra={"reward": args.reward}))
            return path

        checkpointer = Checkpointer(max(1, args.checkpoint_every), save, episodes, elapsed,
                                    saved_at=int(start[0]["num_timesteps"]) if start else None)
        callbacks: list[Any] = [checkpointer]
        if args.init_from and start is None and args.value_warmup_steps > 0:
            callbacks.append(ActorFreeze(args.value_warmup_steps))
        remaining = max(0, args.timesteps - model.num_timesteps)
        if args.max_minutes is not None:
            callbacks.append(WallClockLimit(60.0 * args.max_minutes, elapsed))
            if elapsed() >= 60.0 * args.max_minutes:
                remaining = 0  # a resumed run whose budget is already spent: just write the final set
        with _graceful_sigint(checkpointer, log):
            if remaining:
                model.learn(total_timesteps=remaining, callback=CallbackList(callbacks),
                            progress_bar=args.progress_bar, reset_num_timesteps=start is None, tb_log_name="run")
        if checkpointer.stopped:  # (a Ctrl-C during the last update lets the run finish: nothing is lost)
            log(f"checkpoint written: {checkpointer.last_path} (step {checkpointer.saved_at:,}); continue with the "
                "same command and --resume")
            raise KeyboardInterrupt
        steps = int(model.num_timesteps)
        checkpointer.checkpoint(steps, model_file.vecnormalize_state(vec))
        _write_final(run, run / "checkpoints" / f"model_{steps}_steps{model_file.SUFFIX}")
    finally:
        venv.close()


@contextlib.contextmanager
def _graceful_sigint(checkpointer: Checkpointer, log: Callable[[str], None]) -> Iterator[None]:
    """The first Ctrl-C asks the checkpointer to stop cleanly; a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if checkpointer.stop_requested:
            raise KeyboardInterrupt
        checkpointer.stop_requested = True
        log("interrupted: stopping at the next step and writing a checkpoint (Ctrl-C again to stop at once)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stage_of(config: ScenarioConfig) -> int | dict[str, int]:
    stage = config.stage.model_dump()
    return stage["sales"] if len(set(stage.values())) == 1 else stage


def _differences(before: Any, now: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, before, now) of every leaf where two JSON-like values differ."""
    if isinstance(before, dict) and isinstance(now, dict):
        return [d for key in dict.fromkeys([*before, *now])
                for d in _differences(before.get(key, "(absent)"), now.get(key, "(absent)"),
                                      f"{path}.{key}" if path else str(key))]
    return [] if before == now else [(path, before, now)]


def _check_resume_settings(run: Path, args: TrainArgs, config: ScenarioConfig) -> None:
    """Refuse ``--resume`` when this command would train a different run than the one in ``run``: an argument outside
    ``RESUMABLE_FIELDS`` or the resolved scenario (e.g. the scenario file edited since) differs from what the run
    folder records.  Run folders of an older oce-sim without ``args.json`` are not checked."""

    def refuse(what: str, found: list[tuple[str, Any, Any]]) -> None:
        shown = "; ".join(f"{_clip(name, 60)}: run {_clip(_excerpt(before), 60)}, now {_clip(_excerpt(after), 60)}"
                          for name, before, after in found[:5])  # excerpts: an edited file may hold huge values
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        raise ResumeMismatchError(
            f"--resume: {run.name} was trained with other {what}: {shown}{more}. Resume with the run's settings "
            f"(see {run / ('args.json' if what == 'arguments' else 'config.yaml')}), or start a new run without "
            "--resume")

    recorded = read_recorded_args(run / "args.json")
    if recorded is None:
        return
    now = json.loads(json.dumps(asdict(args)))  # tuples as lists, as args.json holds them
    # scenario and stage are checked as the resolved scenario below (a path to the same file, or --stage naming the
    # scenario's own stage, is the same run); fields an older args.json lacks are not compared
    compared = (recorded.keys() & now.keys()) - RESUMABLE_FIELDS - {"scenario", "stage"}
    found = [(k, recorded[k], now[k]) for k in recorded if k in compared and recorded[k] != now[k]]
    if found:
        refuse("arguments", found)
    if not (run / "config.yaml").exists():
        return
    try:  # the bounded reader of scenario files: config.yaml may have been edited (or replaced by an alias bomb)
        scenario = read_yaml_mapping(run / "config.yaml")
    except ScenarioError as exc:
        raise ResumeMismatchError(f"--resume: cannot read {run / 'config.yaml'} ({'; '.join(exc.problems)}); start "
                                  "a new run") from None
    found = _differences(scenario, parse_yaml(dump_yaml(config).encode("utf-8")))  # read the same way
    if found:
        refuse("scenario settings", found)


def _resume_point(run: Path, args: TrainArgs, config: ScenarioConfig, log: Callable[[str], None],
                  warn: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, Any], Path] | None:
    """The latest readable checkpoint of ``run`` (description, tensors, path): everything it restores is checked
    before it is used (``model_file.check_training_state``), and an unreadable or damaged one is skipped for the
    one before, with a note to ``warn`` naming it and why.  None (training from step 0, said so) if the run has no
    checkpoint yet; ``FileNotFoundError`` if none is readable."""
    from oce_sim.agents import model_file
    from oce_sim.agents.model_file import ModelFileError, read_description, read_tensors

    checkpoints = _checkpoints(run)
    if not checkpoints:
        if any((run / "checkpoints").glob("*.zip")):
            raise FileNotFoundError(f"--resume: {run} holds only pickle-based .zip checkpoints of an older oce-sim, "
                                    "which are not loaded (loading one can run code); start a new run")
        log(f"--resume: {run.name} has no checkpoint yet; training it from step 0")
        return None
    env = TerritoryEnv(scenario=config)  # the run's spaces (no world is built until a reset)
    for path, steps in checkpoints:
        try:
            meta = read_description(path)
            if meta.get("algo") != args.algo or meta.get("num_timesteps") != steps:
                raise ModelFileError("not this run's checkpoint (algorithm or step count differ)")
            if list(meta.get("net_arch", [])) != list(args.net_arch):
                raise ModelFileError(f"net_arch {meta.get('net_arch')} differs from this run's {args.net_arch}")
            tensors = read_tensors(path)
            if args.algo == "factored-ppo":
                if "value_scale" not in meta:  # None: saved before the first rollout set it
                    raise ModelFileError("no value scale in it")
            elif (meta.get("vecnormalize") or {}).get("ret_count") is None or "vecnormalize/ret_mean" not in tensors:
                raise ModelFileError("no VecNormalize statistics in it")
            if "episodes" not in tensors or "optimizer" not in meta:
                raise ModelFileError("no optimizer state or learning curve in it")
            model_file.check_training_state(meta, tensors, env.observation_space, env.action_space, str(path))
            return meta, tensors, path
        except (ModelFileError, OSError) as exc:
            why = str(exc).removeprefix(str(path)).removeprefix(":").strip()  # the note names the checkpoint
            warn(f"--resume: skipping checkpoint {path.name} ({why}); trying the one before")
    raise FileNotFoundError(f"--resume: none of the {len(checkpoints)} checkpoints of {run} is readable; "
                            "start a new run")


def _restore(model: Any, start: tuple[dict[str, Any], dict[str, Any], Path] | None) -> tuple[list[Episode], float]:
    """Put a checkpoint's policy, optimizer state and counts into ``model`` (an SB3 model or ``FactoredPPO``); returns
    its learning curve and the training seconds it had run.  Nothing to restore: ``([], 0.0)``."""
    from oce_sim.agents import model_file

    if start is None:
        return [], 0.0
    meta, tensors, source = start
    model_file.check_spaces(meta, model.observation_space, model.action_space, str(source), "this scenario")
    model.policy.load_state_dict({k[len("policy/"):]: v for k, v in tensors.items() if k.startswith("policy/")})
    model_file.restore_optimizer(model.policy.optimizer, meta, tensors, str(source))
    model.num_timesteps, model._n_updates = int(meta["num_timesteps"]), int(meta.get("n_updates", 0))
    episodes: list[Episode] = [tuple(row) for row in tensors["episodes"].double().numpy().tolist()]
    return episodes, float(meta.get("elapsed_seconds", 0.0))


def _train_factored_session(args: TrainArgs, config: ScenarioConfig, run: Path,
                            start: tuple[dict[str, Any], dict[str, Any], Path] | None,
                            log: Callable[[str], None]) -> None:
    """``factored-ppo`` (``oce_sim.learning.factored_ppo``): the same run folder, checkpoints, final set, wall-clock budget,
    Ctrl-C and resume as the SB3 algorithms; TensorBoard scalars under ``tb/run_1``.  Checkpoints fall between
    rollouts (every rollout is one whole episode of each territory), and every random choice of a rollout follows
    from the seed and the rollout's number, so a resumed run ends where an uninterrupted one would."""
    import torch
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from oce_sim.agents import model_file
    from oce_sim.learning.factored_ppo import FactoredPPO, FactoredSettings

    torch.set_num_threads(1)
    settings = FactoredSettings(n_envs=int(args.n_envs), learning_rate=float(args.learning_rate),
                                n_epochs=args.n_epochs, gamma=float(args.gamma), ent_coef=args.ent_coef)
    model = FactoredPPO(config, settings, list(args.net_arch), args.seed, workers=int(args.workers))
    episodes, elapsed_before = _restore(model, start)
    if start is not None:
        meta = start[0]
        for group in model.policy.optimizer.param_groups:  # this session's learning rate, as SB3 applies it
            group["lr"] = settings.learning_rate
        scale = meta.get("value_scale")
        model.value_scale = None if scale is None else float(scale)
    session_start = time.time()

    def elapsed() -> float:
        return elapsed_before + time.time() - session_start

    saved_at: int | None = int(start[0]["num_timesteps"]) if start else None
    steps_at_start = model.num_timesteps

    def checkpoint() -> Path:
        nonlocal saved_at
        steps = model.num_timesteps
        path = run / "checkpoints" / f"model_{steps}_steps{model_file.SUFFIX}"
        if saved_at != steps:
            kept = [e for e in episodes if e[0] <= steps]
            extra = {"value_scale": model.value_scale, "settings": asdict(settings), "reward": args.reward}
            atomic_write_bytes(path, model_file.model_bytes(
                model, args.algo, _stage_of(config), config.name, steps, ({}, {}), np.array(kept), elapsed(),
                list(args.net_arch), extra=extra))
            saved_at = steps
        return path

    class _Stop:  # what _graceful_sigint sets
        stop_requested = False

    stop = _Stop()
    budget = None if args.max_minutes is None else 60.0 * args.max_minutes
    writer = SummaryWriter(log_dir=str(run / "tb" / "run_1"))
    try:
        with _graceful_sigint(stop, log), tqdm(total=args.timesteps, initial=min(model.num_timesteps, args.timesteps),
                                               unit="step", disable=not args.progress_bar, desc="factored-ppo") as bar:
            if saved_at is None:
                checkpoint()
            while model.num_timesteps < args.timesteps and (budget is None or elapsed() < budget):
                if stop.stop_requested:
                    break
                batch = model.collect()
                stats = model.update(batch)
                steps = model.num_timesteps
                wall = elapsed()
                episodes.extend((float(steps), float(r), float(model.episode_steps), wall)
                                for r in batch["episode_return"])
                writer.add_scalar("rollout/ep_rew_mean", float(np.mean(batch["episode_return"])), steps)
                for name, value in stats.items():
                    writer.add_scalar(f"train/{name}", value, steps)
                writer.add_scalar("time/fps", (steps - steps_at_start) / max(1e-9, time.time() - session_start), steps)
                bar.update(min(steps, args.timesteps) - bar.n)
                if saved_at is None or steps - saved_at >= args.checkpoint_every:
                    checkpoint()
        path = checkpoint()
    finally:
        writer.close()
        model.close()
    finished = model.num_timesteps >= args.timesteps or (budget is not None and elapsed() >= budget)
    if stop.stop_requested and not finished:
        log(f"checkpoint written: {path} (step {saved_at:,}); continue with the same command and --resume")
        raise KeyboardInterrupt
    _write_final(run, path)


def _write_final(run: Path, checkpoint: Path) -> None:
    """``final/``: model.safetensors (the last checkpoint) and the learning curve, swapped in as one set."""
    from oce_sim.agents.model_file import read_tensors

    with transaction(run / "final", "train") as staging:
        (staging / MODEL_FILE).write_bytes(checkpoint.read_bytes())
        write_learning_curve(staging, read_tensors(checkpoint)["episodes"].double().numpy(), run.name)


class WallClockLimit(BaseCallback):
    """Stop training once ``elapsed()`` (training wall time, earlier sessions of a resumed run included) reaches
    ``seconds``."""

    def __init__(self, seconds: float, elapsed: Callable[[], float]):
        super().__init__()
        self.seconds = seconds
        self.elapsed = elapsed

    def _on_step(self) -> bool:
        return self.elapsed() < self.seconds


class ActorFreeze(BaseCallback):
    """Keep the (warm-started) actor fixed for ``steps`` so that the critic learns before PPO moves it."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps
        self._frozen = False

    def _actor_parameters(self) -> list[Any]:
        policy = self.model.policy
        return [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters()]

    def _on_training_start(self) -> None:
        self._frozen = True
        for parameter in self._actor_parameters():
            parameter.requires_grad_(False)

    def _on_step(self) -> bool:
        if self._frozen and self.num_timesteps >= self.steps:
            for parameter in self._actor_parameters():
                parameter.requires_grad_(True)
            self._frozen = False
        return True


def behaviour_clone(model: Any, config: ScenarioConfig, teacher_name: str, episodes: int, epochs: int, seed: int,
                    entropy_weight: float = 0.02) -> float:
    """Fit the policy to a strategy's masked actions (cross-entropy), keeping some entropy for exploration.

    Teacher episodes use seeds far from the training seeds.  Returns the final mean log-likelihood.
    """
    import torch

    from oce_sim.agents import make_strategy

    teacher = make_strategy(teacher_name)
    teacher_config = load_scenario(config.model_dump(mode="python"))
    observations, actions, masks = [], [], []
    for episode in range(episodes):
        env = TerritoryEnv(scenario=teacher_config)
        obs, _ = env.reset(seed=seed + 1_000_000 + episode)
        teacher.reset(env, seed)
        done = False
        while not done:
            mask = env.action_masks()
            action, _ = teacher.predict(obs, action_masks=mask)
            observations.append(obs)
            actions.append(action)
            masks.append(mask)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    obs_t = torch.as_tensor(np.array(observations), dtype=torch.float32)
    act_t = torch.as_tensor(np.array(actions), dtype=torch.int64)
    mask_a = np.array(masks)
    policy = model.policy
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    log_likelihood = float("nan")
    for _ in range(epochs):
        order = torch.randperm(len(obs_t), generator=generator)
        for start in range(0, len(order), 256):
            idx = order[start:start + 256]
            _, log_prob, entropy = policy.evaluate_actions(obs_t[idx], act_t[idx], action_masks=mask_a[idx.numpy()])
            loss = -log_prob.mean() - entropy_weight * entropy.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            log_likelihood = float(log_prob.mean().detach())
    return log_likelihood


def learning_curve(episodes: np.ndarray) -> pd.DataFrame:
    """One row per finished episode, in step order: the step it ended at, its reward and length, wall time."""
    frame = pd.DataFrame(np.asarray(episodes, dtype=np.float64).reshape(-1, 4),
                         columns=["timesteps", "episode_reward", "episode_length", "wall_seconds"])
    frame = frame.sort_values("timesteps", kind="stable").reset_index(drop=True)
    frame["timesteps"] = frame["timesteps"].astype(np.int64)
    frame["episode_length"] = frame["episode_length"].astype(np.int64)
    return frame[["episode_reward", "episode_length", "wall_seconds", "timesteps"]]


def write_learning_curve(folder: Path, episodes: np.ndarray, title: str) -> pd.DataFrame:
    curve = learning_curve(episodes)
    atomic_write_text(folder / "learning_curve.csv", curve.to_csv(index=False))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(curve["timesteps"], curve["episode_reward"], alpha=0.3, label="episode")
    window = max(1, len(curve) // 20)
    ax.plot(curve["timesteps"], curve["episode_reward"].rolling(window, min_periods=1).mean(), label=f"rolling mean ({window})")
    ax.set_xlabel("timesteps")
    ax.set_ylabel("episode reward (profit / reward_scale_usd)")
    ax.set_title(title)
    ax.legend()
    atomic_save_figure(fig, folder / "learning_curve.png")
    plt.close(fig)
    return curve


def run_stage(run: Path) -> int | None:
    """The stage a run was trained at (so it is evaluated with the same information and authority)."""
    path = run / "config.yaml"
    if not path.exists():
        return None
    config = load_scenario(path)
    stages = {config.stage.customer, config.stage.sales, config.stage.marketing, config.stage.it}
    return stages.pop() if len(stages) == 1 else None


__all__ = ["ALGOS", "ActionMasksFromInfo", "MODEL_FILE", "TrainArgs", "learning_curve", "model_path", "run_stage", "train",
           "training_scenario", "truncate_event_files", "write_learning_curve"]
