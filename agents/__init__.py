"""Orchestration policies behind one ``predict`` interface: the maturity-stage heuristics and the organisation
that mixes them entity by entity (``stage_heuristics``, ``organisation``, ``planning``), controls
(``controls``), the rollout oracle (``oracle``: it reads the ground truth, no deployment could), stationary plans
(``stationary``: one play per segment all year, the space of ``best@K``) and trained networks (``trained``), with
their data-only file format (``model_file``).

Installed as ``oce_sim.agents`` (``agents/`` at the top of the checkout).  May import: ``oce_sim.world``,
``oce_sim.config``, ``oce_sim.storage``.  ``oce_sim.envs`` imports it: the market's history runs a stage's usual
plan.
"""

from __future__ import annotations

from typing import Callable

from .base import Policy
from .controls import NoPromotion, RandomMasked
from .oracle import GreedyOracle, Oracle
from .stage_heuristics import Insight, Instruction, Intervention, Involvement
from .stationary import StationaryPlan, best_budget
from .trained import TrainedModel

STRATEGIES: dict[str, Callable[[], Policy]] = {
    "instruction": Instruction,
    "insight": Insight,
    "involvement": Involvement,
    "intervention": Intervention,
    "no_promotion": NoPromotion,
    "random": RandomMasked,
    "oracle": Oracle,
    "oracle_greedy": GreedyOracle,
}
STAGE_STRATEGIES: tuple[str, ...] = ("instruction", "insight", "involvement", "intervention")


def make_strategy(name: str) -> Policy | TrainedModel:
    """A built-in strategy by name, or a trained model from a ``.safetensors`` path (a ``.zip`` is refused with a
    message saying why and how to get a model file)."""
    if name in STRATEGIES:
        return STRATEGIES[name]()
    if name.endswith((".safetensors", ".zip")):
        return TrainedModel(name)
    if best_budget(name) is not None:  # searched per scenario and stage, in a layer above this one
        raise ValueError(f"{name!r} is searched for a scenario and a stage: resolve it with "
                         "oce_sim.studies.planner.make_strategy(name, scenario, stage)")
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)} or a model .safetensors path")


__all__ = ["Policy", "STRATEGIES", "STAGE_STRATEGIES", "StationaryPlan", "TrainedModel", "make_strategy"]
