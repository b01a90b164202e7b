"""The orchestrator's action language: a play per customer segment, and the executor that turns it into touches.

Segments are what the orchestrator can tell apart from its own view: potential tier (syndicated deciles) x
believed prescribing state (from observed Rx, as stale and noisy as the pipeline makes it).  A *play* says
how to engage a segment during the next decision epoch; the executor picks the customers (next best
customer), the channel's cadence, and one message per customer (next best message) from the view only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from oce_sim.config import ScenarioConfig, StageConfig
from oce_sim.world import kernels
from oce_sim.world.stages import has

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


def plan_epoch(
    plays: np.ndarray,
    segment: np.ndarray,
    day: float,
    epoch_days: int,
    config: ScenarioConfig,
    value: np.ndarray,
    field_calls_per_epoch: float,
    n_reps: int,
    rows: Mapping[str, np.ndarray],
    active: np.ndarray,
) -> list[Plan | None]:
    """Turn one play per segment into concrete suggestions and sends for the next ``epoch_days``, for every
    ``active`` territory of a batch in one compiled call (``kernels.plan_rows``; ``None`` for the others).

    * Rep suggestions: customers of rep plays that are due (not visited within the play's cadence, under the
      30-day visit cap, which the CRM knows at once), ranked per rep by value x overdue (halved for customers
      known to prefer another channel), ``QUEUE_OVERBOOKING`` x the rep's nominal calls per epoch.
    * Email and remote detail skip customers the field visits this epoch, so that two stakeholders never stack
      on one customer; their cadence counts from the executor's own send days.  Remote detail ranks by value
      (x1.5 for customers known to prefer it) within inside-sales capacity.
    * One message per customer per epoch: the next theme in order, or a known need worth repeating.
    ``plays`` ``(N, N_SEGMENTS)``, ``segment`` and ``value`` ``(N, n_hcps)``; ``rows``: the territories' arrays the
    plan reads (:data:`PLANNING_ROWS`: the view's, the population's ``rep``, the channel systems' own delivery log
    ``sent_days`` and the executor's own send days ``own_send_day``).
    """
    channels = config.channels
    remote = channels.remote_detail
    per_rep = int(np.ceil(field_calls_per_epoch * QUEUE_OVERBOOKING)) if n_reps else 0
    working_days = max(1, int(round(epoch_days * 5 / 7)))
    n = plays.shape[0]
    queue_hcp = np.empty((n, n_reps, per_rep), dtype=np.int64)
    queue_theme = np.empty((n, n_reps, per_rep), dtype=np.int64)
    queue_ask = np.empty((n, n_reps, per_rep), dtype=np.bool_)
    email, email_theme, remote_hcp, remote_theme, webinar, offsets = kernels.plan_rows(
        active, plays, segment, float(day), value, rows["progress"], rows["need"], rows["rep"], n_reps, per_rep,
        rows["last_touch_day"], rows["sent_days"], rows["no_see"], rows["preferred_channel"], rows["email_consent"],
        rows["remote_consent"], rows["need_known"], rows["own_send_day"], PLAY_CADENCE_DAYS, IS_REP_PLAY, SENDS_EMAIL,
        REP_ASK, REMOTE, WEBINAR_PLAY, channels.rep_visit.cap_per_30_days, channels.email.cap_per_30_days,
        remote.cap_per_30_days, EMAIL_CADENCE_DAYS, remote.calls_per_day * working_days, queue_hcp, queue_theme,
        queue_ask,
    )  # fmt: skip
    bounds = offsets.tolist()
    plans: list[Plan | None] = []
    for t in range(n):
        if not active[t]:
            plans.append(None)
            continue
        e, r, w = (slice(bounds[k][t], bounds[k][t + 1]) for k in range(3))
        remote_offset = np.arange(r.stop - r.start) // max(1, remote.calls_per_day)
        plans.append(Plan(queue_hcp[t], queue_theme[t], queue_ask[t], email[e], email_theme[e], remote_hcp[r],
                          remote_theme[r], remote_offset, webinar[w]))
    return plans


#: the territories' arrays :func:`plan_epoch` reads (``rows``)
PLANNING_ROWS: tuple[str, ...] = ("progress", "need", "rep", "last_touch_day", "sent_days", "no_see",
                                  "preferred_channel", "email_consent", "remote_consent", "need_known", "own_send_day")


def calendar_theme(day: float, period_days: float, n_themes: int) -> int:
    """Marketing's campaign calendar: one theme per period, in the intended order, for everyone."""
    return int(day // period_days) % n_themes
