"""The ``oce-sim`` application: every command registered in one place, in the order ``--help`` lists them."""

from __future__ import annotations

import sys

import typer

from oce_sim.cli import (
    bench,
    calibrate,
    compare,
    convert_model,
    roadmap,
    run,
    scenarios,
    train,
    whatif,
)
from oce_sim.cli.common import err, os_error_message, print_error

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Simulate orchestrated customer engagement: compare maturity stages, train RL orchestrators, benchmark.",
)


def show_version(value: bool) -> None:
    if value:
        from oce_sim import __version__

        typer.echo(f"oce-sim {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: bool = typer.Option(False, "--version", callback=show_version, is_eager=True,
                                 help="Show the installed version and exit."),
) -> None:
    """Simulate orchestrated customer engagement: compare maturity stages, train RL orchestrators, benchmark."""


app.command()(scenarios.scenarios)
app.command()(scenarios.validate)
app.command()(run.run)
app.command()(compare.compare)
app.command()(train.train)
app.command()(bench.bench)
app.command()(calibrate.calibrate)
app.command("convert-model")(convert_model.convert_model)
app.command()(whatif.whatif)
app.command()(roadmap.roadmap)


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        # typer turns Ctrl-C into a silent exit 130 (the KeyboardInterrupt is the cause of its Exit): say so
        if exc.code == 130 and isinstance(getattr(exc.__context__, "__cause__", None), KeyboardInterrupt):
            err.print("interrupted")
        raise
    except KeyboardInterrupt:  # outside the command (e.g. while typer starts)
        err.print("interrupted")
        sys.exit(130)
    except SystemError as exc:
        # Ctrl-C inside a compiled kernel: Numba's dispatcher returns with the KeyboardInterrupt set, which Python
        # reports as a SystemError caused by it (re-raised by SimPy as a copy caused by the original)
        if _caused_by_interrupt(exc):
            err.print("interrupted")
            sys.exit(130)
        raise
    except OSError as exc:
        # every command: a full disk or a read-only folder met while running is one line naming the path, exit 1
        # (no traceback; the output folder's earlier set is untouched, oce_sim.storage.outputs)
        print_error(os_error_message(exc), one_line=True)
        sys.exit(1)


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether ``exc``'s chain of causes holds a KeyboardInterrupt, however deep (an interrupt inside Numba's
    unpickling of a kernel's constants comes back through one SystemError per nested call: nine links were seen)."""
    visited: set[int] = set()
    seen: BaseException | None = exc
    while seen is not None and id(seen) not in visited:  # a cycle of causes ends the walk
        if isinstance(seen, KeyboardInterrupt):
            return True
        visited.add(id(seen))
        seen = seen.__cause__ or seen.__context__
    return False
