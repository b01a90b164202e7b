"""The economics a real planner has: the value of a prescription, the cost of a call, and public volumes.

A brand planner knows the margin of an Rx, what a call and a digital touch cost, the field force's capacity (paid
for whatever it does: salaries are fixed within the year, so a call's *marginal* cost is its variable cost) and
each potential tier's class volume (syndicated data).  She does not know the response model; she plans with a rule
of thumb from the literature: one extra detail adds about 0.3 prescriptions (Mizik & Jacobson 2004, 0.32 with
persistence) for an HCP of average volume, in proportion to the HCP's class volume, and a digital touch is worth a
fixed fraction of a detail.  A play is worth planning only where that value covers its marginal cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from oce_sim.config import ScenarioConfig, load_scenario
from oce_sim.world.dispatch import TIERS

# Planner's rules of thumb (assumptions, documented in docs/MODEL.md §4).
RX_PER_DETAIL_AT_MEAN_VOLUME = 0.3  # extra Rx from one extra detail to an HCP of average class volume
VALUE_RELATIVE_TO_DETAIL = {
    "remote_detail": 0.3,  # a remote detail: about a third of a face-to-face detail
    "email": 0.03,  # an email: opened about one time in ten, a quarter of a detail's weight when read
    "webinar": 1.2,  # per attendee: an event engages more than a detail (Neslin 2001: meetings & events)
}
TIER_DECILES = {"low": range(1, 5), "mid": range(5, 8), "high": range(8, 11)}
FIELD_OVERBOOKING = 1.6  # planned visits per unit of field capacity at stage 3 (Intervention.fill_field_capacity)
ASK_BELOW_KNOWN_SHARE = 0.6  # involvement asks where less than this share of a segment's needs is known


@dataclass(frozen=True)
class RulesOfThumb:
    """The constants a stage heuristic plans with (defaults: the module's, documented in docs/MODEL.md §4), gathered
    so that ``oce_sim.studies.planner.tune_rules`` can search them on validation seeds (docs/MODEL.md §4d)."""

    rx_per_detail_at_mean_volume: float = RX_PER_DETAIL_AT_MEAN_VOLUME
    value_relative_to_detail: dict[str, float] = field(default_factory=lambda: dict(VALUE_RELATIVE_TO_DETAIL))
    field_overbooking: float = FIELD_OVERBOOKING
    ask_below_known_share: float = ASK_BELOW_KNOWN_SHARE


DEFAULT_RULES = RulesOfThumb()


@dataclass(frozen=True)
class PlannerEconomics:
    detail_value_usd: dict[str, float]  # expected margin of one extra detail, by potential tier
    call_cost_usd: float  # variable (marginal) cost of a call, for this brand's share
    remote_cost_usd: float
    email_cost_usd: float
    webinar_cost_usd: float  # per attendee
    value_relative_to_detail: dict[str, float] = field(default_factory=lambda: dict(VALUE_RELATIVE_TO_DETAIL))

    @classmethod
    def from_config(cls, config: ScenarioConfig, rules: RulesOfThumb = DEFAULT_RULES) -> "PlannerEconomics":
        pop, economics, channels = config.population, config.economics, config.channels
        deciles = np.arange(1, 11)
        volume = pop.top_decile_class_rx_per_week / pop.decile_rx_ratio ** (10 - deciles)
        mean_volume = float(volume.mean())
        value = {tier: rules.rx_per_detail_at_mean_volume * float(volume[np.array(TIER_DECILES[tier]) - 1].mean())
                 / mean_volume * economics.margin_per_rx_usd for tier in TIERS}
        visit = channels.rep_visit
        call_cost = economics.call_cost_share * (pop.specialist_share * visit.variable_cost_specialist_usd
                                                 + (1 - pop.specialist_share) * visit.variable_cost_primary_care_usd)
        return cls(value, call_cost, channels.remote_detail.cost_usd, channels.email.cost_usd,
                   channels.webinar.cost_per_attendee_usd, dict(rules.value_relative_to_detail))

    @classmethod
    def of_env(cls, env, rules: RulesOfThumb = DEFAULT_RULES) -> "PlannerEconomics":
        scenario = getattr(getattr(env, "unwrapped", env), "scenario", None)
        return cls.from_config(scenario if scenario is not None else load_scenario(None), rules)

    def visit_pays(self, tier: str) -> bool:
        return self.detail_value_usd[tier] >= self.call_cost_usd

    def remote_pays(self, tier: str) -> bool:
        return self.detail_value_usd[tier] * self.value_relative_to_detail["remote_detail"] >= self.remote_cost_usd

    def email_pays(self, tier: str) -> bool:
        return self.detail_value_usd[tier] * self.value_relative_to_detail["email"] >= self.email_cost_usd

    def webinar_pays(self, tier: str) -> bool:
        return self.detail_value_usd[tier] * self.value_relative_to_detail["webinar"] >= self.webinar_cost_usd
