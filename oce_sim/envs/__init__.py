"""Gymnasium environments (one class per file)."""

from oce_sim.envs.territory import TerritoryEnv

__all__ = ["TerritoryEnv"]
