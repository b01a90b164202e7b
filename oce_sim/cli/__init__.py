"""The ``oce-sim`` command line: one module per command, each a thin layer of argument checks (exit 2 naming the
argument, before any work) over a call into its layer; ``app`` registers them all.

May import: every other layer of ``oce_sim`` (it is the top layer); nothing imports it.
"""

from oce_sim.cli.app import app, main

__all__ = ["app", "main"]
