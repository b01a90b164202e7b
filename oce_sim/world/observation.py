"""The orchestrator's observation layout: what it reads per customer segment and about the whole territory.

``TerritoryEnv`` writes its observation in this order and every policy in ``oce_sim.agents`` reads it by name, so
the layout lives here, below both.  Every feature comes from the orchestrator's view, never the ground truth.
"""

from __future__ import annotations

from oce_sim.config import ENTITIES

SEGMENT_FEATURES: tuple[str, ...] = (
    "share_of_customers",
    "observed_rx_share",
    "days_since_rep_visit",
    "days_since_any_touch",
    "email_consent_share",
    "need_known_share",
    "message_progress",
    "engagement_rate",
)
GLOBAL_FEATURES: tuple[str, ...] = (
    "episode_progress",
    "data_staleness",
    "suggestion_acceptance",
    "field_capacity_per_customer",
    "epoch_parity",
    "epoch_in_four",
) + tuple(f"stage_{entity}" for entity in ENTITIES)
STALE_DAYS = 60.0  # days-since features and data staleness saturate here (observation in [0, 1])
