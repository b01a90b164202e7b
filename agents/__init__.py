"""Orchestration strategies: maturity-stage heuristics, controls, the oracle bound and trained models."""

from __future__ import annotations

from typing import Callable

from .base import Policy
from .controls import NoPromotion, RandomMasked
from .oracle import GreedyOracle, Oracle
from .stage_heuristics import Instruction, Insight, Intervention, Involvement
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
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)} or a model .safetensors path")


__all__ = ["Policy", "STRATEGIES", "STAGE_STRATEGIES", "TrainedModel", "make_strategy"]
