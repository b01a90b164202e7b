"""The batched world: territory i of a batch is, bit for bit, the territory a batch of one seeded alike would be.

A batch keeps its territories' arrays as rows of its own (``oce_sim.world.rows``) and runs each hot phase of the day
as one compiled call over all of them (``oce_sim.world.simulation.Territories``); these tests pin that nothing leaks
between territories and that nothing a territory does alone is lost in a batch: copies, copies of copies, wrapped
territories (calibration's shadow customers), rows that stay bound after a whole episode.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from oce_sim.config import builtin_scenarios, load_scenario
from oce_sim.world.response import CustomerState
from oce_sim.world.simulation import FIELD_ROWS, STATE_ROWS, VIEW_ROWS, Territories, World

SHORT = {"env": {"horizon_days": 63, "record_events": True}, "population": {"n_hcps": 150}}


def play(worlds: list[World], days: int, seed: int = 0) -> None:
    """Random plays every week, the same for every world (the worlds step in lockstep)."""
    rng = np.random.default_rng(seed)
    for day in range(7, days + 1, 7):
        plays = rng.integers(0, 8, size=9)
        for world in worlds:
            world.apply_plays(plays)
        for world in worlds:
            world.run_until(day)


def fingerprint(world: World) -> tuple:
    """What a territory has done: its event log, daily Rx, ledger and customers."""
    return (world.event_digest(), tuple(world.daily_rx), repr(sorted((k, str(v)) for k, v in vars(world.ledger).items()
                                                                      if not k.startswith("_"))),
            world.state.goodwill.tobytes(), world.state.adoption.tobytes(), world.view.published_rx.tobytes())


@pytest.mark.parametrize("scenario", ["small", "default"])
@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_territory_i_of_a_batch_is_a_batch_of_one(scenario, stage):
    config = load_scenario(scenario, stage=stage, overrides=SHORT)
    seeds = [11, 12, 13]
    alone = [World(config, seed=s) for s in seeds]
    together = [World(config, seed=s) for s in seeds]
    batch = Territories.join(together)
    assert all(world.batch is batch for world in together)
    play(alone, 63)
    play(together, 63)
    for a, b in zip(alone, together):
        assert fingerprint(a) == fingerprint(b)
    assert fingerprint(together[0]) != fingerprint(together[1])  # the territories do differ


def test_rows_stay_bound_for_a_whole_episode():
    """After an episode (reviews, oracle-view syncs, queue growth, replaced suggestion queues) every territory's
    arrays are still the rows of its batch: nothing was replaced behind the batch's back."""
    config = load_scenario("small", stage=3, overrides=SHORT)
    worlds = [World(config, seed=s) for s in (1, 2)]
    Territories.join(worlds)
    worlds[1].use_oracle_view(True)
    play(worlds, 63)
    territories = worlds[0].batch.territories
    groups = [(territories.state, [w.state for w in worlds], STATE_ROWS),
              (territories._field, [w.field for w in worlds], FIELD_ROWS),
              (territories._view, [w.view for w in worlds], VIEW_ROWS)]
    for parents, objects, names in groups:
        assert parents is not None
        for name in names:
            for t, obj in enumerate(objects):
                assert np.shares_memory(getattr(obj, name), parents[name][t]), name


def test_replacing_a_bound_array_writes_into_the_row():
    config = load_scenario("small", overrides=SHORT)
    worlds = [World(config, seed=s) for s in (1, 2)]
    Territories.join(worlds)
    state: CustomerState = worlds[0].state
    parent = worlds[0].batch.territories.state["account_access"]
    state.account_access = np.zeros_like(state.account_access)
    assert np.shares_memory(state.account_access, parent) and not parent[0].any()
    with pytest.raises(ValueError, match="row of its batch"):
        state.goodwill = np.zeros(3)


def test_copies_joined_in_a_batch_continue_as_alone():
    """The rollout oracle's pattern: copies of a mid-episode world (a copy of a copy included, before it ever ran)
    joined in one batch continue exactly as a copy alone does."""
    config = load_scenario("small", stage=3, overrides=SHORT)
    world = World(config, seed=4)
    play([world], 35)
    world.run_until(37.3)  # mid-day: processes wait in every phase
    alone = copy.deepcopy(world)
    copies = [copy.deepcopy(copy.deepcopy(world)) for _ in range(3)]
    first = copies[0].batch
    Territories.join(copies, now=first.now, wakes=first.wakes())
    play([alone], 63, seed=1)
    play(copies, 63, seed=1)
    for other in copies:
        assert fingerprint(other) == fingerprint(alone)


def test_a_wrapped_territory_goes_through_its_own_methods_in_a_batch():
    """A measurement harness wraps one territory's ResponseModel methods (calibration's shadow customers): that
    territory calls them, the others stay on the batch's kernels, and all results are those of plain runs."""
    config = load_scenario("small", stage=2, overrides=SHORT)
    plain = [World(config, seed=s) for s in (5, 6)]
    wrapped = [World(config, seed=s) for s in (5, 6)]
    Territories.join(wrapped)
    calls = []
    response = wrapped[1].response
    original_apply, original_advance = response.apply_touches, response.advance_day

    def apply_touches(*args, **kwargs):
        calls.append("apply")
        return original_apply(*args, **kwargs)

    def advance_day(*args, **kwargs):
        calls.append("advance")
        return original_advance(*args, **kwargs)

    response.apply_touches, response.advance_day = apply_touches, advance_day
    play(plain, 63)
    play(wrapped, 63)
    assert calls.count("advance") == 63 and calls.count("apply") == 63
    for a, b in zip(plain, wrapped):
        assert fingerprint(a) == fingerprint(b)


def test_a_batch_refuses_territories_of_different_calendars():
    small = World(load_scenario("small", stage=0, overrides=SHORT), seed=1)
    other = World(load_scenario("small", stage=3, overrides=SHORT), seed=1)  # marketing runs no calendar at 3
    with pytest.raises(ValueError, match="one configuration"):
        Territories.join([small, other])


@pytest.mark.slow
@pytest.mark.parametrize("name", builtin_scenarios())
def test_every_built_in_scenario_batches_bit_for_bit(name):
    """Every built-in scenario at its own stage: two territories of a batch are the batches of one seeded alike."""
    config = load_scenario(name, overrides={"env": {"horizon_days": 91, "record_events": True}})
    alone = [World(config, seed=s) for s in (21, 22)]
    together = [World(config, seed=s) for s in (21, 22)]
    Territories.join(together)
    play(alone, 91)
    play(together, 91)
    for a, b in zip(alone, together):
        assert fingerprint(a) == fingerprint(b)


@pytest.mark.parametrize("scenario", ["small", "default"])
def test_the_batchs_customer_priorities_are_each_territorys_own(scenario):
    """The customer priority (what a sales-3 rep ranks her own picks by, and the executor its customers) is one
    compiled call for all territories: bit for bit the NumPy expression it replaced (class volume x access, plus a
    mapped KOL's share of the volume he sways, times the tested rank weight), each territory's own, with the oracle's
    view on its own territory."""
    config = load_scenario(scenario, stage=3, overrides=SHORT)
    worlds = [World(config, seed=s) for s in (21, 22, 23)]
    batch = Territories.join(worlds)
    play(worlds, 35)
    out = np.empty((3, worlds[0].pop.n_hcps))
    batch.territories._customer_priorities(out)
    for t, world in enumerate(worlds):
        pop = world.pop
        value = pop.class_rx_per_day * world.response.access_factor[world.state.account_access[pop.account]]
        assert pop.kol_edge_kol.size
        swayed = np.bincount(pop.kol_edge_kol, weights=value[pop.kol_edge_follower], minlength=pop.n_hcps)
        value = value + 0.1 * swayed
        if world.testing_efficacy:
            value = value * world.tested_rank_weight()
        assert out[t].tobytes() == value.tobytes() == world.customer_priority().tobytes()
    assert not np.array_equal(out[0], out[2])
    worlds[1].use_oracle_view(True)
    batch.territories._customer_priorities(out)
    assert out[1].tobytes() == worlds[1].customer_priority().tobytes()


def test_a_publication_reads_the_batchs_own_day_without_joining_the_records(monkeypatch):
    """The end of the day keeps its flat touch columns and Rx rows; the publication of that day reads them instead of
    joining the territories' records again (the join is only for records made elsewhere: a copy's)."""
    from oce_sim.world import simulation

    config = load_scenario("small", stage=2, overrides=SHORT)
    worlds = [World(config, seed=s) for s in (31, 32)]
    batch = Territories.join(worlds)

    def refuse(arrays):
        raise AssertionError("the records of the batch's own day were joined again")

    monkeypatch.setattr(simulation, "joined", refuse)
    play(worlds, 28)
    published = worlds[0].view.published_through_day
    assert published >= 7
    assert len(batch.territories._days) <= 28 - published  # only the days not yet published are kept


def test_a_days_need_reports_are_each_territorys_own():
    """The needs recorded at the end of a day (reps' answers and notes, portal visitors whose need the view does not
    know) are one compiled call for all territories; each territory's are the single-territory kernel's on its own
    notes and touches, recorded with its own pipeline stream's noise."""
    from oce_sim.world import kernels
    from oce_sim.world.response import WEBSITE

    config = load_scenario("small", stage=2, overrides=SHORT)
    worlds = [World(config, seed=s) for s in (41, 42)]
    Territories.join(worlds)
    play(worlds, 21)
    records = [world.event_log[-1] for world in worlds]
    assert any(record.need_hcp.size for record in records)
    for world, record in zip(worlds, records):
        touches = record.touches
        assert np.all(np.diff(record.need_hcp) > 0)  # sorted, unique
        portal = np.isin(record.need_hcp, touches.hcp[touches.channel == WEBSITE])
        assert portal.any() or record.need_hcp.size == 0
        shares = record.need_values
        assert np.allclose(shares.sum(axis=1), 1.0) and np.all(shares > 0)
    # the rows kernel is the single-territory kernel on each territory's rows
    need_known = np.zeros((2, worlds[0].pop.n_hcps), dtype=bool)
    need_known[1, :10] = True
    hcp = np.array([3, 5, 1, 12, 12, 4, 40])
    channel = np.array([WEBSITE, 0, WEBSITE, WEBSITE, WEBSITE, WEBSITE, WEBSITE])
    flat, offsets = kernels.need_reports_rows(np.array([7, 2]), np.array([0, 1, 2]), hcp, channel,
                                              np.array([0, 3, 7]), WEBSITE, True, need_known)
    alone = [kernels.new_need_reports(np.array([7]), hcp[:3], channel[:3], WEBSITE, True, need_known[0], 150),
             kernels.new_need_reports(np.array([2]), hcp[3:], channel[3:], WEBSITE, True, need_known[1], 150)]
    assert flat.tolist() == [1, 3, 7, 2, 12, 40] == np.concatenate(alone).tolist() and offsets.tolist() == [0, 3, 6]


def test_a_block_drawn_from_outside_the_batch_is_seen_by_it():
    """``World.exogenous_uniforms`` called on a territory of a batch (a measurement harness does) redraws its block
    in the batch's rows: the batch checks every territory again at its next day instead of trusting the block it
    drew last, so the territory stays as it would be alone."""
    import numpy as np

    from oce_sim.envs.vector import TerritoryVectorEnv

    def play(poke: bool) -> list[np.ndarray]:
        vec = TerritoryVectorEnv(2, scenario="small", stage=3)
        vec.reset(seed=3)
        rng = np.random.default_rng(0)
        out = []
        for step in range(10):
            if poke and step == 5:  # day 35: block 1; redraw block 0 of one stream into the rows
                vec.envs[0].world.exogenous_uniforms("rx", 0)
            mask = vec.action_masks().reshape(2, 9, 8)
            out.append(vec.step(np.argmax(rng.random(mask.shape) * mask, axis=2))[1])
        vec.close()
        return out

    for a, b in zip(play(False), play(True)):
        assert np.array_equal(a, b)
