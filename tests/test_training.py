"""Training runs: run folder layout, checkpoints, resume, and loading a trained model for evaluation.

Anything that trains is ``@pytest.mark.slow``; the fast tests check argument handling and the monitor and
learning-curve plumbing without training.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from oce_sim.agents.trained import TrainedModel
from oce_sim.config import dump_yaml, load_scenario
from oce_sim.evaluation import evaluate
from oce_sim.training import TrainArgs, _latest_checkpoint, make_env_fn, run_stage, train, write_learning_curve

from conftest import N_SEGMENTS

RUN_NAME = re.compile(r"^small__(maskable-ppo|ppo|a2c)__(\d+)__\d{8}-\d{6}$")
EVAL = load_scenario("small", overrides={"env": {"horizon_days": 28}})


def small_args(out, **kwargs) -> TrainArgs:
    defaults = dict(scenario="small", timesteps=1_000, n_envs=2, checkpoint_every=500, n_steps=256, batch_size=256,
                    n_epochs=2, out=str(out), progress_bar=False)
    defaults.update(kwargs)
    return TrainArgs(**defaults)


def num_timesteps(run) -> int:
    return TrainedModel(run / "model.zip").model.num_timesteps


# ------------------------------------------------------------------------------------------------ fast


def test_unknown_algo_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="--algo must be one of maskable-ppo, ppo, a2c"):
        train(small_args(tmp_path, algo="nope"))
    assert not any(tmp_path.iterdir()), "no run folder for a rejected run"


def test_resume_without_an_earlier_run_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no earlier run small__maskable-ppo__0__\*"):
        train(small_args(tmp_path, resume=True))
    assert not any(tmp_path.iterdir())


def test_latest_checkpoint_is_the_one_with_most_steps(tmp_path):
    assert _latest_checkpoint(tmp_path) == (None, 0)
    (tmp_path / "checkpoints").mkdir()
    for steps in (500, 10_000, 2_000):
        (tmp_path / "checkpoints" / f"model_{steps}_steps.zip").write_bytes(b"")
    (tmp_path / "checkpoints" / "other.zip").write_bytes(b"")
    path, steps = _latest_checkpoint(tmp_path)
    assert steps == 10_000 and path.name == "model_10000_steps.zip"


def test_run_stage_reads_the_resolved_config(tmp_path):
    assert run_stage(tmp_path) is None
    (tmp_path / "config.yaml").write_text(dump_yaml(load_scenario("small", stage=2)))
    assert run_stage(tmp_path) == 2
    (tmp_path / "config.yaml").write_text(dump_yaml(load_scenario("small", stage={"sales": 2, "marketing": 3})))
    assert run_stage(tmp_path) is None, "mixed stages have no single stage"


def _monitored_episodes(run, n_episodes: int, rank: int = 0) -> None:
    env = make_env_fn(EVAL, run / "monitor", rank)()
    for episode in range(n_episodes):
        env.reset(seed=episode)
        truncated = False
        while not truncated:
            _, _, _, truncated, _ = env.step(np.zeros(N_SEGMENTS, dtype=np.int64))
    env.close()


def test_learning_curve_from_monitor_files(tmp_path):
    assert write_learning_curve(tmp_path).empty
    (tmp_path / "monitor").mkdir()
    _monitored_episodes(tmp_path, 3, rank=0)
    _monitored_episodes(tmp_path, 2, rank=1)
    curve = write_learning_curve(tmp_path)
    assert len(curve) == 5
    assert (curve.episode_length == 4).all()
    assert curve.timesteps.tolist() == [4, 8, 12, 16, 20]
    assert list(pd.read_csv(tmp_path / "learning_curve.csv").columns) == [
        "episode_reward", "episode_length", "wall_seconds", "timesteps"]
    assert (tmp_path / "learning_curve.png").stat().st_size > 0


def test_learning_curve_keeps_episodes_from_before_a_resume(tmp_path):
    (tmp_path / "monitor").mkdir()
    _monitored_episodes(tmp_path, 3)  # first session
    _monitored_episodes(tmp_path, 2)  # resumed session: make_env_fn is called again for the same run
    curve = write_learning_curve(tmp_path)
    assert len(curve) == 5


# ------------------------------------------------------------------------------------------------ slow


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """1,000 maskable-PPO steps on two envs, checkpoint every 500; snapshot of the folder before any resume."""
    out = tmp_path_factory.mktemp("runs")
    run = train(small_args(out))
    snapshot = dict(
        run=run,
        out=out,
        files=sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()),
        checkpoints=sorted(p.name for p in (run / "checkpoints").glob("*.zip")),
        num_timesteps=num_timesteps(run),
        curve=pd.read_csv(run / "learning_curve.csv"),
    )
    return snapshot


@pytest.mark.slow
def test_run_folder_layout(first_run):
    run = first_run["run"]
    match = RUN_NAME.match(run.name)
    assert match and match.group(1) == "maskable-ppo" and match.group(2) == "0"
    assert [p.name for p in first_run["out"].iterdir()] == [run.name]
    for name in ("config.yaml", "args.json", "model.zip", "learning_curve.csv", "learning_curve.png",
                 "vecnormalize.pkl"):
        assert name in first_run["files"], name
    final = first_run["num_timesteps"]  # the final model is also the latest checkpoint
    assert first_run["checkpoints"] == sorted(["model_500_steps.zip", "model_1000_steps.zip", f"model_{final}_steps.zip"])
    for steps in (500, 1000, final):  # reward-normalisation statistics are checkpointed with the model
        assert f"checkpoints/model_vecnormalize_{steps}_steps.pkl" in first_run["files"]
    assert any(f.startswith("tb/") and "tfevents" in f for f in first_run["files"]), "TensorBoard logs"
    args = json.loads((run / "args.json").read_text())
    assert args["algo"] == "maskable-ppo" and args["timesteps"] == 1_000 and args["n_envs"] == 2
    config = load_scenario(run / "config.yaml")
    assert config.name == "small" and config.population.n_hcps == 120
    assert run_stage(run) == 1
    assert first_run["num_timesteps"] >= 1_000
    curve = first_run["curve"]
    assert len(curve) >= 30 and (curve.episode_length == 26).all()
    assert curve.timesteps.iloc[-1] <= first_run["num_timesteps"]
    assert not [p for p in run.rglob(".*")], "no temporary files left"


@pytest.mark.slow
def test_trained_model_runs_in_evaluate(first_run):
    model = TrainedModel(first_run["run"] / "model.zip")
    assert model.algo == "maskable-ppo"
    results, _ = evaluate({"model": model}, EVAL, 2, 0, progress=False)
    kpis = results.pivot_table(index="seed", columns="metric", values="value")
    assert len(kpis) == 2
    assert (kpis["masked_actions"] == 0).all(), "masked PPO only plays allowed plays"
    assert np.isfinite(kpis["profit_usd"]).all()


@pytest.mark.slow
def test_resume_continues_the_same_run_folder(first_run):
    run, out = first_run["run"], first_run["out"]
    resumed = train(small_args(out, timesteps=2_000, resume=True))
    assert resumed == run
    assert [p.name for p in out.iterdir()] == [run.name], "no new run folder"
    assert num_timesteps(run) > first_run["num_timesteps"]
    assert num_timesteps(run) >= 2_000
    checkpoints = sorted(int(re.search(r"_(\d+)_", p.name).group(1)) for p in (run / "checkpoints").glob("*.zip"))
    first_final, final = first_run["num_timesteps"], num_timesteps(run)
    # the first session's checkpoints stay; the resumed session's continue the step count to the final model
    assert checkpoints[:3] == sorted({500, 1_000, first_final})
    assert all(step > first_final for step in checkpoints[3:]) and checkpoints[-1] == final >= 2_000
    assert len(checkpoints) >= 5, "the resumed session checkpoints too"
    # resuming again with nothing left to do keeps the model as it is (the final model is a checkpoint)
    assert train(small_args(out, timesteps=2_000, resume=True)) == run
    assert num_timesteps(run) == final
    assert [p.name for p in out.iterdir()] == [run.name]


@pytest.mark.slow
def test_cli_compare_with_a_run_folder(first_run, tmp_path):
    from typer.testing import CliRunner

    from oce_sim.cli import app

    result = CliRunner().invoke(app, ["compare", "small", "--episodes", "1", "--strategies", "instruction",
                                      "--model", str(first_run["run"]), "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    results = pd.read_csv(tmp_path / "results.csv")
    label = "rl_maskable-ppo"
    assert set(results.strategy) == {"instruction", label}
    assert set(results[results.strategy == label].stage) == {"1-insight"}, "evaluated at the stage it was trained at"


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("short")
    return {algo: train(small_args(out, algo=algo, timesteps=300, n_envs=1, n_steps=64, batch_size=64,
                                   checkpoint_every=10_000))
            for algo in ("ppo", "a2c")}


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_ppo_and_a2c_train_and_evaluate(short_runs, algo):
    run = short_runs[algo]
    assert RUN_NAME.match(run.name).group(1) == algo
    model = TrainedModel(run / "model.zip", stage=run_stage(run))
    assert model.model.num_timesteps >= 300
    results, _ = evaluate({"model": model}, EVAL, 1, 0, progress=False)
    assert set(results.stage) == {"1-insight"}
    assert np.isfinite(results[results.metric == "profit_usd"].value).all()


@pytest.mark.slow
@pytest.mark.parametrize("algo", [
    "ppo",
    "a2c",
])
def test_trained_model_knows_its_algorithm(short_runs, algo):
    from stable_baselines3 import A2C, PPO

    model = TrainedModel(short_runs[algo] / "model.zip")
    assert model.algo == algo
    assert type(model.model) is {"ppo": PPO, "a2c": A2C}[algo]
