"""Generated bad input: every case exits 2 with a short message naming the field or argument, no traceback.

One hypothesis strategy per constraint class (types, ranges, finiteness, encodings, YAML structure, duplicate
keys, aliases, nesting, sizes, unknown keys, names, paths, CLI arguments, what-if plans), and one for the Python
vector API's counts (``num_envs``, ``workers``).  Each strategy yields a ``Case``: the
files to write, the ``oce-sim`` arguments and the fragments the message must contain.  The CLI runs in-process
(typer's CliRunner), so a case costs milliseconds.  The normal suite runs a few hundred cases; the slow test runs
well over a thousand with a time bound per case and a memory bound over the run.
"""

from __future__ import annotations

import math
import os
import re
import resource
import tempfile
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import annotated_types
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

from oce_sim import cli
from oce_sim.cli import common
from oce_sim.config.files import MAX_COLLECTION_ITEMS, MAX_SCENARIO_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES
from oce_sim.config.schema import (
    INT64_MAX,
    MAX_DAYS,
    MAX_USD,
    MAX_WORKING_MINUTES,
    MIN_STEP_DAYS,
    ScenarioConfig,
    _is_probability,
)

MAX_OUTPUT_CHARS = 4000  # the whole error output of one bad input
DIR = "{dir}"  # stands for the case's temporary folder in arguments

RUNNER = CliRunner()


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    expect: tuple[str, ...]  # fragments of the message: the field path or argument name
    files: dict[str, bytes] = field(default_factory=dict)
    untouched: str | None = "out"  # a path (in the case folder) that must not be created


def run_case(case: Case) -> tuple[float, float]:
    """Run one case and check it; returns its CPU and wall-clock seconds."""
    with tempfile.TemporaryDirectory() as folder:
        for name, content in case.files.items():
            (Path(folder) / name).write_bytes(content)
        args = [arg.replace(DIR, folder) for arg in case.args]
        started, started_cpu = time.perf_counter(), time.process_time()
        result = RUNNER.invoke(cli.app, args)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
        output = result.output
        shown = f"args={[a[:80] for a in args]}\noutput={output[:2000]!r}"
        assert result.exit_code == 2, shown
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            f"{result.exception!r}\n{shown}"
        assert "Traceback" not in output, shown
        assert len(output) <= MAX_OUTPUT_CHARS, f"{len(output)} characters\n{shown}"
        flat = " ".join(output.split())  # rich wraps long lines
        assert "error" in flat.lower(), shown  # ours ("error: ...") or typer's usage error box
        for fragment in case.expect:
            assert fragment in flat, f"{fragment!r} missing\n{shown}"
        if case.untouched:
            assert not (Path(folder) / case.untouched).exists(), "bad input wrote output"
    return cpu_seconds, seconds


def scenario_case(data: Any, *expect: str) -> Case:
    """``oce-sim validate`` on ``data`` dumped as YAML."""
    return validate_case(yaml.safe_dump(data, allow_unicode=True).encode("utf-8"), *expect)


def validate_case(raw: bytes, *expect: str) -> Case:
    return Case(args=("validate", f"{DIR}/s.yaml"), expect=expect, files={"s.yaml": raw}, untouched=None)


def nest(path: tuple[str, ...], value: Any) -> Any:
    for part in reversed(path):
        value = {part: value}
    return value


# ------------------------------------------------------------------------------------------------ the schema


@dataclass(frozen=True)
class Leaf:
    path: tuple[str, ...]
    kind: str  # int, float, bool, str, literal, tuple, dict
    low: float | None = None  # inclusive bounds (an exclusive bound is nudged inside)
    high: float | None = None
    literals: tuple[str, ...] = ()

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def _bounds(name: str, metadata: list[Any], kind: str) -> tuple[float | None, float | None]:
    low = high = None
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Gt):
            low = item.gt + (1 if kind == "int" else 1e-9)
        elif isinstance(item, annotated_types.Le):
            high = item.le
        elif isinstance(item, annotated_types.Lt):
            high = item.lt - (1 if kind == "int" else 1e-9)
    # the rules every field gets by its name (oce_sim.config.schema.StrictModel)
    if _is_probability(name):
        low, high = max(low or 0.0, 0.0), min(1.0 if high is None else high, 1.0)
    if name.endswith(("_days", "_day")) and "_per_" not in name:
        low, high = max(low or 0.0, 0.0), min(MAX_DAYS if high is None else high, MAX_DAYS)
    if name.endswith(("interval_days", "period_days")):
        low = max(low or 0.0, MIN_STEP_DAYS)
    if "minutes" in name:
        low, high = max(low or 0.0, 0.0), min(MAX_WORKING_MINUTES if high is None else high, MAX_WORKING_MINUTES)
    if name.endswith("_usd"):
        high = min(MAX_USD if high is None else high, MAX_USD)
    return low, high


def schema_leaves(model: type[BaseModel] = ScenarioConfig, prefix: tuple[str, ...] = ()) -> list[Leaf]:
    leaves: list[Leaf] = []
    for name, info in model.model_fields.items():
        annotation, path = info.annotation, prefix + (name,)
        if path == ("stage",):  # also takes an int or a stage name: its entities are covered below
            annotation = type(ScenarioConfig().stage)
        origin = typing.get_origin(annotation)
        arms = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
        model_arm = next((a for a in arms if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model_arm is not None:
            leaves += schema_leaves(model_arm, path)
        elif annotation in (int, float, bool, str):
            kind = annotation.__name__
            low, high = _bounds(name, info.metadata, kind) if kind in ("int", "float") else (None, None)
            leaves.append(Leaf(path, kind, low, high))
        elif origin is typing.Literal:
            leaves.append(Leaf(path, "literal", literals=typing.get_args(annotation)))
        elif origin is tuple and all(a in (float, int, str, Ellipsis) for a in typing.get_args(annotation)):
            low, high = _bounds(name, [], "float")
            leaves.append(Leaf(path, "tuple", low, high))
        elif origin is dict:
            low, high = _bounds(name, [], "float")
            leaves.append(Leaf(path, "dict", low, high))
    return leaves


LEAVES = schema_leaves()
NUMERIC = [leaf for leaf in LEAVES if leaf.kind in ("int", "float")]
BOUNDED = [leaf for leaf in NUMERIC if leaf.low is not None or leaf.high is not None]
FLOATS = [leaf for leaf in LEAVES if leaf.kind == "float"]
CONTAINERS = [leaf for leaf in LEAVES if leaf.kind in ("tuple", "dict")]
MODEL_PATHS = sorted({leaf.path[:i] for leaf in LEAVES for i in range(len(leaf.path))})
FIELD_NAMES = {part for leaf in LEAVES for part in leaf.path}


def default_container(leaf: Leaf) -> Any:
    value: Any = ScenarioConfig()
    for part in leaf.path:
        value = getattr(value, part)
    return value


# ------------------------------------------------------------------------------------------------ strategies

words = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
junk_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)


@st.composite
def type_cases(draw: st.DrawFn) -> Case:
    """A value of the wrong type: bool for an int, a string for a number, a list for a scalar..."""
    leaf = draw(st.sampled_from(LEAVES))
    numbers_as_text = st.from_regex(r"-?[0-9]{1,6}(\.[0-9]{1,3})?", fullmatch=True)
    wrong = {
        "int": st.one_of(st.booleans(), numbers_as_text, st.floats(0.5, 1e6).filter(lambda x: x != int(x)),
                         st.lists(st.integers(0, 9), max_size=3), st.none()),
        "float": st.one_of(st.booleans(), numbers_as_text, st.lists(st.floats(0, 1), max_size=3),
                           st.dictionaries(words, st.integers(), max_size=2), st.none()),
        "bool": st.one_of(st.integers(), numbers_as_text, junk_text),
        "str": st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(words, max_size=3)),
        "literal": junk_text.filter(lambda t: t not in leaf.literals),
        "tuple": st.one_of(st.integers(), junk_text, st.dictionaries(words, st.integers(), min_size=1, max_size=2)),
        "dict": st.one_of(st.integers(), junk_text, st.lists(st.integers(), min_size=1, max_size=3)),
    }[leaf.kind]
    return scenario_case(nest(leaf.path, draw(wrong)), leaf.dotted)


@st.composite
def range_cases(draw: st.DrawFn) -> Case:
    """A number outside the field's range (bounds declared on the field or implied by its name)."""
    leaf = draw(st.sampled_from(BOUNDED + [leaf for leaf in NUMERIC if leaf.kind == "int"]))
    if leaf.low is None and leaf.high is None:  # an unbounded integer: beyond int64
        value: Any = draw(st.integers(INT64_MAX + 1, 10**40) | st.integers(-(10**40), -INT64_MAX - 2))
    else:
        sides = [side for side in ("low", "high") if getattr(leaf, side) is not None]
        side = draw(st.sampled_from(sides))
        bound = getattr(leaf, side)
        if leaf.kind == "int":
            value = draw(st.integers(int(bound) + 1, int(bound) + 10**6) if side == "high"
                         else st.integers(math.ceil(bound) - 10**6, math.ceil(bound) - 1))
        else:
            gap = draw(st.floats(1e-6, 1e12))
            value = bound + gap * max(1.0, abs(bound)) if side == "high" else bound - gap * max(1.0, abs(bound))
    return scenario_case(nest(leaf.path, value), leaf.dotted)


@st.composite
def container_range_cases(draw: st.DrawFn) -> Case:
    """An element of a tuple or mapping field outside [0, 1] (shares, probabilities) or not finite."""
    leaf = draw(st.sampled_from(CONTAINERS))
    default = default_container(leaf) if "override" not in leaf.path else ("email",)
    bad = draw(st.sampled_from([math.nan, math.inf, -math.inf, -0.5, 1.5]))
    if bad in (-0.5, 1.5) and leaf.high != 1.0:
        bad = draw(st.sampled_from([math.nan, math.inf]))
    if isinstance(default, dict):
        key = draw(st.sampled_from(sorted(default)))
        value: Any = {**default, key: bad}
    else:
        index = draw(st.integers(0, len(default) - 1))
        value = [bad if i == index else item for i, item in enumerate(default)]
    return scenario_case(nest(leaf.path, value), leaf.dotted)


@st.composite
def finite_cases(draw: st.DrawFn) -> Case:
    leaf = draw(st.sampled_from(FLOATS))
    spelling = draw(st.sampled_from([".nan", ".NaN", ".inf", "-.inf", "+.Inf", "1.0e999", "-1.0e999"]))
    text = yaml.safe_dump(nest(leaf.path, "PLACEHOLDER")).replace("PLACEHOLDER", spelling)
    return validate_case(text.encode(), leaf.dotted)


@st.composite
def encoding_cases(draw: st.DrawFn) -> Case:
    """Text that is not UTF-8: a Windows editor's Latin-1 or cp1252, UTF-16/32, or stray bytes."""
    description = draw(st.text(st.sampled_from("éèàüöñçß°€–"), min_size=1, max_size=10))
    text = f"name: enc\ndescription: Café {description}\npopulation: {{n_hcps: 120}}\n"
    encoding = draw(st.sampled_from(["latin-1", "cp1252", "utf-16", "utf-32", "bytes"]))
    if encoding == "bytes":
        raw = text.encode("utf-8")
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\x80\x80", b"\xfe\xff"])) + raw[at:]
    else:
        raw = text.encode(encoding, errors="replace")
    return validate_case(raw, "(file)", "UTF-8")


@st.composite
def structure_cases(draw: st.DrawFn) -> Case:
    """Not a mapping at the top, or not YAML at all."""
    if draw(st.booleans()):
        top = draw(st.one_of(st.lists(st.integers(), min_size=1, max_size=4), st.integers(), words,
                             st.floats(allow_nan=False)))
        return validate_case(yaml.safe_dump(top).encode(), "(top level)", "mapping")
    broken = draw(st.sampled_from([
        "population: {n_hcps: 3", "population: [1, 2", "a: b: c", "population:\n\tn_hcps: 3",
        "key: 'unclosed", "- a\nb: c", "population:\n  n_hcps: 3\n n_reps: 2", "{a: 1}}", "? [a, b]\n: c",
        "a: !!python/object:os.system x", "a: *undefined", "%YAML 9.9\n---\na: 1",
    ]))
    return validate_case(broken.encode(), "(file)")


def _block_yaml(path: tuple[str, ...], lines: list[str]) -> str:
    indent = "  " * len(path)
    return "".join(f"{'  ' * i}{part}:\n" for i, part in enumerate(path)) + "".join(indent + l + "\n" for l in lines)


@st.composite
def duplicate_key_cases(draw: st.DrawFn) -> Case:
    """The same key twice in one mapping (YAML would otherwise keep the second silently)."""
    path = draw(st.sampled_from(MODEL_PATHS))
    key = draw(st.sampled_from(sorted(FIELD_NAMES)) | words)
    before = draw(st.integers(0, 3))
    filler = [f"filler_{i}: 1" for i in range(before)]
    lines = [f"{key}: 1", *filler, f"{key}: 2"]
    text = _block_yaml(path, lines)
    line = len(path) + before + 2  # the second occurrence, 1-based
    return validate_case(text.encode(), "duplicate key", key, f"line {line}")


@st.composite
def alias_cases(draw: st.DrawFn) -> Case:
    """Billion laughs: each level repeats the previous one; refused before it is expanded."""
    fan_out = draw(st.integers(2, 12))
    levels = max(2, math.ceil(math.log(MAX_YAML_NODES * draw(st.integers(2, 1000)), fan_out)))
    lines = [f"l0: &l0 [{', '.join(['lol'] * fan_out)}]"]
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * fan_out)}]")
    if draw(st.booleans()):
        return validate_case(b"a: &a [1, *a]\n", "(file)", "recursive alias")
    return validate_case("\n".join(lines).encode(), "(file)", "aliases are expanded")


@st.composite
def nesting_cases(draw: st.DrawFn) -> Case:
    depth = draw(st.integers(MAX_YAML_DEPTH + 1, 3000))
    style = draw(st.sampled_from(["flow_list", "flow_map", "block_map", "block_list"]))
    if style == "flow_list":
        text = "a: " + "[" * depth + "]" * depth
    elif style == "flow_map":
        text = "a: " + "{b: " * depth + "1" + "}" * depth
    elif style == "block_map":
        depth = min(depth, 150)  # indentation grows quadratically: stay under the size limit
        text = "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v"
    else:
        depth = min(depth, 150)
        text = "".join("  " * i + "-\n" for i in range(depth)) + "  " * depth + "v"
    return validate_case(text.encode(), "(file)", "nested deeper")


@st.composite
def size_cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["list", "mapping", "bytes"]))
    if kind == "bytes":
        padding = draw(st.integers(1, MAX_SCENARIO_BYTES))
        raw = b"name: big\n" + b"#" * (MAX_SCENARIO_BYTES + padding) + b"\n"
        return validate_case(raw, "(file)", "larger than")
    count = draw(st.integers(MAX_COLLECTION_ITEMS + 1, 2 * MAX_COLLECTION_ITEMS))
    if kind == "list":
        text = "pipeline: {override: {covered_channels: [" + "email, " * count + "]}}"
    else:
        text = "response:\n  channel_effect:\n" + "".join(f"    k{i}: 1\n" for i in range(count))
    return validate_case(text.encode(), "(file)", f"more than {MAX_COLLECTION_ITEMS} entries")


@st.composite
def unknown_key_cases(draw: st.DrawFn) -> Case:
    """A key no model declares, at any depth, including inside mapping-valued fields."""
    in_dict = draw(st.booleans())
    key = draw(words.filter(lambda w: w not in FIELD_NAMES and w not in ("traditional", "open", "email")))
    if in_dict:
        leaf = draw(st.sampled_from([leaf for leaf in CONTAINERS if leaf.kind == "dict"]))
        return scenario_case(nest(leaf.path, {key: 0.5}), leaf.dotted, "unknown")
    path = draw(st.sampled_from(MODEL_PATHS))
    data = nest(path, {key: 1})
    if path and path[-1] == "override":  # an optional block: give it its required fields so only the key is wrong
        data = nest(path, {"batch_interval_days": 7, "latency_days": 1, "covered_channels": ["email"],
                           "rx_noise_cv": 0.1, "missing_share": 0.0, key: 1})
    return scenario_case(data, ".".join(path + (key,)), "unknown key")


@st.composite
def name_cases(draw: st.DrawFn) -> Case:
    """A scenario name that would escape or mangle the folder named after it."""
    core = draw(words)
    name = draw(st.sampled_from([f"../../{core}", f"{core}/{core}", f"..{core}", f".{core}", f"{core}\\x",
                                 f"{core}\n{core}", f"{core}\x00", "n" + core * 64, f"a/../{core}", "/abs/" + core]))
    return scenario_case({"name": name}, "name:", "name must")


# ------------------------------------------------------------------------------------------------ CLI arguments

OUT = ("--out", f"{DIR}/out")


@st.composite
def cli_argument_cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["seed", "episodes", "learning_rate", "train_counts", "seed_train"]))
    if kind in ("seed", "seed_train"):
        seed = draw(st.integers(-(10**30), -1) | st.integers(common.MAX_SEED + 1, 10**30))
        command = ("train", "small", "--timesteps", "10") if kind == "seed_train" else \
            (draw(st.sampled_from(["run", "compare"])), "small", "--episodes", "1")
        return Case(args=(*command, f"--seed={seed}", *OUT), expect=("--seed",))
    if kind == "episodes":
        episodes = draw(st.integers(-(10**12), 0) | st.integers(common.MAX_EPISODES + 1, 10**12))
        command = draw(st.sampled_from(["run", "compare"]))
        return Case(args=(command, "small", f"--episodes={episodes}", *OUT), expect=("--episodes",))
    if kind == "learning_rate":
        rate = draw(st.sampled_from(["nan", "inf", "-inf", "0", "-1e-3", "1.5", "1e308", "NaN"]))
        return Case(args=("train", "small", "--timesteps", "10", f"--learning-rate={rate}", *OUT),
                    expect=("--learning-rate",))
    option = draw(st.sampled_from(["--timesteps", "--n-envs", "--checkpoint-every", "--value-warmup-steps"]))
    high = {"--n-envs": common.MAX_N_ENVS}.get(option, common.MAX_TIMESTEPS)
    low = 0 if option == "--value-warmup-steps" else 1
    value = draw(st.integers(-(10**12), low - 1) | st.integers(high + 1, 10**20))
    return Case(args=("train", "small", f"{option}={value}", *OUT), expect=(option,))


@st.composite
def path_cases(draw: st.DrawFn) -> Case:
    """Paths the system cannot use: too long, a file where a folder goes, a missing model, a NUL character."""
    long_part = "x" * draw(st.integers(common.MAX_PATH_PART_BYTES + 1, 2000))
    command = draw(st.sampled_from([("run", "small", "--episodes", "1"), ("compare", "small", "--episodes", "1"),
                                    ("train", "small", "--timesteps", "10")]))
    name = draw(words)
    suite = draw(st.sampled_from(["../../x", "/etc/passwd", long_part, "quick.yaml", "a b"]))
    plain = {"file": b"not a folder"}
    run, compare = ("run", "small", "--episodes", "1"), ("compare", "small", "--episodes", "1")
    cases = {
        "out_file": Case((*command, "--out", f"{DIR}/file"), ("--out", "not a folder"), plain, None),
        "out_under_file": Case((*command, "--out", f"{DIR}/file/sub/out"), ("--out", "is a file"), plain, None),
        "out_long": Case((*command, "--out", f"{DIR}/{long_part}"), ("--out", "longer than")),
        "out_nul": Case((*command, "--out", f"{DIR}/o\x00ut"), ("--out", "null")),
        "bench_out": Case(("bench", "--out", f"{DIR}/file/x"), ("--out",), plain, None),
        "model_missing": Case((*compare, "--model", f"{DIR}/{name}.zip", *OUT), ("--model", "not found")),
        "model_folder": Case((*compare, "--model", DIR, *OUT), ("--model", "not a finished run folder")),
        "strategy_missing": Case((*run, "--strategy", f"{DIR}/{name}.zip", *OUT), ("--strategy", "not found")),
        "strategy_long": Case((*run, "--strategy", long_part, *OUT), ("--strategy", "longer than")),
        "strategies_long": Case((*compare, "--strategies", f"insight,{long_part}", *OUT),
                                ("--strategies",)),  # too long in all, or one name too long
        "suite_path": Case(("bench", "--suite", suite, *OUT), ("--suite",)),
        "scenario_long": Case((command[0], f"{DIR}/{long_part}.yaml", *command[2:], *OUT), ("SCENARIO",)),
        "validate_long": Case(("validate", f"{DIR}/{long_part}.yaml"), ("FILE", "longer than"), untouched=None),
    }
    return cases[draw(st.sampled_from(sorted(cases)))]


@st.composite
def whatif_cases(draw: st.DrawFn) -> Case:
    """What-if plans refused before any variant is built: unknown paths, a path given twice or overridden, a
    factorial over the cap (counted, not built), values the schema refuses (named with the option given), workers
    beyond the machine."""
    kind = draw(st.sampled_from(["unknown", "twice", "overridden", "factorial", "value", "workers"]))
    base = ("whatif", "small", "--no-progress", "--best-plan", "0", *OUT)
    known = ["population.n_reps", "stage.it", "population.email_opt_in", "channels.webinar.seats"]
    if kind == "unknown":
        paths = draw(st.lists(words.filter(lambda w: w not in FIELD_NAMES), min_size=1, max_size=32, unique=True))
        option = draw(st.sampled_from(["--set", "--grid", "--tornado"]))
        args = [a for p in paths for a in (option, f"population.{p}=1,2" if option != "--set" else f"population.{p}=1")]
        return Case((*base, *args), ("unknown setting path", f"population.{paths[0]}: unknown key"))
    if kind == "twice":
        path = draw(st.sampled_from(known[:2]))
        first, second = draw(st.sampled_from([("--grid", "--grid"), ("--set", "--grid"), ("--set", "--tornado"),
                                               ("--tornado", "--tornado"), ("--set", "--set"),
                                               ("--grid", "--tornado")]))
        values = {"--set": "1", "--grid": "1,2", "--tornado": "1,2"}
        return Case((*base, first, f"{path}={values[first]}", second, f"{path}={values[second]}"),
                    (f"{path}: given to",))
    if kind == "overridden":
        block = draw(st.sampled_from(["--grid", "--tornado"]))
        return Case((*base, "--set", "stage.it=3", block, "stage=0,1"), ("stage.it: given to --set, but",))
    if kind == "factorial":
        sizes = draw(st.lists(st.integers(2, 1000), min_size=2, max_size=4).filter(
            lambda v: math.prod(v) > 256))
        args = [a for path, n in zip(known, sizes) for a in ("--grid", f"{path}=" + ",".join(["1"] * n))]
        return Case((*base, *args), ("more than 256 variants",))
    if kind == "value":
        option = draw(st.sampled_from(["--grid", "--tornado"]))
        bad = draw(st.sampled_from(["population.email_opt_in=0.5,1.5", "economics.price_per_rx_usd=1,1e308",
                                    "stage.it=0,7", "population.n_reps=1,-1"]))
        return Case((*base, option, bad), (f"invalid {option}", bad.split("=")[0]))
    from oce_sim.studies.sweep import local_worker_limit

    limit = local_worker_limit()[0]  # this machine's
    workers = draw(st.integers(limit + 1, max(limit + 1, common.MAX_N_ENVS)))
    return Case((*base, "--set", "population.n_reps=2", "--workers", str(workers)), ("--workers must be",))


STRATEGIES = {
    "types": type_cases(),
    "ranges": range_cases(),
    "containers": container_range_cases(),
    "finiteness": finite_cases(),
    "encodings": encoding_cases(),
    "structure": structure_cases(),
    "duplicate_keys": duplicate_key_cases(),
    "aliases": alias_cases(),
    "nesting": nesting_cases(),
    "sizes": size_cases(),
    "unknown_keys": unknown_key_cases(),
    "names": name_cases(),
    "cli_arguments": cli_argument_cases(),
    "paths": path_cases(),
    "whatif": whatif_cases(),
}
CI_EXAMPLES = 25  # x 15 classes: a few hundred cases in the normal suite

ci_settings = settings(max_examples=CI_EXAMPLES, deadline=None, derandomize=True, database=None,
                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("constraint", STRATEGIES)
def test_generated_bad_input_is_refused_cleanly(constraint: str) -> None:
    @ci_settings
    @given(STRATEGIES[constraint])
    def check(case: Case) -> None:
        run_case(case)

    check()


def test_the_schema_walk_finds_the_fields() -> None:
    """The generators draw from the live schema: fields added later are fuzzed too."""
    dotted = {leaf.dotted for leaf in LEAVES}
    for path in ("population.n_hcps", "response.channel_effect", "pipeline.override.batch_interval_days",
                 "marketing.email_interval_days", "env.reward", "stage.it"):
        assert path in dotted
    assert len(BOUNDED) > 50


SLOW_CASES = 1500
MAX_CPU_SECONDS_PER_CASE = 5.0  # CPU time: a hang or a blow-up burns it, a busy shared machine does not
MAX_WALL_SECONDS_PER_CASE = 60.0
MAX_RSS_GROWTH_MB = 200  # an alias bomb expanded took over 3 GB


@pytest.mark.slow
def test_thousands_of_bad_inputs_in_bounded_time_and_memory() -> None:
    import oce_sim.bench  # noqa: F401  (the commands' own imports are not what the memory bound is about)
    import oce_sim.studies.evaluation  # noqa: F401
    import oce_sim.learning.training  # noqa: F401

    seconds: list[float] = []
    rss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @settings(max_examples=SLOW_CASES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.one_of(*STRATEGIES.values()))
    def check(case: Case) -> None:
        cpu_seconds, wall_seconds = run_case(case)
        assert cpu_seconds < MAX_CPU_SECONDS_PER_CASE, f"{cpu_seconds:.1f} CPU s for {case.args}"
        assert wall_seconds < MAX_WALL_SECONDS_PER_CASE, f"{wall_seconds:.1f} s for {case.args}"
        seconds.append(cpu_seconds)

    check()
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kb) / 1024
    print(f"{len(seconds)} cases, slowest {max(seconds):.2f} CPU s, peak memory +{growth_mb:.0f} MB")
    assert len(seconds) >= 1000, f"only {len(seconds)} cases ran"
    assert growth_mb < MAX_RSS_GROWTH_MB, f"peak memory grew by {growth_mb:.0f} MB"


@pytest.mark.parametrize("stem, name", [("my territory (copy)", "my_territory__copy_"), ("..evil", "evil"),
                                        ("a..b", "a_b"), ("café", "café"), ("...", "scenario")])
def test_a_file_name_stands_in_for_a_missing_name_safely(tmp_path: Path, stem: str, name: str) -> None:
    from oce_sim import load_scenario

    path = tmp_path / f"{stem}.yaml"
    path.write_text("population: {n_hcps: 120}\n", encoding="utf-8")
    assert load_scenario(path).name == name


# ---------------------------------------------------------------------- valid at the edges: runs, no traceback

EDGE_SCENARIOS = {
    "shortest time steps": {
        "marketing": {"email_interval_days": MIN_STEP_DAYS, "remote_interval_days": MIN_STEP_DAYS,
                      "theme_period_days": MIN_STEP_DAYS},
        "channels": {"webinar": {"interval_days": MIN_STEP_DAYS}},
        "response": {"access_review_interval_days": MIN_STEP_DAYS},
        "pipeline": {"override": {"batch_interval_days": MIN_STEP_DAYS, "latency_days": 0,
                                  "covered_channels": ["email"], "rx_noise_cv": 0.0, "missing_share": 0.0}},
    },
    "busiest field day": {
        "channels": {"rep_visit": {"working_minutes_per_day": MAX_WORKING_MINUTES, "visit_minutes": 1.0,
                                   "travel_minutes": 0.0, "question_minutes": 0.0}},
        "response": {"hill_half_saturation": 0.01, "hill_shape": 10.0},
    },
}


@pytest.mark.parametrize("overrides", EDGE_SCENARIOS.values(), ids=EDGE_SCENARIOS.keys())
def test_scenarios_at_the_edges_validate_and_run(tmp_path: Path, overrides: dict[str, Any]) -> None:
    """Values at the limits validate *and* run: the limits are where the simulation still works."""
    data = {"name": "edge", "stage": 3, "population": {"n_hcps": 30, "n_reps": 1}, "env": {"horizon_days": 14},
            **overrides}
    scenario = tmp_path / "edge.yaml"
    scenario.write_text(yaml.safe_dump(data))
    result = RUNNER.invoke(cli.app, ["run", str(scenario), "--episodes", "1", "--no-progress",
                                     "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "results.csv").is_file()


def test_interrupt_prints_interrupted_and_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """Ctrl-C anywhere in a command: 'interrupted', exit 130, no traceback."""
    from oce_sim import config as config_module

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(common, "load_scenario", interrupted)
    monkeypatch.setattr("sys.argv", ["oce-sim", "validate", str(config_module.repo_scenario_dir() / "small.yaml")])
    with pytest.raises(SystemExit) as caught:
        cli.main()
    assert caught.value.code == 130
    captured = capsys.readouterr()
    assert "interrupted" in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_numba_cache_falls_back_on_a_read_only_install(tmp_path: Path) -> None:
    """No writable cache next to the kernels or in the user's cache: a temporary folder, else no cache."""
    from oce_sim.world import jit

    blocker = tmp_path / "a-file"
    blocker.write_text("a file: nothing can be created below it")
    read_only = [blocker / "__pycache__", blocker / "numba"]
    assert jit.choose_cache(read_only, tmp_path / "fallback") == (True, tmp_path / "fallback")
    assert jit.choose_cache(read_only, blocker / "tmp") == (False, None)
    assert jit.choose_cache([tmp_path / "in-tree"], blocker / "tmp") == (True, None)
    assert os.environ.get("NUMBA_DISABLE_JIT") != "1"
    kernel = jit.njit(cache=True)(lambda x: x + 1)
    assert kernel(1) == 2


def test_a_real_ctrl_c_mid_run_is_clean(tmp_path: Path) -> None:
    """SIGINT to a running ``oce-sim run`` (in Python, SimPy or a compiled kernel): exit 130, no traceback."""
    import signal
    import subprocess
    import sys

    ready = tmp_path / "ready"
    # one episode first, so that the kernels are compiled: a SIGINT that lands while Numba writes its cache (a ctypes
    # callback) is swallowed by ctypes ("Exception ignored"), so this test would measure the compiler, not the run
    script = ("import sys, oce_sim.cli as cli; from oce_sim.agents import make_strategy; "
              "from oce_sim.config import load_scenario; from oce_sim.studies.evaluation import run_episodes; "
              "run_episodes(make_strategy('insight'), load_scenario('small'), [0, 1]); open(sys.argv[1], 'w').close(); "
              "sys.argv = ['oce-sim', 'run', 'small', '--episodes', '500', '--no-progress', '--out', sys.argv[2]]; "
              "cli.main()")
    child = subprocess.Popen([sys.executable, "-c", script, str(ready), str(tmp_path / "out")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(cli.__file__).parents[2])},
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # into the episodes
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err[-2000:]
    assert "interrupted" in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("nested", [1, 9], ids=["one_call", "nested_unpickling"])
def test_an_interrupt_inside_a_compiled_call_is_clean(tmp_path: Path, monkeypatch, capsys, nested: int) -> None:
    """Ctrl-C while a Numba kernel runs reaches Python as a SystemError caused by the KeyboardInterrupt (the dispatcher
    returns with the interrupt set), one SystemError per nested call (Numba unpickling a kernel's constants: nine
    were seen, which a walk of eight links missed about one time in ten): the CLI says "interrupted" and exits 130,
    as for any other Ctrl-C."""
    import sys

    from oce_sim.studies import evaluation

    def interrupted(*args, **kwargs):
        cause: BaseException = KeyboardInterrupt()
        for _ in range(nested):
            try:
                raise SystemError("CPUDispatcher(<function plan_touches>) returned a result with an exception set") \
                    from cause
            except SystemError as error:
                cause = error
        copy = SystemError(*cause.args)  # as SimPy re-raises a process's failure: a copy caused by the original
        raise copy from cause

    monkeypatch.setattr(evaluation, "evaluate", interrupted)
    monkeypatch.setattr(sys, "argv", ["oce-sim", "run", "small", "--episodes", "1", "--no-progress", "--out",
                                      str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 130
    captured = capsys.readouterr()
    assert "interrupted" in captured.err and "Traceback" not in captured.out + captured.err


def test_kernels_run_from_a_read_only_copy(tmp_path: Path) -> None:
    """A copy of the package whose ``__pycache__`` cannot be created and a home with no usable cache folder."""
    import shutil
    import subprocess
    import sys

    root = Path(cli.__file__).parents[2]
    shutil.copytree(root / "oce_sim", tmp_path / "oce_sim", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "oce_sim" / "world" / "__pycache__").write_text("a file where numba wants its cache folder")
    blocker = tmp_path / "blocker"
    blocker.write_text("nothing can be created below a file")
    script = ("from oce_sim.world import jit, kernels; from numba.core import config; "
              "print(jit.CACHE_ENABLED, config.CACHE_DIR); print(kernels.poisson_inverse_cdf(0.5, 1.0))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1",
           "XDG_CACHE_HOME": str(blocker / "cache"), "HOME": str(blocker / "home"), "TMPDIR": str(tmp_path / "tmp")}
    env.pop("NUMBA_CACHE_DIR", None)
    (tmp_path / "tmp").mkdir()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                          cwd=tmp_path)  # not the checkout: "-c" puts the working folder on sys.path
    assert done.returncode == 0, done.stderr[-2000:]
    enabled, cache_dir = done.stdout.splitlines()[0].split(" ", 1)
    assert enabled == "True" and cache_dir.startswith(str(tmp_path / "tmp")), done.stdout
    assert done.stdout.splitlines()[1] == "1"


# ------------------------------------------------------------------------------ the issue's reproductions, exactly


def test_a_500_byte_alias_bomb_is_refused_fast_in_little_memory() -> None:
    import tracemalloc

    from oce_sim.config import ScenarioLimitError, parse_yaml

    bomb = "a: &a [" + ",".join(["x"] * 9) + "]\n" + "".join(
        f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    assert len(bomb) < 500
    tracemalloc.start()
    started = time.process_time()
    with pytest.raises(ScenarioLimitError, match="aliases are expanded"):
        parse_yaml(bomb.encode())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.process_time() - started < 1.0
    assert peak < 5_000_000


@pytest.mark.parametrize("overrides", [
    {"response": {"brand_share_by_state": [0.1] * 200_000}},
    {"pipeline": {"override": {"covered_channels": ["x" * 1000] * 200_000}}},
    {"response": {"channel_effect": {f"k{i}": 1.0 for i in range(200_000)}}},
    {"description": "d" * 1_000_000},
], ids=["long tuple", "long list of long names", "huge mapping", "huge text"])
def test_huge_values_give_a_short_message(overrides: dict[str, Any]) -> None:
    from oce_sim import ScenarioError, load_scenario

    with pytest.raises(ScenarioError) as caught:
        load_scenario(overrides=overrides)
    assert len(str(caught.value)) < 2000, str(caught.value)[:3000]


@pytest.mark.parametrize("overrides, fragment", [
    ({"population": {"n_hcps": True}}, "population.n_hcps: Input should be a valid integer"),
    ({"population": {"specialist_share": -0.2}}, "population.specialist_share"),
    ({"response": {"p_trial_to_adopt": [0.004, 1.2]}}, "response.p_trial_to_adopt: must be in [0, 1]"),
    ({"marketing": {"email_interval_days": 1e-300}}, "marketing.email_interval_days: must be at least"),
    ({"economics": {"price_per_rx_usd": math.nan}}, "economics.price_per_rx_usd: Input should be a finite number"),
    ({"channels": {"webinar": {"seats": 2**70}}}, "channels.webinar.seats: integer outside the 64-bit range"),
    ({"channels": {"rep_visit": {"availability": {"typo": 0.5}}}}, "channels.rep_visit.availability: unknown key"),
    ({"name": "../../X"}, "name: name must"),
    ({"economics": {"price_per_rx_usd": 1e308}}, "economics.price_per_rx_usd: must be at most 1,000,000,000,000 USD"),
    ({"channels": {"email": {"cost_usd": 1e13}}}, "channels.email.cost_usd: must be at most"),
    ({"env": {"reward_scale_usd": 1e-300}}, "env.reward_scale_usd: Input should be greater than or equal to 1"),
])
def test_the_issue_s_silently_accepted_values_are_refused(overrides: dict[str, Any], fragment: str) -> None:
    from oce_sim import ScenarioError, load_scenario

    with pytest.raises(ScenarioError, match=re.escape(fragment)):
        load_scenario(overrides=overrides)


# ------------------------------------------------------------------------------ the Python vector API's counts

VECTOR_EXAMPLES = 80
wrong_count_types = st.one_of(
    st.booleans(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6), st.none(),
    st.lists(st.integers(1, 4), max_size=2), st.sampled_from([np.bool_(True), np.float64(2.0), np.float32(3.0),
                                                               1 + 0j, b"2", (2,), {"n": 2}]))


@st.composite
def vector_count_cases(draw: st.DrawFn) -> tuple[dict[str, Any], type[Exception], str]:
    """(make_vec keyword arguments, the error, the argument it must name): exactly one argument wrong."""
    from oce_sim.envs.sharded import max_workers
    from oce_sim.envs.vector import MAX_NUM_ENVS

    kind = draw(st.sampled_from(["num_envs type", "num_envs range", "workers type", "workers range"]))
    if kind == "num_envs type":
        return {"num_envs": draw(wrong_count_types)}, TypeError, "num_envs"
    if kind == "num_envs range":
        value = draw(st.integers(-(10**30), 0) | st.integers(MAX_NUM_ENVS + 1, 10**30))
        return {"num_envs": draw(st.sampled_from([value, np.int64(max(min(value, 2**62), -(2**62)))]))}, \
            ValueError, "num_envs"
    num_envs = draw(st.integers(1, MAX_NUM_ENVS))
    if kind == "workers type":
        return {"num_envs": num_envs, "workers": draw(wrong_count_types)}, TypeError, "workers"
    high = min(num_envs, max_workers())
    return {"num_envs": num_envs, "workers": draw(st.integers(-(10**30), 0) | st.integers(high + 1, 10**30))}, \
        ValueError, "workers"


def test_the_vector_api_refuses_bad_counts_before_building_anything() -> None:
    """``gym.make_vec(..., vectorization_mode="vector_entry_point", num_envs=..., workers=...)`` with
    ``VECTOR_EXAMPLES`` = 80 generated cases (derandomized): a bool, float, string, None, container or numpy
    non-integer is a TypeError naming the argument, a count out of range (num_envs outside [1, 4,096], workers
    outside [1, min(num_envs, max_workers())]) a ValueError naming it; each within a second, no process started."""
    import multiprocessing

    import gymnasium as gym

    import oce_sim  # noqa: F401  (registers the ids)

    # an earlier test's shared pool of study workers (oce_sim.studies.processes) may still be alive: no new ones
    running = {child.pid for child in multiprocessing.active_children()}

    @settings(max_examples=VECTOR_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(vector_count_cases())
    def check(case: tuple[dict[str, Any], type[Exception], str]) -> None:
        kwargs, error, name = case
        started = time.perf_counter()
        with pytest.raises(error, match=f"^{name} must be") as caught:
            gym.make_vec("oce_sim/TerritorySmall-v1", vectorization_mode="vector_entry_point", **kwargs)
        assert time.perf_counter() - started < 1.0, kwargs  # generous: nothing is built
        assert len(str(caught.value)) < 300
        assert not {child.pid for child in multiprocessing.active_children()} - running

    check()
