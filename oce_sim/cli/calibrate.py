"""``oce-sim calibrate``: the calibration table against published figures (``oce_sim.studies.calibration``)."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from oce_sim.cli.common import (
    MAX_EPISODES,
    SCENARIO_ARG,
    check_positive,
    check_seed,
    check_workers,
    console,
    fail,
    resolve,
    warm_kernels,
)


def calibrate(
    scenario: str = SCENARIO_ARG,
    seeds: int = typer.Option(10, help="Paired seeds (seed .. seed+seeds-1)."),
    seed: int = typer.Option(0, help="First seed."),
    write_docs: bool = typer.Option(False, help="Write the table into docs/MODEL.md §6 (between its calibration markers)."),
    workers: int = typer.Option(0, help="Processes that measure the seeds (0: one per usable CPU, as many as the "
                                "available memory holds; 1: this process only). The table is the same whatever it is."),
) -> None:
    """The calibration table: every published figure, its band and source, the model's value on paired seeds, pass/fail."""
    from oce_sim.studies import calibration

    check_positive("--seeds", seeds, minimum=2 if write_docs else 1, maximum=MAX_EPISODES)
    check_seed(seed, seeds)
    limit = check_workers(workers)
    config = resolve(scenario)
    if write_docs:  # before any work: a scenario without its table in the docs is refused at once
        try:
            calibration.check_docs(config.name, calibration.docs_path())
        except (OSError, ValueError) as exc:
            fail(str(exc))
    warm_kernels()
    with console.status(f"calibrating {config.name} on {seeds} paired seeds"):
        rows = calibration.calibrate(config, seeds, seed, workers=min(seeds, workers or limit))
    states = [calibration.status(row, rows) for row in rows]
    table = Table(title=f"{config.name}: calibration ({states.count('pass')} of {len(rows)} rows pass, "
                  f"{states.count('yields')} yield to a better-sourced row, {seeds} paired seeds)", show_lines=True)
    for column in ("figure", "band", "model (± se)", "pass", "source"):
        table.add_column(column, justify="right" if column in ("band", "model (± se)") else "left")
    style = {"pass": "[green]pass[/]", "yields": "[yellow]yields[/]", "fail": "[red]fail[/]"}
    for row, state in zip(rows, states):
        source = row.source + (f" (yields to: {row.yields_to})" if state == "yields" else "")
        table.add_row(escape(row.figure), row.band_text(), row.value_text(), style[state], escape(source))
    console.print(table)
    if write_docs:
        path = calibration.docs_path()
        try:
            calibration.write_docs(rows, config.name, seeds, path, command_scenario=scenario)
        except (OSError, ValueError) as exc:
            fail(str(exc))
        console.print(f"written: {path}")
