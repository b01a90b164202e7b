"""Model files are data (agents/model_file.py): loading one runs no code; wrong formats, versions and spaces are
refused before anything runs, with a message saying how to get a usable model."""

from __future__ import annotations

import base64
import json
import pickle
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from gymnasium import spaces
from typer.testing import CliRunner

from oce_sim.agents.trained import TrainedModel
from oce_sim.agents import model_file
from oce_sim.cli import app
from oce_sim.agents.model_file import ModelFileError

from conftest import make_env


class Payload:
    """Unpickling this creates ``path``: a harmless stand-in for arbitrary code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def malicious_sb3_zip(path, marker):
    """An SB3-style zip whose ``data`` entry holds a pickled object, as Stable-Baselines3 saves them."""
    blob = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    data = {"policy_class": {":type:": "<class 'type'>", ":serialized:": blob}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("_stable_baselines3_version", "2.9.2")
    return path


@pytest.fixture(scope="module")
def sb3_model():
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    vec = VecNormalize(DummyVecEnv([lambda: make_env(stage=3)]), norm_obs=False, norm_reward=True)
    model = MaskablePPO("MlpPolicy", vec, n_steps=64, batch_size=64, seed=0, device="cpu",
                        policy_kwargs=dict(net_arch=[16, 16]))
    return model, vec


def save_model(model, vec, path, stage=3, mutate=None):
    data = model_file.model_bytes(model, "maskable-ppo", stage, "small", 123, model_file.vecnormalize_state(vec),
                                  np.zeros((0, 4)), 0.0, [16, 16])
    if mutate is not None:
        from safetensors.torch import load, save

        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
        meta = json.loads(header["__metadata__"]["oce_sim"])
        mutate(meta)
        data = save(load(data), metadata={"oce_sim": json.dumps(meta)})
    path.write_bytes(data)
    return path


def cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result, " ".join(result.output.split())


def test_a_model_file_round_trips_without_pickle(sb3_model, tmp_path):
    model, vec = sb3_model
    path = save_model(model, vec, tmp_path / "m.safetensors")
    loaded = TrainedModel(path)
    assert loaded.algo == "maskable-ppo" and loaded.stage == 3 and loaded.num_timesteps == 123
    env = make_env(stage=3)
    obs, _ = env.reset(seed=0)
    mask = env.action_masks()
    expected, _ = model.predict(obs, deterministic=True, action_masks=mask)
    actual, _ = loaded.predict(obs, deterministic=True, action_masks=mask)
    assert np.array_equal(expected, actual)
    loaded.check_env(env, "small")


def test_a_crafted_pickle_zip_is_refused_and_runs_no_code(tmp_path):
    from stable_baselines3.common.save_util import load_from_zip_file

    marker = tmp_path / "marker"
    evil = malicious_sb3_zip(tmp_path / "evil.zip", marker)
    load_from_zip_file(evil, device="cpu")  # proves the file is hostile: SB3's own loader runs the payload
    assert marker.exists()
    marker.unlink()

    with pytest.raises(ModelFileError, match="can run code from it"):
        TrainedModel(evil)
    disguised = tmp_path / "evil.safetensors"
    disguised.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        TrainedModel(disguised)
    for args in (["compare", "small", "--model", evil], ["run", "small", "--strategy", disguised]):
        result, flat = cli(*args, "--episodes", "1", "--no-progress", "--out", tmp_path / "out")
        assert result.exit_code == 2 and "Traceback" not in result.output, flat
    assert "oce-sim convert-model" in flat or "retrain" in flat
    assert not marker.exists(), "no code from the file ran"
    assert not (tmp_path / "out").exists()


def test_a_model_for_other_spaces_is_refused_before_anything_runs(sb3_model, tmp_path):
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

    model, vec = sb3_model
    obs_space, action_space = spaces.Box(0, 1, (10,), np.float32), spaces.MultiDiscrete([8] * 9)
    policy = MaskableActorCriticPolicy(obs_space, action_space, lambda _: 1e-3, net_arch=[16, 16])
    other = SimpleNamespace(policy=policy, observation_space=obs_space, action_space=action_space)
    path = tmp_path / "other.safetensors"
    path.write_bytes(model_file.model_bytes(other, "maskable-ppo", 3, "elsewhere", 5,
                                            model_file.vecnormalize_state(vec), np.zeros((0, 4)), 0.0, [16, 16]))
    TrainedModel(path)  # a well-formed file ...
    result, flat = cli("compare", "small", "--strategies", "instruction,oracle", "--model", path, "--episodes", "1",
                       "--no-progress", "--out", tmp_path / "out")
    assert result.exit_code == 2, flat  # ... refused for this scenario, before any episode ran
    assert "trained for another observation space" in flat and "retrain it on this scenario" in flat
    assert not (tmp_path / "out").exists()


def test_another_format_version_is_refused_with_how_to_convert(sb3_model, tmp_path):
    model, vec = sb3_model
    newer = save_model(model, vec, tmp_path / "v2.safetensors", mutate=lambda m: m.update(format_version=2))
    with pytest.raises(ModelFileError, match=r"version 2; this oce-sim reads 'oce-sim-model' version 1\. Retrain"):
        TrainedModel(newer)
    bad_weights = save_model(model, vec, tmp_path / "arch.safetensors", mutate=lambda m: m.update(net_arch=[8]))
    with pytest.raises(ModelFileError, match="weights do not fit"):
        TrainedModel(bad_weights)
    bomb = save_model(model, vec, tmp_path / "bomb.safetensors", mutate=lambda m: m.update(net_arch=[65_536] * 64))
    with pytest.raises(ModelFileError, match="larger than the weights in the file"):
        TrainedModel(bomb)  # refused before allocating 64 layers of 65,536 x 65,536


def test_convert_model_needs_trust_and_keeps_the_predictions(sb3_model, tmp_path):
    model, _ = sb3_model
    model.save(tmp_path / "old.zip")
    result, flat = cli("convert-model", tmp_path / "old.zip")
    assert result.exit_code == 2 and "repeat with --trust" in flat
    result, flat = cli("convert-model", tmp_path / "old.zip", "--trust", "--stage", "3")
    assert result.exit_code == 0, flat
    converted = TrainedModel(tmp_path / "old.safetensors")
    assert converted.stage == 3
    env = make_env(stage=3)
    obs, _ = env.reset(seed=1)
    mask = env.action_masks()
    assert np.array_equal(model.predict(obs, deterministic=True, action_masks=mask)[0],
                          converted.predict(obs, deterministic=True, action_masks=mask)[0])


def test_two_models_of_one_algorithm_keep_a_column_each(sb3_model, tmp_path):
    model, vec = sb3_model
    first = tmp_path / "small__maskable-ppo__0__t" / "final" / "model.safetensors"
    second = tmp_path / "small__maskable-ppo__1__t" / "checkpoints" / "model_123_steps.safetensors"
    for path in (first, second):
        path.parent.mkdir(parents=True)
        save_model(model, vec, path)
    out = tmp_path / "out"
    result, flat = cli("compare", "small", "--strategies", "instruction,instruction", "--model", first, "--model",
                       second, "--model-stage", "3", "--episodes", "1", "--no-progress", "--out", out)
    assert result.exit_code == 0, flat
    import pandas as pd

    labels = set(pd.read_csv(out / "results.csv").strategy)
    assert labels == {"today", "instruction", "rl_maskable-ppo (small__maskable-ppo__0__t)",
                      "rl_maskable-ppo (small__maskable-ppo__1__t/model_123_steps)"}, "a strategy named twice runs once"
    result, flat = cli("compare", "small", "--model", first, "--model", first, "--episodes", "1", "--no-progress",
                       "--out", tmp_path / "again")
    assert result.exit_code == 2 and "is given twice" in flat and not (tmp_path / "again").exists()
