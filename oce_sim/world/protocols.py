"""What the value computations (``tail``, ``uplift``) read of a running world, as a structural type.

``World`` (``simulation.py``) calls them, so they must not import it: they name the parts they read here.
"""

from __future__ import annotations

from typing import Protocol

from oce_sim.config import ScenarioConfig
from oce_sim.world.field import FieldForce
from oce_sim.world.population import Population
from oce_sim.world.response import CustomerState, ResponseModel


class SimulatedWorld(Protocol):
    """The parts of ``oce_sim.world.simulation.World`` that the value at the horizon and a touch's value read."""

    config: ScenarioConfig
    pop: Population
    state: CustomerState
    response: ResponseModel
    field: FieldForce

    @property
    def now(self) -> float: ...
