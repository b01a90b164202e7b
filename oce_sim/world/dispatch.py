"""The orchestrator's action language: a play per customer segment, and the executor that turns it into touches.

Segments are what the orchestrator can tell apart from its own view: potential tier (syndicated deciles) x
believed prescribing state (from observed Rx, as stale and noisy as the pipeline makes it).  A *play* says
how to engage a segment during the next decision epoch; the executor picks the customers (next best
customer), the channel's cadence, and one message per customer (next best message) from the view only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oce_sim.config import ScenarioConfig, StageConfig
from oce_sim.world import kernels
from oce_sim.world.population import Population
from oce_sim.world.stages import has
from oce_sim.world.view import OrchestratorView

TIERS: tuple[str, ...] = ("low", "mid", "high")
BELIEFS: tuple[str, ...] = ("non_prescriber", "trialing", "adopter")
SEGMENTS: tuple[str, ...] = tuple(f"{tier}_{belief}" for tier in TIERS for belief in BELIEFS)
N_SEGMENTS = len(SEGMENTS)

PLAYS: tuple[str, ...] = (
    "hold",
    "rep_visit_biweekly",
    "rep_visit_monthly",
    "rep_visit_ask",
    "remote_detail",
    "email",
    "webinar_invite",
    "rep_visit_plus_email",
)
N_PLAYS = len(PLAYS)
HOLD, REP_BIWEEKLY, REP_MONTHLY, REP_ASK, REMOTE, EMAIL_PLAY, WEBINAR_PLAY, REP_PLUS_EMAIL = range(N_PLAYS)
REP_PLAYS = (REP_BIWEEKLY, REP_MONTHLY, REP_ASK, REP_PLUS_EMAIL)
MARKETING_PLAYS = (REMOTE, EMAIL_PLAY, WEBINAR_PLAY, REP_PLUS_EMAIL)  # need marketing stage 3
IS_REP_PLAY = np.isin(np.arange(N_PLAYS), REP_PLAYS)
SENDS_EMAIL = np.isin(np.arange(N_PLAYS), (EMAIL_PLAY, REP_PLUS_EMAIL))
# Which customers of a segment each play needs (kernels.play_mask): reachable by a rep (assigned, not a known
# no-see), with an unknown need (the ask play), opted in to the channel.
PLAY_NEEDS = np.full(N_PLAYS, kernels.NEEDS_NOTHING, dtype=np.int64)
PLAY_NEEDS[[REP_BIWEEKLY, REP_MONTHLY]] = kernels.NEEDS_REP
PLAY_NEEDS[REP_ASK] = kernels.NEEDS_REP_AND_UNKNOWN_NEED
PLAY_NEEDS[REMOTE] = kernels.NEEDS_REMOTE_OPT_IN
PLAY_NEEDS[[EMAIL_PLAY, WEBINAR_PLAY]] = kernels.NEEDS_EMAIL_OPT_IN
PLAY_NEEDS[REP_PLUS_EMAIL] = kernels.NEEDS_REP_OR_EMAIL_OPT_IN
assert HOLD == 0 and PLAY_NEEDS.size == N_PLAYS  # play_mask: hold (play 0) needs no customers
# Minimum days between two touches of the same channel that a play asks for.
PLAY_CADENCE_DAYS = np.array([np.inf, 14.0, 28.0, 14.0, 14.0, 7.0, np.inf, 14.0])
EMAIL_CADENCE_DAYS = 7.0
QUEUE_OVERBOOKING = 1.25  # suggestions beyond nominal capacity, since some are dismissed


def segment_of(pop: Population, view: OrchestratorView) -> np.ndarray:
    return pop.potential_tier.astype(np.int64) * len(BELIEFS) + view.believed_stage()


@dataclass
class Plan:
    """Touches the executor scheduled for one epoch (rep queues are handed to the field force)."""

    queue_hcp: np.ndarray
    queue_theme: np.ndarray
    queue_ask: np.ndarray
    email_hcp: np.ndarray
    email_theme: np.ndarray
    remote_hcp: np.ndarray
    remote_theme: np.ndarray
    remote_day_offset: np.ndarray
    webinar_hcp: np.ndarray


def controllable_plays(stage: StageConfig, config: ScenarioConfig, rep_capacity: bool) -> np.ndarray:
    """Plays the stage gives the orchestrator authority over (before looking at any segment)."""
    allowed = np.zeros(N_PLAYS, dtype=bool)
    allowed[HOLD] = True
    allowed[[REP_BIWEEKLY, REP_MONTHLY]] = rep_capacity
    allowed[REP_ASK] = rep_capacity and has(stage, "system_asks_questions")
    if has(stage, "orchestrator_controls_marketing"):
        allowed[REMOTE] = config.channels.remote_detail.calls_per_day > 0
        allowed[EMAIL_PLAY] = True
        allowed[WEBINAR_PLAY] = config.channels.webinar.seats > 0
        allowed[REP_PLUS_EMAIL] = rep_capacity
    return allowed


def action_mask(
    pop: Population, view: OrchestratorView, segment: np.ndarray, controllable: np.ndarray
) -> np.ndarray:
    """``[N_SEGMENTS, N_PLAYS]``: what may be played on each segment given control and known eligibility: a play
    other than hold needs customers in the segment, and those its channel can reach (``PLAY_NEEDS``)."""
    counts = kernels.segment_eligibility(segment, N_SEGMENTS, view.email_consent, view.remote_consent, pop.rep,
                                         view.no_see, view.need_known)
    return kernels.play_mask(counts, controllable, PLAY_NEEDS)


def plan_epoch(
    plays: np.ndarray,
    segment: np.ndarray,
    day: float,
    epoch_days: int,
    pop: Population,
    view: OrchestratorView,
    config: ScenarioConfig,
    value: np.ndarray,
    field_calls_per_epoch: float,
    n_reps: int,
    sent_days: np.ndarray,
    own_send_day: np.ndarray,
) -> Plan:
    """Turn one play per segment into concrete suggestions and sends for the next ``epoch_days``.

    * Rep suggestions: customers of rep plays that are due (not visited within the play's cadence, under the
      30-day visit cap, which the CRM knows at once), ranked per rep by value x overdue (halved for customers
      known to prefer another channel), ``QUEUE_OVERBOOKING`` x the rep's nominal calls per epoch.
    * Email and remote detail skip customers the field visits this epoch, so that two stakeholders never stack
      on one customer; their cadence counts from the executor's own send days.  Remote detail ranks by value
      (x1.5 for customers known to prefer it) within inside-sales capacity.
    * One message per customer per epoch: the next theme in order, or a known need worth repeating.
    ``sent_days`` is the channel systems' own delivery log (``CustomerState.sent_days``).
    """
    play = plays[segment]
    theme = kernels.choose_themes(view.progress, view.need_relevance())
    channels = config.channels
    remote = channels.remote_detail
    per_rep = int(np.ceil(field_calls_per_epoch * QUEUE_OVERBOOKING)) if n_reps else 0
    working_days = max(1, int(round(epoch_days * 5 / 7)))
    queue_hcp, queue_theme, queue_ask, email_hcp, remote_hcp, webinar_hcp = kernels.plan_touches(
        play, theme, float(day), value, pop.rep, n_reps, per_rep, view.last_touch_day, crm_last_call_day(sent_days),
        view.no_see,
        view.preferred_channel, view.email_consent, view.remote_consent, view.need_known, sent_days, own_send_day,
        PLAY_CADENCE_DAYS, IS_REP_PLAY, SENDS_EMAIL, REP_ASK, REMOTE, WEBINAR_PLAY, channels.rep_visit.cap_per_30_days,
        channels.email.cap_per_30_days, remote.cap_per_30_days, EMAIL_CADENCE_DAYS, remote.calls_per_day * working_days,
    )  # fmt: skip
    remote_offset = np.arange(remote_hcp.size) // max(1, remote.calls_per_day)
    return Plan(queue_hcp, queue_theme, queue_ask, email_hcp, theme[email_hcp], remote_hcp, theme[remote_hcp],
                remote_offset, webinar_hcp)


def crm_last_call_day(sent_days: np.ndarray) -> np.ndarray:
    """Each customer's last call in the CRM's own log (exact at every stage: reps record their calls)."""
    return kernels.last_send_day(sent_days, kernels._REP_VISIT)


def calendar_theme(day: float, period_days: float, n_themes: int) -> int:
    """Marketing's campaign calendar: one theme per period, in the intended order, for everyone."""
    return int(day // period_days) % n_themes
