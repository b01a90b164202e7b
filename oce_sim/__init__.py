"""oce-sim: a SimPy-backed Gymnasium simulator of orchestrated customer engagement (OCE) in pharma.

Layers, bottom up (each may import only those below it; ``pyproject.toml``'s import-linter contracts check it):
``storage`` and ``config`` (files and the scenario), ``world`` (the model), ``agents`` (policies: rules, the
oracle, trained networks), ``envs`` (Gymnasium environments), ``learning`` and ``studies`` (training; paired
evaluation, what-ifs, roadmaps, calibration, reports), ``bench`` (suites, the gate, performance) and ``cli``.
``docs/ARCHITECTURE.md`` draws it.
"""

from importlib import metadata

from oce_sim import _checkout, _moved

_checkout.install()  # a source checkout keeps agents/ at the top level: oce_sim.agents finds it there
_moved.install()  # module paths from before the layer subpackages still import, with a DeprecationWarning

from oce_sim.config import ScenarioConfig, ScenarioError, load_scenario  # noqa: E402
from oce_sim.registration import ENV_IDS, register_envs  # noqa: E402

register_envs()

try:
    __version__ = metadata.version("oce-sim")
except metadata.PackageNotFoundError:  # a checkout on sys.path that was never installed
    __version__ = _checkout.version()
__all__ = ["ENV_IDS", "ScenarioConfig", "ScenarioError", "load_scenario", "__version__"]
