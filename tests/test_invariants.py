"""Property tests: whatever a (masked) policy does, consent, caps, capacity and accounting hold.

The ground truth is reconstructed from ``world.event_log`` (``env.record_events: true``): one ``DayRecord``
per simulated day whose ``touches`` are the delivered touches, in the order they were applied.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oce_sim.config import CHANNELS, ENTITIES, builtin_scenarios, deep_merge
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.world import dispatch
from oce_sim.config import load_scenario
from oce_sim.world.response import EMAIL, REMOTE_DETAIL, REP_VISIT, TouchBatch
from oce_sim.world.simulation import World, is_working_day

from conftest import COST_COMPONENTS, COUNT_KPIS, constant, make_env, masked_random, run_episode

PROPERTY_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

stages = st.one_of(
    st.integers(0, 3),
    st.fixed_dictionaries({entity: st.integers(0, 3) for entity in ENTITIES}),
)
# Tiny tolerances make unsubscribes (and so consent checks) frequent; short days make capacity bind.
tolerances = st.sampled_from([(4.0, 10.0), (0.2, 0.4)])
working_minutes = st.sampled_from([480.0, 150.0])


def record_episode(seed, stage, policy_seed, tolerance=(4.0, 10.0), minutes=480.0, extra=None):
    config = {
        "population": {"n_hcps": 120, "n_reps": 2, "contact_tolerance_per_month": list(tolerance)},
        "channels": {"rep_visit": {"working_minutes_per_day": minutes}},
        "env": {"horizon_days": 70, "record_events": True},
    }
    if extra:
        config = deep_merge(config, extra)
    env = make_env(stage=stage, config=config)
    observations, rewards, infos = run_episode(env, masked_random, seed=seed, policy_seed=policy_seed)
    return env, observations, rewards, infos


# ------------------------------------------------------------------------------------------------ checks


def replay_consent(world):
    """Replay the log: consent per opt-in channel, and (day, hcp, channel) of every opt-in touch delivered
    after that consent was lost (or never given)."""
    consent = {EMAIL: world.pop.email_consent.copy(), REMOTE_DETAIL: world.pop.remote_consent.copy()}
    violations = []
    for record in world.event_log:
        t = record.touches
        for hcp, channel, unsub in zip(t.hcp.tolist(), t.channel.tolist(), t.unsubscribed.tolist()):
            if channel in consent:
                if not consent[channel][hcp]:
                    violations.append((record.day, hcp, channel))
                if unsub:
                    consent[channel][hcp] = False
            else:
                assert not unsub, "only opt-in channels can unsubscribe"
    return consent, violations


def consent_violations(world) -> list[tuple[int, int, int]]:
    consent, violations = replay_consent(world)
    # the replayed consent is the world's consent
    np.testing.assert_array_equal(consent[EMAIL], world.state.email_consent)
    np.testing.assert_array_equal(consent[REMOTE_DETAIL], world.state.remote_consent)
    return violations


def with_touch(record, hcp: int, channel: int):
    """A copy of ``record`` with one more delivered touch appended (for the checker sanity test)."""
    t = record.touches
    extra = {f: np.r_[getattr(t, f), np.zeros(1, dtype=getattr(t, f).dtype)] for f in
             ("theme", "origin", "question", "engaged", "conflict", "out_of_sequence", "unsubscribed", "impact",
              "cost_usd")}
    touches = replace(t, hcp=np.r_[t.hcp, np.int64(hcp)], channel=np.r_[t.channel, np.int8(channel)], **extra)
    return replace(record, touches=touches)


def cap_violations(world) -> list[tuple[int, int, int, int]]:
    """(channel, hcp, day, count) wherever more than the 30-day cap was delivered in a 30-day window."""
    caps = {
        REP_VISIT: world.config.channels.rep_visit.cap_per_30_days,
        REMOTE_DETAIL: world.config.channels.remote_detail.cap_per_30_days,
        EMAIL: world.config.channels.email.cap_per_30_days,
    }
    days: dict[tuple[int, int], list[int]] = defaultdict(list)
    for record in world.event_log:
        t = record.touches
        for hcp, channel in zip(t.hcp.tolist(), t.channel.tolist()):
            if channel in caps:
                days[(channel, hcp)].append(record.day)
    violations = []
    for (channel, hcp), when in days.items():
        when = np.sort(np.asarray(when))
        # deliveries within the 30 days ending at each delivery day (days d-29 .. d)
        in_window = np.searchsorted(when, when, side="right") - np.searchsorted(when, when - 29, side="left")
        worst = int(in_window.max())
        if worst > caps[channel]:
            violations.append((channel, hcp, int(when[in_window.argmax()]), worst))
    return violations


def rep_visits_per_rep_day(world) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for record in world.event_log:
        t = record.touches
        for hcp in t.hcp[t.channel == REP_VISIT].tolist():
            counts[(int(world.pop.rep[hcp]), record.day)] += 1
    return counts


def check_episode(env, observations, rewards, infos):
    world = env.world
    assert world.event_log, "record_events keeps the log"

    # Observations stay inside the space.
    for obs in observations:
        assert env.observation_space.contains(obs), obs
        assert np.all(np.isfinite(obs))

    # Every play was drawn from the mask, so nothing was masked.
    assert all(info["masked_actions"] == 0 for info in infos[1:])

    # Consent: nothing delivered on an opt-in channel after the HCP withdrew (or never gave) consent.
    assert consent_violations(world) == []

    # Caps: no HCP over a channel's 30-day cap in any 30-day window.
    assert cap_violations(world) == []

    # Field capacity: a rep's day holds no more visits than her working minutes allow.
    visit = world.config.channels.rep_visit
    shortest_call = visit.travel_minutes * math.exp(-0.15) + min(visit.visit_minutes, 5.0)
    physical = math.floor(visit.working_minutes_per_day / shortest_call)
    for (rep, day), n in rep_visits_per_rep_day(world).items():
        assert 0 <= rep < world.field.n_reps, "every visit is made by the HCP's own rep"
        assert is_working_day(day), f"rep visit on a weekend (day {day})"
        assert n <= visit.working_minutes_per_day / visit.visit_minutes
        assert n <= world.field.slots
        assert n <= physical, (rep, day, n, physical)

    # Accounting: per-step components add up to the episode KPIs.
    kpis = infos[-1]["kpis"]
    steps = [info["reward_components"] for info in infos[1:]]
    step_costs = sum(sum(parts[c] for c in COST_COMPONENTS) for parts in steps)
    assert step_costs == pytest.approx(kpis["cost_variable_usd"], rel=1e-9, abs=1e-6)
    fixed = sum(parts["field_fixed_cost"] for parts in steps)
    assert fixed == pytest.approx(kpis["cost_fixed_usd"], rel=1e-9, abs=1e-6)
    assert step_costs + fixed == pytest.approx(kpis["cost_usd"], rel=1e-9, abs=1e-6)
    assert sum(parts["revenue"] for parts in steps) == pytest.approx(kpis["revenue_usd"], rel=1e-9, abs=1e-6)
    assert kpis["profit_usd"] == pytest.approx(kpis["gross_margin_usd"] - kpis["cost_usd"], rel=1e-9, abs=1e-6)
    scale = env.reward_scale_usd
    terminal = steps[-1]["terminal_value"] if env.scenario.env.terminal_value else 0.0
    assert terminal == pytest.approx(kpis["value_at_horizon_usd"])
    assert sum(rewards) * scale == pytest.approx(kpis["profit_usd"] + terminal, rel=1e-9, abs=1e-6)
    channel_costs = sum(kpis[f"cost_{name}_usd"] for name in CHANNELS)
    assert channel_costs == pytest.approx(kpis["cost_variable_usd"])
    for parts in steps:
        costs = sum(parts[c] for c in COST_COMPONENTS) + parts["field_fixed_cost"]
        assert parts["profit"] == pytest.approx(parts["gross_margin"] - costs)

    # Counts are never negative, and the log agrees with the ledger.
    for info in infos:
        for key in COUNT_KPIS:
            value = info["kpis"][key]
            assert value >= 0, (key, value)
    for parts in steps:
        assert all(parts[c] >= 0 for c in ("revenue", "field_fixed_cost", *COST_COMPONENTS))
    assert kpis["reach"] <= 1.0 and kpis["engagement_rate"] <= 1.0
    assert kpis["adopters_end"] <= world.pop.n_hcps
    delivered = np.zeros(len(CHANNELS))
    unsubscribes = 0
    for record in world.event_log:
        delivered += np.bincount(record.touches.channel, minlength=len(CHANNELS))
        unsubscribes += int(record.touches.unsubscribed.sum())
        assert np.all(record.rx >= 0)
        assert np.all(record.touches.cost_usd >= 0)
        assert np.all((record.touches.channel >= 0) & (record.touches.channel < len(CHANNELS)))
    for i, name in enumerate(CHANNELS):
        assert kpis[f"touches_{name}"] == delivered[i]
    assert kpis["unsubscribes"] == unsubscribes <= delivered[EMAIL] + delivered[REMOTE_DETAIL]
    assert kpis["prescriptions"] == sum(int(record.rx.sum()) for record in world.event_log)


# ------------------------------------------------------------------------------------------------ properties


@PROPERTY_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), stage=stages, policy_seed=st.integers(0, 2**16), tolerance=tolerances,
       minutes=working_minutes)
def test_invariants_under_random_masked_policies(seed, stage, policy_seed, tolerance, minutes):
    check_episode(*record_episode(seed, stage, policy_seed, tolerance, minutes))


@PROPERTY_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), policy_seed=st.integers(0, 2**16),
       cap=st.integers(1, 3), it=st.integers(0, 1))
def test_invariants_when_caps_and_consent_bind(seed, policy_seed, cap, it):
    """Marketing controlled, slow data and tight caps: the executor tries to over-send and must be stopped."""
    extra = {"channels": {"email": {"cap_per_30_days": cap}, "remote_detail": {"cap_per_30_days": cap}}}
    stage = {"customer": 1, "sales": 2, "marketing": 3, "it": it}
    check_episode(*record_episode(seed, stage, policy_seed, (0.2, 0.4), 480.0, extra))


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=st.sampled_from(sorted(builtin_scenarios())), seed=st.integers(0, 2**32 - 1),
       stage=st.one_of(st.none(), stages), policy_seed=st.integers(0, 2**16))
def test_invariants_on_full_builtin_scenarios(scenario, seed, stage, policy_seed):
    """Full-size built-in territories over their whole horizon (about 0.5 s an episode)."""
    env = TerritoryEnv(scenario=scenario, stage=stage, config={"env": {"record_events": True}})
    check_episode(env, *run_episode(env, masked_random, seed=seed, policy_seed=policy_seed))


# ------------------------------------------------------------------------------------------------ the checks bite


def test_consent_check_is_exercised():
    """A stale view keeps emailing HCPs who unsubscribed: the world blocks them and the replay agrees."""
    config = {
        "population": {"n_hcps": 120, "n_reps": 1, "contact_tolerance_per_month": [0.05, 0.1], "email_opt_in": 1.0},
        "env": {"horizon_days": 84, "record_events": True},
    }
    env = make_env(stage={"customer": 1, "sales": 1, "marketing": 3, "it": 0}, config=config)
    _, _, infos = run_episode(env, constant(dispatch.EMAIL_PLAY), seed=3)
    world = env.world
    assert world.ledger.unsubscribes > 0
    assert world.ledger.blocked_no_consent > 0
    assert consent_violations(world) == []


def test_cap_check_is_exercised():
    """Touches scheduled straight into the world beyond the caps are blocked by the channel systems."""
    config = load_scenario("small", stage=3, overrides={  # stage 3: no marketing calendar of its own
        "population": {"email_opt_in": 1.0},
        "channels": {"rep_visit": {"cap_per_30_days": 1}, "email": {"cap_per_30_days": 2}},
        "env": {"record_events": True},
    })
    world = World(config, seed=3)
    world.field.fills_free_slots = False  # only the scheduled touches: the reps' own picks would mix in
    hcp = np.arange(10)
    for day in (1, 8, 15, 22):  # four of each within 30 days
        for channel in (REP_VISIT, EMAIL):
            world.schedule_touches(TouchBatch(
                hcp=hcp, channel=np.full(hcp.size, channel, dtype=np.int8), theme=np.zeros(hcp.size, dtype=np.int8),
                origin=np.zeros(hcp.size, dtype=np.int8), question=np.zeros(hcp.size, dtype=bool),
                engaged_hint=np.ones(hcp.size, dtype=np.int8), time=np.full(hcp.size, day + 0.5)))
    world.run_until(30)
    delivered = defaultdict(int)
    for record in world.event_log:
        t = record.touches
        for h, c in zip(t.hcp.tolist(), t.channel.tolist()):
            if h < hcp.size and c in (REP_VISIT, EMAIL):
                delivered[c] += 1
    led = world.ledger
    assert delivered[REP_VISIT] == led.delivered[REP_VISIT] == hcp.size  # one visit each, three blocked
    assert hcp.size <= delivered[EMAIL] == led.delivered[EMAIL] <= 2 * hcp.size  # (an unsubscribe blocks too)
    assert led.blocked_cap + led.blocked_no_consent == 8 * hcp.size - delivered[REP_VISIT] - delivered[EMAIL]
    assert led.blocked_cap >= 3 * hcp.size
    assert cap_violations(world) == []


def test_caps_hold_with_tight_caps_in_the_environment():
    config = {
        "population": {"n_hcps": 120, "n_reps": 1, "email_opt_in": 1.0},
        "channels": {"rep_visit": {"cap_per_30_days": 1}, "email": {"cap_per_30_days": 1}},
        "env": {"horizon_days": 84, "record_events": True},
    }
    env = make_env(stage=3, config=config)
    run_episode(env, masked_random, seed=3, policy_seed=1)
    world = env.world
    assert world.ledger.delivered[REP_VISIT] > 0 and world.ledger.delivered[EMAIL] > 0
    assert cap_violations(world) == []


def test_capacity_check_is_exercised():
    """With a full day of suggestions the rep fills her day, but never beyond it."""
    env = make_env(stage=1, config={"env": {"record_events": True}})
    run_episode(env, constant(dispatch.REP_BIWEEKLY), seed=5)
    counts = rep_visits_per_rep_day(env.world)
    assert counts and max(counts.values()) >= 3
    assert max(counts.values()) <= env.world.field.slots


def test_replay_checks_detect_tampered_logs():
    """Sanity check of the checkers themselves: forged deliveries are reported."""
    config = {
        "population": {"n_hcps": 120, "n_reps": 1, "contact_tolerance_per_month": [0.05, 0.1], "email_opt_in": 1.0},
        "env": {"horizon_days": 84, "record_events": True},
    }
    env = make_env(stage={"customer": 1, "sales": 1, "marketing": 3, "it": 0}, config=config)
    run_episode(env, constant(dispatch.EMAIL_PLAY), seed=3)
    world = env.world
    log = world.event_log
    assert replay_consent(world)[1] == [] and cap_violations(world) == []
    # An email to an HCP the day after she unsubscribed.
    i = next(i for i, r in enumerate(log) if (r.touches.unsubscribed & (r.touches.channel == EMAIL)).any())
    t = log[i].touches
    hcp = int(t.hcp[np.flatnonzero(t.unsubscribed & (t.channel == EMAIL))[0]])
    log[i + 1] = with_touch(log[i + 1], hcp, EMAIL)
    assert (log[i + 1].day, hcp, EMAIL) in replay_consent(world)[1]
    # More emails than the cap inside one 30-day window.
    cap = world.config.channels.email.cap_per_30_days
    other = (hcp + 1) % world.pop.n_hcps
    for k in range(cap + 1):
        log[k] = with_touch(log[k], other, EMAIL)
    assert any(v[0] == EMAIL and v[1] == other for v in cap_violations(world))
