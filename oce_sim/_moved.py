"""Old import paths of modules that moved into layer subpackages (in 0.1.x): each still imports, for one release, as
the same module object under its old name, with a ``DeprecationWarning`` naming the new path.

``import oce_sim.evaluation`` and ``from oce_sim import evaluation`` both give ``oce_sim.studies.evaluation`` (so
a monkeypatch through the old name patches the real module).  Nothing in the package imports an old path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

REMOVED_IN = "0.2"
MOVED: dict[str, str] = {
    "oce_sim.evaluation": "oce_sim.studies.evaluation",
    "oce_sim.whatif": "oce_sim.studies.whatif",
    "oce_sim.roadmap": "oce_sim.studies.roadmap",
    "oce_sim.sweep": "oce_sim.studies.sweep",
    "oce_sim.calibration": "oce_sim.studies.calibration",
    "oce_sim.report": "oce_sim.studies.report",
    "oce_sim.uncertainty": "oce_sim.studies.uncertainty",
    "oce_sim.training": "oce_sim.learning.training",
    "oce_sim.factored_ppo": "oce_sim.learning.factored_ppo",
    "oce_sim.model_file": "oce_sim.agents.model_file",
    "oce_sim.perf": "oce_sim.bench.perf",
    "oce_sim.outputs": "oce_sim.storage.outputs",
    "oce_sim.stages": "oce_sim.world.stages",
    "oce_sim.kpis": "oce_sim.world.kpis",
    "oce_sim.metrics": "oce_sim.world.metrics",
}


def new_name(old: str) -> str | None:
    """The module an old path now names (``oce_sim.perf.run`` -> ``oce_sim.bench.perf.run``), or None."""
    for prefix, target in MOVED.items():
        if old == prefix or old.startswith(prefix + "."):
            return target + old[len(prefix):]
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:  # the real module is already executed
        return None


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves an old module path to the module at its new path."""

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        moved = new_name(fullname)
        if moved is None:
            return None
        warnings.warn(f"{fullname} moved to {moved}; the old path goes in oce-sim {REMOVED_IN}",
                      DeprecationWarning, stacklevel=_caller_level())
        return importlib.machinery.ModuleSpec(fullname, _Alias(moved))


def _caller_level() -> int:
    """The stack level of the import statement, past importlib's own frames."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_code.co_filename.startswith("<frozen importlib")
                                 or frame.f_code.co_filename == __file__):
        frame, level = frame.f_back, level + 1
    return level


def install() -> None:
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
