"""Generated hostile and damaged files a user hands the program: model files (description and tensors), run folders
(``args.json`` and ``config.yaml`` on ``--resume``) and the episodes of a sweep's cache.

Each case is refused by its surface's own error (``ModelFileError``, ``ResumeMismatchError``, a cache entry
refused with a note and run again), in a short message that names the field, tensor or file; or, where the
generated value happens to be valid, accepted.  Never another exception, and never more than a few CPU seconds
(the bounds are checked before any work: the hostile files of issue 25 took tens of seconds to minutes and
gigabytes).  Cases are drawn derandomized, so each run tries the same ones: 150 descriptions, 60 tensors, 100
``args.json``, 100 ``config.yaml`` and 150 cache entries, 560 in all (about 20 seconds).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oce_sim.agents.model_file import ModelFileError
from oce_sim.agents.trained import TrainedModel
from oce_sim.config import dump_yaml
from oce_sim.learning import training
from oce_sim.learning.training import ResumeMismatchError, TrainArgs
from oce_sim.studies.sweep import EpisodeCache
from oce_sim.world.metrics import KPI_NAMES

from conftest import make_env, rewrite_model, save_model

MAX_CPU_SECONDS = 5.0  # per case: a hang or a blow-up burns it; a busy shared machine does not
MAX_MESSAGE_CHARS = 1500  # a message quotes excerpts, never a whole value


def fuzz(examples: int) -> Any:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def within_bounds(check: Any, *args: Any) -> Any:
    """``check(*args)``, which must take less than ``MAX_CPU_SECONDS`` of CPU time."""
    started = time.process_time()
    try:
        return check(*args)
    finally:
        assert time.process_time() - started < MAX_CPU_SECONDS, "too slow: a bound is missing"


# ------------------------------------------------------------------------------------------------ hostile values
def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20),
    st.integers(0, 4000).map(lambda digits: 10**digits),  # (json writes at most 4,300 digits)
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.integers(150, 300_000).map(lambda n: "x" * n),  # around MAX_TEXT_CHARS, and huge
    st.sampled_from(["S2000000000", "float16", "int8", "bool", "object", "<U5", "Box", "Tuple", "1e400", "NaN"]),
    st.lists(st.integers(-10**7, 10**7), max_size=12), st.integers(0, 2_000_000).map(lambda n: [8] * n),
    st.integers(1, 900).map(nested), st.dictionaries(st.text(max_size=8), st.integers(), max_size=4),
)


def leaves(value: Any, path: tuple = ()) -> list[tuple]:
    """Every path into a JSON value (mappings by key, lists by index), itself included."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            found += leaves(item, (*path, index))
    return found


def edited(value: Any, path: tuple, new: Any, delete: bool = False) -> Any:
    """A copy of ``value`` with the item at ``path`` replaced by ``new`` (or deleted: a list's item becomes None)."""
    value = json.loads(json.dumps(value))
    if not path:
        return new
    parent = value
    for part in path[:-1]:
        parent = parent[part]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return value


def edit_cases(base: Any) -> st.SearchStrategy:
    """A hostile value at any path of ``base``, or a key deleted, or an unknown key added."""
    paths = leaves(base)
    return st.one_of(
        st.tuples(st.sampled_from(paths), HOSTILE).map(lambda c: edited(base, c[0], c[1])),
        st.sampled_from([p for p in paths if p]).map(lambda path: edited(base, path, None, delete=True)),
        st.text(min_size=1, max_size=10).map(lambda key: {**base, key: 1} if isinstance(base, dict) else base),
    )


def short(message: str) -> str:
    assert len(message) < MAX_MESSAGE_CHARS, message[:2000]
    assert "Traceback" not in message
    return message


# ------------------------------------------------------------------------------------------------ model files
@pytest.fixture(scope="module")
def model_file_base(sb3_model: Any, tmp_path_factory: Any) -> tuple[Path, dict[str, Any]]:
    path = save_model(*sb3_model, tmp_path_factory.mktemp("fuzz") / "base.safetensors")
    data = path.read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    return path, json.loads(header["__metadata__"]["oce_sim"])


def refusal(path: Path) -> str | None:
    """Why the model is refused (a short message), or None: it loaded and ran on the environment it was trained
    for."""
    try:
        model = TrainedModel(path)
        env = make_env(stage=3)
        model.check_env(env, "small")
        obs, _ = env.reset(seed=0)
        model.predict(obs, action_masks=env.action_masks())
        return None
    except ModelFileError as exc:
        return short(str(exc))


def copy_of(path: Path, folder: str) -> Path:
    copy = Path(folder) / path.name
    copy.write_bytes(path.read_bytes())
    return copy


def test_generated_model_descriptions_are_refused_or_loaded(model_file_base: tuple[Path, dict[str, Any]]) -> None:
    """150 cases: a hostile value (huge strings and numbers, NaN, deep nesting, long lists, wrong types) at any path
    of a real description, a key deleted or an unknown one added: refused naming the field, or loaded and run."""
    base_path, description = model_file_base

    @fuzz(150)
    @given(edit_cases(description))
    def check(meta: Any) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = rewrite_model(copy_of(base_path, folder), raw_meta=lambda _: json.dumps(meta))
            message = within_bounds(refusal, path)
        if message is not None and isinstance(meta, dict):
            changed = {k for k in set(meta) | set(description)  # (as JSON: False == 0 in Python, not in a file)
                       if json.dumps(meta.get(k, "-")) != json.dumps(description.get(k, "-"))}
            # the field, or what a check across fields says (format, algorithm, header, weights, spaces)
            assert any(str(key)[:30] in message for key in changed) or any(
                phrase in message for phrase in ("model format", "algorithm", "header", "weights", "space",
                                                 "unreadable model description", "norm_obs")), (changed, message)

    check()


WEIGHT_DTYPES = [torch.float32, torch.float64]
OTHER_DTYPES = [torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool, torch.float16,
                torch.bfloat16]


def test_generated_model_tensors_are_refused_naming_the_tensor(model_file_base: tuple[Path, dict[str, Any]]) -> None:
    """60 cases: one tensor of the file cast to another dtype and/or given a NaN or infinite value: any dtype but
    float32/float64, or any non-finite value, is refused naming that tensor; the rest load and run."""
    from safetensors.torch import load_file

    base_path, _ = model_file_base
    names = sorted(load_file(str(base_path)))

    @fuzz(60)
    @given(st.sampled_from(names), st.sampled_from(WEIGHT_DTYPES + OTHER_DTYPES),
           st.sampled_from([None, float("nan"), float("inf"), -float("inf")]))
    def check(name: str, dtype: torch.dtype, bad: float | None) -> None:
        def damage(tensors: dict[str, Any]) -> None:
            tensor = tensors[name].clone()
            if bad is not None and tensor.numel():
                tensor.view(-1)[0] = bad
            tensors[name] = tensor.to(dtype)

        with tempfile.TemporaryDirectory() as folder:
            path = rewrite_model(copy_of(base_path, folder), tensors=damage)
            stored = load_file(str(path))[name]
            message = within_bounds(refusal, path)
        if dtype not in WEIGHT_DTYPES or not bool(torch.isfinite(stored).all()):
            assert message is not None and f"tensor {name!r}" in message, message
        else:
            assert message is None, message

    check()


# ------------------------------------------------------------------------------------------------ run folders
def to_yaml(value: Any) -> bytes:
    try:
        return yaml.safe_dump(value, allow_unicode=True).encode()
    except RecursionError:  # PyYAML's writer nests no deeper than Python's stack: nesting that deep, unwritten
        return b"a: " + b"[" * 1000
@pytest.fixture(scope="module")
def run_folder_base(tmp_path_factory: Any) -> tuple[TrainArgs, Any, dict[str, Any], str]:
    """The arguments and scenario of a run as `oce-sim train small --algo maskable-ppo` starts it, and the
    args.json and config.yaml it writes (no training: the files are checked before any checkpoint is read)."""
    args = training.resolved(TrainArgs(scenario="small", algo="maskable-ppo", n_envs=1, progress_bar=False,
                                       out=str(tmp_path_factory.mktemp("runs"))))
    config = training.training_scenario(args)
    return args, config, json.loads(json.dumps(asdict(args))), dump_yaml(config)


def check_run_folder(args: TrainArgs, config: Any, files: dict[str, bytes]) -> None:
    """``--resume``'s check of a run folder holding ``files``: accepted (the same run) or a ResumeMismatchError
    that names the file it could not use."""
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder)
        for name, content in files.items():
            (run / name).write_bytes(content)
        try:
            within_bounds(training._check_resume_settings, run, args, config)
        except ResumeMismatchError as exc:
            message = short(str(exc))
            assert any(str(run / name) in message for name in files), message


def test_generated_args_json_is_refused_naming_it(run_folder_base: tuple) -> None:
    """100 cases: a hostile value at any path of a real args.json (or a key deleted or added), any JSON value, or
    bytes that are not JSON: refused naming args.json, or accepted as the same run."""
    args, config, recorded, scenario = run_folder_base
    contents = st.one_of(
        edit_cases(recorded).map(lambda value: json.dumps(value).encode()),
        st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=4),
                     max_leaves=20).map(lambda value: json.dumps(value).encode()),
        st.binary(max_size=200),
        st.integers(1, 100_000).map(lambda n: b"[" * n),
    )

    @fuzz(100)
    @given(contents)
    def check(content: bytes) -> None:
        check_run_folder(args, config, {"args.json": content, "config.yaml": scenario.encode()})

    check()


def test_generated_config_yaml_is_refused_naming_it(run_folder_base: tuple) -> None:
    """100 cases: a hostile value at any path of a real config.yaml (or a key deleted or added), bytes that are not
    YAML or not UTF-8, deep nesting and alias bombs: refused naming config.yaml, or accepted as the same run."""
    args, config, recorded, scenario = run_folder_base
    data = yaml.safe_load(scenario)
    bomb = st.integers(2, 12).map(lambda levels: ("a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, levels))).encode())
    contents = st.one_of(
        edit_cases(data).map(to_yaml),
        st.binary(max_size=300),
        st.integers(1, 70_000).map(lambda n: b"a: " + b"[" * n),
        bomb,
    )

    @fuzz(100)
    @given(contents)
    def check(content: bytes) -> None:
        check_run_folder(args, config, {"args.json": json.dumps(recorded).encode(), "config.yaml": content})

    check()


# ------------------------------------------------------------------------------------------------ cache entries
KEY = "ab" * 32


def test_generated_cache_entries_are_refused_and_run_again(tmp_path: Path) -> None:
    """150 cases: a hostile value at any path of a real cache entry (or a key deleted or added), any JSON value, or
    bytes that are not JSON: refused with one note naming the entry (its episode runs again), never used unless it
    is a complete entry of this very key with a finite number for every KPI."""
    entry = {"key": KEY, "kpis": {name: float(i) for i, name in enumerate(KPI_NAMES)}}
    contents = st.one_of(
        edit_cases(entry).map(lambda value: json.dumps(value).encode()),
        st.binary(max_size=200),
        st.integers(1_040_000, 1_050_000).map(lambda n: b" " * n + json.dumps(entry).encode()),
    )

    @fuzz(150)
    @given(contents)
    def check(content: bytes) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / KEY[:2] / f"{KEY}.json"
            path.parent.mkdir()
            path.write_bytes(content)
            cache = EpisodeCache(Path(folder), KPI_NAMES)
            kpis = within_bounds(cache.get, KEY)
            if kpis is None:
                assert len(cache.refused) == 1 and str(path) in short(cache.refused[0]), cache.refused
            else:
                stored = json.loads(content)
                assert stored["key"] == KEY and list(kpis) == list(KPI_NAMES) and not cache.refused
                assert all(isinstance(v, float) and math.isfinite(v) for v in kpis.values())

    check()
