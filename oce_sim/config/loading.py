"""Loading a scenario: built-in names, files with their ``extends:`` chain, mappings and overrides, layered
defaults <- scenario file <- stage <- overrides, and validated into a :class:`~oce_sim.config.schema.ScenarioConfig`."""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from oce_sim.config.errors import ScenarioError, _clip, _excerpt
from oce_sim.config.files import read_yaml_mapping
from oce_sim.config.schema import (
    STAGE_NAMES,
    PopulationConfig,
    ScenarioConfig,
    StageConfig,
    uniform_stage,
)


def repo_scenario_dir() -> Path:
    """The built-in scenarios: package data ``oce_sim/scenarios`` in a wheel install, else ``scenarios/`` at the
    top of the source checkout (``pyproject.toml`` maps one to the other)."""
    packaged = resources.files("oce_sim") / "scenarios"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "scenarios"


def builtin_scenarios() -> dict[str, Path | None]:
    """Built-in scenario names -> YAML path (``default`` needs no file)."""
    found: dict[str, Path | None] = {"default": None}
    directory = repo_scenario_dir()
    if directory.is_dir():
        for path in sorted(directory.glob("*.yaml")):
            found[path.stem] = path
        bench = directory / "benchmark"
        for path in sorted(bench.glob("*.yaml")) if bench.is_dir() else []:
            found[f"benchmark/{path.stem}"] = path
    return found


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, FieldInfo | None]:
    """The model at ``loc`` (None where the path leaves the models) and the field ``loc`` ends on, walking nested
    models; list indices (``sub_markets.0``) stay on the item's model."""
    current: Any = model
    field: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None, None
        field = current.model_fields.get(str(part))
        if field is None:
            return None, None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return current, field


def _allowed_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Field names allowed at ``loc`` (the parent of an unknown key), walking nested models."""
    current, _ = _walk(model, loc)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return None


def format_validation_error(error: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """``field.path: message`` lines; ``model`` (default the scenario) lists the keys allowed beside an unknown one."""
    problems = []
    for item in error.errors(include_url=False, include_context=False):
        loc = tuple(item["loc"])
        path = ".".join(_clip(str(part), 40) for part in loc) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            allowed = _allowed_fields(model or ScenarioConfig, loc[:-1])
            message = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        elif item["type"] == "missing":  # say what the key is rather than quote the mapping it is missing from
            _, info = _walk(model or ScenarioConfig, loc)
            message += f": {info.description}" if info is not None and info.description else ""
        elif item["type"] not in ("value_error", "assertion_error"):
            message = f"{message} (got {_excerpt(item.get('input'))})"
        problems.append(f"{path}: {message}")
    return problems


MAX_EXTENDS_DEPTH = 8  # files in one ``extends:`` chain


def _read_scenario_file(path: Path, source: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """A scenario file with its ``extends:`` chain resolved: the parent (a built-in name, or a path relative to the
    file that stays inside its folder) is read with the same limits, and the file's keys are merged over it (a
    partial nested block overrides only what it names).  Cycles and escaping paths are refused."""
    data = read_yaml_mapping(path)
    if "extends" not in data:
        return data
    parent = data.pop("extends")
    here = str(path.resolve())
    chain = chain or (here,)
    shown = " -> ".join(Path(c).name for c in chain)
    if not isinstance(parent, str) or not parent.strip():
        raise ScenarioError(source, [f"extends: a built-in scenario name or a relative path to a YAML file "
                                     f"(got {_excerpt(parent)}; chain {shown})"])
    builtin = builtin_scenarios()
    if parent in builtin:
        target = builtin[parent]
    else:
        relative = Path(parent)
        folder = path.resolve().parent
        try:
            target = (folder / relative).resolve()
            is_file = target.is_file()
        except (OSError, ValueError) as exc:  # a NUL character, a name too long for the file system
            raise ScenarioError(source, [f"extends: not a usable path {_excerpt(parent)}: {_clip(str(exc), 120)}"]) \
                from None
        if relative.is_absolute() or not target.is_relative_to(folder):
            raise ScenarioError(source, [f"extends: {_excerpt(parent)} leaves the folder of {path.name} (give a "
                                         f"built-in name or a path inside that folder; chain {shown})"])
        if not is_file:
            raise ScenarioError(source, [f"extends: no such file {_excerpt(parent)} next to {path.name}; "
                                         f"built-in scenarios: {', '.join(builtin)} (chain {shown})"])
    key = str(target.resolve()) if target is not None else "default"
    if key in chain:
        cycle = " -> ".join(Path(c).name for c in (*chain, key))
        raise ScenarioError(source, [f"extends: cycle {cycle}"])
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise ScenarioError(source, [f"extends: more than {MAX_EXTENDS_DEPTH} files in the chain {shown}"])
    base = _read_scenario_file(target, source, (*chain, key)) if target is not None else {}
    base.pop("name", None)  # the extending file is another scenario: its own name (or file name) names it
    return deep_merge(_stage_as_mapping(base), _stage_as_mapping(data))


def build_config(data: Mapping[str, Any], source: str = "<overrides>") -> ScenarioConfig:
    try:
        return ScenarioConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ScenarioError(source, format_validation_error(exc)) from None


def scenario_data(scenario: str | Path | Mapping[str, Any] | ScenarioConfig | None) -> tuple[dict[str, Any], str]:
    """Raw (unvalidated) mapping for a scenario name, path, mapping or config, plus its source label."""
    if scenario is None:
        return {}, "default"
    if isinstance(scenario, ScenarioConfig):
        return scenario.model_dump(mode="python"), scenario.name
    if isinstance(scenario, Mapping):
        return dict(scenario), "<mapping>"
    text = str(scenario)
    builtin = builtin_scenarios()
    if text in builtin:
        path = builtin[text]
        return (_read_scenario_file(path, text) if path else {}), text
    path = Path(text)
    try:
        exists, is_file = path.exists(), path.is_file()
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL character
        raise ScenarioError(text, [f"(file): not a usable path: {_clip(str(exc), 120)}"]) from None
    if path.suffix in (".yaml", ".yml") or exists:
        if not is_file:
            raise ScenarioError(text, [f"(file): no such file; built-in scenarios: {', '.join(builtin)}"])
        data = _read_scenario_file(path, str(path))
        # the file name stands in for a missing name: keep it to the characters a name allows
        data.setdefault("name", re.sub(r"[^\w.+-]|\.\.", "_", path.stem)[:64].lstrip("._+-") or "scenario")
        return data, str(path)
    raise ScenarioError(text, [f"(scenario): unknown scenario name; built-in: {', '.join(builtin)}"])


def load_scenario(
    scenario: str | Path | Mapping[str, Any] | ScenarioConfig | None = None,
    stage: int | str | Mapping[str, int] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ScenarioConfig:
    """Resolve defaults <- scenario file <- ``stage`` <- ``overrides`` into a validated config."""
    if overrides is not None and not isinstance(overrides, Mapping):
        raise TypeError(f"overrides must be a mapping or None, got {type(overrides).__name__}")
    data, source = scenario_data(scenario)
    data = _stage_as_mapping(data)
    if overrides:
        data = deep_merge(data, _stage_as_mapping(overrides))
    data = pin_history(data)
    if stage is not None:
        data = deep_merge(data, {"stage": stage}) if isinstance(stage, Mapping) else {**data, "stage": stage}
    return build_config(data, source)


def pin_history(data: Mapping[str, Any]) -> dict[str, Any]:
    """Fix the market's history (stage, field force) to the scenario's own, where it is not set.

    Called once a scenario is defined and before a strategy or a what-if changes its stage or field force, so
    that every variant starts from the same market.
    """
    history = data.get("history") or {}
    if not isinstance(history, Mapping):
        return dict(data)  # validation reports it
    history = dict(history)
    if history.get("stage") is None:
        stage = data.get("stage", StageConfig().model_dump())
        if _valid(StageConfig, _uniform_stage_or_none(stage)):
            history["stage"] = stage
    population = data.get("population") or {}
    if history.get("n_reps") is None and isinstance(population, Mapping):
        n_reps = population.get("n_reps", PopulationConfig().n_reps)
        if isinstance(n_reps, int) and not isinstance(n_reps, bool) and n_reps >= 0:
            history["n_reps"] = n_reps
    return {**data, "history": history}


def _uniform_stage_or_none(value: Any) -> Any:
    try:
        return uniform_stage(value)
    except ValueError:
        return None


def _valid(model: type[BaseModel], value: Any) -> bool:
    """Whether ``value`` validates as ``model`` (a bad value is left for the real validation to report once)."""
    if value is None:
        return False
    if isinstance(value, BaseModel):
        return True
    try:
        model.model_validate(value)
    except (ValidationError, TypeError):
        return False
    return True


def _stage_as_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """Spell a uniform stage (``2`` or ``"involvement"``) per entity, so a partial mapping overrides one entity."""
    value = data.get("stage")
    if isinstance(value, str) and value in STAGE_NAMES:
        value = STAGE_NAMES.index(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3:
        return {**data, "stage": StageConfig.uniform(value).model_dump()}
    return dict(data)


def dump_yaml(config: ScenarioConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
