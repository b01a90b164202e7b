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
import yaml

from oce_sim.agents.trained import TrainedModel
from oce_sim.config import dump_yaml, load_scenario
from oce_sim.studies.evaluation import evaluate
from oce_sim.learning import training
from oce_sim.learning.training import (
    TrainArgs,
    _latest_checkpoint,
    model_path,
    run_stage,
    train,
    truncate_event_files,
    write_learning_curve,
)

RUN_NAME = re.compile(r"^small__(maskable-ppo|ppo|a2c)__(\d+)__\d{8}-\d{6}(-\d+)?$")
EVAL = load_scenario("small", overrides={"env": {"horizon_days": 28}})


def small_args(out, **kwargs) -> TrainArgs:
    defaults = dict(scenario="small", algo="maskable-ppo", timesteps=1_000, n_envs=2, checkpoint_every=500,
                    n_steps=256, batch_size=256, n_epochs=2, out=str(out), progress_bar=False)
    defaults.update(kwargs)
    return TrainArgs(**defaults)


def num_timesteps(run) -> int:
    return TrainedModel(model_path(run)).num_timesteps


# ------------------------------------------------------------------------------------------------ fast


def test_unknown_algo_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="--algo must be one of factored-ppo, maskable-ppo, ppo, a2c"):
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
        (tmp_path / "checkpoints" / f"model_{steps}_steps.safetensors").write_bytes(b"")
    (tmp_path / "checkpoints" / "other.safetensors").write_bytes(b"")
    (tmp_path / "checkpoints" / "model_99999_steps.zip").write_bytes(b"")  # old pickle format: never loaded
    path, steps = _latest_checkpoint(tmp_path)
    assert steps == 10_000 and path.name == "model_10000_steps.safetensors"


def test_run_folders_are_unique_within_one_second_and_stay_inside_out(tmp_path, monkeypatch):
    monkeypatch.setattr(training.time, "strftime", lambda fmt: "20260101-120000")
    config = load_scenario("small")
    runs = [training._new_run_folder(tmp_path, "small__ppo__0", config, small_args(tmp_path)) for _ in range(3)]
    assert [r.name for r in runs] == ["small__ppo__0__20260101-120000", "small__ppo__0__20260101-120000-2",
                                      "small__ppo__0__20260101-120000-3"]
    assert all((r / "config.yaml").is_file() and (r / "args.json").is_file() for r in runs)
    assert training._latest_run(tmp_path, "small__ppo__0") == runs[-1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no half-made run folder left"
    assert training._safe_name("../../x") == "_.._x" and "/" not in training._safe_name("a/b")


def a_run_folder(tmp_path, **kwargs):
    """A run folder as ``train`` creates it (config.yaml, args.json), before any checkpoint."""
    args = training.resolved(small_args(tmp_path, **kwargs))
    config = training.training_scenario(args)
    return training._new_run_folder(tmp_path, f"small__{args.algo}__{args.seed}", config, args)


@pytest.mark.parametrize("changed, message", [
    (dict(n_envs=4), "arguments: n_envs: run 2, now 4"),
    (dict(gamma=0.9), "arguments: gamma: run 0.99, now 0.9"),
    (dict(net_arch=[32]), "net_arch: run [64, 64], now [32]"),
    (dict(stage=2), "scenario settings: stage.customer: run 1, now 2"),
])
def test_resume_refuses_settings_that_make_another_run(tmp_path, changed, message):
    """A resumed session may change how long and how it runs, never what the run is; the folder is left as it was."""
    run = a_run_folder(tmp_path)
    before = sorted(p.name for p in run.rglob("*"))
    with pytest.raises(training.ResumeMismatchError, match=re.escape(message)) as caught:
        train(small_args(tmp_path, resume=True, **changed), log=lambda line: None)
    assert "start a new run without --resume" in str(caught.value)
    assert sorted(p.name for p in run.rglob("*") if p.name != ".lock") == before  # the check runs under the lock


def test_resume_refuses_a_scenario_edited_since_the_run_started(tmp_path):
    run = a_run_folder(tmp_path)
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    recorded["economics"]["price_per_rx_usd"] += 1.0  # what an edit of the scenario file would give
    (run / "config.yaml").write_text(yaml.safe_dump(recorded, sort_keys=False))
    with pytest.raises(training.ResumeMismatchError, match=r"scenario settings: economics\.price_per_rx_usd: run 501.0, now 500.0"):
        train(small_args(tmp_path, resume=True), log=lambda line: None)


def test_resume_accepts_what_a_session_may_change(tmp_path):
    """Length, budget, learning rate, checkpoints, vec, workers, and --stage naming the scenario's own stage."""
    run = a_run_folder(tmp_path)
    config = training.training_scenario(training.resolved(small_args(tmp_path)))
    same = training.resolved(small_args(tmp_path, resume=True, timesteps=5_000, max_minutes=1.0, learning_rate=1e-4,
                                        checkpoint_every=100, vec="subproc", progress_bar=True, stage=1))
    training._check_resume_settings(run, same, training.training_scenario(same))
    (run / "args.json").unlink()  # a run folder of an older oce-sim: not checked
    training._check_resume_settings(run, training.resolved(small_args(tmp_path, n_envs=8)), config)


def test_truncate_event_files_keeps_steps_up_to_the_checkpoint(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "run_1"))
    for step in range(0, 1000, 100):
        writer.add_scalar("x", float(step), step)
    writer.close()
    events = next((tmp_path / "run_1").glob("events.out.tfevents.*"))
    with events.open("ab") as handle:
        handle.write(b"\x40\x00\x00")  # a record torn by a kill
    assert truncate_event_files(tmp_path, 500) == 5
    accumulator = EventAccumulator(str(tmp_path / "run_1"))
    accumulator.Reload()
    assert [e.step for e in accumulator.Scalars("x")] == [0, 100, 200, 300, 400, 500]
    assert truncate_event_files(tmp_path, 500) == 0, "idempotent"


def test_run_stage_reads_the_resolved_config(tmp_path):
    assert run_stage(tmp_path) is None
    (tmp_path / "config.yaml").write_text(dump_yaml(load_scenario("small", stage=2)))
    assert run_stage(tmp_path) == 2
    (tmp_path / "config.yaml").write_text(dump_yaml(load_scenario("small", stage={"sales": 2, "marketing": 3})))
    assert run_stage(tmp_path) is None, "mixed stages have no single stage"


def test_learning_curve_from_episode_records(tmp_path):
    records = np.array([[52, 1.5, 26, 3.0], [26, 1.0, 26, 1.0], [52, 2.0, 26, 3.5]])
    curve = write_learning_curve(tmp_path, records, "title")
    assert curve.timesteps.tolist() == [26, 52, 52] and curve.episode_reward.tolist() == [1.0, 1.5, 2.0]
    assert list(pd.read_csv(tmp_path / "learning_curve.csv").columns) == [
        "episode_reward", "episode_length", "wall_seconds", "timesteps"]
    assert (tmp_path / "learning_curve.png").stat().st_size > 0
    assert write_learning_curve(tmp_path, np.zeros((0, 4)), "empty").empty


def test_train_checkpoints_and_resume_skips_an_unreadable_checkpoint(tmp_path):
    """In-process, a few seconds: checkpoints between updates, a 0-byte latest checkpoint is skipped for the one
    before, the resumed run ends where an uninterrupted one would and its curve counts no step twice."""
    args = dict(timesteps=192, n_envs=1, n_steps=64, batch_size=64, checkpoint_every=64, n_epochs=1)
    lines: list[str] = []
    run = train(small_args(tmp_path, **{**args, "timesteps": 128}), log=lines.append)
    steps = sorted(s for _, s in training._checkpoints(run))
    assert steps == [0, 64, 128]
    assert TrainedModel(model_path(run)).num_timesteps == 128
    (run / "checkpoints" / "model_128_steps.safetensors").write_bytes(b"")  # a kill during the write, before atomic
    (run / "checkpoints" / ".model_192_steps.safetensors.x.tmp").write_bytes(b"half")  # ... and after
    train(small_args(tmp_path, resume=True, **args), log=lines.append)
    assert any("skipping checkpoint model_128_steps.safetensors" in line for line in lines), lines
    assert any("resuming" in line and "from step 64" in line for line in lines), lines
    assert TrainedModel(model_path(run)).num_timesteps == 192
    assert not list(run.glob("checkpoints/.*")), "the temporary file of a killed write is removed"
    curve = pd.read_csv(run / "final" / "learning_curve.csv")
    # episodes end every 26 steps; the resume restarts the environment at step 64: the first session's episodes
    # after 64 (78, 104) are dropped with the checkpoint they came after, none is counted twice
    assert curve.timesteps.tolist() == [26, 52, 64 + 26, 64 + 52, 64 + 78, 64 + 104]


def test_resume_refuses_a_checkpoint_without_reward_statistics(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    args = dict(timesteps=64, n_envs=1, n_steps=64, batch_size=64, checkpoint_every=64, n_epochs=1)
    run = train(small_args(tmp_path, **args), log=lambda line: None)
    for path, _ in training._checkpoints(run):
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata()
        tensors = {k: v for k, v in load_file(str(path)).items() if not k.startswith("vecnormalize/")}
        save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(FileNotFoundError, match="none of the 2 checkpoints"):
        train(small_args(tmp_path, resume=True, **{**args, "timesteps": 128}), log=lambda line: None)


# A run as `oce-sim train small --algo maskable-ppo --n-envs 1 --n-steps 64 --checkpoint-every 64` starts it, so that
# the command resumes it: a checkpoint every rollout of 64 steps.
CLI_RUN = dict(scenario="small", algo="maskable-ppo", n_envs=1, n_steps=64, batch_size=64, checkpoint_every=64,
               progress_bar=False)


def resume_cli(out, timesteps: int = 128):
    from typer.testing import CliRunner

    from oce_sim.cli import app

    result = CliRunner().invoke(app, ["train", "small", "--algo", "maskable-ppo", "--n-envs", "1", "--n-steps", "64",
                                      "--checkpoint-every", "64", "--timesteps", str(timesteps), "--out", str(out),
                                      "--resume", "--no-progress"])
    return result, " ".join(result.output.split())


@pytest.fixture(scope="module")
def ten_checkpoints(tmp_path_factory):
    """576 steps in 9 rollouts of 64 (a few seconds): checkpoints at 0, 64, ..., 576."""
    out = tmp_path_factory.mktemp("ten")
    run = train(TrainArgs(**CLI_RUN, timesteps=576, out=str(out)), log=lambda line: None)
    assert sorted(s for _, s in training._checkpoints(run)) == list(range(0, 577, 64))
    return run


def copy_run(run, tmp_path):
    import shutil

    shutil.copytree(run, tmp_path / run.name)
    return tmp_path / run.name


def _swap(name, value):
    return lambda tensors, meta: tensors.__setitem__(name, value(tensors[name]))


# Damage done to a checkpoint -> what the note on skipping it says.  Each would be a traceback in the middle of
# the resume (or a NaN run) if the checkpoint were used.
DAMAGE = {
    "NaN weights": (_swap("policy/action_net.bias", lambda t: t * float("nan")), "holds NaN or infinite values"),
    "weights of another shape": (_swap("policy/action_net.weight", lambda t: t.T.contiguous()),
                                 "weights do not fit the described network"),
    "an optimizer moment of another shape": (_swap("optimizer/0/exp_avg", lambda t: t.T.contiguous()),
                                             "optimizer/0/exp_avg has shape (82, 64); its parameter has (64, 82)"),
    "an optimizer state without exp_avg_sq": (lambda tensors, meta: tensors.pop("optimizer/0/exp_avg_sq"),
                                              "the optimizer state of parameter 0 lacks exp_avg_sq"),
    "parameter groups of another network": (lambda tensors, meta: meta["optimizer"]["param_groups"][0]
                                            .update(params=[0, 1]), "parameter groups [[0, 1]] are not those"),
    "malformed optimizer settings": (lambda tensors, meta: meta["optimizer"]["param_groups"][0].update(betas="x"),
                                     "optimizer.param_groups.0.betas"),
    "a learning curve of 3 columns": (_swap("episodes", lambda t: t[:, :3].contiguous()), "no learning curve in it"),
    "another observation space": (lambda tensors, meta: meta["observation_space"].update(shape=[83]),
                                  "was trained for another observation space than this run has"),
}


def damage(path, how):
    from conftest import rewrite_model

    edit = DAMAGE[how][0]
    state: dict = {}
    rewrite_model(path, meta=lambda meta: state.setdefault("meta", meta),
                  tensors=lambda tensors: edit(tensors, state["meta"]))


def test_resume_skips_damaged_checkpoints_for_the_one_before(ten_checkpoints, tmp_path):
    """The README's promise: an unreadable checkpoint is skipped for the one before.  The 8 newest checkpoints are
    each damaged another way (NaN or misshapen weights, a malformed optimizer state, ...): `oce-sim train --resume`
    skips each with a note on stderr naming it and why, and resumes from the 9th (step 64), optimizer state and all."""
    run = copy_run(ten_checkpoints, tmp_path)
    damaged = dict(zip(range(576, 64, -64), DAMAGE))
    for steps, how in damaged.items():
        damage(run / "checkpoints" / f"model_{steps}_steps.safetensors", how)
    result, flat = resume_cli(tmp_path)
    assert result.exit_code == 0 and "Traceback" not in result.output, flat
    for steps, how in damaged.items():
        assert f"note: --resume: skipping checkpoint model_{steps}_steps.safetensors (" in flat, (how, flat)
        assert DAMAGE[how][1] in flat, (how, flat)
    assert f"resuming {run.name} from step 64 (model_64_steps.safetensors)" in flat
    assert TrainedModel(model_path(run)).num_timesteps == 128


def test_resume_with_no_readable_checkpoint_exits_2(ten_checkpoints, tmp_path):
    run = copy_run(ten_checkpoints, tmp_path)
    for path, _ in training._checkpoints(run):
        damage(path, "NaN weights")
    result, flat = resume_cli(tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output, flat
    assert "none of the 10 checkpoints of" in flat and "is readable; start a new run" in flat
    assert flat.count("note: --resume: skipping checkpoint") == 10


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))


@pytest.mark.parametrize("name, content, fragment", [
    ("args.json", b"[1, 2]", "it must hold a JSON object of the run's arguments, not a list"),
    ("args.json", b"[" * 20_000, "nested too deeply"),
    ("args.json", b" " * 70_000, "larger than 65,536 bytes"),
    ("args.json", b"\xff{}", "not UTF-8 text (byte 0xff at offset 0)"),
    ("args.json", b'{"seed": "0"}', "seed: Input should be a valid integer"),
    ("args.json", b'{"timesteps": 1e400}', "timesteps: Input should be a valid integer"),
    ("args.json", b'{"net_arch": [[[[1]]]]}', "net_arch.0: Input should be a valid integer"),
    ("args.json", b'{"mystery": 1}', "mystery: unknown key; allowed: algo"),
    ("config.yaml", b"population: {n_hcps: 120}\nname: caf\xe9\n", "not UTF-8 text (byte 0xe9"),
    ("config.yaml", ALIAS_BOMB.encode(), "values once aliases are expanded"),
    ("config.yaml", b"- 1\n- 2\n", "a scenario must be a mapping"),
    ("config.yaml", b"", "empty"),
])
def test_resume_refuses_an_unreadable_run_folder_file(ten_checkpoints, tmp_path, name, content, fragment):
    """args.json and config.yaml are read back within bounds, typed: each bad one is exit 2 naming the file and
    what is wrong, in well under 5 s (an alias bomb in config.yaml hung the unbounded loader)."""
    import time

    run = copy_run(ten_checkpoints, tmp_path)
    (run / name).write_bytes(content)
    started = time.perf_counter()
    result, flat = resume_cli(tmp_path)
    assert time.perf_counter() - started < 5
    assert result.exit_code == 2 and "Traceback" not in result.output, flat
    assert str(run / name) in "".join(flat.split()), "the message names the file (rich may wrap its path)"
    assert "cannot read" in flat or "is not the arguments of a run" in flat
    assert fragment in flat, flat
    assert sorted(s for _, s in training._checkpoints(run)) == list(range(0, 577, 64)), "the folder is left as it was"


def test_recorded_args_know_every_train_argument():
    from dataclasses import fields

    assert set(training.RecordedArgs.model_fields) == {f.name for f in fields(TrainArgs)}


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
        checkpoints=sorted(p.name for p in (run / "checkpoints").glob("*.safetensors")),
        num_timesteps=num_timesteps(run),
        curve=pd.read_csv(run / "final" / "learning_curve.csv"),
    )
    return snapshot


@pytest.mark.slow
def test_run_folder_layout(first_run):
    run = first_run["run"]
    match = RUN_NAME.match(run.name)
    assert match and match.group(1) == "maskable-ppo" and match.group(2) == "0"
    assert [p.name for p in first_run["out"].iterdir()] == [run.name]
    for name in ("config.yaml", "args.json", "final/model.safetensors", "final/learning_curve.csv",
                 "final/learning_curve.png", "final/manifest.json"):
        assert name in first_run["files"], name
    # checkpoints fall between updates (rollouts of 2 x 256 steps): the first, then every >= 500 steps; the final
    # model is also the latest checkpoint
    assert first_run["num_timesteps"] == 1024
    assert first_run["checkpoints"] == sorted(f"model_{s}_steps.safetensors" for s in (0, 512, 1024))
    assert (run / "final" / "model.safetensors").read_bytes() == (run / "checkpoints" / "model_1024_steps.safetensors").read_bytes()
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
    assert sorted(p.name for p in run.rglob(".*")) == [".final.lock", ".lock"], "no temporary files left"


@pytest.mark.slow
def test_trained_model_runs_in_evaluate(first_run):
    model = TrainedModel(model_path(first_run["run"]))
    assert model.algo == "maskable-ppo" and model.stage == 1
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
    checkpoints = sorted(s for _, s in training._checkpoints(run))
    # the first session's checkpoints stay; the resumed session's continue the step count to the final model
    assert checkpoints == [0, 512, 1024, 1536, 2048] and num_timesteps(run) == 2048
    final = num_timesteps(run)
    curve = pd.read_csv(run / "final" / "learning_curve.csv")
    assert curve.timesteps.is_monotonic_increasing and curve.timesteps.iloc[-1] <= final
    # resuming again with nothing left to do keeps the model as it is (the final model is a checkpoint)
    assert train(small_args(out, timesteps=2_000, resume=True)) == run
    assert num_timesteps(run) == final
    assert [p.name for p in out.iterdir()] == [run.name]


@pytest.mark.slow
def test_cli_compare_with_a_run_folder(first_run, tmp_path):
    from typer.testing import CliRunner

    from oce_sim.cli import app

    result = CliRunner().invoke(app, ["compare", "small", "--episodes", "1", "--best-plan", "0", "--strategies", "instruction",
                                      "--model", str(first_run["run"]), "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    results = pd.read_csv(tmp_path / "results.csv")
    label = "rl_maskable-ppo (privileged reward)"  # trained on the expected reward (the default)
    assert set(results.strategy) == {"today", "instruction", label}, "compare always runs today, the baseline"
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
    model = TrainedModel(model_path(run))
    assert model.num_timesteps >= 300 and model.stage == run_stage(run) == 1
    results, _ = evaluate({"model": model}, EVAL, 1, 0, progress=False)
    assert set(results.stage) == {"1-insight"}
    assert np.isfinite(results[results.metric == "profit_usd"].value).all()


@pytest.mark.slow
@pytest.mark.parametrize("algo", [
    "ppo",
    "a2c",
])
def test_trained_model_knows_its_algorithm(short_runs, algo):
    from stable_baselines3.common.policies import ActorCriticPolicy

    model = TrainedModel(model_path(short_runs[algo]))
    assert model.algo == algo and model.meta["policy_class"] == "ActorCriticPolicy"
    assert type(model.policy) is ActorCriticPolicy


@pytest.mark.slow
def test_native_vector_env_trains_the_same_model_as_subproc(tmp_path):
    """--vec native: the same territories, seeds and rollouts as SubprocVecEnv workers, so the same weights."""
    from safetensors.numpy import load_file

    runs = {vec: train(small_args(tmp_path / vec, timesteps=512, vec=vec), log=lambda line: None)
            for vec in ("native", "subproc")}
    weights = {vec: {k: v for k, v in load_file(str(model_path(run))).items() if k.startswith("policy/")}
               for vec, run in runs.items()}
    assert weights["native"].keys() == weights["subproc"].keys()
    for key, value in weights["native"].items():
        assert np.array_equal(value, weights["subproc"][key]), key
    curves = {vec: pd.read_csv(run / "final" / "learning_curve.csv") for vec, run in runs.items()}
    assert len(curves["native"]) > 0 and (curves["native"].episode_length == 26).all()
    assert np.allclose(curves["native"].episode_reward, curves["subproc"].episode_reward)
