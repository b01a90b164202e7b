"""``oce-sim scenarios`` and ``oce-sim validate``: list the built-in scenarios; check a scenario file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from oce_sim.cli.common import check_path, console, fail, resolve
from oce_sim.config import (
    builtin_scenarios,
    load_scenario,
)


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


def validate(file: Path = typer.Argument(..., help="Scenario YAML to check.")) -> None:
    """Check a scenario file: exit 0, or exit 2 with every problem listed by field path."""
    check_path("FILE", file)
    if file.is_dir():
        fail(f"{file} is a folder; give a scenario YAML file")
    if not file.is_file():
        fail(f"no such file: {file}")
    config = resolve(str(file))
    console.print(f"[green]OK[/] {escape(str(file))}: scenario '{config.name}', stage {config.stage.model_dump()}")
