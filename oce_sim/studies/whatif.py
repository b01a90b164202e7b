"""What-if sweeps: change a scenario path by path, run every variant on the baseline's paired seeds, report the
difference to the baseline of every KPI with a 95% CI, a one-factor (tornado) chart and an efficient frontier.

A setting is ``path=value``: a dotted path of the scenario schema and a YAML value (``population.n_reps=2``,
``stage.it=3``, ``pipeline.override={latency_days: 1}``).  Values are validated by the schema with the same strict
checks as scenario files.  Settings apply after the market's history is pinned (``pin_history``), so that every
variant starts from the baseline's market: ``population.n_reps=2`` halves today's field force in today's market.

Paths under ``policy.`` set the organisation's behaviour rather than the market: ``policy.field_intensity=0.5``
books half the visits today's plan books (with ``--strategy today``), so that response curves against spend can be
drawn at a fixed headcount.

Two shorthands for the data pipeline: ``pipeline.override=K`` is IT stage ``K``'s pipeline (only the pipeline,
``stage.it=K`` moves the IT entity), and a partial override (``pipeline.override.latency_days=1``) starts from the
pipeline the scenario runs, so that it need not spell all five fields.
"""

from __future__ import annotations

import itertools
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel
from tqdm.auto import tqdm

from oce_sim.config import (
    ScenarioConfig,
    ScenarioError,
    deep_merge,
    load_scenario,
    parse_yaml,
)
from oce_sim.config.errors import MAX_PROBLEMS
from oce_sim.studies.evaluation import (
    COUNTERFACTUAL,
    RESULT_COLUMNS,
    add_paired_kpis,
    paired_summary,
    stage_label,
    strategy_config,
)
from oce_sim.world.kpis import KPIS, TABLE_KPIS, unit_label
from oce_sim.world.metrics import KPI_NAMES

BASELINE = "baseline"
TORNADO_METRIC = "profit_multi_period_usd"
HEADLINE_KPIS: tuple[str, ...] = ("profit_multi_period_usd", "profit_usd", "cost_usd", "prescriptions")
MAX_SETTINGS = 32  # --set, --grid and --tornado items together
MAX_VARIANTS = 256  # a full factorial grows fast: refuse before any work
MAX_VALUE_CHARS = 2000
PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}")


class WhatIfError(ValueError):
    """A setting could not be parsed or validated; ``problems`` name the path (at most ``MAX_PROBLEMS`` listed, the
    rest counted)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        problems = problems or []
        self.problems = problems[:MAX_PROBLEMS] + (
            [f"... and {len(problems) - MAX_PROBLEMS} more problems"] if len(problems) > MAX_PROBLEMS else [])
        super().__init__(message)


@dataclass(frozen=True)
class Setting:
    path: str
    value: Any
    text: str  # the value as given, for labels and the CSV


@dataclass
class Variant:
    label: str
    settings: dict[str, Setting]
    config: ScenarioConfig
    factor: str | None = None  # the one path that differs from the reference (one-factor-at-a-time variants)
    policy: dict[str, float] = field(default_factory=dict)  # the organisation's settings (policy.*)


@dataclass
class Plan:
    baseline: ScenarioConfig
    variants: list[Variant]
    paths: list[str]  # the columns of the tidy table, in the order given
    # path -> ((variant label, value), ...) at the factor's first and last value
    tornado: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)


# -------------------------------------------------------------------------------------------- parsing
def _split(text: str, option: str) -> tuple[str, str]:
    path, sep, value = text.partition("=")
    path = path.strip()
    if not sep or not PATH.fullmatch(path):
        raise WhatIfError(f"{option} {text[:80]!r}: expected path=value with a dotted scenario path, e.g. "
                          "population.n_reps=2")
    if len(value) > MAX_VALUE_CHARS:
        raise WhatIfError(f"{option} {path}: value longer than {MAX_VALUE_CHARS} characters")
    return path, value.strip()


def _yaml_value(path: str, text: str, option: str) -> Any:
    try:  # the scenario files' bounded loader: same limits, YAML 1.2 floats
        return parse_yaml(text.encode())
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad input, reported by path
        raise WhatIfError(f"{option} {path}: not a YAML value: {str(exc).splitlines()[0][:160]}") from None


def parse_setting(text: str, option: str = "--set") -> Setting:
    """``path=value`` with a YAML scalar or flow value (``2``, ``0.9``, ``[email]``, ``{latency_days: 1}``)."""
    path, value = _split(text, option)
    return Setting(path, _yaml_value(path, value, option), value)


def parse_axis(text: str, option: str = "--grid") -> tuple[str, list[Setting]]:
    """``path=v1,v2,...``: the values are read as one YAML flow sequence, so a value may itself hold commas."""
    path, value = _split(text, option)
    values = _yaml_value(path, f"[{value}]", option)
    if not isinstance(values, list) or not values:
        raise WhatIfError(f"{option} {path}: give at least one value, e.g. {path}=1,2,3")
    texts = [_flow_text(v) for v in values]
    return path, [Setting(path, v, t) for v, t in zip(values, texts)]


def _flow_text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


# -------------------------------------------------------------------------------------------- variants
def _nested(path: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(path.split(".")):
        out = {part: out}
    return out


def _pipeline_shorthand(base: ScenarioConfig, setting: Setting) -> dict[str, Any]:
    """``pipeline.override=K`` -> IT stage K's level; a partial override starts from the pipeline in use."""
    parts = setting.path.split(".")
    value = setting.value
    if parts == ["pipeline", "override"] and isinstance(value, int) and not isinstance(value, bool) \
            and 0 <= value <= 3:
        return _nested(setting.path, base.pipeline.levels[value].model_dump(mode="python"))
    if parts[:2] == ["pipeline", "override"] and (len(parts) > 2 or isinstance(value, Mapping)):
        current = {"pipeline": {"override": base.pipeline_level().model_dump(mode="python")}}
        return deep_merge(current, _nested(setting.path, value))
    return _nested(setting.path, value)


POLICY_SETTINGS: dict[str, tuple[float, float, float]] = {"field_intensity": (0.0, 4.0, 1.0)}  # low, high, default


def policy_settings(settings: Iterable[Setting], source: str = "--set") -> dict[str, float]:
    """The ``policy.*`` settings, checked: known keys, numbers in range."""
    out: dict[str, float] = {}
    for setting in settings:
        parts = setting.path.split(".")
        if parts[0] != "policy":
            continue
        if len(parts) != 2 or parts[1] not in POLICY_SETTINGS:
            raise WhatIfError(f"invalid {source}", [f"{setting.path}: unknown key; allowed: "
                                                    + ", ".join(f"policy.{k}" for k in POLICY_SETTINGS)])
        low, high, _ = POLICY_SETTINGS[parts[1]]
        value = setting.value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise WhatIfError(f"invalid {source}", [f"{setting.path}: must be a number in [{low:g}, {high:g}], "
                                                    f"got {setting.text[:40]!r}"])
        out[parts[1]] = float(value)
    return out


def apply_settings(base: ScenarioConfig, settings: Iterable[Setting], source: str = "--set") -> ScenarioConfig:
    """``base`` (its history already pinned) with ``settings`` applied in order and validated by the schema
    (``policy.*`` settings are the organisation's, not the scenario's: see :func:`policy_settings`)."""
    overrides: dict[str, Any] = {}
    for setting in settings:
        if setting.path.split(".")[0] == "policy":
            continue
        overrides = deep_merge(overrides, _pipeline_shorthand(base, setting))
    try:
        return load_scenario(base.model_dump(mode="python"), overrides=overrides)
    except ScenarioError as exc:
        raise WhatIfError(f"invalid {source}", exc.problems) from None


def _short(path: str, paths: Sequence[str]) -> str:
    last = path.rsplit(".", 1)[-1]
    return last if sum(p.rsplit(".", 1)[-1] == last for p in paths) == 1 else path


def _label(settings: Mapping[str, Setting], paths: Sequence[str]) -> str:
    # in the order of the columns, so that the same settings reached two ways are one variant
    return ",".join(f"{_short(p, paths)}={settings[p].text}" for p in paths if p in settings) or BASELINE


def path_problem(path: str) -> str | None:
    """Why ``path`` names nothing a setting can set, or None: walked through the schema (a block, a field, or a key
    of a mapping field such as ``response.channel_effect.email``), so that no variant is built to find it out."""
    parts = path.split(".")
    if parts[0] == "policy":
        if len(parts) == 2 and parts[1] in POLICY_SETTINGS:
            return None
        return f"{path}: unknown key; allowed: " + ", ".join(f"policy.{k}" for k in POLICY_SETTINGS)
    model: type[BaseModel] = ScenarioConfig
    for depth, part in enumerate(parts):
        info = model.model_fields.get(part)
        if info is None:
            return f"{path}: unknown key; allowed: {', '.join(sorted(model.model_fields))}"
        rest = parts[depth + 1:]
        annotation = info.annotation
        arms = (annotation, *getattr(annotation, "__args__", ()))  # StageConfig | None and the like
        block = next((a for a in arms if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if block is not None:
            model = block
            continue
        if not rest:
            return None
        if typing.get_origin(annotation) is dict and len(rest) == 1:
            keys = list(info.get_default(call_default_factory=True, validated_data={}) or {})
            if not keys or rest[0] in keys:  # an open mapping takes any key
                return None
            return f"{path}: unknown key; allowed: {', '.join(keys)}"
        return f"{path}: {'.'.join(parts[:depth + 1])} is a value, not a block of settings"
    return None


def _conflicts(given: Sequence[tuple[str, str]]) -> list[str]:
    """Paths given twice, and a ``--set`` that a ``--grid``, ``--tornado`` or ``--frontier`` path overrides (the same
    path or a block above it): merged, one of them would be dropped silently.  ``given``: (option, path) pairs."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for option, path in given:
        if path in seen:
            where = f"to {option} twice" if seen[path] == option else f"to {seen[path]} and to {option}"
            problems.append(f"{path}: given {where}; give each path once")
        seen.setdefault(path, option)
    for option, path in given:
        for other, block in given:
            if option == "--set" and other != "--set" and path.startswith(block + "."):
                problems.append(f"{path}: given to --set, but {other} {block} replaces all of {block} in its "
                                "variants; give it in one place")
    return problems


def variant_count(axis_sizes: Sequence[int], factors: int, fixed: bool) -> int:
    """The variants a plan asks for, counted from the axis lengths without building them; saturating at
    ``MAX_VARIANTS + 1``, so that 32 axes of 1,000 values (10**96 points) are never multiplied out."""
    points = 1 if axis_sizes or fixed else 0
    for size in axis_sizes:
        points = min(points * size, MAX_VARIANTS + 1)
    return min(points + 2 * factors, MAX_VARIANTS + 1)


def plan_variants(base: ScenarioConfig, sets: Sequence[Setting] = (), grid: Sequence[tuple[str, list[Setting]]] = (),
                  tornado: Sequence[tuple[str, list[Setting]]] = (), frontier: bool = False) -> Plan:
    """The baseline and every variant, each validated before any episode runs.

    ``sets`` apply to every variant (not the baseline); ``grid`` axes form a full factorial; each ``tornado``
    factor adds its low and high value one at a time; ``frontier`` adds headcount and stage axes (:func:`frontier_axes`)
    unless the grid has them.  The grid's own one-factor variants (the other axes at the baseline's value where the
    axis has it, else at their first value) feed the tornado chart as well.

    Refused (WhatIfError) before any variant is built, in this order: unknown paths (all named), a path given twice
    or a ``--set`` that another option overrides, more than ``MAX_VARIANTS`` variants (counted from the axis
    lengths), then each value checked alone on top of ``sets`` (naming its option)."""
    extra = [axis for axis in frontier_axes(base) if axis[0] not in {p for p, _ in grid}] if frontier else []
    given = [*(("--set", s.path) for s in sets), *(("--grid", p) for p, _ in grid),
             *(("--tornado", p) for p, _ in tornado)]
    unknown: list[str] = []
    listed: set[str] = set()  # the keys allowed beside an unknown one, listed once: 32 typos stay a short message
    for path in dict.fromkeys(path for _, path in given):
        problem = path_problem(path)
        if problem is not None:
            head, _, allowed = problem.partition("; allowed: ")
            unknown.append(head + (f"; allowed: {'as above' if allowed in listed else allowed}" if allowed else ""))
            listed.add(allowed)
    if unknown:
        raise WhatIfError("unknown setting path(s); nothing was run", unknown)
    conflicts = _conflicts([*given, *(("--frontier", p) for p, _ in extra)])
    if conflicts:
        raise WhatIfError("conflicting settings; nothing was run", conflicts)
    for path, values in tornado:
        if len(values) != 2:
            raise WhatIfError(f"--tornado {path}: give a low and a high value, e.g. {path}=2,6")
    checks = {"--grid": grid, "--frontier": extra, "--tornado": tornado}
    grid = [*grid, *extra]
    count = variant_count([len(v) for _, v in grid], len(tornado), bool(sets))
    if count > MAX_VARIANTS:
        sizes = " x ".join(str(len(v)) for _, v in grid) or "no"
        raise WhatIfError(f"more than {MAX_VARIANTS} variants (grid axes of {sizes} values, {len(tornado)} tornado "
                          "factor(s)): a full factorial grows fast, give fewer values")
    apply_settings(base, sets, "--set")
    policy_settings(sets, "--set")
    for option, axes_of in checks.items():
        problems: list[str] = []
        for path, values in axes_of:
            for value in values:
                try:
                    apply_settings(base, [*sets, value], option)
                    policy_settings([value], option)
                except WhatIfError as exc:
                    problems += [p for p in exc.problems if p not in problems]
        if problems:
            raise WhatIfError(f"invalid {option}", problems)
    fixed = {s.path: s for s in sets}
    paths = list(dict.fromkeys([*fixed, *(p for p, _ in grid), *(p for p, _ in tornado)]))
    points = [dict(zip([p for p, _ in grid], combo)) for combo in itertools.product(*[v for _, v in grid])] \
        if grid else ([{}] if fixed else [])
    variants: list[Variant] = []
    seen: dict[str, Variant] = {}

    def add(settings: dict[str, Setting], factor: str | None = None) -> Variant:
        label = _label(settings, paths)
        if label not in seen:
            source = f"variant {label}"  # each value passed alone: only a combination can fail here
            config = apply_settings(base, settings.values(), source)
            seen[label] = Variant(label, settings, config, factor, policy_settings(settings.values(), source))
            variants.append(seen[label])
        return seen[label]

    for point in points:
        add({**fixed, **point})
    plan = Plan(base, variants, paths)
    reference = {p: _reference(base, values) for p, values in grid}
    for path, values in grid:
        if len(values) < 2:
            continue
        others = {p: reference[p] for p, _ in grid if p != path}
        ends = (values[0], values[-1])
        plan.tornado[path] = tuple((add({**fixed, **others, path: v}).label, v.text) for v in ends)
    for path, values in tornado:
        plan.tornado[path] = tuple((add({**fixed, path: v}, factor=path).label, v.text) for v in values)
    return plan


def _reference(base: ScenarioConfig, values: list[Setting]) -> Setting:
    """The axis value that leaves the baseline as it is (compared once validated: ``stage=1`` is a mapping), else
    the first value."""
    path = values[0].path
    if path.startswith("policy."):
        default = POLICY_SETTINGS.get(path.split(".", 1)[1], (0, 0, None))[2]
        return next((v for v in values if v.value == default), values[0])
    current = value_at(base, path)
    for value in values:
        try:
            if value_at(apply_settings(base, [value]), path) == current:
                return value
        except WhatIfError:  # valid only with the --set settings: not the baseline's value
            continue
    return values[0]


def value_at(config: ScenarioConfig, path: str) -> Any:
    """The value a path has in ``config`` (JSON-like), or None where the path does not exist."""
    node: Any = config.model_dump(mode="json")
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


# -------------------------------------------------------------------------------------------- running
def run_plan(plan: Plan, strategy: str, episodes: int, seed: int, progress: bool = True,
             cache: Path | None = None, executor: str = "local", workers: int = 0,
             note: Callable[[str], None] | None = None, best_plan: int = 0) -> pd.DataFrame:
    """Every variant (and the baseline) on seeds ``seed .. seed+episodes-1``; tidy rows
    ``variant, <paths>, strategy, seed, metric, value``.  ``strategy`` is ``today`` (the organisation of each
    variant's own stage), a move from each variant's stage (``sales=3``) or a strategy name.  Identical runs (e.g.
    the no-promotion counterfactual of variants that differ only in headcount) are simulated once.

    Episodes run on ``executor`` (``local``: this process or a pool of ``workers``; ``ray``) and, with a ``cache``
    folder, finished episodes are kept there and not run again (see :mod:`oce_sim.studies.sweep`).  The table is the same
    whatever the executor, the number of workers and what the cache held.  ``note`` (default: stderr) is told of
    cache entries that were refused (damaged or misplaced) and run again; a cache that is not a folder, or not
    writable, is a ``CacheError`` before any episode runs.

    ``best_plan`` K > 0 (with ``today`` or a move): each variant also plays the best stationary plan its stage allows
    on its own scenario (``best@K``, :func:`oce_sim.studies.planner.best_plan`: searched or read from the plan
    cache, which ``note`` is told), as the strategy ``<strategy> best@K``."""
    from oce_sim.agents import StationaryPlan, make_strategy
    from oce_sim.agents.organisation import Organisation, parse_move
    from oce_sim.agents.stationary import plan_text
    from oce_sim.studies.planner import best_label
    from oce_sim.studies.planner import best_plan as best_plan_of
    from oce_sim.studies.planner import search_workers
    from oce_sim.studies.sweep import EpisodeCache, Job, job_key, run_jobs

    variants = [Variant(BASELINE, {}, plan.baseline), *plan.variants]
    organised = strategy == "today" or "=" in strategy  # today's organisation, or a move from it
    if not organised and any(v.policy for v in variants):
        raise WhatIfError("policy.* settings set the organisation of --strategy today (or a move), not a named "
                          "strategy")
    # (variant, config, strategy label, job per episode) in the table's order
    planned: list[tuple[Variant, ScenarioConfig, str, list[Job]]] = []
    for variant in variants:
        stage = variant.config.stage if strategy == "today" else parse_move(strategy, variant.config.stage) \
            if organised else None
        policies = {strategy: Organisation(stage, name=strategy, **variant.policy) if organised
                    else make_strategy(strategy), COUNTERFACTUAL: make_strategy(COUNTERFACTUAL)}
        if best_plan and organised:
            found = best_plan_of(variant.config, stage, best_plan, progress=progress, note=note,
                                 workers=search_workers(variant.config, best_plan)).plan
            policies[best_label(strategy, best_plan)] = StationaryPlan(found, stage, name=best_label(strategy,
                                                                                                      best_plan))
        for label, policy in policies.items():
            config = strategy_config(variant.config, policy)
            own = label != COUNTERFACTUAL
            settings = variant.policy if own and label == strategy else {}
            played = tuple(int(p) for p in policy.plays) if isinstance(policy, StationaryPlan) else None
            key = label if played is None else f"{label} {plan_text(played)}"  # the plan, not only its K
            jobs = [Job(job_key(config, key, settings, seed + e), config, label, seed + e,
                        stage if own and organised else None, tuple(sorted(settings.items())), played)
                    for e in range(episodes)]
            planned.append((variant, config, label, jobs))
    unique = list({job.key: job for *_, jobs in planned for job in jobs}.values())
    with tqdm(total=len(unique), desc="what-if", unit="episode", disable=not progress) as bar:
        kpis, reused = run_jobs(unique, EpisodeCache(cache, KPI_NAMES), executor, workers, on_done=bar.update,
                                note=note)
    rows: list[dict[str, Any]] = []
    for variant, config, label, jobs in planned:
        for episode, job in enumerate(jobs):
            for metric, value in kpis[job.key].items():
                rows.append(dict(scenario=variant.label, stage=stage_label(config), strategy=label,
                                 seed=job.seed, episode=episode, metric=metric, value=float(value)))
    frame = add_paired_kpis(pd.DataFrame(rows, columns=RESULT_COLUMNS))
    frame = frame[frame.strategy != COUNTERFACTUAL].rename(columns={"scenario": "variant"})
    columns = {path: {v.label: _cell(v, path) for v in variants} for path in plan.paths}
    for path in plan.paths:
        frame[path] = frame.variant.map(columns[path])
    frame = frame[["variant", *plan.paths, "strategy", "seed", "metric", "value"]].reset_index(drop=True)
    frame.attrs["episodes"] = {"run": len(unique) - reused, "from_cache": reused}
    return frame


def _cell(variant: Variant, path: str) -> str:
    if path in variant.settings:
        return variant.settings[path].text
    if path.startswith("policy."):
        return _flow_text(POLICY_SETTINGS[path.split(".", 1)[1]][2])
    return _flow_text(value_at(variant.config, path))


def twice_values(results: pd.DataFrame, strategy: str, budget: int, rank_by: str) -> pd.DataFrame:
    """Each variant's value twice (profit, year 1 + tail): its difference to the baseline with ``strategy`` (today's
    rules of thumb) and with each one's best plan (``<strategy> best@K``), on the same seeds
    (:func:`oce_sim.studies.planner.paired_twice`)."""
    from oce_sim.studies.planner import best_label, paired_twice

    frame = results[results.metric == TORNADO_METRIC]
    wide = frame.pivot_table(index="seed", columns=["variant", "strategy"], values="value")
    best = best_label(strategy, budget)
    variants = [v for v in dict.fromkeys(frame.variant) if v != BASELINE]
    return paired_twice(wide, [(v, "variant", ((v, strategy), (BASELINE, strategy)), ((v, best), (BASELINE, best)))
                               for v in variants], rank_by, TORNADO_METRIC)


def ranked_rows(results: pd.DataFrame, strategy: str, budget: int, rank_by: str) -> pd.DataFrame:
    """The rows of the strategy that ranks the variants: ``strategy`` (the rules of thumb) or its best plans."""
    from oce_sim.studies.planner import best_label

    label = best_label(strategy, budget) if rank_by == "best-plan" else strategy
    return results[results.strategy == label].reset_index(drop=True)


def summarise(results: pd.DataFrame, metrics: Sequence[str] = TABLE_KPIS) -> pd.DataFrame:
    """Per variant and metric: the mean, and the paired difference to the baseline with its 95% t-interval."""
    by_variant = results.drop(columns=["strategy"]).rename(columns={"variant": "strategy"})
    summary = paired_summary(by_variant, baseline=BASELINE, metrics=metrics)
    return summary.rename(columns={"strategy": "variant"})


def format_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Wide table, metrics as columns: the baseline's mean, and each variant's difference ``+d [low, high]``."""
    from oce_sim.world.kpis import format_value

    cells: dict[str, dict[str, str]] = {}
    for row in summary.itertuples():
        if row.variant == BASELINE:
            text = format_value(row.metric, row.mean)
        else:
            text = (f"{format_value(row.metric, row.diff_mean, True)} [{format_value(row.metric, row.diff_low, True)}, "
                    f"{format_value(row.metric, row.diff_high, True)}]")
        cells.setdefault(row.variant, {})[row.metric] = text
    return pd.DataFrame.from_dict(cells, orient="index")


# -------------------------------------------------------------------------------------------- figures
def plot_tornado(summary: pd.DataFrame, plan: Plan, path: Path, title: str, metric: str = TORNADO_METRIC) -> Path | None:
    """One bar per factor: the paired difference to the baseline at its low and high value, with 95% CIs."""
    if not plan.tornado:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from oce_sim.studies.evaluation import atomic_save_figure

    rows = summary[summary.metric == metric].set_index("variant")
    scale = 1e3 if KPIS[metric].unit == "usd" else 1.0
    factors = []
    for factor, ends in plan.tornado.items():
        effects = [rows.loc[label, ["diff_mean", "diff_low", "diff_high"]].to_numpy(dtype=float) / scale
                   for label, _ in ends]
        factors.append((factor, [text for _, text in ends], effects))
    factors.sort(key=lambda f: abs(f[2][1][0] - f[2][0][0]))  # the widest swing on top
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.8 * len(factors)))
    for y, (factor, texts, effects) in enumerate(factors):
        for (mean, lo, hi), colour, text, offset in zip(effects, ("C0", "C3"), texts, (-0.18, 0.18)):
            ax.barh(y + offset, mean, height=0.34, color=colour, alpha=0.8)
            edge = mean
            if np.isfinite(lo):
                ax.errorbar(mean, y + offset, xerr=[[mean - lo], [hi - mean]], fmt="none", ecolor="black", capsize=3)
                edge = hi if mean >= 0 else lo
            ax.annotate(f"= {text[:24]}", (edge, y + offset), fontsize=7, va="center",
                        ha="left" if mean >= 0 else "right", xytext=(4 if mean >= 0 else -4, 0),
                        textcoords="offset points")
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set_yticks(range(len(factors)), [f[0] for f in factors], fontsize=8)
    ax.set_xlabel("difference to the baseline: " + unit_label(metric).replace("(USD)", "(USD thousands)"))
    ax.set_title(f"{title}: one factor at a time (blue: first value, red: last; paired seeds, 95% CI)", fontsize=9)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
    return path


def frontier_points(results: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """Mean promotion cost, multi-period profit and Rx per variant, with its stage and headcount."""
    wide = results[results.metric.isin(["cost_usd", "profit_multi_period_usd", "prescriptions"])].pivot_table(
        index="variant", columns="metric", values="value", aggfunc="mean").reset_index()
    configs = {BASELINE: plan.baseline, **{v.label: v.config for v in plan.variants}}
    wide["stage"] = wide.variant.map(lambda label: stage_label(configs[label]))
    wide["n_reps"] = wide.variant.map(lambda label: configs[label].population.n_reps)
    intensity = {v.label: v.policy.get("field_intensity", 1.0) for v in plan.variants}
    wide["field_intensity"] = wide.variant.map(lambda label: intensity.get(label, 1.0))
    return wide


def plot_frontier(results: pd.DataFrame, plan: Plan, path: Path, title: str) -> Path:
    """Profit (year 1 + tail) against total promotion cost, one line per stage through its headcounts, and the
    efficient frontier (no other point costs less and earns more)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from oce_sim.studies.evaluation import atomic_save_figure

    points = frontier_points(results, plan)
    points["cost_k"] = points.cost_usd / 1e3
    points["profit_k"] = points.profit_multi_period_usd / 1e3
    fig, ax = plt.subplots(figsize=(8, 5.5))
    stages = sorted(set(points.stage))
    intensities = sorted(set(points.field_intensity))
    styles = dict(zip(intensities, ["-", "--", ":", "-."] * len(intensities)))
    for (stage, intensity), frame in points.groupby(["stage", "field_intensity"], sort=True):
        frame = frame.sort_values("n_reps")  # a line per stage (and intensity) through its headcounts
        label = f"stage {stage}" + (f", field intensity x{intensity:g}" if len(intensities) > 1 else "")
        ax.plot(frame.cost_k, frame.profit_k, marker="o", ls=styles[intensity], color=f"C{stages.index(stage)}",
                label=label)
        for row in frame.itertuples():
            text = f"{row.n_reps} reps" + (f" x{row.field_intensity:g}" if row.field_intensity != 1.0 else "")
            ax.annotate(text, (row.cost_k, row.profit_k), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ordered = points.sort_values(["cost_k", "profit_k"], ascending=[True, False])
    efficient = ordered[ordered.profit_k > ordered.profit_k.cummax().shift(fill_value=-np.inf)]
    ax.plot(efficient.cost_k, efficient.profit_k, color="black", lw=2, alpha=0.35, label="efficient frontier")
    base = points[points.variant == BASELINE]
    ax.scatter(base.cost_k, base.profit_k, s=140, facecolors="none", edgecolors="black", label="today (baseline)")
    ax.set_xlabel("total promotion cost, year 1 (USD thousands)")
    ax.set_ylabel("profit, year 1 + tail (USD thousands)")
    ax.set_title(f"{title}: profit against promotion spend by stage and headcount (mean over paired seeds)",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
    return path


def frontier_axes(base: ScenarioConfig) -> list[tuple[str, list[Setting]]]:
    """The default frontier grid: headcount at 0.5x-2x of the baseline's (at least 1) and every uniform stage."""
    n = base.population.n_reps
    reps = sorted({max(1, round(n * f)) for f in (0.5, 1.0, 1.5, 2.0)})
    return [("population.n_reps", [Setting("population.n_reps", r, str(r)) for r in reps]),
            ("stage", [Setting("stage", k, str(k)) for k in range(4)])]


__all__ = ["BASELINE", "Plan", "Setting", "Variant", "WhatIfError", "apply_settings", "frontier_axes",
           "format_summary", "frontier_points", "parse_axis", "parse_setting", "path_problem", "plan_variants",
           "plot_frontier", "plot_tornado", "run_plan", "summarise", "value_at", "variant_count"]
