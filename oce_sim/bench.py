"""Benchmark suites and the CI regression gate.

A suite (``scenarios/benchmark/suites/NAME.yaml``) declares, as data, which benchmark scenarios and
strategies run, with which seeds and episodes, which KPIs are gated and with what tolerance.  ``--check``
compares the run with ``scenarios/benchmark/golden/NAME.json``: each gated KPI must stay within its band, and
the SHA-256 of the event log of a short fixed run must match, so that any change of behaviour is noticed
and has to be acknowledged with ``--update``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.table import Table

from oce_sim.config import deep_merge, format_validation_error, load_scenario, repo_scenario_dir
from oce_sim.evaluation import atomic_write_text, evaluate, paired_summary, strategy_config
from oce_sim.kpis import format_value

SUITE_DIR = repo_scenario_dir() / "benchmark" / "suites"
GOLDEN_DIR = repo_scenario_dir() / "benchmark" / "golden"


class BenchError(RuntimeError):
    """A suite or golden file is missing or malformed."""


class Tolerance(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    relative: float = Field(0.03, ge=0.0)
    absolute: dict[str, float] = Field(default_factory=dict)

    def band(self, metric: str, value: float) -> tuple[float, float]:
        half = max(self.relative * abs(value), self.absolute.get(metric, 0.0))
        return value - half, value + half


class HashRun(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    scenario: str
    strategy: str
    seed: int
    horizon_days: int = Field(ge=7)


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int
    description: str = ""
    episodes: int = Field(ge=1)
    seed: int = 0
    overrides: dict[str, Any] = Field(default_factory=dict)
    scenarios: list[str]
    strategies: list[str]
    metrics: list[str]
    tolerance: Tolerance = Tolerance()
    hash_run: HashRun
    perf_sizes: Literal["quick", "full"] = Field("quick", description="sizes of the perf run `--perf` adds")


def load_suite(name: str) -> Suite:
    path = SUITE_DIR / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))
        raise BenchError(f"--suite {name!r} not found; available: {', '.join(available)}")
    try:
        return Suite.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise BenchError(f"invalid suite {path}: " + "; ".join(format_validation_error(exc))) from None


def scenario_config(suite: Suite, name: str, horizon_days: int | None = None):
    overrides = suite.overrides if horizon_days is None else deep_merge(suite.overrides, {"env": {"horizon_days": horizon_days}})
    return load_scenario(f"benchmark/{name}", overrides=overrides)


def event_log_hash(suite: Suite) -> str:
    """SHA-256 of the event log of the suite's short fixed run."""
    from oce_sim.agents import make_strategy
    from oce_sim.envs.territory import TerritoryEnv

    run = suite.hash_run
    policy = make_strategy(run.strategy)
    config = strategy_config(scenario_config(suite, run.scenario, run.horizon_days), policy)
    config = load_scenario(deep_merge(config.model_dump(mode="python"), {"env": {"record_events": True}}))
    env = TerritoryEnv(scenario=config)
    obs, _ = env.reset(seed=run.seed)
    policy.reset(env, run.seed)
    done = False
    while not done:
        action, _ = policy.predict(obs, action_masks=env.action_masks())
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    assert env.world is not None
    return env.world.event_digest()


def run_suite(suite: Suite, progress: bool) -> pd.DataFrame:
    from oce_sim.agents import make_strategy

    frames = []
    for name in suite.scenarios:
        config = scenario_config(suite, name)
        policies = {s: make_strategy(s) for s in suite.strategies}
        results, _ = evaluate(policies, config, suite.episodes, suite.seed, progress=progress)
        frames.append(results)
    return pd.concat(frames, ignore_index=True)


def golden_bands(suite: Suite, results: pd.DataFrame) -> list[dict[str, Any]]:
    means = results[results.metric.isin(suite.metrics)].groupby(["scenario", "strategy", "metric"], sort=False)["value"].mean()
    bands = []
    for (scenario, strategy, metric), value in means.items():
        if np.isnan(value):
            continue
        low, high = suite.tolerance.band(metric, float(value))
        bands.append(dict(scenario=scenario, strategy=strategy, metric=metric, value=float(value), low=low, high=high))
    return bands


def check_against_golden(suite: Suite, name: str, results: pd.DataFrame, digest: str) -> tuple[list[dict[str, Any]], bool]:
    path = GOLDEN_DIR / f"{name}.json"
    if not path.is_file():
        raise BenchError(f"no golden file {path}; create it with `oce-sim bench --suite {name} --update`")
    golden = json.loads(path.read_text(encoding="utf-8"))
    if golden.get("version") != suite.version:
        raise BenchError(f"golden file {path} is for suite version {golden.get('version')}, suite is {suite.version}; run --update")
    now = results.groupby(["scenario", "strategy", "metric"])["value"].mean()
    moved = []
    for band in golden["bands"]:
        key = (band["scenario"], band["strategy"], band["metric"])
        value = float(now.get(key, np.nan))
        if not (band["low"] <= value <= band["high"]):
            moved.append({**band, "now": value})
    return moved, golden.get("event_hash") == digest


def markdown_table(results: pd.DataFrame, metric: str = "profit_usd") -> str:
    """Scenario columns, strategy rows: mean and the 95% CI of the paired difference to instruction."""
    lines = []
    scenarios = list(dict.fromkeys(results.scenario))
    strategies = list(dict.fromkeys(results.strategy))
    cells: dict[str, dict[str, str]] = {s: {} for s in strategies}
    for scenario in scenarios:
        summary = paired_summary(results[results.scenario == scenario], baseline="instruction", metrics=[metric])
        for row in summary.itertuples():
            text = format_value(metric, row.mean)
            low = getattr(row, "diff_low", np.nan)
            if row.strategy != "instruction" and not np.isnan(low):
                text += f" [{format_value(metric, row.diff_low, sign=True)}, {format_value(metric, row.diff_high, sign=True)}]"
            cells[row.strategy][scenario] = text
    lines.append("| strategy | " + " | ".join(scenarios) + " |")
    lines.append("|---|" + "---|" * len(scenarios))
    for strategy in strategies:
        lines.append(f"| {strategy} | " + " | ".join(cells[strategy].get(s, "") for s in scenarios) + " |")
    return "\n".join(lines)


def run_bench(suite: str, check: bool, update: bool, perf: bool, out: Path, progress: bool, console: Console) -> int:
    spec = load_suite(suite)
    started = time.time()
    results = run_suite(spec, progress)
    digest = event_log_hash(spec)
    atomic_write_text(out / "results.csv", results.to_csv(index=False))
    report = [f"# oce-sim benchmark: suite `{suite}` v{spec.version}", "",
              f"{spec.episodes} paired seeds from {spec.seed}; each strategy at its own stage. "
              "Cells: mean, and [95% CI of the paired difference to instruction].", ""]
    for metric, title in (("profit_multi_period_usd", "Profit, year 1 + value left at the horizon (USD)"),
                          ("profit_usd", "Profit, year 1 (USD)"),
                          ("incremental_roi", "Incremental ROI, year 1 (revenue per promotional USD vs no promotion)"),
                          ("prescriptions", "Prescriptions"), ("confusion_events", "Confusion events")):
        report += [f"## {title}", "", markdown_table(results, metric), ""]
    report += [f"Event-log SHA-256 of the fixed run ({spec.hash_run.scenario}, {spec.hash_run.strategy}, "
               f"seed {spec.hash_run.seed}, {spec.hash_run.horizon_days} days): `{digest}`", ""]
    code = 0
    if perf:
        from oce_sim.perf import format_perf_markdown, run_perf

        measured = run_perf(quick=spec.perf_sizes == "quick", progress=progress)
        atomic_write_text(out / "perf.json", json.dumps(measured, indent=2))
        report += [format_perf_markdown(measured), ""]
    if update:
        golden = {"suite": suite, "version": spec.version, "event_hash": digest, "bands": golden_bands(spec, results)}
        atomic_write_text(GOLDEN_DIR / f"{suite}.json", json.dumps(golden, indent=1))
        console.print(f"golden file updated: {GOLDEN_DIR / f'{suite}.json'}")
    if check:
        moved, hash_ok = check_against_golden(spec, suite, results, digest)
        if moved:
            table = Table(title=f"{len(moved)} KPI(s) moved outside their golden band")
            for column in ("scenario", "strategy", "metric", "golden", "band", "now"):
                table.add_column(column)
            for m in moved:
                table.add_row(m["scenario"], m["strategy"], m["metric"], f"{m['value']:,.3f}",
                              f"[{m['low']:,.3f}, {m['high']:,.3f}]", f"{m['now']:,.3f}")
            console.print(table)
            code = 1
        if not hash_ok:
            console.print("[bold red]behaviour changed:[/] the event-log hash of the fixed run differs from the golden "
                          "file. If the change is intended, acknowledge it with `oce-sim bench --suite "
                          f"{suite} --update` and commit the golden file.")
            code = 1
        if code == 0:
            console.print(f"[green]bench check passed[/]: {len(results)} rows within their bands, event-log hash matches")
        report.append(f"Regression check: {'passed' if code == 0 else 'FAILED'}")
    atomic_write_text(out / "bench.md", "\n".join(report) + "\n")
    console.print("\n".join(report))
    console.print(f"results: {out / 'results.csv'}  table: {out / 'bench.md'}  ({time.time() - started:.0f} s)")
    return code
