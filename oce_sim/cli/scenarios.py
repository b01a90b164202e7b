"""``oce-sim scenarios`` and ``oce-sim validate``: list the built-in scenarios; check a scenario, portfolio or
benchmark suite file by its content."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import typer
from rich.markup import escape
from rich.table import Table

from oce_sim.cli.common import check_path, console, fail, resolve
from oce_sim.config import (
    ScenarioConfig,
    ScenarioError,
    builtin_scenarios,
    load_scenario,
    read_yaml_mapping,
)

KINDS = ("scenario", "portfolio", "suite")


def scenarios() -> None:
    """List the built-in scenarios."""
    table = Table(title="built-in scenarios")
    for column in ("name", "stage (c/s/m/it)", "HCPs", "reps", "description"):
        table.add_column(column)
    for name in builtin_scenarios():
        config = load_scenario(name)
        s = config.stage
        table.add_row(name, f"{s.customer}/{s.sales}/{s.marketing}/{s.it}", str(config.population.n_hcps),
                      str(config.population.n_reps), config.description)
    console.print(table)


def detect_kind(data: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Which kind of file ``data`` is, from the top-level keys only that kind has: (kind, those keys).  A file
    with none of a portfolio's or a suite's own keys is a scenario."""
    shared = set(ScenarioConfig.model_fields) | {"extends"}
    if set(data) <= shared:  # the usual case, without importing the study and bench layers (seconds)
        return "scenario", []
    from oce_sim.bench.gate import Suite
    from oce_sim.studies.roadmap import Portfolio

    found = {kind: sorted(set(data) & (set(model.model_fields) - shared))
             for kind, model in (("portfolio", Portfolio), ("suite", Suite))}
    kind = max(found, key=lambda k: len(found[k]))
    return (kind, found[kind]) if found[kind] else ("scenario", [])


def _check(file: Path, kind: str) -> str:
    """Validate ``file`` as ``kind``; what it holds, in a few words.  Raises :class:`ScenarioError` with every
    problem by field path, whatever the kind (the study and bench layers are imported only for their kind)."""
    if kind == "portfolio":
        from oce_sim.studies.roadmap import PortfolioError, load_portfolio

        try:
            portfolio, markets = load_portfolio(file)
        except PortfolioError as exc:
            raise ScenarioError(exc.source, exc.problems) from None
        return f"portfolio '{portfolio.name}', {len(markets)} sub-markets"
    if kind == "suite":
        from oce_sim.bench.gate import SuiteError, read_suite

        try:
            suite = read_suite(file)
        except SuiteError as exc:
            raise ScenarioError(exc.source, exc.problems) from None
        return f"suite v{suite.version}, {len(suite.scenarios)} scenarios x {len(suite.strategies)} strategies"
    config = resolve(str(file))  # exit 2 listing every problem, as every command reads a scenario
    return f"scenario '{config.name}', stage {config.stage.model_dump()}"


def validate(
    file: Path = typer.Argument(..., help="Scenario, portfolio or benchmark suite YAML to check."),
    kind: Optional[str] = typer.Option(None, help="scenario, portfolio or suite (default: told by the file's "
                                       "keys: sub_markets is a portfolio's, hash_run a suite's)."),
) -> None:
    """Check a scenario, portfolio or benchmark suite file by its content: exit 0, or exit 2 with every problem
    listed by field path."""
    check_path("FILE", file)
    if kind is not None and kind not in KINDS:
        fail(f"--kind must be one of {', '.join(KINDS)}, got {kind[:40]!r}")
    if file.is_dir():
        fail(f"{file} is a folder; give a scenario, portfolio or suite YAML file")
    if not file.is_file():
        fail(f"no such file: {file}")
    how = "(--kind)"
    if kind is None:
        try:
            data = read_yaml_mapping(file)
        except ScenarioError as exc:
            fail(f"invalid file {exc.source}", exc.problems)
            return
        kind, keys = detect_kind(data)
        shown_keys = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
        how = f"(read as a {kind} from its keys {shown_keys}; --kind to say otherwise)" if keys else ""
    try:
        shown = _check(file, kind)
    except ScenarioError as exc:
        fail(f"invalid {kind} {exc.source}" + (f" {how}" if how else ""), exc.problems)
        return
    console.print(f"[green]OK[/] {escape(str(file))}: {escape(shown)}" + (f" {escape(how)}" if how else ""))
