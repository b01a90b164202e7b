"""oce-sim: a SimPy-backed Gymnasium simulator of orchestrated customer engagement (OCE) in pharma."""

from oce_sim.config import ScenarioConfig, ScenarioError, load_scenario
from oce_sim.registration import ENV_IDS, register_envs

register_envs()

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "ScenarioConfig", "ScenarioError", "load_scenario", "__version__"]
