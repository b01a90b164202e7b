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
import torch
from gymnasium import spaces
from typer.testing import CliRunner

from oce_sim.agents.trained import TrainedModel
from oce_sim.agents import model_file
from oce_sim.cli import app
from oce_sim.agents.model_file import ModelFileError

from conftest import make_env, rewrite_model, save_model


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
    result, flat = cli("compare", "small", "--best-plan", "0", "--strategies", "instruction,oracle", "--model", path, "--episodes", "1",
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
    result, flat = cli("compare", "small", "--best-plan", "0", "--strategies", "instruction,instruction", "--model", first, "--model",
                       second, "--model-stage", "3", "--episodes", "1", "--no-progress", "--out", out)
    assert result.exit_code == 0, flat
    import pandas as pd

    labels = set(pd.read_csv(out / "results.csv").strategy)
    assert labels == {"today", "instruction", "rl_maskable-ppo (small__maskable-ppo__0__t)",
                      "rl_maskable-ppo (small__maskable-ppo__1__t/model_123_steps)"}, "a strategy named twice runs once"
    result, flat = cli("compare", "small", "--best-plan", "0", "--model", first, "--model", first, "--episodes", "1", "--no-progress",
                       "--out", tmp_path / "again")
    assert result.exit_code == 2 and "is given twice" in flat and not (tmp_path / "again").exists()


def _set(path: str, value):
    """A description edit: the value at a dotted path (``observation_space.dtype``) set to ``value``."""
    def edit(meta):
        *parents, last = path.split(".")
        for part in parents:
            meta = meta[part]
        meta[last] = value
    return edit


def _tensor(name: str, value):
    return lambda tensors: tensors.__setitem__(name, value(tensors[name]))


def _raw(old: str, new: str):
    return lambda meta: json.dumps(meta).replace(old, new, 1)


HOSTILE = {  # name: (description edit, tensor edit, raw description from the edited one, fragment of the message)
    "a 100 KB scenario name": (_set("scenario", "x" * 100_000), None, None, "scenario: String should have at most 200"),
    "a 2 MB header": (_set("scenario", "x" * 2_000_000), None, None, "its header is 2,00"),
    "nvec of 10^6 x 9": (_set("action_space.nvec", [10**6] * 9), None, None, "action_space.MultiDiscrete.nvec.0"),
    "nvec adding up to 540,000": (_set("action_space.nvec", [60_000] * 9), None, None, "adds up to 540,000 choices"),
    "nvec and start of other lengths": (_set("action_space.start", [0]), None, None, "start has 1 entries for 9"),
    "an S2000000000 observation dtype": (_set("observation_space.dtype", "S2000000000"), None, None,
                                          "observation_space.Box.dtype: Input should be 'float32', 'float64' or"),
    "a 10^9-element observation shape": (_set("observation_space.shape", [1000] * 3), None, None,
                                         "1,000,000,000 elements; at most 1,000,000"),
    "a string bound": (_set("observation_space.low", "abc"), None, None, "observation_space.Box.low: must be a number"),
    "an unknown space type": (_set("action_space.type", "Tuple"), None, None, "action_space: Input tag 'Tuple'"),
    "num_timesteps 'abc'": (_set("num_timesteps", "abc"), None, None, "num_timesteps: Input should be a valid integer"),
    "num_timesteps 1e400": (None, None, _raw('"num_timesteps": 123', '"num_timesteps": 1e400'),
                            "num_timesteps: Input should be a valid integer (got inf)"),
    "stage 99": (_set("stage", 99), None, None, "stage: must be a stage 0-3"),
    "stage True": (_set("stage", True), None, None, "stage: must be a stage 0-3"),
    "vecnormalize [1]": (_set("vecnormalize", [1]), None, None, "vecnormalize: Input should be a valid dictionary"),
    "a negative clip_obs": (_set("vecnormalize.clip_obs", -1.0), None, None, "vecnormalize.clip_obs"),
    "half of VecNormalize's settings": (lambda m: m.update(vecnormalize={"norm_obs": False}), None, None,
                                        "missing clip_obs"),
    "net_arch [true]": (_set("net_arch", [True]), None, None, "net_arch.0: Input should be a valid integer"),
    "param_groups 'x'": (_set("optimizer.param_groups", "x"), None, None, "optimizer.param_groups"),
    "betas 'x'": (lambda m: m["optimizer"]["param_groups"][0].update(betas="x"), None, None,
                  "optimizer.param_groups.0.betas"),
    "an elapsed time of NaN": (None, None, _raw('"elapsed_seconds": 0.0', '"elapsed_seconds": NaN'),
                               "elapsed_seconds: Input should be a finite number"),
    "an unknown key": (lambda m: m.update(extra_key=1), None, None, "extra_key: unknown key; allowed: action_space"),
    "format_version true": (_set("format_version", True), None, None, "version True; this oce-sim reads"),
    "a description nested 100,000 deep": (None, None, _raw('"env"', f'"x": {"[" * 100_000}{"]" * 100_000}, "env"'),
                                          "unreadable model description (nested too deeply)"),
    "a description that is a list": (None, None, lambda meta: "[1]", "the model description is not a JSON object"),
    "norm_obs without statistics": (_set("vecnormalize.norm_obs", True), None, None, "norm_obs is set but"),
    "NaN weights": (None, _tensor("policy/action_net.bias", lambda t: t * float("nan")), None,
                    "tensor 'policy/action_net.bias' holds NaN or infinite values"),
    "an infinite learning curve": (None, _tensor("episodes", lambda t: torch.full((1, 4), float("inf"))), None,
                                   "tensor 'episodes' holds NaN or infinite"),
    "int8 weights": (None, _tensor("policy/action_net.bias", lambda t: t.to(torch.int8)), None,
                     "tensor 'policy/action_net.bias' is I8; model files hold float32 (F32) or float64 (F64)"),
    "bool weights": (None, _tensor("policy/action_net.bias", lambda t: t.to(torch.bool)), None, "is BOOL"),
    "float16 weights": (None, _tensor("policy/value_net.weight", lambda t: t.half()), None, "is F16"),
    "weights of another shape": (None, _tensor("policy/action_net.weight", lambda t: t.T.contiguous()), None,
                                 "weights do not fit the described network"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_model_file_is_refused_quickly_naming_the_field(sb3_model, tmp_path, name):
    """Each bad description field, space or tensor is one ModelFileError naming it -> exit 2 with one short message,
    no traceback, before any episode; the hostile cases of issue 25 (a 100 KB scenario name: 300 s and 3 GB; an
    nvec of 10^6 x 9: 82 s and 8 GB; an S2000000000 dtype: 153 GiB) are refused in well under 5 s."""
    import time

    model, vec = sb3_model
    meta, tensors, raw, fragment = HOSTILE[name]
    path = rewrite_model(save_model(model, vec, tmp_path / "hostile.safetensors"), meta, tensors, raw)
    started = time.perf_counter()
    with pytest.raises(ModelFileError) as caught:
        TrainedModel(path)
    assert fragment in str(caught.value) and len(str(caught.value)) < 700, str(caught.value)
    result, flat = cli("compare", "small", "--best-plan", "0", "--model", path, "--episodes", "1", "--no-progress", "--out",
                       tmp_path / "out")
    assert time.perf_counter() - started < 5
    assert result.exit_code == 2 and "Traceback" not in result.output and fragment in flat, flat
    assert flat.count("error:") == 1 and not (tmp_path / "out").exists()
