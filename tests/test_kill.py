"""Kill-and-resume: SIGKILL ``compare``, ``bench`` and ``train`` at a random moment, then check that the output
folder holds the old complete set or the new one, that a rerun is byte-identical to an uninterrupted run, and
that a resumed training ends at the same step count with no step logged twice or backwards.  Ctrl-C during
training leaves a usable checkpoint.

A few trials run in the normal suite on tiny runs; ``@pytest.mark.slow`` runs 20 random kills per command.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from oce_sim.agents.trained import TrainedModel
from oce_sim.bench import gate as bench
from oce_sim.cli import app
from oce_sim.storage.outputs import exclusive_lock, transaction
from oce_sim.learning.training import TrainArgs, model_path, train

ROOT = Path(__file__).resolve().parent.parent
# Starts the CLI; OCE_TEST_BENCH_DIR points the bench at a tiny suite (a test cannot monkeypatch a subprocess).
LAUNCH = ("import os, pathlib, sys\n"
          "from oce_sim.bench import gate as bench\n"
          "d = os.environ.get('OCE_TEST_BENCH_DIR')\n"
          "if d: bench.SUITE_DIR, bench.GOLDEN_DIR = pathlib.Path(d) / 'suites', pathlib.Path(d) / 'golden'\n"
          "from oce_sim.cli import main\n"
          "sys.argv = ['oce-sim', *sys.argv[1:]]\n"
          "main()\n")
SCENARIO = {"description": "kill tests", "population": {"n_hcps": 60, "n_reps": 1}, "env": {"horizon_days": 28}}
COMPARE = ["compare", "--episodes", "1", "--best-plan", "0", "--strategies", "instruction,no_promotion", "--no-progress"]
TINY_SUITE = {"version": 1, "episodes": 1, "seed": 5, "overrides": {"env": {"horizon_days": 14}},
              "scenarios": ["emerging_field"], "strategies": ["instruction", "no_promotion"],
              "metrics": ["prescriptions", "profit_usd"],
              "hash_run": {"scenario": "emerging_field", "strategy": "instruction", "seed": 5, "horizon_days": 14}}
TRAIN = ["train", "small", "--algo", "maskable-ppo", "--timesteps", "192", "--n-envs", "1", "--n-steps", "64", "--checkpoint-every", "64",
         "--no-progress"]


def start(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-c", LAUNCH, *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def kill_at_random(args: list[str], delay: float, env_extra: dict[str, str] | None = None,
                   after: Path | None = None) -> None:
    """SIGKILL the whole process group (workers too) ``delay`` seconds after the start, or after a path matching
    the glob ``after`` appears (to aim at the writing phase of a short run)."""
    process = start(args, env_extra)
    deadline = time.time() + 120
    while after is not None and not list(after.parent.glob(after.name)) and process.poll() is None:
        assert time.time() < deadline, "the command never got to writing"
        time.sleep(0.01)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def folder(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def assert_clean_siblings(out: Path) -> None:
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")) == [f".{out.name}.lock"]


# ------------------------------------------------------------------------------------------------ compare


def compare_trials(tmp_path: Path, delays: list[float], while_writing: bool = False) -> None:
    scenario = tmp_path / "kill.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    reference = tmp_path / "reference"
    started = time.time()
    result = CliRunner().invoke(app, [*COMPARE, str(scenario), "--out", str(reference)])
    assert result.exit_code == 0, result.output
    new = folder(reference)
    out = tmp_path / "out"
    with transaction(out, "compare") as staging:  # an earlier complete set
        (staging / "results.csv").write_text("old results\n")
        (staging / "channel_mix.png").write_bytes(b"old figure")
    old = folder(out)
    for delay in delays:
        if while_writing:  # from the moment its staging folder exists: the run, the figures, the swap
            kill_at_random([*COMPARE, scenario, "--out", out], delay * 3.0, after=tmp_path / ".out.staging-*")
        else:
            kill_at_random([*COMPARE, scenario, "--out", out], delay * (6.0 + 2 * (time.time() - started)))
        now = folder(out)
        assert now in (old, new), f"killed after {delay:.2f}: a mixed or partial folder {sorted(now)}"
        old = now
    result = CliRunner().invoke(app, [*COMPARE, str(scenario), "--out", str(out)])  # in-process: cheaper
    assert result.exit_code == 0, result.output
    assert folder(out) == new, "a rerun after kills is byte-identical to an uninterrupted run"
    assert_clean_siblings(out)


def test_compare_killed_at_a_random_moment(tmp_path):
    compare_trials(tmp_path, [random.Random(17).random()], while_writing=True)


@pytest.mark.slow
def test_compare_killed_20_times(tmp_path):
    rng = random.Random(20)
    compare_trials(tmp_path, [rng.random() for _ in range(20)])


# ------------------------------------------------------------------------------------------------ bench


def bench_trials(tmp_path: Path, delays: list[float], monkeypatch, while_writing: bool = False) -> None:
    for kind in ("suites", "golden"):
        (tmp_path / "bench" / kind).mkdir(parents=True)
    (tmp_path / "bench" / "suites" / "tiny.yaml").write_text(yaml.safe_dump(TINY_SUITE))
    monkeypatch.setattr(bench, "SUITE_DIR", tmp_path / "bench" / "suites")
    monkeypatch.setattr(bench, "GOLDEN_DIR", tmp_path / "bench" / "golden")
    console = Console(file=open(os.devnull, "w"))
    started = time.time()
    reference = tmp_path / "reference"
    assert bench.run_bench("tiny", False, True, False, reference, False, console) == 0  # writes the golden file
    assert bench.run_bench("tiny", True, False, False, reference, False, console) == 0
    new = folder(reference)
    junit = tmp_path / "junit.xml"
    out = tmp_path / "out"
    with transaction(out, "bench") as staging:
        (staging / "bench.md").write_text("old report\n")
    old = folder(out)
    args = ["bench", "--suite", "tiny", "--check", "--no-progress", "--junit-xml", junit, "--out", out]
    env = {"OCE_TEST_BENCH_DIR": str(tmp_path / "bench")}
    for delay in delays:
        if while_writing:
            kill_at_random(args, delay * 1.5, env, after=tmp_path / ".out.staging-*")
        else:
            kill_at_random(args, delay * (6.0 + 2 * (time.time() - started)), env)
        now = folder(out)
        assert now in (old, new), f"killed after {delay:.2f}: a mixed or partial folder {sorted(now)}"
        old = now
    assert bench.run_bench("tiny", True, False, False, out, False, console, junit=junit) == 0  # the rerun
    assert folder(out) == new
    assert_clean_siblings(out)
    assert junit.read_text().count("<testcase") == 2 * 2 + 1 and "<failure" not in junit.read_text()


def test_bench_killed_at_a_random_moment(tmp_path, monkeypatch):
    bench_trials(tmp_path, [random.Random(17).random()], monkeypatch, while_writing=True)


@pytest.mark.slow
def test_bench_killed_20_times(tmp_path, monkeypatch):
    rng = random.Random(21)
    bench_trials(tmp_path, [rng.random() for _ in range(20)], monkeypatch)


# ------------------------------------------------------------------------------------------------ train


def tensorboard_steps(run: Path) -> dict[str, list[int]]:
    """Every scalar's steps, file after file in the order TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps: dict[str, list[int]] = {}
    for path in sorted((run / "tb").rglob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    return steps


def assert_trained_to_the_end(out: Path, steps: int) -> None:
    (run,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert TrainedModel(model_path(run)).num_timesteps == steps, "same step count as an uninterrupted run"
    curve = pd.read_csv(run / "final" / "learning_curve.csv")
    # in step order, and no step counted twice: the episodes' lengths add up to at most the steps trained (parallel
    # envs may end episodes at the same step)
    assert curve.timesteps.is_monotonic_increasing and curve.timesteps.max() <= steps
    assert curve.episode_length.sum() <= steps
    for tag, logged in tensorboard_steps(run).items():
        assert logged == sorted(set(logged)), f"{tag}: steps logged twice or backwards: {logged}"
    assert sorted(p.name for p in run.rglob(".*")) == [".final.lock", ".lock"]


def small_train_args(out: Path, **kwargs) -> TrainArgs:
    """What ``TRAIN`` runs, for an in-process run (no interpreter start, torch already imported)."""
    return TrainArgs(**{**dict(scenario="small", algo="maskable-ppo", timesteps=192, n_envs=1, n_steps=64, batch_size=64,
                               checkpoint_every=64, out=str(out), progress_bar=False), **kwargs})


def train_trials(tmp_path: Path, delays: list[float]) -> None:
    out = tmp_path / "runs"

    def started() -> bool:
        return out.is_dir() and any(p.name.startswith("small__") for p in out.iterdir())

    for delay in delays:
        kill_at_random([*TRAIN, *(["--resume"] if started() else []), "--out", out], delay * 9.0)
    lines: list[str] = []
    resume = started()  # killed before its run folder existed: train afresh
    train(small_train_args(out, resume=resume), log=lines.append)
    assert not resume or any("resuming" in line or "from step 0" in line for line in lines), lines
    assert_trained_to_the_end(out, 192)


def test_train_killed_at_a_random_moment_resumes_to_the_same_step(tmp_path):
    train_trials(tmp_path, [0.3 + 0.7 * random.Random(15).random()])


@pytest.mark.slow
def test_train_killed_20_times(tmp_path):
    rng = random.Random(22)
    train_trials(tmp_path, [rng.random() for _ in range(20)])


def interrupt_training(tmp_path: Path, n_envs: int, vec: str = "native", algo: str = "maskable-ppo") -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) once a checkpoint after step 0
    exists: exit 130, a message naming the checkpoint, and a checkpoint that loads and resumes."""
    out = tmp_path / "runs"
    args = ["train", "small", "--algo", algo, "--timesteps", "100000", "--n-envs", n_envs, "--n-steps", "64",
            "--checkpoint-every", "64", "--no-progress", "--out", out, "--vec", vec]
    process = start(args)
    deadline = time.time() + 300
    while not list(out.glob("*/checkpoints/model_*_steps.safetensors"))[1:] and time.time() < deadline:
        assert process.poll() is None, process.communicate()[0][-3000:]
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=300)
    flat = " ".join(output.split())
    assert process.returncode == 130, output[-3000:]
    assert "checkpoint written:" in flat and "--resume" in flat and "Traceback" not in output
    checkpoint = Path(flat.split("checkpoint written: ")[1].split(" (step")[0])
    steps = TrainedModel(checkpoint).num_timesteps
    rollout = (26 if algo == "factored-ppo" else 64) * int(n_envs)  # factored: one whole 26-step episode per env
    assert steps > 0 and steps % rollout == 0
    run = checkpoint.parent.parent
    trained_with = json.loads((run / "args.json").read_text())  # --resume refuses any other settings
    resumed = train(TrainArgs(**{**trained_with, "timesteps": steps + rollout, "resume": True}),
                    log=lambda line: None)
    assert resumed == run
    assert_trained_to_the_end(out, steps + rollout)


def test_ctrl_c_during_training_leaves_a_usable_checkpoint(tmp_path):
    interrupt_training(tmp_path, 1)


def test_ctrl_c_during_factored_training_leaves_a_usable_checkpoint(tmp_path):
    interrupt_training(tmp_path, 2, algo="factored-ppo")


@pytest.mark.slow
def test_ctrl_c_with_worker_processes_leaves_a_usable_checkpoint(tmp_path):
    interrupt_training(tmp_path, 2, vec="subproc")


def test_a_second_resume_of_a_run_in_training_is_refused(tmp_path):
    out = tmp_path / "runs"
    run = train(small_train_args(out, timesteps=64, n_epochs=1), log=lambda line: None)

    with exclusive_lock(run / ".lock", "test"):  # as a first --resume holds it
        result = CliRunner().invoke(app, [*TRAIN, "--resume", "--out", str(out)])
    flat = " ".join(result.output.split())
    assert result.exit_code == 2 and "is being written by another oce-sim process" in flat, flat
    assert run.name in flat.replace(" ", "")  # rich wraps the long path
