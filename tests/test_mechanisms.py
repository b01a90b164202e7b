"""Causal mechanisms the simulator must exhibit (a scripted simulator fails these).

Comparisons are paired: same seed, common random numbers, one thing changed.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import simpy

from oce_sim.config import CHANNELS, load_scenario
from oce_sim.world import dispatch
from oce_sim.world.population import Population
from oce_sim.world.response import EMAIL, ORIGIN_ORCHESTRATOR, REP_VISIT, ResponseModel, TouchBatch
from oce_sim.world.simulation import World
from oce_sim.world.view import DataPipeline, DayRecord, OrchestratorView

from conftest import N_SEGMENTS, constant, episode_kpis, make_env, masked_random, plays, run_episode

SEEDS = (0, 1, 2)


# ---------------------------------------------------------------------------------------- field capacity


NO_CAPACITY = {
    "no_reps": {"population": {"n_reps": 0}},
    "no_minutes": {"channels": {"rep_visit": {"working_minutes_per_day": 0.0}}},
}


@pytest.mark.parametrize("override", NO_CAPACITY.values(), ids=NO_CAPACITY.keys())
def test_zero_rep_capacity_gives_zero_visits(override):
    rep_plays = constant(dispatch.REP_BIWEEKLY)
    baseline = episode_kpis(1, rep_plays, seed=3)
    assert baseline["touches_rep_visit"] > 0

    kpis = episode_kpis(1, rep_plays, seed=3, config=override)
    assert kpis["touches_rep_visit"] == 0
    assert kpis["cost_rep_visit_usd"] == 0
    assert kpis["masked_actions"] > 0, "rep plays are masked without field capacity"


@pytest.mark.parametrize("override", NO_CAPACITY.values(), ids=NO_CAPACITY.keys())
def test_zero_rep_capacity_enforced_by_the_world(override):
    """Bypassing the mask: the world itself cannot produce visits without field capacity."""
    env = make_env(stage=2, config=override)
    env.reset(seed=3)
    world = env.world
    mask = world.action_mask()
    assert not mask[:, list(dispatch.REP_PLAYS)].any()
    for day in range(7, 57, 7):
        world.apply_plays(np.full(N_SEGMENTS, dispatch.REP_BIWEEKLY))
        world.run_until(day)
    assert world.ledger.delivered[REP_VISIT] == 0
    assert world.ledger.cost_usd[REP_VISIT] == 0


# ------------------------------------------------------------------------------------------ message need


@pytest.mark.parametrize("position", ["repeat", "in_order"])
def test_needed_theme_earns_more_goodwill_than_unneeded(position):
    config = load_scenario("small")
    world = World(config, seed=8)
    pop: Population = world.pop
    model: ResponseModel = world.response
    assert isinstance(model, ResponseModel)
    hcp = np.arange(0, pop.n_hcps, 3)
    needed = pop.need[hcp].argmax(axis=1)
    unneeded = pop.need[hcp].argmin(axis=1)
    assert np.all(needed != unneeded)

    def apply(theme):
        state = copy.deepcopy(world.state)
        # The same position in the message sequence for both themes, so only the need differs.
        state.progress[hcp] = pop.n_themes if position == "repeat" else theme
        before = state.goodwill.copy()
        n = hcp.size
        batch = TouchBatch(
            hcp=hcp.astype(np.int64),
            channel=np.full(n, REP_VISIT, dtype=np.int8),
            theme=theme.astype(np.int8),
            origin=np.full(n, ORIGIN_ORCHESTRATOR, dtype=np.int8),
            question=np.zeros(n, dtype=bool),
            engaged_hint=np.ones(n, dtype=np.int8),
            time=np.full(n, 3.4),
        )
        outcome = model.apply_touches(state, batch, 3.0, np.random.default_rng(0))
        assert outcome.hcp.size == n and outcome.engaged.all()
        order = np.argsort(outcome.hcp)
        return state.goodwill[hcp] - before[hcp], outcome.impact[order]

    gain_needed, impact_needed = apply(needed)
    gain_unneeded, impact_unneeded = apply(unneeded)
    np.testing.assert_allclose(gain_needed, impact_needed)
    np.testing.assert_allclose(gain_unneeded, impact_unneeded)
    assert np.all(gain_needed > gain_unneeded), (gain_needed, gain_unneeded)
    assert gain_needed.sum() > 1.5 * gain_unneeded.sum()
    # the untouched HCPs are untouched
    assert np.all(world.state.goodwill == 0)


# ------------------------------------------------------------------------------------------ data latency


def pipeline_level(latency_days: float, batch_interval_days: float = 7.0) -> dict:
    return {
        "batch_interval_days": batch_interval_days,
        "latency_days": latency_days,
        "covered_channels": list(CHANNELS),
        "rx_noise_cv": 0.0,
        "missing_share": 0.0,
    }


def latency_env(latency_days: float, stage):
    config = {
        "env": {"horizon_days": 84, "record_events": True},
        "pipeline": {"override": pipeline_level(latency_days)},
        "marketing": {"invite_all_to_webinars": False},
        # no unsubscribes: the calendar mails whom the view believes consents, so a lagging view would send
        # (blocked) emails the fast one does not, and the two worlds would differ for a reason other than latency
        "response": {"unsubscribe_base": 0.0, "unsubscribe_per_excess": 0.0},
    }
    env = make_env(stage=stage, config=config)
    env.reset(seed=5)
    return env


KNOWN = -1e8  # view.last_touch_day above this: the touch is known


@pytest.mark.parametrize("policy", ["hold", "rep_visits"])
def test_higher_latency_never_sees_events_earlier(policy):
    fast, slow = latency_env(1, 0 if policy == "hold" else 1), latency_env(14, 0 if policy == "hold" else 1)
    action = plays() if policy == "hold" else np.full(N_SEGMENTS, dispatch.REP_BIWEEKLY)
    lagged = 0
    for _ in range(12):
        fast.step(action)
        slow.step(action)
        now = fast.world.now
        assert slow.world.now == now
        for env, latency in ((fast, 1), (slow, 14)):
            view = env.world.view
            # nothing simulated is published before its latency has passed (the 28 days of pre-start history,
            # through day -1, are loaded at reset), and no touch is known beyond publication
            assert view.published_through_day <= max(-1, now - 1 - latency)
            assert view.last_touch_day.max() <= view.published_through_day
        v_fast, v_slow = fast.world.view, slow.world.view
        assert v_slow.published_through_day <= v_fast.published_through_day
        lagged += v_slow.published_through_day < v_fast.published_through_day
        if policy == "hold":
            # with a policy that ignores the view the two worlds are identical, so the slow view knows a
            # subset of what the fast one knows, never a later touch
            assert np.all((v_slow.last_touch_day > KNOWN) <= (v_fast.last_touch_day > KNOWN))
            assert np.all(v_slow.last_touch_day <= v_fast.last_touch_day)
            assert v_slow.delivered.sum() <= v_fast.delivered.sum()
    assert lagged >= 10
    if policy == "hold":
        assert fast.world.event_digest() == slow.world.event_digest(), "hold policy: identical worlds"
        assert (fast.world.view.last_touch_day > KNOWN).sum() > (slow.world.view.last_touch_day > KNOWN).sum()


def test_pipeline_publishes_after_latency():
    """Same records, two latencies: the slower pipeline publishes each record later, never earlier."""
    config = load_scenario("small")
    world = World(config, seed=0)  # only for a population
    low = load_scenario("small", overrides={"pipeline": {"override": pipeline_level(1, 1)}}).pipeline_level()
    high = load_scenario("small", overrides={"pipeline": {"override": pipeline_level(14, 1)}}).pipeline_level()
    views = {name: OrchestratorView(config, world.pop) for name in ("low", "high")}
    pipes = {"low": DataPipeline(low), "high": DataPipeline(high)}
    empty = world.response.apply_touches(world.state, TouchBatch.empty(), 0.0, np.random.default_rng(0))
    first_seen = {"low": {}, "high": {}}
    for day in range(60):
        record = DayRecord(day=day, touches=empty, rx=np.ones(world.pop.n_hcps, dtype=np.int32))
        for name in pipes:
            pipes[name].submit(record)
        now = day + 1 + 2 / 24  # the morning batch of the next day
        for name in pipes:
            pipes[name].publish(now, views[name], np.random.default_rng(day))
            first_seen[name].setdefault(views[name].published_through_day, now)
        assert views["high"].published_through_day <= views["low"].published_through_day
    for day, seen_high in first_seen["high"].items():
        if day >= 0:
            assert seen_high - first_seen["low"][day] >= 13 - 1e-9


# ------------------------------------------------------------------------------------------ orchestration


def alternating(other_play):
    """Rep visit plays on every segment in even weeks; ``other_play`` everywhere in odd weeks."""

    def policy(step, env, rng):
        return np.full(N_SEGMENTS, dispatch.REP_BIWEEKLY if step % 2 == 0 else other_play, dtype=np.int64)

    return policy


def test_orchestrated_sequence_confuses_less_than_independent_calendar():
    """Same rep plays; marketing either runs its own calendar (blind) or is orchestrated (email plays)."""
    config = {"env": {"horizon_days": 182}}
    # sales 3 in both: the reps make only the calls the plays ask for (no quota padding with their own picks and
    # messages), so the field activity is the same and only marketing's sequencing differs
    calendar_stage = {"customer": 1, "sales": 3, "marketing": 0, "it": 1}
    orchestrated_stage = {"customer": 1, "sales": 3, "marketing": 3, "it": 1}
    calendar = orchestrated = 0.0
    calendar_emails = orchestrated_emails = 0.0
    for seed in SEEDS:
        k_cal = episode_kpis(calendar_stage, alternating(dispatch.HOLD), seed, config)
        k_orch = episode_kpis(orchestrated_stage, alternating(dispatch.EMAIL_PLAY), seed, config)
        # the same field activity in both runs
        assert k_cal["touches_rep_visit"] > 0
        assert k_orch["touches_rep_visit"] == pytest.approx(k_cal["touches_rep_visit"], rel=0.1)
        calendar += k_cal["confusion_events"]
        orchestrated += k_orch["confusion_events"]
        calendar_emails += k_cal["touches_email"]
        orchestrated_emails += k_orch["touches_email"]
    # comparable email volume, so the difference is the sequencing, not the amount of contact
    assert orchestrated_emails >= 0.5 * calendar_emails
    assert orchestrated < calendar, (orchestrated, calendar)


def test_over_contact_causes_unsubscribes():
    config = {"population": {"contact_tolerance_per_month": [0.2, 0.4], "email_opt_in": 1.0},
              "env": {"horizon_days": 84}}
    weekly = constant(dispatch.EMAIL_PLAY)

    def monthly(step, env, rng):
        return np.full(N_SEGMENTS, dispatch.EMAIL_PLAY if step % 4 == 0 else dispatch.HOLD, dtype=np.int64)

    often = sum(episode_kpis(3, weekly, seed, config)["unsubscribes"] for seed in SEEDS)
    rarely = sum(episode_kpis(3, monthly, seed, config)["unsubscribes"] for seed in SEEDS)
    assert often > rarely, (often, rarely)
    assert often >= 10


def test_same_contact_with_lower_tolerance_causes_more_unsubscribes():
    """Identical sends; only how much contact the HCPs tolerate differs."""
    weekly = constant(dispatch.EMAIL_PLAY)
    tolerant = {"population": {"contact_tolerance_per_month": [20.0, 30.0], "email_opt_in": 1.0},
                "env": {"horizon_days": 84}}
    touchy = {"population": {"contact_tolerance_per_month": [0.2, 0.4], "email_opt_in": 1.0},
              "env": {"horizon_days": 84}}
    n_tolerant = sum(episode_kpis(3, weekly, seed, tolerant)["unsubscribes"] for seed in SEEDS)
    n_touchy = sum(episode_kpis(3, weekly, seed, touchy)["unsubscribes"] for seed in SEEDS)
    assert n_touchy > 3 * max(1.0, n_tolerant), (n_touchy, n_tolerant)


def test_weekly_email_play_sends_weekly():
    config = {"population": {"email_opt_in": 1.0}, "env": {"horizon_days": 56, "record_events": True}}
    env = make_env(stage=3, config=config)
    run_episode(env, constant(dispatch.EMAIL_PLAY), seed=0)
    world = env.world
    sent = sum(int(np.sum((r.touches.channel == EMAIL) & (r.touches.origin == ORIGIN_ORCHESTRATOR)))
               for r in world.event_log)
    consenting = int(world.pop.email_consent.sum())
    # eight weekly decisions, cap 5 per 30 days: about one email per consenting HCP per week
    assert sent >= 7 * consenting, (sent, consenting)


# ------------------------------------------------------------------------------------ common random numbers


def test_common_random_numbers_across_policies():
    config = {"env": {"horizon_days": 84}}
    hold = make_env(stage=3, config=config)
    busy = make_env(stage=3, config=config)
    run_episode(hold, constant(dispatch.HOLD), seed=42)
    run_episode(busy, masked_random, seed=42, policy_seed=9)
    w_hold, w_busy = hold.world, busy.world
    assert w_busy.ledger.delivered[:3].sum() > w_hold.ledger.delivered[:3].sum(), "the policies really differ"

    for name in Population.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(w_hold.pop, name), getattr(w_busy.pop, name), err_msg=name)
    for stream in ("rx", "transitions", "website"):
        for day in (0, 13, 40, 83, 120):
            np.testing.assert_array_equal(w_hold.exogenous_uniforms(stream, day),
                                          w_busy.exogenous_uniforms(stream, day), err_msg=f"{stream} {day}")
    assert not np.array_equal(w_hold.exogenous_uniforms("rx", 3), w_hold.exogenous_uniforms("rx", 4))
    # a different seed is a different world
    other = World(w_hold.config, seed=43)
    assert not np.array_equal(other.exogenous_uniforms("rx", 3), w_hold.exogenous_uniforms("rx", 3))
    assert not np.array_equal(other.pop.need, w_hold.pop.need)


def test_population_does_not_depend_on_stage():
    worlds = [World(load_scenario("small", stage=s), seed=17) for s in range(4)]
    for w in worlds[1:]:
        for name in Population.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(w.pop, name), getattr(worlds[0].pop, name), err_msg=name)


# ---------------------------------------------------------------------------------------------------- SimPy


def test_world_runs_on_simpy():
    world = World(load_scenario("small"), seed=1)
    assert isinstance(world.env, simpy.Environment)
    assert world.env.now == 0 and world.now == 0.0
    world.run_until(3.5)
    assert world.env.now == 3.5
    assert len(world.daily_rx) == 3, "days 0-2 ended at 23:00; day 3 has not"
    world.run_until(2.0)  # never runs backwards
    assert world.env.now == 3.5
    world.run_until(10)
    assert world.env.now == 10 and len(world.daily_rx) == 10


def test_env_steps_advance_simpy_clock_to_decision_day():
    env = make_env(config={"env": {"decision_interval_days": 3, "horizon_days": 20}})
    env.reset(seed=0)
    assert env.world.env.now == 0
    days = []
    for _ in range(7):
        _, _, terminated, _, info = env.step(plays())
        assert env.world.env.now == info["day"]
        days.append(info["day"])
    assert days == [3, 6, 9, 12, 15, 18, 20] and terminated
