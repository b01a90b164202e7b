"""Gymnasium environments (one class per file): ``TerritoryEnv`` (``oce_sim/Territory-v1`` and the other ids of
``oce_sim.registration``), the native vector env (``vector``), its worker-process shards (``sharded``) and the
market history behind a steady start (``steady_start``, which runs the history stage's usual plan).

May import: ``oce_sim.agents``, ``oce_sim.world``, ``oce_sim.config``, ``oce_sim.storage``.
"""

from oce_sim.envs.territory import TerritoryEnv

__all__ = ["TerritoryEnv"]
