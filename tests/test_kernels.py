"""The compiled kernels agree with the NumPy reference equations they replace in the simulated day."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from oce_sim.config import StageConfig, load_scenario
from oce_sim.world import kernels
from oce_sim.world.field import choose_theme
from oce_sim.world.response import EMAIL, REP_VISIT, TouchBatch
from oce_sim.world.simulation import World, poisson_from_uniform

unit = st.floats(0.0, 1.0, allow_nan=False, exclude_max=True)


@settings(max_examples=60, deadline=None)
@given(u=arrays(np.float64, 64, elements=unit), lam=arrays(np.float64, 64, elements=st.floats(0.0, 12.0)))
def test_poisson_inverse_cdf_matches_the_vectorised_draw(u: np.ndarray, lam: np.ndarray) -> None:
    scalar = np.array([kernels.poisson_inverse_cdf(a, b) for a, b in zip(u, lam)])
    reference = poisson_from_uniform(u, lam)
    # NumPy's exp and the compiled one may differ in the last bit: only a draw on a CDF boundary may move, by one
    differ = scalar != reference
    if differ.any():
        from scipy import stats

        assert (np.abs(scalar - reference)[differ] == 1).all()
        boundary = stats.poisson.cdf(np.minimum(scalar, reference)[differ], lam[differ])
        np.testing.assert_allclose(boundary, u[differ], rtol=1e-9)
    np.testing.assert_array_equal(kernels.poisson_draws(u, lam), scalar)


@settings(max_examples=60, deadline=None)
@given(
    progress=arrays(np.int8, 40, elements=st.integers(0, 4)),
    relevance=arrays(np.float64, (40, 4), elements=st.floats(0.0, 1.0)),
)
def test_choose_themes_matches_choose_theme(progress: np.ndarray, relevance: np.ndarray) -> None:
    np.testing.assert_array_equal(kernels.choose_themes(progress, relevance), choose_theme(progress, relevance))


def test_daily_update_draws_rx_from_the_expected_rate_and_decays_goodwill() -> None:
    world = World(load_scenario("small"), seed=5)
    state, model = world.state, world.response
    rng = np.random.default_rng(0)
    state.goodwill[:] = rng.gamma(1.0, 0.5, state.goodwill.size)
    state.adoption[:] = rng.integers(0, 4, state.adoption.size)
    goodwill_before = state.goodwill.copy()
    expected_rate = model.expected_rx_per_day(state)
    new_rate, refill_rate = model.expected_nrx_per_day(state), model.refill_rate * state.patients
    patients = state.patients.copy()
    u_rx, u_transition = rng.random(state.goodwill.size), rng.random(state.goodwill.size)
    u_refill = rng.random(state.goodwill.size)
    per_hcp = np.full(state.goodwill.size, np.nan)
    rx, expected_total, drawn_total = model.advance_day(state, True, u_rx, u_transition, u_refill, per_hcp)
    assert expected_total == pytest.approx(expected_rate.sum(), rel=1e-12)
    np.testing.assert_allclose(per_hcp, expected_rate, rtol=1e-12)  # env.hcp_rewards' split of the same total
    assert drawn_total == rx.sum()
    np.testing.assert_allclose(expected_rate, new_rate + refill_rate)
    np.testing.assert_array_equal(state.nrx, poisson_from_uniform(u_rx, new_rate))
    np.testing.assert_array_equal(rx, state.nrx + poisson_from_uniform(u_refill, refill_rate))
    np.testing.assert_allclose(state.patients, patients * model.patient_keep + state.nrx)
    np.testing.assert_allclose(state.goodwill, goodwill_before * model.goodwill_decay)
    # a weekend: no prescriptions, no transitions, same decay
    adoption = state.adoption.copy()
    rx, expected_total, drawn_total = model.advance_day(state, False, u_rx, np.zeros_like(u_transition))
    assert expected_total == 0.0 and drawn_total == 0 and not rx.any()
    np.testing.assert_array_equal(state.adoption, adoption)


def test_deliver_touches_sees_earlier_touches_of_the_same_day() -> None:
    """Two emails to one HCP on one day: the second sees the first in the 30-day cap and the contact load."""
    config = load_scenario("small", overrides={"channels": {"email": {"cap_per_30_days": 1}}})
    world = World(config, seed=1)
    hcp = int(np.flatnonzero(world.state.email_consent)[0])
    n = 2
    batch = TouchBatch(
        hcp=np.full(n, hcp, dtype=np.int64), channel=np.full(n, EMAIL, dtype=np.int8),
        theme=np.zeros(n, dtype=np.int8), origin=np.zeros(n, dtype=np.int8), question=np.zeros(n, dtype=bool),
        engaged_hint=np.full(n, -1, dtype=np.int8), time=np.array([3.4, 3.5]),
    )  # fmt: skip
    outcome = world.response.apply_touches(world.state, batch, 3.0, np.random.default_rng(0))
    assert outcome.hcp.size == 1 and outcome.blocked_cap == 1
    assert world.state.sent_last_30_days(np.array([hcp]), EMAIL, 3.0)[0] == 1


def first_field_day(world: World) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The reps' visits of day 0 as the world's field day at 08:00 queues them for the end of the day (HCP, origin,
    start time) and the suggestions accepted: the batch's own field day, the path every episode takes."""
    accepted = world.ledger.suggestions_accepted
    world.run_until(9 / 24)
    queue = world._queue
    n = queue.size
    rows = np.flatnonzero((queue.channel[:n] == REP_VISIT) & (queue.day[:n] == 0))
    return queue.hcp[rows], queue.origin[rows], queue.time[rows], world.ledger.suggestions_accepted - accepted


def test_field_day_respects_the_working_day_and_counts() -> None:
    world = World(load_scenario("small", stage=1), seed=2)
    field = world.field
    per_rep = 30
    queue = np.full((field.n_reps, per_rep), -1, dtype=np.int64)
    for r in range(field.n_reps):
        mine = np.flatnonzero(world.pop.rep == r)[:per_rep]
        queue[r, : mine.size] = mine
    field.set_queue(queue, np.zeros_like(queue), np.zeros(queue.shape, dtype=bool))
    hcp, origin, time, accepted = first_field_day(world)
    assert hcp.size > 0
    # every visit starts within the working day, in order per rep
    minutes_into_day = (time - 8 / 24) * 1440
    assert minutes_into_day.min() >= -1e-6
    assert minutes_into_day.max() <= config_minutes(world) + 1e-6
    assert accepted == int(np.sum(origin == 0)) > 0
    assert np.all(field.last_visit_day[hcp] == 0)


def config_minutes(world: World) -> float:
    return world.config.channels.rep_visit.working_minutes_per_day


# --- the mechanisms of the recalibration (issue 10): one known answer each -----------------------------------------

def _one_touch_world(overrides: dict | None = None) -> tuple[World, int]:
    """A small world with one consenting, fresh HCP whose fit and relevance are 1 (impact = channel effect)."""
    world = World(load_scenario("small", overrides=overrides or {}), seed=3)
    hcp = int(np.flatnonzero(world.state.email_consent)[0])
    world.pop.channel_fit[hcp] = 1.0
    world.pop.need_relevance[hcp] = 1.0
    world.state.contact_load[hcp] = 0.0
    world.state.confusion[hcp] = 0.0
    return world, hcp


def _touch(world: World, hcp: int, channel: int, theme: int, day: float, origin: int = 0,
           engaged: int = 1) -> float:
    """Deliver one touch (engagement decided upstream unless ``engaged`` is -1); returns its impact."""
    batch = TouchBatch(hcp=np.array([hcp]), channel=np.array([channel], np.int8), theme=np.array([theme], np.int8),
                       origin=np.array([origin], np.int8), question=np.zeros(1, bool),
                       engaged_hint=np.array([engaged], np.int8), time=np.array([day + 0.5]))
    outcome = world.response.apply_touches(world.state, batch, day, np.random.default_rng(0))
    return float(outcome.impact.sum())


@pytest.mark.parametrize("second_theme, reinforced", [(1, True), (0, True), (3, False)])
def test_a_consistent_message_from_another_stakeholder_is_reinforced(second_theme: int, reinforced: bool) -> None:
    """An email after the rep's visit: a consistent theme (gap < confusion_theme_distance) multiplies the impact by
    1 + cross_channel_reinforcement; a contradictory one (gap >= 2) raises confusion and gets no reinforcement."""
    world, hcp = _one_touch_world()
    r = world.config.response
    _touch(world, hcp, REP_VISIT, 0, 10.0)
    alone, _ = _one_touch_world()
    alone.state.progress[hcp] = world.state.progress[hcp]
    base = _touch(alone, hcp, EMAIL, second_theme, 12.0)  # the same email with no visit before it
    impact = _touch(world, hcp, EMAIL, second_theme, 12.0)
    if reinforced:
        assert impact == pytest.approx(base * (1.0 + r.cross_channel_reinforcement))
    else:
        assert world.state.confusion[hcp] > 0 and impact < base
    # the same stakeholder never reinforces itself
    world, hcp = _one_touch_world()
    first = _touch(world, hcp, REP_VISIT, 0, 10.0)
    assert _touch(world, hcp, REP_VISIT, 1, 12.0) == pytest.approx(first)  # (in sequence: same factor 1)


def test_an_orchestrated_email_after_a_met_visit_opens_like_a_rep_sent_one() -> None:
    """Open probability uses email.follow_up_open within the window after the rep's met visit, for orchestrated
    emails only (the calendar does not know about the visit)."""
    config = {"channels": {"email": {"base_open": 0.0, "follow_up_open": 1.0}}}
    for origin, visit_met, opened in ((0, 1, True), (2, 1, False), (0, 0, False)):
        world, hcp = _one_touch_world(config)
        _touch(world, hcp, REP_VISIT, 0, 10.0, engaged=visit_met)
        impact = _touch(world, hcp, EMAIL, 1, 12.0, origin=origin, engaged=-1)
        assert (impact > 0) == opened, (origin, visit_met)
    world, hcp = _one_touch_world(config)
    _touch(world, hcp, REP_VISIT, 0, 10.0)
    assert _touch(world, hcp, EMAIL, 1, 10.0 + world.config.response.confusion_window_days + 1, engaged=-1) == 0.0


def test_goodwill_lifts_the_share_from_the_aware_state_on() -> None:
    world = World(load_scenario("small"), seed=4)
    state, model = world.state, world.response
    state.goodwill[:] = 3.0
    lifted = model.expected_nrx_per_day(state)
    state.goodwill[:] = 0.0
    flat = model.expected_nrx_per_day(state)
    adoption = state.adoption
    assert np.all(lifted[adoption == 0] == flat[adoption == 0])
    positive = world.pop.class_rx_per_day * model.access_factor[state.account_access[world.pop.account]] > 0
    assert np.all(lifted[(adoption >= kernels.LIFT_FROM_STATE) & positive]
                  > flat[(adoption >= kernels.LIFT_FROM_STATE) & positive])


@pytest.mark.parametrize("sales", [0, 2, 3])
def test_a_rep_pads_an_empty_plan_with_own_calls_at_every_stage(sales: int) -> None:
    """A level never takes an option away: a rep with an empty queue fills her day with own picks at every stage;
    at sales 3 she ranks them by the value she is given (the orchestrator's), below it by potential."""
    stage = {"customer": 1, "sales": sales, "marketing": 1, "it": 1}

    def empty_plan(world: World) -> None:
        field = world.field
        empty = np.full((field.n_reps, 5), -1, dtype=np.int64)
        field.set_queue(empty, np.zeros_like(empty), np.zeros(empty.shape, dtype=bool))

    world = World(load_scenario("small", stage=stage), seed=2)
    empty_plan(world)
    hcp, origin, _, _ = first_field_day(world)
    assert hcp.size >= 5 * world.field.n_reps and np.all(origin == 1)  # own picks fill the day
    if sales == 3:  # ranked by the orchestrator's value of each customer: the customers it favours come first
        world = World(load_scenario("small", stage=stage), seed=2)
        empty_plan(world)
        favourites = np.flatnonzero((world.pop.rep == 0) & (world.pop.archetype != 2))[:3]
        volume = world.pop.class_rx_per_day  # in place: the customer priority reads it (class volume x access)
        volume *= 1e-6
        volume[favourites] = 1.0
        assert set(np.argsort(-world.customer_priority())[:3]) == set(favourites)
        hcp, _, _, _ = first_field_day(world)
        assert set(favourites) <= set(hcp.tolist())


@settings(max_examples=60, deadline=None)
@given(goodwill=st.floats(-5.0, 1e6, allow_nan=False), shape=st.sampled_from([1.0, 0.5, 2.0, 3.3]))
def test_hill_power_is_the_power_of_the_positive_part(goodwill: float, shape: float) -> None:
    assert kernels.hill_power(goodwill, shape) == max(goodwill, 0.0) ** shape  # exactly: the Rx draws depend on it


@settings(max_examples=40, deadline=None)
@given(sent=arrays(np.float32, (30, 5, 8), elements=st.sampled_from([-1e9, 0.0, 3.0, 17.5, 120.0, 364.0])),
       need=arrays(np.float64, (30, 6), elements=st.floats(0.0, 1.0)))
def test_last_send_day_and_relative_need_match_numpy(sent: np.ndarray, need: np.ndarray) -> None:
    expected = sent[:, REP_VISIT, :].max(axis=1).astype(np.float64)
    np.testing.assert_array_equal(kernels.last_send_day(sent, REP_VISIT), expected)
    np.testing.assert_array_equal(kernels.relative_need(need), need / np.maximum(1e-9, need.max(axis=1, keepdims=True)))


@settings(max_examples=60, deadline=None)
@given(counts=arrays(np.int64, (9, 5), elements=st.integers(0, 3)), controllable=arrays(np.bool_, 8))
def test_play_mask_matches_the_numpy_mask(counts: np.ndarray, controllable: np.ndarray) -> None:
    from oce_sim.world import dispatch as d

    present, email_ok, remote_ok, reachable, unknown_need = (counts > 0).T
    expected = np.tile(controllable, (d.N_SEGMENTS, 1))
    expected[:, 1:] &= present[:, None]
    expected[:, [d.REP_BIWEEKLY, d.REP_MONTHLY]] &= reachable[:, None]
    expected[:, d.REP_ASK] &= reachable & unknown_need
    expected[:, d.REMOTE] &= remote_ok
    expected[:, [d.EMAIL_PLAY, d.WEBINAR_PLAY]] &= email_ok[:, None]
    expected[:, d.REP_PLUS_EMAIL] &= reachable | email_ok
    np.testing.assert_array_equal(kernels.play_mask(counts, controllable, d.PLAY_NEEDS), expected)


@settings(max_examples=40, deadline=None)
@given(ring=arrays(np.float32, (28, 40), elements=st.sampled_from([0.0, 0.7, 1.3, 2.0, 3.1])),
       volume=arrays(np.float64, 40, elements=st.sampled_from([0.0, 0.4, 2.5, 9.0])), days=st.integers(1, 28))
def test_observed_share_and_believed_stages_match_numpy(ring: np.ndarray, volume: np.ndarray, days: int) -> None:
    working = days * 5.0 / 7.0
    share = ring.sum(axis=0) / np.maximum(1e-9, volume * working)
    np.testing.assert_array_equal(kernels.observed_share(ring, volume, working), share)  # the same float32 sums
    np.testing.assert_array_equal(kernels.believed_stages(share, 0.2), np.where(share <= 0.0, 0, np.where(share < 0.2, 1, 2)))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 60))
def test_a_reps_interventions_on_the_queue_match_pending_retheme_and_cancel(seed: int, rows: int) -> None:
    """``TouchQueue.intervene`` (one compiled pass) against the NumPy methods it replaced in a stage-3 rep's day."""
    from oce_sim.world.response import REMOTE_DETAIL, TouchQueue

    rng = np.random.default_rng(seed)
    n_hcps = 12
    reference, compiled = TouchQueue(capacity=4), TouchQueue(capacity=4)
    for queue in (reference, compiled):
        r = np.random.default_rng(seed)
        queue.push(r.integers(0, n_hcps, rows), r.integers(0, 5, rows), r.integers(0, 4, rows), r.integers(0, 3, rows),
                   r.integers(0, 30, rows) + r.random(rows), r.integers(-1, 2, rows), r.random(rows) < 0.3)
    customers = rng.random(n_hcps) < 0.5
    follow_up = rng.integers(0, 4, n_hcps)
    first, last = 5, 19
    emails = reference.pending(customers, EMAIL, first, last)
    reference.retheme(emails, follow_up[reference.hcp[emails]])
    stopped = reference.pending(customers, REMOTE_DETAIL, first, last)
    reference.cancel(stopped)
    assert compiled.intervene(customers, follow_up, first, last, EMAIL, REMOTE_DETAIL) == (emails.size, stopped.size)
    assert compiled.size == reference.size
    for name in TouchQueue._COLUMNS:
        np.testing.assert_array_equal(getattr(compiled, name)[:compiled.size], getattr(reference, name)[:reference.size])


def _touch_value_reference(world, channel, days_left):
    """The NumPy formulation ``uplift.expected_touch_value_usd`` was written in (kept as its reference)."""
    from oce_sim.world.field import choose_theme
    from oce_sim.world.response import REP_VISIT, WEBINAR

    cfg, r = world.config, world.config.response
    pop, state, model = world.pop, world.state, world.response
    n = pop.n_hcps
    theme = choose_theme(state.progress, pop.need_relevance)
    fit = pop.channel_fit[:, channel]
    relevance = pop.need_relevance[np.arange(n), theme]
    fatigue = np.exp(-2.0 * model.fatigue_excess(state, np.arange(n)))
    seq, _ = model.sequence_factor(state.progress, theme)
    if channel == REP_VISIT:
        p_engage = world.field.availability[pop.archetype]
    elif channel == WEBINAR:
        web = cfg.channels.webinar
        p_engage = web.base_registration * (0.4 + 0.6 * fit) * (0.5 + 0.5 * relevance) * web.show_rate
    else:
        p_engage = model.base_engagement[channel] * (0.4 + 0.6 * fit) * (0.6 + 0.4 * relevance) * fatigue
    impact = model.channel_effect[channel] * fit * relevance * seq * (1.0 - state.confusion) * fatigue
    g = np.maximum(state.goodwill, 1e-6)
    k, a = r.hill_half_saturation, r.hill_shape
    slope = a * g ** (a - 1) * k**a / (g**a + k**a) ** 2
    slope = np.where(state.goodwill <= 1e-6, model.hill(impact) / np.maximum(impact, 1e-9), slope)
    working_left = max(0.0, days_left * 5.0 / 7.0)
    carry = (1.0 - model.goodwill_decay ** working_left) / (1.0 - model.goodwill_decay)
    access = model.access_factor[state.account_access[pop.account]]
    rx_day_value = pop.class_rx_per_day * access * cfg.economics.margin_per_rx_usd
    share = model.brand_share
    half = 0.5 * working_left
    gain_next = np.select(
        [state.adoption == 0, state.adoption == 1, state.adoption == 2],
        [r.p_unaware_to_aware[1] * r.p_aware_to_trial * 0.5 * (share[2] - share[1]),
         r.p_aware_to_trial * access * (share[2] - share[1]), r.p_trial_to_adopt[1] * (share[3] - share[2])],
        default=r.p_adopter_lapse * 0.8 * (share[3] - share[1]),
    ) * half
    lift_now = np.where(state.adoption >= kernels.LIFT_FROM_STATE, r.share_lift_from_response, 0.0)
    value_per_response_day = rx_day_value * (gain_next + lift_now)
    return p_engage * impact * slope * carry * value_per_response_day


@pytest.mark.parametrize("stage", [1, 3])
def test_touch_value_is_its_numpy_reference_bit_for_bit(stage):
    from oce_sim.world.response import EMAIL, REMOTE_DETAIL, REP_VISIT, WEBINAR
    from oce_sim.world.uplift import expected_touch_value_usd, value_horizon_days

    world = World(load_scenario("small", stage=stage), seed=9)
    rng = np.random.default_rng(2)
    for day in (0, 40, 120):
        world.apply_plays(rng.integers(0, 8, size=9))
        world.run_until(day)
        for channel in (REP_VISIT, REMOTE_DETAIL, EMAIL, WEBINAR):
            days = value_horizon_days(world)
            assert np.array_equal(expected_touch_value_usd(world, channel, days),
                                  _touch_value_reference(world, channel, days))
