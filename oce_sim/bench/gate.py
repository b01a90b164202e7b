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
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.table import Table

from oce_sim.config import (
    ScenarioError,
    builtin_scenarios,
    deep_merge,
    format_validation_error,
    load_scenario,
    read_yaml_mapping,
    repo_scenario_dir,
)
from oce_sim.storage.outputs import atomic_write_text, transaction
from oce_sim.studies.evaluation import (
    evaluate,
    paired_summary,
    play_episode,
    strategy_config,
)
from oce_sim.world.kpis import KPIS, direction, format_value

SUITE_DIR = repo_scenario_dir() / "benchmark" / "suites"
GOLDEN_DIR = repo_scenario_dir() / "benchmark" / "golden"


class BenchError(RuntimeError):
    """A suite or golden file is missing or malformed."""


class SuiteError(BenchError):
    """A suite file that does not validate: ``problems`` name each field path."""

    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        super().__init__(f"invalid suite {source}: " + "; ".join(problems))


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
    return read_suite(path)


def read_suite(path: Path) -> Suite:
    """A suite file validated by its schema and its content (the scenarios, strategies and KPIs it names exist; the
    overrides apply to every scenario): raises :class:`SuiteError` listing every problem by field path."""
    try:
        suite = Suite.model_validate(read_yaml_mapping(path))  # the scenario loader's limits: size, depth, aliases, UTF-8
    except ScenarioError as exc:
        raise SuiteError(str(path), exc.problems) from None
    except ValidationError as exc:
        raise SuiteError(str(path), format_validation_error(exc, Suite)) from None
    problems = suite_problems(suite)
    if problems:
        raise SuiteError(str(path), problems)
    return suite


def suite_problems(suite: Suite) -> list[str]:
    """What a suite names that does not exist, by field path (checked before anything runs)."""
    from oce_sim.agents import STRATEGIES

    known = {n.removeprefix("benchmark/") for n in builtin_scenarios() if n.startswith("benchmark/")}
    problems = []
    named = [(f"scenarios.{i}", s) for i, s in enumerate(suite.scenarios)] + [("hash_run.scenario", suite.hash_run.scenario)]
    for where, scenario in named:
        if scenario not in known:
            problems.append(f"{where}: unknown benchmark scenario {scenario!r}; known: {', '.join(sorted(known))}")
            continue
        try:
            scenario_config(suite, scenario)
        except ScenarioError as exc:
            problems += [f"overrides ({scenario}): {p}" for p in exc.problems[:5]]
    strategies = [(f"strategies.{i}", s) for i, s in enumerate(suite.strategies)] + [("hash_run.strategy", suite.hash_run.strategy)]
    for where, strategy in strategies:
        if strategy not in STRATEGIES and not strategy.endswith(".safetensors"):
            problems.append(f"{where}: unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    problems += [f"metrics.{i}: unknown KPI {m!r} (oce_sim/world/kpis.py)" for i, m in enumerate(suite.metrics)
                 if m not in KPIS]
    return list(dict.fromkeys(problems))


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
    play_episode(env, policy, run.seed)
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


def load_golden(suite: Suite, name: str) -> dict[str, Any]:
    """The suite's golden file, checked before anything runs: it exists, parses and is for this suite version."""
    path = GOLDEN_DIR / f"{name}.json"
    if not path.is_file():
        raise BenchError(f"no golden file {path}; create it with `oce-sim bench --suite {name} --update`")
    try:
        golden = json.loads(path.read_text(encoding="utf-8"))
        golden["bands"], golden["event_hash"]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise BenchError(f"golden file {path} is unreadable ({type(exc).__name__}); recreate it with "
                         f"`oce-sim bench --suite {name} --update`") from None
    if golden.get("version") != suite.version:
        raise BenchError(f"golden file {path} is for suite version {golden.get('version')}, suite is {suite.version}; run --update")
    return golden


def change_kind(metric: str, golden: float, now: float) -> str:
    """What a KPI outside its band did, by its declared direction (oce_sim.world.kpis): both need ``--update``."""
    if np.isnan(now):
        return "missing"
    sign = direction(metric) * np.sign(now - golden)
    return "improved" if sign > 0 else "regressed" if sign < 0 else "moved"


def gate(golden: dict[str, Any], results: pd.DataFrame, digest: str) -> tuple[list[dict[str, Any]], bool]:
    """Every golden band with the value now, whether it passed and what moved; and whether the hash matches."""
    now = results.groupby(["scenario", "strategy", "metric"])["value"].mean()
    checked = []
    for band in golden["bands"]:
        value = float(now.get((band["scenario"], band["strategy"], band["metric"]), np.nan))
        passed = bool(band["low"] <= value <= band["high"])
        checked.append({**band, "now": value, "passed": passed,
                        "change": "" if passed else change_kind(band["metric"], band["value"], value)})
    return checked, golden.get("event_hash") == digest


def check_against_golden(suite: Suite, name: str, results: pd.DataFrame, digest: str) -> tuple[list[dict[str, Any]], bool]:
    """The bands that moved (each with ``now`` and ``change``), and whether the event-log hash matches."""
    checked, hash_ok = gate(load_golden(suite, name), results, digest)
    return [band for band in checked if not band["passed"]], hash_ok


def junit_xml(suite: str, checked: list[dict[str, Any]], hash_ok: bool, digest: str, golden_hash: str) -> str:
    """JUnit XML for CI: one testcase per gated band, and one for the event-log hash."""
    from xml.etree import ElementTree as ET

    cases = []
    for band in checked:
        case = ET.Element("testcase", classname=f"bench.{suite}.{band['scenario']}.{band['strategy']}",
                          name=band["metric"])
        if not band["passed"]:
            failure = ET.SubElement(case, "failure", type=band["change"],
                                    message=f"{band['change']}: {band['now']:.6g} outside [{band['low']:.6g}, "
                                            f"{band['high']:.6g}] (golden {band['value']:.6g})")
            failure.text = "acknowledge an intended change with oce-sim bench --update"
        cases.append(case)
    case = ET.Element("testcase", classname=f"bench.{suite}", name="event_hash")
    if not hash_ok:
        ET.SubElement(case, "failure", type="behaviour_changed",
                      message=f"event-log hash {digest} differs from the golden {golden_hash}")
    cases.append(case)
    failures = sum(1 for c in cases if c.find("failure") is not None)
    root = ET.Element("testsuites")
    tests = ET.SubElement(root, "testsuite", name=f"oce-sim bench {suite}", tests=str(len(cases)),
                          failures=str(failures), errors="0")
    tests.extend(cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


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


def run_bench(suite: str, check: bool, update: bool, perf: bool, out: Path, progress: bool, console: Console,
              junit: Path | None = None) -> int:
    spec = load_suite(suite)
    golden = load_golden(spec, suite) if check else None  # before any work: a missing golden file loses nothing
    started = time.time()
    code = 0
    with transaction(out, "bench") as staging:
        results = run_suite(spec, progress)
        digest = event_log_hash(spec)
        atomic_write_text(staging / "results.csv", results.to_csv(index=False))
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
        if perf:
            from oce_sim.bench.perf import format_perf_markdown, run_perf

            measured = run_perf(quick=spec.perf_sizes == "quick", progress=progress)
            atomic_write_text(staging / "perf.json", json.dumps(measured, indent=2))
            report += [format_perf_markdown(measured), ""]
        if update:
            golden_file = {"suite": suite, "version": spec.version, "event_hash": digest, "bands": golden_bands(spec, results)}
            atomic_write_text(GOLDEN_DIR / f"{suite}.json", json.dumps(golden_file, indent=1))
            console.print(f"golden file updated: {GOLDEN_DIR / f'{suite}.json'}")
        if golden is not None:
            checked, hash_ok = gate(golden, results, digest)
            code = _print_gate(console, suite, checked, hash_ok, len(results))
            report.append(f"Regression check: {'passed' if code == 0 else 'FAILED'}")
            if junit is not None:
                atomic_write_text(junit, junit_xml(suite, checked, hash_ok, digest, golden.get("event_hash", "")))
        atomic_write_text(staging / "bench.md", "\n".join(report) + "\n")
    console.print("\n".join(report))
    console.print(f"results: {out / 'results.csv'}  table: {out / 'bench.md'}  ({time.time() - started:.0f} s)")
    return code


def _print_gate(console: Console, suite: str, checked: list[dict[str, Any]], hash_ok: bool, rows: int) -> int:
    """Print what moved, improvements apart from regressions; 1 if anything did."""
    moved = [band for band in checked if not band["passed"]]
    if moved:
        counts = {kind: sum(m["change"] == kind for m in moved) for kind in ("regressed", "improved", "moved", "missing")}
        summary = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        table = Table(title=f"{len(moved)} KPI(s) outside their golden band: {summary}")
        for column in ("scenario", "strategy", "metric", "change", "golden", "band", "now"):
            table.add_column(column)
        for m in sorted(moved, key=lambda m: ("regressed", "missing", "moved", "improved").index(m["change"])):
            colour = {"improved": "green", "regressed": "red"}.get(m["change"], "yellow")
            table.add_row(m["scenario"], m["strategy"], m["metric"], f"[{colour}]{m['change']}[/]", f"{m['value']:,.3f}",
                          f"[{m['low']:,.3f}, {m['high']:,.3f}]", f"{m['now']:,.3f}")
        console.print(table)
        console.print("An improvement fails the gate too: if the change is intended, acknowledge it with "
                      f"`oce-sim bench --suite {suite} --update` and commit the golden file with a message saying why.")
    if not hash_ok:
        console.print("[bold red]behaviour changed:[/] the event-log hash of the fixed run differs from the golden "
                      "file. If the change is intended, acknowledge it with `oce-sim bench --suite "
                      f"{suite} --update` and commit the golden file.")
    if moved or not hash_ok:
        return 1
    console.print(f"[green]bench check passed[/]: {rows} rows within their bands, event-log hash matches")
    return 0
