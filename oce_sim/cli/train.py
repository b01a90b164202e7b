"""``oce-sim train``: train an RL orchestrator (``oce_sim.learning.training``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from oce_sim.cli.common import (
    MAX_N_ENVS,
    MAX_TIMESTEPS,
    SCENARIO_ARG,
    _clip,
    check_learning_rate,
    check_out,
    check_positive,
    check_seed,
    check_stage,
    console,
    err,
    fail,
    resolve,
)
from oce_sim.config import ENTITIES, STAGE_NAMES, StageConfig


def _stage_words(stage: StageConfig) -> str:
    """``3 (intervention)``, or each entity's stage where they differ."""
    values = [getattr(stage, e) for e in ENTITIES]
    if len(set(values)) == 1:
        return f"{values[0]} ({STAGE_NAMES[values[0]]})"
    return ", ".join(f"{e} {v}" for e, v in zip(ENTITIES, values))


def train(
    scenario: str = SCENARIO_ARG,
    algo: str = typer.Option("factored-ppo", help="factored-ppo (masked PPO, one advantage per segment: the default), "
                                                  "maskable-ppo, ppo or a2c."),
    timesteps: int = typer.Option(200_000, help="Total environment steps."),
    seed: int = typer.Option(0, help="Seed."),
    stage: Optional[int] = typer.Option(None, help="Train at this stage (0-3) instead of the scenario's."),
    n_envs: Optional[int] = typer.Option(None, help="Environments stepped together (default: 16 for factored-ppo, "
                                                    "4 otherwise)."),
    checkpoint_every: int = typer.Option(50_000, help="Checkpoint period in steps (checkpoints fall between updates)."),
    n_steps: int = typer.Option(256, help="Steps per environment between updates (PPO; A2C uses 16; "
                                                  "factored-ppo: one whole episode, this is not used)."),
    out: Path = typer.Option(Path("runs"), help="Folder for run folders scenario__algo__seed__time."),
    resume: bool = typer.Option(False, help="Continue the latest matching run from its last checkpoint."),
    reward: str = typer.Option("expected", help="Training reward: expected (less noise, but computed from the "
                               "customers' hidden state: privileged), observed (the Rx the pipeline publishes, what a "
                               "deployment sees; the horizon truncates) or realized prescriptions (SB3 algorithms)."),
    init_from: Optional[str] = typer.Option(None, help="Behaviour-clone this strategy first (e.g. intervention)."),
    learning_rate: Optional[float] = typer.Option(None, help="Learning rate (default: 3e-4 for factored-ppo, 1e-3 "
                                                            "otherwise)."),
    value_warmup_steps: int = typer.Option(0, help="After --init-from: steps that train only the critic."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    vec: str = typer.Option("native", help="How the envs step: native (the native vector env, every env in the "
                                           "learner's process) or subproc (a worker process per env). Same weights."),
    max_minutes: Optional[float] = typer.Option(None, help="Wall-clock budget: stop after this many minutes of "
                                                "training in all (resumed sessions included), whatever --timesteps."),
    workers: Optional[int] = typer.Option(None, help="factored-ppo: processes the territories step in, at the same "
                                                     "time (default: one per usable CPU, at most --n-envs). Same "
                                                     "weights for any count."),
) -> None:
    """Train an RL orchestrator (TensorBoard logs, checkpoints, learning curve in the run folder)."""
    check_positive("--timesteps", timesteps, maximum=MAX_TIMESTEPS)
    if max_minutes is not None and not (math.isfinite(max_minutes) and 0 < max_minutes <= 7 * 24 * 60):
        fail(f"--max-minutes must be a number of minutes in (0, {7 * 24 * 60}], got {_clip(str(max_minutes), 40)}")
    if n_envs is not None:
        check_positive("--n-envs", n_envs, maximum=MAX_N_ENVS)
    check_positive("--n-steps", n_steps, minimum=2, maximum=MAX_TIMESTEPS)
    check_positive("--checkpoint-every", checkpoint_every, maximum=MAX_TIMESTEPS)
    check_positive("--value-warmup-steps", value_warmup_steps, minimum=0, maximum=MAX_TIMESTEPS)
    check_seed(seed)
    if learning_rate is not None:
        check_learning_rate(learning_rate)
    check_stage(stage)
    check_out("--out", out)
    config = resolve(scenario, stage)
    from oce_sim.learning.training import (  # after the cheap checks: it imports torch
        ALGO_DEFAULTS,
        ALGOS,
        TrainArgs,
    )
    from oce_sim.learning.training import train as do_train

    if algo not in ALGOS:
        fail(f"--algo must be one of {', '.join(ALGOS)}, got {_clip(repr(algo), 80)}")
    if init_from is not None:
        from oce_sim.agents import STRATEGIES

        oracles = ("oracle", "oracle_greedy")  # they read the ground truth: no teacher for a policy of the view
        if init_from not in STRATEGIES or init_from in oracles:
            fail(f"--init-from must be a strategy that uses only the view: "
                 f"{', '.join(s for s in STRATEGIES if s not in oracles)}; got {init_from!r}")
        if algo != "maskable-ppo":
            fail(f"--init-from needs --algo maskable-ppo (got --algo {algo})")
    if reward not in ("expected", "observed", "realized"):
        fail(f"--reward must be expected, observed or realized, got {_clip(repr(reward), 80)}")
    from oce_sim.learning.training import VEC_KINDS

    if vec not in VEC_KINDS:
        fail(f"--vec must be one of {', '.join(VEC_KINDS)}, got {_clip(repr(vec), 80)}")
    if algo == "factored-ppo" and reward == "realized":
        fail("--reward realized is for the SB3 algorithms; factored-ppo splits the expected or observed reward by "
             "customer (env.hcp_rewards), so it trains on --reward expected or observed")
    if algo == "factored-ppo" and vec != "native":
        fail("--vec subproc is for the SB3 algorithms (maskable-ppo, ppo, a2c); factored-ppo steps the native vector "
             "env (--workers spreads it over processes)")
    if workers is not None:
        check_positive("--workers", workers, maximum=MAX_N_ENVS)
        if algo != "factored-ppo" and workers != 1:
            fail(f"--workers is for --algo factored-ppo; {algo} spreads its envs over processes with --vec subproc")
        if algo == "factored-ppo" and workers > (n_envs or ALGO_DEFAULTS[algo]["n_envs"]):
            fail(f"--workers must be at most --n-envs ({n_envs or ALGO_DEFAULTS[algo]['n_envs']}): each worker steps "
                 f"at least one territory; got {workers}")
        from oce_sim.envs.sharded import check_workers

        try:  # the sharded env's own bound (the usable CPUs), here for a message instead of a traceback
            check_workers(workers, n_envs or ALGO_DEFAULTS[algo]["n_envs"])
        except ValueError as exc:
            fail(f"--{exc}")
    args = TrainArgs(scenario=scenario, algo=algo, timesteps=timesteps, seed=seed, out=str(out), stage=stage,
                     n_envs=n_envs, checkpoint_every=checkpoint_every, resume=resume, progress_bar=progress,
                     n_steps=n_steps, batch_size=min(256, n_steps * (n_envs or ALGO_DEFAULTS[algo]["n_envs"])),
                     reward=reward, init_from=init_from, learning_rate=learning_rate,
                     value_warmup_steps=value_warmup_steps, vec=vec, max_minutes=max_minutes, workers=workers)
    # said before any work: without --stage the scenario's own stage is the one trained at
    console.print(f"training at stage {_stage_words(config.stage)}" + (" (--stage)" if stage is not None else
                  f" (scenario {escape(config.name)}'s own; --stage K trains at another)"))
    from oce_sim.learning.training import ResumeMismatchError
    from oce_sim.storage.outputs import OutputError

    try:
        run_dir = do_train(args, log=console.print, warn=lambda line: err.print(f"[yellow]note:[/] {escape(line)}"))
    except (FileNotFoundError, OutputError, ResumeMismatchError) as exc:
        fail(str(exc))
        return
    console.print(f"run folder: {run_dir}  (final/model.safetensors, final/learning_curve.csv, tb/ for TensorBoard)")
