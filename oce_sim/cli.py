"""The ``oce-sim`` command line: scenarios, validate, run, compare, whatif, roadmap, train, bench, calibrate."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from oce_sim.config import ScenarioConfig, ScenarioError, builtin_scenarios, load_scenario

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Simulate orchestrated customer engagement: compare maturity stages, train RL orchestrators, benchmark.",
)
console = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True)

def show_version(value: bool) -> None:
    if value:
        from oce_sim import __version__

        typer.echo(f"oce-sim {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: bool = typer.Option(False, "--version", callback=show_version, is_eager=True,
                                 help="Show the installed version and exit."),
) -> None:
    """Simulate orchestrated customer engagement: compare maturity stages, train RL orchestrators, benchmark."""


SCENARIO_ARG = typer.Argument("default", help="Built-in scenario name (see `oce-sim scenarios`) or a YAML path.")


# Argument limits, checked before any work starts (exit 2 naming the argument and what is allowed).
MAX_SEED = 2**32 - 1  # numpy's legacy seeding (used by Stable-Baselines3) takes 32-bit seeds
MAX_EPISODES = 100_000
MAX_TIMESTEPS = 10**10
MAX_N_ENVS = 256
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux
MAX_PATH_PART_BYTES = 255  # NAME_MAX: one folder or file name
MAX_TEXT_CHARS = 1000  # strategy lists and other names
MAX_MESSAGE_CHARS = 600  # an error line quotes at most this much
SIMPLE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fail(message: str, problems: list[str] | None = None, code: int = 2) -> None:
    # escaped: user input in a message is text, not rich markup (a stray "[/]" would raise)
    err.print(f"[bold red]error:[/] {escape(_clip(message))}")
    for problem in problems or []:
        err.print(f"  - {escape(_clip(problem))}")
    raise typer.Exit(code)


def resolve(scenario: str, stage: Optional[int] = None) -> ScenarioConfig:
    check_path("SCENARIO", Path(scenario))
    try:
        return load_scenario(scenario, stage=stage)
    except ScenarioError as exc:
        fail(f"invalid scenario {exc.source}", exc.problems)
        raise  # unreachable


def check_positive(name: str, value: int, minimum: int = 1, maximum: int | None = None) -> None:
    if value < minimum:
        fail(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        fail(f"{name} must be <= {maximum}, got {_clip(str(value), 40)}")


def check_seed(seed: int, count: int = 1) -> None:
    """Seeds ``seed .. seed + count - 1`` must all be valid seeds."""
    if not 0 <= seed <= MAX_SEED - (count - 1):
        fail(f"--seed must be in [0, {MAX_SEED - (count - 1)}] (seeds seed .. seed+{count - 1} are used), "
             f"got {_clip(str(seed), 40)}")


def check_learning_rate(value: float) -> None:
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        fail(f"--learning-rate must be a finite number in (0, 1], got {value}")


def check_text(name: str, value: str, limit: int = MAX_TEXT_CHARS) -> None:
    if len(value) > limit or "\0" in value:
        fail(f"{name} must be at most {limit} characters with no NUL character (got {len(value)} characters)")


def check_path(name: str, path: Path) -> None:
    """A path the operating system can take: no NUL, not too long overall or in any one part."""
    text = str(path)
    check_text(name, text, MAX_PATH_CHARS)
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if longest > MAX_PATH_PART_BYTES:
        fail(f"{name}: a folder or file name is longer than {MAX_PATH_PART_BYTES} bytes ({longest}): "
             f"{_clip(text, 80)}")


def check_out(name: str, out: Path) -> None:
    """The output folder must be creatable and writable: found now, not after every episode has run."""
    check_path(name, out)
    if out.exists() and not out.is_dir():
        fail(f"{name} {_clip(str(out), 200)} exists and is not a folder")
    existing = out.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        fail(f"{name} {_clip(str(out), 200)}: {_clip(str(existing), 200)} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(f"{name} {_clip(str(out), 200)}: {_clip(str(existing), 200)} is not writable")


def check_model(name: str, model: Path) -> None:
    check_path(name, model)
    if model.is_dir():
        if not (model / "final" / "model.safetensors").is_file():  # training.model_path (no torch import here)
            fail(f"{name} {_clip(str(model), 200)} is not a finished run folder (no final/model.safetensors): give "
                 "a run folder or a model .safetensors file")
    elif not model.is_file():
        fail(f"{name}: model file not found: {_clip(str(model), 200)}")


def check_stage(stage: Optional[int]) -> None:
    if stage is not None and not 0 <= stage <= 3:
        fail(f"--stage must be 0-3 (0 instruction, 1 insight, 2 involvement, 3 intervention), got {stage}")


@app.command()
def scenarios() -> None:
    """List the built-in scenarios."""
    table = Table(title="built-in scenarios")
    for column in ("name", "stage (c/s/m/it)", "HCPs", "reps", "description"):
        table.add_column(column)
    for name in builtin_scenarios():
        config = load_scenario(name)
        s = config.stage
        table.add_row(name, f"{s.customer}/{s.sales}/{s.marketing}/{s.it}", str(config.population.n_hcps),
                      str(config.population.n_reps), config.description)
    console.print(table)


@app.command()
def validate(file: Path = typer.Argument(..., help="Scenario YAML to check.")) -> None:
    """Check a scenario file: exit 0, or exit 2 with every problem listed by field path."""
    check_path("FILE", file)
    if file.is_dir():
        fail(f"{file} is a folder; give a scenario YAML file")
    if not file.is_file():
        fail(f"no such file: {file}")
    config = resolve(str(file))
    console.print(f"[green]OK[/] {escape(str(file))}: scenario '{config.name}', stage {config.stage.model_dump()}")


@app.command()
def run(
    scenario: str = SCENARIO_ARG,
    strategy: str = typer.Option("today", help="today (the scenario's own stage), a move from it (sales=3, stage=2), a "
                                 "strategy name (see `oce-sim compare`), a trained model .safetensors or a run folder."),
    episodes: int = typer.Option(5, help="Episodes (seeds seed .. seed+episodes-1)."),
    seed: int = typer.Option(0, help="First seed."),
    stage: Optional[int] = typer.Option(None, help="Run at this stage instead of the strategy's own (0-3)."),
    out: Path = typer.Option(Path("results/run"), help="Output folder."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Run one strategy or trained model on a scenario; writes tidy results.csv and summary.json."""
    from oce_sim import evaluation

    check_positive("--episodes", episodes, maximum=MAX_EPISODES)
    check_seed(seed, episodes)
    check_stage(stage)
    check_path("--strategy", Path(strategy))  # a name or a model path
    if strategy.endswith(".zip") or os.sep in strategy:
        check_model("--strategy", Path(strategy))
    check_out("--out", out)
    config = resolve(scenario)
    policy = _make_candidate(strategy, config)
    if stage is not None and strategy == "today":  # today's organisation at another stage is that move
        policy = _make_candidate(f"stage={stage}", config)
    label = _run_label(policy, stage, config)
    _check_models({label: policy}, config, {label: stage})
    with _output_folder(out, "run") as staging:
        results, series = evaluation.evaluate({label: policy}, config, episodes, seed,
                                              stages={label: stage}, progress=progress)
        summary = evaluation.paired_summary(results, baseline=None)
        evaluation.write_results(staging, results, summary, {"scenario": config.name, "strategy": strategy, "episodes": episodes, "seed": seed})
    _print_table(evaluation.format_table(summary, None), f"{config.name}: {label}")
    console.print(f"results: {out / 'results.csv'}")


@app.command()
def compare(
    ctx: typer.Context,
    scenario: str = SCENARIO_ARG,
    episodes: int = typer.Option(10, help="Paired episodes per strategy."),
    seed: int = typer.Option(0, help="First seed; every strategy sees the same seeds (common random numbers)."),
    out: Path = typer.Option(Path("results/compare"), help="Output folder."),
    model: list[Path] = typer.Option([], help="A trained model .safetensors (or run folder) to add to the comparison "
                                     "(repeatable: training seeds, or a checkpoint against the final model)."),
    strategies: str = typer.Option("instruction,insight,involvement,intervention,no_promotion,random,oracle",
                                   help="Comma-separated strategies."),
    baseline: str = typer.Option("today", help="Strategy the paired differences are taken against (today: the "
                                 "scenario's own stage)."),
    move: list[str] = typer.Option([], help="A candidate move from today's stage, e.g. sales=3, sales=3,it=3 or "
                                   "stage=2 (repeatable)."),
    model_stage: Optional[int] = typer.Option(None, help="Run --model at this stage (0-3) instead of its own."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """The main job: today's organisation (the scenario's stage), each move and every stage strategy (and a trained
    model) on paired seeds, with 95% CIs of the difference to today."""
    from oce_sim import evaluation
    from oce_sim.report import compare_report

    check_positive("--episodes", episodes, maximum=MAX_EPISODES)
    check_seed(seed, episodes)
    check_text("--strategies", strategies)
    for name in strategies.split(","):
        check_path("--strategies", Path(name.strip()))
    check_text("--baseline", baseline)
    for spec in move:
        check_text("--move", spec, 200)
    check_stage(model_stage)
    for path in model:
        check_model("--model", path)
    check_out("--out", out)
    config = resolve(scenario)
    names = ["today", *move, *(s.strip() for s in strategies.split(",") if s.strip())]
    candidates = [(_make_candidate(name, config), None) for name in names]
    for path in model:
        policy = _make_policy(str(path))
        candidates.append((policy, model_stage))
    policies, stages = _labelled(candidates, config)
    if baseline not in policies:
        fail(f"--baseline {baseline!r} is not among the strategies: {', '.join(policies)}")
    _check_models(policies, config)
    started = time.time()
    with _output_folder(out, "compare") as staging:
        results, series = evaluation.evaluate(policies, config, episodes, seed, stages=stages, progress=progress)
        summary = evaluation.paired_summary(results, baseline=baseline)
        meta = {"scenario": config.name, "episodes": episodes, "seed": seed, "baseline": baseline,
                "strategies": list(policies)}  # no wall time: a rerun writes a byte-identical folder
        evaluation.write_results(staging, results, summary, meta)
        drawn = evaluation.plot_figures(results, series, staging, config.name, baseline)
        compare_report(config, summary, baseline, episodes, seed, drawn, _command_line(ctx)).write(staging)
        figures = [out / p.name for p in drawn]
    _print_table(evaluation.format_table(summary, baseline),
                 f"{config.name}: mean over {episodes} paired seeds [95% CI of the difference to {baseline}]")
    console.print(f"results: {out / 'results.csv'}  summary: {out / 'summary.json'}  ({time.time() - started:.0f} s)")
    console.print("figures: " + ", ".join(str(p) for p in figures))
    console.print(f"report: {out / 'report.html'} (and report.md)")


@app.command()
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
    reward: str = typer.Option("expected", help="Training reward: expected (less noise) or realized prescriptions."),
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
    resolve(scenario, stage)
    from oce_sim.training import ALGO_DEFAULTS, ALGOS, TrainArgs  # after the cheap checks: it imports torch
    from oce_sim.training import train as do_train

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
    if reward not in ("expected", "realized"):
        fail(f"--reward must be expected or realized, got {reward!r}")
    from oce_sim.training import VEC_KINDS

    if vec not in VEC_KINDS:
        fail(f"--vec must be one of {', '.join(VEC_KINDS)}, got {_clip(repr(vec), 80)}")
    if algo == "factored-ppo" and reward != "expected":
        fail("--reward realized is for the SB3 algorithms; factored-ppo splits the expected reward by customer "
             "(env.hcp_rewards), so it trains on --reward expected")
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
    args = TrainArgs(scenario=scenario, algo=algo, timesteps=timesteps, seed=seed, out=str(out), stage=stage,
                     n_envs=n_envs, checkpoint_every=checkpoint_every, resume=resume, progress_bar=progress,
                     n_steps=n_steps, batch_size=min(256, n_steps * (n_envs or ALGO_DEFAULTS[algo]["n_envs"])),
                     reward=reward, init_from=init_from, learning_rate=learning_rate,
                     value_warmup_steps=value_warmup_steps, vec=vec, max_minutes=max_minutes, workers=workers)
    from oce_sim.outputs import OutputError
    from oce_sim.training import ResumeMismatchError

    try:
        run_dir = do_train(args, log=console.print)
    except (FileNotFoundError, OutputError, ResumeMismatchError) as exc:
        fail(str(exc))
        return
    console.print(f"run folder: {run_dir}  (final/model.safetensors, final/learning_curve.csv, tb/ for TensorBoard)")


@app.command()
def bench(
    suite: str = typer.Option("quick", help="Benchmark suite: quick or full."),
    check: bool = typer.Option(False, help="Compare with the committed golden file; exit 1 on regression."),
    update: bool = typer.Option(False, help="Rewrite the golden file from this run."),
    perf: bool = typer.Option(False, help="Also measure performance (steps/s, training share, national scale, floors), at the sizes the suite names in perf_sizes."),
    out: Path = typer.Option(Path("results/bench"), help="Output folder."),
    junit_xml: Optional[Path] = typer.Option(None, "--junit-xml", help="With --check: write JUnit XML here (a testcase per gated band and the event hash)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Run every strategy on every benchmark scenario; tidy results, a Markdown table, a regression gate."""
    from oce_sim import bench as bench_mod
    from oce_sim.outputs import OutputError

    if check and update:
        fail("--check and --update are exclusive: check against the golden file, or rewrite it")
    if not SIMPLE_NAME.fullmatch(suite):  # a file name in scenarios/benchmark/suites, never a path
        fail(f"--suite must be a suite name (letters, digits, '_' or '-', at most 64), got {_clip(repr(suite), 80)}")
    check_out("--out", out)
    if junit_xml is not None and not check:
        fail("--junit-xml reports the gate: it needs --check")
    if junit_xml is not None and junit_xml.is_dir():
        fail(f"--junit-xml {junit_xml} is a folder; give a file path")
    try:
        code = bench_mod.run_bench(suite=suite, check=check, update=update, perf=perf, out=out, progress=progress,
                                   console=console, junit=junit_xml)
    except (bench_mod.BenchError, OutputError) as exc:
        fail(str(exc))
        return
    raise typer.Exit(code)


@app.command()
def calibrate(
    scenario: str = SCENARIO_ARG,
    seeds: int = typer.Option(10, help="Paired seeds (seed .. seed+seeds-1)."),
    seed: int = typer.Option(0, help="First seed."),
    write_docs: bool = typer.Option(False, help="Write the table into docs/MODEL.md §6 (between its calibration markers)."),
) -> None:
    """The calibration table: every published figure, its band and source, the model's value on paired seeds, pass/fail."""
    from oce_sim import calibration

    check_positive("--seeds", seeds, minimum=2 if write_docs else 1, maximum=MAX_EPISODES)
    check_seed(seed, seeds)
    config = resolve(scenario)
    if write_docs:  # before any work: a scenario without its table in the docs is refused at once
        try:
            calibration.check_docs(config.name, calibration.docs_path())
        except (OSError, ValueError) as exc:
            fail(str(exc))
    with console.status(f"calibrating {config.name} on {seeds} paired seeds"):
        rows = calibration.calibrate(config, seeds, seed)
    states = [calibration.status(row, rows) for row in rows]
    table = Table(title=f"{config.name}: calibration ({states.count('pass')} of {len(rows)} rows pass, "
                  f"{states.count('yields')} yield to a better-sourced row, {seeds} paired seeds)", show_lines=True)
    for column in ("figure", "band", "model (± se)", "pass", "source"):
        table.add_column(column, justify="right" if column in ("band", "model (± se)") else "left")
    style = {"pass": "[green]pass[/]", "yields": "[yellow]yields[/]", "fail": "[red]fail[/]"}
    for row, state in zip(rows, states):
        source = row.source + (f" (yields to: {row.yields_to})" if state == "yields" else "")
        table.add_row(escape(row.figure), row.band_text(), row.value_text(), style[state], escape(source))
    console.print(table)
    if write_docs:
        path = calibration.docs_path()
        try:
            calibration.write_docs(rows, config.name, seeds, path, command_scenario=scenario)
        except (OSError, ValueError) as exc:
            fail(str(exc))
        console.print(f"written: {path}")


@contextmanager
def _output_folder(out: Path, command: str) -> Iterator[Path]:
    """The staging folder of ``out`` (see oce_sim.outputs); a bad or busy ``--out`` is exit 2 before any work."""
    from oce_sim.outputs import OutputError, transaction

    try:
        with transaction(out, command) as staging:
            yield staging
    except OutputError as exc:
        fail(str(exc))


@app.command("convert-model")
def convert_model(
    file: Path = typer.Argument(..., help="A Stable-Baselines3 .zip saved by an older oce-sim."),
    out: Optional[Path] = typer.Option(None, help="The .safetensors file to write (default: beside FILE)."),
    stage: Optional[int] = typer.Option(None, help="The stage it was trained at (0-3), so it is evaluated there."),
    trust: bool = typer.Option(False, help="Required: loading a .zip runs code from it; convert only files you trust."),
) -> None:
    """Convert an old pickle-based model .zip into a model file that is data only (.safetensors)."""
    from oce_sim.model_file import ModelFileError, convert_sb3_zip

    check_stage(stage)
    if not file.is_file():
        fail(f"no such file: {file}")
    if not trust:
        fail(f"loading {file} unpickles it, which runs any code it holds; if you trust where it came from, "
             "repeat with --trust")
    target = out or file.with_suffix(".safetensors")
    try:
        meta = convert_sb3_zip(file, target, stage, scenario="converted")
    except ModelFileError as exc:
        fail(str(exc))
        return
    console.print(f"model file: {target} ({meta['algo']}, {meta['num_timesteps']:,} steps, stage {meta['stage']})")


@app.command()
def whatif(
    ctx: typer.Context,
    scenario: str = SCENARIO_ARG,
    set_: list[str] = typer.Option([], "--set", help="path=value applied to every variant, e.g. population.n_reps=2, "
                                   "stage.it=3, population.email_opt_in=0.9 (repeatable; YAML values)."),
    grid: list[str] = typer.Option([], help="path=v1,v2,... an axis of a full factorial (repeatable)."),
    tornado: list[str] = typer.Option([], help="path=low,high: a one-factor sensitivity bar (repeatable)."),
    frontier: bool = typer.Option(False, help="Sweep headcount x stage (unless --grid gives them) and draw profit "
                                  "against promotion cost per stage: the efficient frontier."),
    strategy: str = typer.Option("today", help="today (the organisation of each variant's own stage), a move from it "
                                 "(sales=3) or a strategy name."),
    episodes: int = typer.Option(4, help="Paired episodes per variant (seeds seed .. seed+episodes-1)."),
    seed: int = typer.Option(0, help="First seed; every variant runs on the baseline's seeds."),
    out: Path = typer.Option(Path("results/whatif"), help="Output folder (finished episodes are kept in "
                             "<out>.cache beside it, so a killed sweep resumes where it stopped)."),
    workers: int = typer.Option(1, help="Episodes run at once by the local executor (a process pool above 1)."),
    executor: str = typer.Option("local", help="local (this machine) or ray (ray.init(): a local Ray instance, "
                                 "or the cluster RAY_ADDRESS names)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """What-if sweeps: every variant of the scenario against the scenario as given, on paired seeds, with the 95% CI
    of each KPI's difference (year 1 and multi-period), a tornado chart and an efficient frontier."""
    from oce_sim.agents import STRATEGIES
    from oce_sim import evaluation, whatif as wi
    from oce_sim.report import whatif_report
    from oce_sim.sweep import EXECUTORS, default_cache

    check_positive("--workers", workers, maximum=MAX_N_ENVS)
    if executor not in EXECUTORS:
        fail(f"--executor must be one of {', '.join(EXECUTORS)}, got {_clip(repr(executor), 80)}")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            fail("--executor ray needs Ray: pip install 'oce-sim[sweep]' (or pip install ray)")
    check_positive("--episodes", episodes, maximum=MAX_EPISODES)
    check_seed(seed, episodes)
    for name, items in (("--set", set_), ("--grid", grid), ("--tornado", tornado)):
        for item in items:
            check_text(name, item, wi.MAX_VALUE_CHARS + 200)
    if len(set_) + len(grid) + len(tornado) > wi.MAX_SETTINGS:
        fail(f"at most {wi.MAX_SETTINGS} --set, --grid and --tornado items together")
    if "=" in strategy:
        from oce_sim.agents.organisation import parse_move

        try:
            parse_move(strategy, load_scenario().stage)  # the syntax; applied to each variant's own stage
        except ValueError as exc:
            fail(str(exc))
    elif strategy != "today" and (strategy not in STRATEGIES or strategy == "no_promotion"):
        fail(f"--strategy must be today, a move (sales=3) or one of "
             f"{', '.join(s for s in STRATEGIES if s != 'no_promotion')}, got {_clip(repr(strategy), 80)}")
    check_out("--out", out)
    base = resolve(scenario)
    try:
        sets = [wi.parse_setting(item) for item in set_]
        axes = [wi.parse_axis(item) for item in grid]
        factors = [wi.parse_axis(item, "--tornado") for item in tornado]
        if frontier:
            axes += [axis for axis in wi.frontier_axes(base) if axis[0] not in {p for p, _ in axes}]
        plan = wi.plan_variants(base, sets, axes, factors)
    except wi.WhatIfError as exc:
        fail(str(exc), exc.problems)
        return
    if not plan.variants:
        fail("nothing to compare: give --set, --grid, --tornado or --frontier")
    with _output_folder(out, "whatif") as staging:
        try:
            results = wi.run_plan(plan, strategy, episodes, seed, progress=progress, cache=default_cache(out),
                                  executor=executor, workers=workers)
        except wi.WhatIfError as exc:  # raised before any episode runs
            fail(str(exc), exc.problems)
            return
        episodes_run = dict(results.attrs.get("episodes", {}))
        summary = wi.summarise(results)
        evaluation.atomic_write_text(staging / "summary.csv", summary.to_csv(index=False))
        meta = {"scenario": base.name, "strategy": strategy, "episodes": episodes, "seed": seed, "set": set_,
                "grid": grid, "tornado": tornado, "frontier": frontier,
                "variants": [v.label for v in plan.variants]}  # no wall time: a rerun writes the same folder
        evaluation.write_results(staging, results, summary, meta)  # results.csv (tidy) and summary.json
        figures = [wi.plot_tornado(summary, plan, staging / "tornado.png", base.name)]
        if frontier:
            figures.append(wi.plot_frontier(results, plan, staging / "frontier.png", base.name))
        figures = [p for p in figures if p is not None]
        whatif_report(plan, summary, strategy, episodes, seed, figures, _command_line(ctx), set_).write(staging)
    figures = [out / p.name for p in figures]
    table = wi.format_summary(summary)
    title = f"{base.name}: what-if ({strategy}), {episodes} paired seeds: baseline mean; each variant's difference [95% CI]"
    if len(table) <= 6:
        _print_table(table, title)
    else:  # many variants: one row each, the headline KPIs (every KPI is in summary.csv)
        _print_table(table[[m for m in wi.HEADLINE_KPIS if m in table.columns]].T, title, first="variant")
    console.print(f"results: {out / 'results.csv'}  summary: {out / 'summary.csv'}")
    if episodes_run.get("from_cache"):
        console.print(f"episodes: {episodes_run['run']} run, {episodes_run['from_cache']} read back from "
                      f"{default_cache(out)} (finished by an earlier run)")
    shown = [str(p) for p in figures if p is not None]
    if shown:
        console.print("figures: " + ", ".join(shown))
    console.print(f"report: {out / 'report.html'} (and report.md)")


# Options that change how or where a command runs, not what it computes: left out of a report's command line, so
# that the same run written to another folder, or a sweep run serially, on a pool or on Ray, writes the same report.
NOT_RESULTS = frozenset({"progress", "workers", "executor", "out"})


def _command_line(ctx: typer.Context) -> str:
    """The running command as a user would type it, every option that shapes the results spelled out."""
    import shlex

    words = ["oce-sim", ctx.info_name or ""]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in NOT_RESULTS or value is None or value == [] or value == ():
            continue
        if param.param_type_name == "argument":
            words.append(str(value))
            continue
        flag = max(param.opts, key=len)
        if isinstance(value, bool):
            if param.secondary_opts or value:
                words.append(flag if value else max(param.secondary_opts, key=len))
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            words += [flag, str(item)]
    return shlex.join(words)


MAX_DRAWS = 100_000


@app.command()
def roadmap(
    ctx: typer.Context,
    portfolio: Path = typer.Argument(..., help="Portfolio YAML (or a built-in name: example): sub-markets (scenario, territories, today's stage) and "
                                     "step costs (see scenarios/portfolios/example.yaml)."),
    episodes: int = typer.Option(8, help="Paired episodes per option (seeds seed .. seed+episodes-1)."),
    seed: int = typer.Option(0, help="First seed; every option of a sub-market sees the same seeds."),
    draws: int = typer.Option(400, help="Draws of the uncertain inputs (seeds by bootstrap, step costs, ramp-ups, "
                              "discount rate) for P(best) and the NPV intervals."),
    horizon_years: Optional[float] = typer.Option(None, help="NPV and payback horizon in years (default: the "
                                                  "portfolio's, 3)."),
    out: Path = typer.Option(Path("results/roadmap"), help="Output folder."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """A stage roadmap per sub-market: today, every uniform stage and every single-entity step on paired seeds, net
    of transformation cost: NPV, payback, P(best) and the break-even one-off cost of each move."""
    from oce_sim import evaluation, roadmap as rm

    check_path("PORTFOLIO", portfolio)
    if not portfolio.is_file():
        shipped = rm.builtin_portfolios()
        if str(portfolio) not in shipped:
            fail(f"no such file: {portfolio}; built-in portfolios: {', '.join(shipped) or 'none'}")
        portfolio = shipped[str(portfolio)]
    check_positive("--episodes", episodes, minimum=2, maximum=MAX_EPISODES)
    check_seed(seed, episodes)
    check_positive("--draws", draws, maximum=MAX_DRAWS)
    if horizon_years is not None and not (math.isfinite(horizon_years) and 0 < horizon_years <= rm.MAX_HORIZON_YEARS):
        fail(f"--horizon-years must be in (0, {rm.MAX_HORIZON_YEARS}], got {horizon_years}")
    check_out("--out", out)
    try:
        spec, markets = rm.load_portfolio(portfolio)
    except rm.PortfolioError as exc:
        fail(f"invalid portfolio {exc.source}", exc.problems)
        return
    horizon = horizon_years if horizon_years is not None else spec.horizon_years
    started = time.time()
    with _output_folder(out, "roadmap") as staging:
        results, appraisals = rm.run(markets, spec, episodes, seed, draws, horizon, progress=progress)
        tables = [a.table for a in appraisals]
        table = rm.roadmap_table(markets, tables)
        every = pd_concat(tables)
        evaluation.atomic_write_text(staging / "results.csv", results.to_csv(index=False))
        evaluation.atomic_write_text(staging / "options.csv", every.to_csv(index=False))
        evaluation.atomic_write_text(staging / "draws.csv", pd_concat([a.draws for a in appraisals]).to_csv(index=False))
        evaluation.atomic_write_text(staging / "roadmap.csv", table.to_csv(index=False))
        meta = {"portfolio": spec.model_dump(mode="json"), "scenarios": {m.spec.name: m.config.name for m in markets},
                "episodes": episodes, "seed": seed, "draws": draws, "horizon_years": horizon,
                "roadmap": table.to_dict(orient="records"), "options": json.loads(every.to_json(orient="records"))}
        evaluation.atomic_write_text(staging / "roadmap.json", json.dumps(meta, indent=2))  # no wall time: reruns match
        summary_md = rm.summary_markdown(spec, table, every, episodes, seed, draws, horizon)
        evaluation.atomic_write_text(staging / "roadmap.md", summary_md)
        figure = rm.plot_npv(tables, staging / "npv_by_option.png", spec.name)
        rm.roadmap_report(spec, markets, table, summary_md, figure, episodes, seed, draws, horizon,
                          _command_line(ctx)).write(staging)
    console.print(_rich_table(table, f"{spec.name}: stage roadmap over {horizon:g} years ({episodes} paired seeds, "
                              f"{draws} draws; NPV over today with its 5th-95th percentile)"))
    console.print(f"results: {out / 'results.csv'}  options: {out / 'options.csv'}  summary: {out / 'roadmap.md'}  "
                  f"figure: {out / figure.name}  ({time.time() - started:.0f} s)")


def pd_concat(frames):
    import pandas as pd

    return pd.concat(list(frames), ignore_index=True)


def _rich_table(frame, title: str) -> Table:
    table = Table(title=title, show_lines=True)
    for column in frame.columns:
        listed = frame[column].astype(str).str.contains("; ").any()
        table.add_column(str(column), overflow="fold", no_wrap=bool(listed))  # a list: one short item per line
    for row in frame.to_numpy():
        table.add_row(*[escape(str(v)).replace("; ", "\n") for v in row])  # a list (moves) one per line
    return table


def _make_candidate(name: str, config: ScenarioConfig):
    """``today`` (the organisation at the scenario's stage), a move from it (``sales=3``) or :func:`_make_policy`."""
    from oce_sim.agents.organisation import Organisation, move_label, parse_move

    if name == "today":
        return Organisation(config.stage, name="today")
    if "=" in name:
        try:
            return Organisation(parse_move(name, config.stage), name=move_label(name))
        except ValueError as exc:
            fail(str(exc))
    return _make_policy(name)


def _run_label(policy, stage: Optional[int], config: ScenarioConfig) -> str:
    """A trained model run on another scenario, or at another stage, than it was trained on says so, in its label
    and in a note on stderr (the spaces match, so it runs; whether the result means anything is the user's call)."""
    from oce_sim.agents import TrainedModel

    if not isinstance(policy, TrainedModel):
        return policy.name
    notes = []
    trained_on = policy.meta.get("scenario")
    if isinstance(trained_on, str) and trained_on not in (config.name, "converted"):  # converted: not recorded
        notes.append(f"trained on {trained_on}")
        err.print(f"[yellow]note:[/] {escape(str(policy.path))} was trained on scenario {escape(repr(trained_on))}; "
                  f"it is evaluated on {escape(repr(config.name))}")
    trained = getattr(policy, "stage", None)
    if stage is not None and trained is not None and stage != trained:
        notes.append(f"trained at {trained}, run at {stage}")
    return f"{policy.name} ({'; '.join(notes)})" if notes else policy.name


def _labelled(candidates: list, config: ScenarioConfig) -> tuple[dict, dict[str, int | None]]:
    """Label each (policy, stage) once.  Trained models of one algorithm (training seeds, a checkpoint against the
    final model) keep a column each, every one named by its run folder (and checkpoint); a strategy named twice
    runs once; the same model file twice is refused."""
    from collections import Counter

    from oce_sim.agents import TrainedModel

    labels = [_run_label(policy, stage, config) for policy, stage in candidates]
    model_labels = Counter(label for label, (policy, _) in zip(labels, candidates) if isinstance(policy, TrainedModel))
    seen: set[Path] = set()
    policies: dict = {}
    stages: dict[str, int | None] = {}
    for label, (policy, stage) in zip(labels, candidates):
        if isinstance(policy, TrainedModel):
            path = Path(policy.path)
            if path.resolve() in seen:
                fail(f"the model {path} is given twice; name each model once")
            seen.add(path.resolve())
            if model_labels[label] > 1:
                source = path.parent.parent.name if path.parent.name == "final" else \
                    f"{path.parent.parent.name}/{path.stem}" if path.parent.name == "checkpoints" else path.stem
                label = f"{label} ({source})"
                if label in policies:
                    fail(f"two models would both be labelled {label!r}; name each model once")
        policies[label] = policy
        if stage is not None:
            stages[label] = stage
    return policies, stages


def _make_policy(name: str):
    from oce_sim.agents import STRATEGIES, TrainedModel, make_strategy
    from oce_sim.model_file import ModelFileError
    from oce_sim.training import model_path

    path = Path(name)
    if path.is_dir():
        if not model_path(path).is_file():
            fail(f"{path} is a folder without a trained model ({model_path(path).relative_to(path)}); "
                 "give a run folder of `oce-sim train` or a model .safetensors file")
        path = model_path(path)
    elif not name.endswith((".safetensors", ".zip")):
        try:
            return make_strategy(name)
        except ValueError:
            fail(f"unknown strategy {name!r}; choose today, a move from it (e.g. sales=3 or stage=2), one of "
                 f"{', '.join(STRATEGIES)}, a model .safetensors file or a run folder")
    if not path.is_file():
        fail(f"model file not found: {name}")
    try:
        return TrainedModel(path)  # evaluated at the stage its file says it was trained at
    except (ModelFileError, OSError) as exc:
        fail(str(exc))


def _check_models(policies: dict, config: ScenarioConfig, stages: dict | None = None) -> None:
    """Refuse a trained model whose spaces are not those of the scenario it would run on, before any episode."""
    from oce_sim.agents import TrainedModel
    from oce_sim.envs.territory import TerritoryEnv
    from oce_sim.evaluation import strategy_config
    from oce_sim.model_file import ModelFileError

    for label, policy in policies.items():
        if isinstance(policy, TrainedModel):
            env = TerritoryEnv(scenario=strategy_config(config, policy, (stages or {}).get(label)))
            try:
                policy.check_env(env, f"scenario {config.name!r}")
            except ModelFileError as exc:
                fail(str(exc))
            finally:
                env.close()


def _print_table(frame, title: str, first: str = "metric") -> None:
    """Metrics as rows and strategies as columns, so the table fits a terminal."""
    table = Table(title=title, show_lines=True)
    from oce_sim.kpis import KPIS, unit_label

    table.add_column("KPI (unit; USD in thousands: k)" if first == "metric" else first)
    for strategy in frame.index:
        table.add_column(str(strategy), justify="right")
    for metric in frame.columns:
        table.add_row(f"{unit_label(metric)}\n[dim]{metric}[/]" if metric in KPIS else str(metric),
                      *[str(v).replace(" [", "\n[") for v in frame[metric].to_numpy()])
    console.print(table)


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        # typer turns Ctrl-C into a silent exit 130 (the KeyboardInterrupt is the cause of its Exit): say so
        if exc.code == 130 and isinstance(getattr(exc.__context__, "__cause__", None), KeyboardInterrupt):
            err.print("interrupted")
        raise
    except KeyboardInterrupt:  # outside the command (e.g. while typer starts)
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()


__all__ = ["app", "main"]
