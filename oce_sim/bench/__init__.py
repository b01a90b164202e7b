"""The benchmark: ``gate`` (the suites of benchmark scenarios, golden bands and the regression gate of
``oce-sim bench --check``) and ``perf`` (the performance harness behind ``oce-sim bench --perf`` and
``docs/PERFORMANCE.md``).

May import: ``oce_sim.studies``, ``oce_sim.learning`` and every layer below them.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    """``oce_sim.bench.run_bench`` and the rest of the old ``oce_sim/bench.py`` module: now ``oce_sim.bench.gate``."""
    if name.startswith("__"):
        raise AttributeError(name)
    if name in ("gate", "perf"):  # the subpackage's own modules
        return importlib.import_module(f"oce_sim.bench.{name}")
    gate = importlib.import_module("oce_sim.bench.gate")
    if not hasattr(gate, name):
        raise AttributeError(f"module 'oce_sim.bench' has no attribute {name!r}")
    warnings.warn(f"oce_sim.bench.{name} moved to oce_sim.bench.gate.{name}; the old path goes in oce-sim 0.2",
                  DeprecationWarning, stacklevel=2)
    return getattr(gate, name)
