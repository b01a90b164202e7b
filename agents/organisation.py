"""An organisation whose behaviour follows each entity's own stage, composed from the stage heuristics' pieces.

The four stage strategies are uniform organisations; a mixed stage such as ``{customer: 1, sales: 2, marketing: 1,
it: 0}`` runs the pieces its entities have authority for, without a bespoke heuristic:

- **sales** sets the field plan: the manager's quarterly call plan at 0 (:class:`Instruction`), weekly
  re-prioritising on shared insight at 1 (:class:`Insight`), plus profiling questions at 2 (:class:`Involvement`),
  and at 3 the orchestrator also fills the field force's paid-for capacity (:meth:`Intervention.fill_field_capacity`);
- **marketing** at 3 hands its channels to the orchestrator, which adds email, webinars and remote detail to the
  plan (:meth:`Intervention.orchestrate_marketing`); below 3 marketing runs its calendar inside the environment;
- **customer** and **IT** change what the view learns and how fast (the environment does that), not the plan.

``Organisation(StageConfig.uniform(k))`` plays exactly what the stage-``k`` heuristic plays (tested).
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from oce_sim.config import ENTITIES, STAGE_NAMES, StageConfig
from oce_sim.world import dispatch as D
from oce_sim.world import stages
from oce_sim.world.dispatch import TIERS

from .base import Observation, Policy
from .stage_heuristics import (
    VISITS_PER_WEEK,
    Insight,
    Instruction,
    Intervention,
    Involvement,
    field_demand,
)

FIELD_PLANNERS: dict[int, type[Policy]] = {0: Instruction, 1: Insight, 2: Involvement, 3: Involvement}
MAX_FIELD_INTENSITY = 4.0
# one notch less field time per play; a rep play with an email keeps the email where marketing is orchestrated
THINNER = {D.REP_BIWEEKLY: D.REP_MONTHLY, D.REP_ASK: D.REP_MONTHLY, D.REP_PLUS_EMAIL: D.EMAIL_PLAY,
           D.REP_MONTHLY: D.HOLD}


def as_stage(stage: StageConfig | Mapping[str, int] | int) -> StageConfig:
    """A stage given as a config, a per-entity mapping or a uniform 0-3."""
    if isinstance(stage, StageConfig):
        return stage
    if isinstance(stage, Mapping):
        return StageConfig.model_validate(dict(stage))
    return StageConfig.uniform(int(stage))


def stage_text(stage: StageConfig) -> str:
    """``2`` for a uniform stage, ``c1s2m1i0`` for a mixed one."""
    values = [getattr(stage, entity) for entity in ENTITIES]
    return str(values[0]) if len(set(values)) == 1 else "c{}s{}m{}i{}".format(*values)


class Organisation(Policy):
    """The behaviour of an organisation at ``stage``, entity by entity (see the module docstring)."""

    env_config: Mapping[str, Any] = {}

    def __init__(self, stage: StageConfig | Mapping[str, int] | int, name: str | None = None,
                 field_intensity: float = 1.0):
        if not 0.0 <= field_intensity <= MAX_FIELD_INTENSITY:
            raise ValueError(f"field_intensity must be in [0, {MAX_FIELD_INTENSITY:g}], got {field_intensity}")
        self.stage = as_stage(stage)
        self.name = name or f"organisation {stage_text(self.stage)}"
        self.field_intensity = float(field_intensity)  # x the visits the plan books: a response curve's spend axis
        self._field = FIELD_PLANNERS[self.stage.sales]()
        self._orchestrator = Intervention()  # its marketing and capacity pieces, used where the stage allows

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        super().reset(env, seed)
        self._field.reset(env, seed)
        self._orchestrator.reset(env, seed)

    def act(self, obs: Observation, mask: np.ndarray) -> np.ndarray:
        for piece in (self._field, self._orchestrator):  # the pieces count weeks (quarterly plan, monthly webinars)
            piece._step = self._step
        plays = self._field.act(obs, mask)
        if stages.has(self.stage, "orchestrator_controls_marketing"):
            plays = self._orchestrator.orchestrate_marketing(plays)
        if self.stage.sales >= 3:  # the orchestrator plans the whole field force (Intervention's capacity filling)
            plays = self._orchestrator.fill_field_capacity(obs, mask, plays)
        if self.field_intensity != 1.0:
            plays = self.scale_field_plan(obs, mask, plays)
        return np.array(plays, copy=True)

    def scale_field_plan(self, obs: Observation, mask: np.ndarray, plays: np.ndarray) -> np.ndarray:
        """Book ``field_intensity`` x the plan's visits: more by the orchestrator's capacity filling (where visits
        pay most first), fewer by thinning the least valuable segments' visits first."""
        target = self.field_intensity * field_demand(obs, plays)
        if self.field_intensity > 1.0:
            return self._orchestrator.fill_field_capacity(obs, mask, plays, target=target)
        plays = np.array(plays, copy=True)
        value = self._orchestrator.economics.detail_value_usd
        order = sorted(range(len(plays)), key=lambda s: (value[TIERS[s // 3]], -(s % 3)))  # cheapest value first
        share = obs.segment["share_of_customers"]
        demand = field_demand(obs, plays)
        while demand > target + 1e-12:
            s = next((s for s in order if int(plays[s]) in THINNER), None)
            if s is None:
                break
            new = THINNER[int(plays[s])]
            new = new if mask[s, new] else D.HOLD
            demand -= share[s] * (VISITS_PER_WEEK.get(int(plays[s]), 0.0) - VISITS_PER_WEEK.get(new, 0.0))
            plays[s] = new
        return plays

    def describe(self) -> str:
        s = self.stage
        return (f"field plan of sales stage {s.sales} ({STAGE_NAMES[s.sales]}), marketing "
                + ("orchestrated" if stages.has(s, "orchestrator_controls_marketing") else f"calendar (stage {s.marketing})")
                + f", customer stage {s.customer}, IT stage {s.it}")


def parse_move(spec: str, today: StageConfig) -> StageConfig:
    """The stage after a move from ``today``: ``sales=3``, ``sales=3,it=2`` or ``stage=2`` (every entity); values
    0-3 or a stage name.  Raises ``ValueError`` naming what is wrong."""
    changes: dict[str, int] = {}
    for part in (p.strip() for p in spec.split(",")):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in (*ENTITIES, "stage"):
            raise ValueError(f"move {spec!r}: expected ENTITY=STAGE with ENTITY one of {', '.join(ENTITIES)} or "
                             "'stage' (every entity), e.g. sales=3 or stage=2")
        level = STAGE_NAMES.index(value) if value in STAGE_NAMES else int(value) if value.isdigit() else -1
        if not 0 <= level <= 3:
            raise ValueError(f"move {spec!r}: {key} must be 0-3 or one of {', '.join(STAGE_NAMES)}, got {value!r}")
        changes.update(dict.fromkeys(ENTITIES, level) if key == "stage" else {key: level})
    return today.model_copy(update=changes)


def move_label(spec: str) -> str:
    """The name of a move's column: its spec without spaces (``sales=3,it=3``)."""
    return "".join(spec.split())


__all__ = ["FIELD_PLANNERS", "Organisation", "as_stage", "move_label", "parse_move", "stage_text"]
