"""The maturity matrix declared once (oce_sim/world/stages.py), and paired tests that each new level's mechanism moves
outcomes in the direction the white paper describes (95% paired CI excludes zero)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from oce_sim.world import stages
from oce_sim.agents import make_strategy
from oce_sim.agents.stage_heuristics import Insight
from oce_sim.config import ENTITIES, PipelineConfig, StageConfig
from oce_sim.envs.territory import GLOBAL_FEATURES, SEGMENT_FEATURES, TerritoryEnv
from oce_sim.studies.evaluation import play_episode
from oce_sim.world import dispatch as D
from oce_sim.world.response import ORIGIN_ORCHESTRATOR, ORIGIN_REP_OWN, REP_VISIT

MARKET = {"population": {"n_hcps": 300, "n_reps": 2}, "env": {"horizon_days": 182}}
SEEDS = range(6)
MORE_SEEDS = range(10)  # for effects within a few standard deviations of the seed-to-seed noise


def episode(stage: dict[str, int], strategy: str, seed: int, market: dict = MARKET, events: bool = False):
    config = {**market, "env": {**market["env"], "record_events": events}}
    env = TerritoryEnv(scenario="default", stage=stage, config=config)
    return env, play_episode(env, make_strategy(strategy), seed)["kpis"]


def paired_ci(diff: list[float]) -> tuple[float, float]:
    d = np.asarray(diff, dtype=float)
    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    return d.mean() - half, d.mean() + half


def test_every_cell_of_the_matrix_is_mapped_or_marked():
    assert {(c.entity, c.level) for c in stages.MATRIX} == {(e, lv) for e in ENTITIES for lv in range(4)}
    for cell in stages.MATRIX:
        assert cell.level == 0 or cell.capabilities or cell.not_modelled, (cell.entity, cell.level)
    for cap in stages.CAPABILITIES:
        below = StageConfig(**{**StageConfig.uniform(3).model_dump(), cap.entity: cap.level - 1}) if cap.level else None
        assert stages.has(StageConfig.uniform(3), cap.name)
        assert below is None or not stages.has(below, cap.name), cap.name


def test_the_docs_stage_table_is_generated_from_the_module():
    text = (Path(__file__).resolve().parent.parent / "docs" / "MODEL.md").read_text(encoding="utf-8")
    assert stages.markdown_table() in text


def test_every_stage_s_crm_knows_its_own_calls():
    """At IT stage 0 the view learns of calls a month late, but the CRM records them at once: no suggested visit
    comes sooner than its play's 14-day cadence (below IT 3, 36-44% of instruction's visits used to)."""
    # a full year: reps pad their days with own calls, and a customer called lately gets no suggestion
    year = {**MARKET, "env": {"horizon_days": 364}}
    env, _ = episode({"customer": 0, "sales": 0, "marketing": 0, "it": 0}, "instruction", 0, market=year, events=True)
    hcp, day = [], []
    for record in env.world.event_log:
        t = record.touches
        suggested = (t.channel == REP_VISIT) & (t.origin == ORIGIN_ORCHESTRATOR)
        hcp.append(t.hcp[suggested])
        day.append(np.full(int(suggested.sum()), record.day))
    hcp, day = np.concatenate(hcp), np.concatenate(day)
    order = np.lexsort((day, hcp))
    hcp, day = hcp[order], day[order]
    same = hcp[1:] == hcp[:-1]
    gaps = (day[1:] - day[:-1])[same]
    assert gaps.size > 10  # (repeat suggestions are rarer than calls: own calls keep customers inside cadence)
    assert (gaps >= 14).all(), np.sort(gaps)[:10]


def test_marketing_that_plans_with_field_records_confuses_fewer_customers():
    base = {"customer": 1, "sales": 1, "marketing": 1, "it": 1}
    diff = [episode({**base, "marketing": 2}, "insight", s)[1]["confusion_events"]
            - episode(base, "insight", s)[1]["confusion_events"] for s in SEEDS]
    assert paired_ci(diff)[1] < 0, diff


def test_a_rep_who_intervenes_on_other_channels_stops_redundant_calls_without_more_confusion():
    """Sales stage 3: after her call the rep stops inside sales' pending call to the same customer and
    re-sequences marketing's emails onto her message, with no more confusion: the paired interval of the change in
    confusion events reaches zero (a seed's count moves by about 10 either way; on 16 seeds -0.4 +- 2.2 events, -0.6
    +- 2.9 before access could be lost).  Ten seeds: with access that can close and the monthly-panel
    recalibration, one of the first six costs +140 USD more in remote details (the others -490 to -2,940)."""
    base = {"customer": 2, "sales": 2, "marketing": 1, "it": 2}
    pairs = [(episode({**base, "sales": 3}, "involvement", s)[1], episode(base, "involvement", s)[1]) for s in MORE_SEEDS]
    remote = [high["cost_remote_detail_usd"] - low["cost_remote_detail_usd"] for high, low in pairs]
    assert paired_ci(remote)[1] < 0, remote
    confusion = [high["confusion_events"] - low["confusion_events"] for high, low in pairs]
    assert paired_ci(confusion)[0] <= 0, confusion


def test_mapped_stakeholders_get_the_field_s_attention():
    """Customer stage 2 maps must-win stakeholders: the executor ranks KOLs by the customers they sway, so KOLs
    get more suggested visits."""
    market = {"population": {"n_hcps": 300, "n_reps": 1, "kol_share": 0.05, "kol_followers": 30},
              "env": {"horizon_days": 182}}

    def kol_visits(stage: dict[str, int], seed: int) -> float:
        env, _ = episode(stage, "insight", seed, market, events=True)
        kols = env.world.pop.is_kol
        return float(sum(kols[r.touches.hcp[r.touches.channel == REP_VISIT]].sum() for r in env.world.event_log))

    base = {"customer": 1, "sales": 1, "marketing": 1, "it": 1}
    diff = [kol_visits({**base, "customer": 2}, s) - kol_visits(base, s) for s in SEEDS]
    assert paired_ci(diff)[0] > 0, diff


@pytest.mark.parametrize("entity,level", [(e, lv) for e in ENTITIES for lv in (1, 2, 3)])
def test_levels_that_used_to_do_nothing_now_differ_from_the_level_below(entity, level):
    base = StageConfig.uniform(level - 1).model_dump()
    strategy = "involvement" if level - 1 >= 2 else "insight"
    _, low = episode(base, strategy, 0)
    _, high = episode({**base, entity: level}, strategy, 0)
    assert low != high


# ---------------------------------------------------------------------------------------------------------------
# Each modelled cell's paired test: the organisation with the capability against the same organisation one level
# lower on that entity only, on paired seeds; the 95% paired CI of the mechanism's direct consequence excludes zero
# in the white paper's direction (shared/stage-matrix.md).  Outcome differences are in the messages, not asserted.

def B(customer: int, sales: int, marketing: int, it: int) -> dict[str, int]:
    return {"customer": customer, "sales": sales, "marketing": marketing, "it": it}


def one_level_lower(stage: dict[str, int], entity: str) -> dict[str, int]:
    return {**stage, entity: stage[entity] - 1}


def touch_counts(env, select) -> float:
    """Sum over the event log of ``select(touches)`` (a per-touch array: a mask or a weight)."""
    return float(sum(np.sum(select(r.touches)) for r in env.world.event_log))


def paired(stage: dict[str, int], entity: str, strategy: str, measure, seeds=SEEDS, market: dict = MARKET):
    """Per seed: measure(env, kpis) of ``stage`` minus the same one level lower on ``entity``; with the profit
    (year 1 + tail) difference, for the messages."""
    diff, profit = [], []
    for s in seeds:
        env_hi, hi = episode(stage, strategy, s, market, events=True)
        env_lo, lo = episode(one_level_lower(stage, entity), strategy, s, market, events=True)
        diff.append(measure(env_hi, hi, env_lo) - measure(env_lo, lo, env_hi))
        profit.append(hi["profit_multi_period_usd"] - lo["profit_multi_period_usd"])
    return diff, profit


def report(diff: list[float], profit: list[float]) -> str:
    lo, hi = paired_ci(diff)
    plo, phi = paired_ci(profit)
    return (f"diff {np.mean(diff):.4g} CI [{lo:.4g}, {hi:.4g}] {np.round(diff, 3).tolist()}; "
            f"profit (year 1 + tail) diff {np.mean(profit):.4g} CI [{plo:.4g}, {phi:.4g}]")


def test_customers_who_ask_on_the_portal_are_known_by_their_need():
    """Customer 1 (customer_reveals_need_on_portal): 'they have to ask': a portal visit reveals the visitor's need
    to the view.  Direct consequence: needs known to the view (none at customer 0, where sales 1 records none)."""
    diff, profit = paired(B(1, 1, 1, 1), "customer", "insight",
                          lambda env, kpis, other: float(env.world.view.need_known.sum()))
    assert paired_ci(diff)[0] > 0, report(diff, profit)


def test_customers_who_declare_their_channel_get_fewer_calls_they_did_not_choose():
    """Customer 3 (customers_declare_preferences): a share of customers choose an experience package; the executor
    respects a declared channel other than the rep's (their rep suggestions rank at half priority).  Direct
    consequence: fewer rep visits to the customers who declared another channel (the declarers of the customer-3
    run, counted in both runs of the pair); the declared needs also reach the view."""

    def declared_other(env) -> np.ndarray:
        pref = env.world.view.preferred_channel
        return (pref >= 0) & (pref != REP_VISIT)

    def visits_to_declarers(env, kpis, other) -> float:
        high = env if env.scenario.stage.customer == 3 else other
        chose_other = declared_other(high)
        return touch_counts(env, lambda t: (t.channel == REP_VISIT) & chose_other[t.hcp])

    diff, profit = paired(B(3, 2, 2, 2), "customer", "involvement", visits_to_declarers)
    assert paired_ci(diff)[1] < 0, report(diff, profit)
    needs, _ = paired(B(3, 2, 2, 2), "customer", "involvement",
                      lambda env, kpis, other: float(env.world.view.need_known.sum()), seeds=range(3))
    assert min(needs) > 0, needs


def test_a_rep_with_shared_insight_knows_which_message_comes_next():
    """Sales 1 (rep_uses_shared_insight): the rep's own picks carry the later of her memory and the view's
    progress, so she does not repeat what email and remote detail already delivered.  Direct consequence: her
    belief about each customer's message progress (what her own pick would carry) is closer to the truth at the
    horizon.  (Measured on her belief, not on her calls' impact: coaching, the other sales-1 capability, changes
    whom she calls, which moves impact per call either way.)"""

    def belief_error(env, kpis, other) -> float:
        world = env.world
        belief = world.field.rep_progress
        if stages.has(env.scenario.stage, "rep_uses_shared_insight"):
            belief = np.maximum(belief, world.view.progress)
        return float(np.abs(belief - world.state.progress).mean())

    diff, profit = paired(B(1, 1, 1, 1), "sales", "insight", belief_error)
    assert paired_ci(diff)[1] < 0, report(diff, profit)


def test_a_rep_coached_on_engagement_picks_customers_who_see_her():
    """Sales 1 (rep_coached_on_engagement): coached to drive engagement, not only reach and frequency, the rep's
    own picks go to the customers worth most to call, potential times the chance she meets them, judged from her
    own call record.  It needs no IT, so it shows in an all-instruction organisation (where sales 1 used to play
    exactly as sales 0).  Direct consequence: the share of her own calls that meet the customer."""

    def own_call_met_share(env, kpis, other) -> float:
        own = lambda t: (t.channel == REP_VISIT) & (t.origin == ORIGIN_REP_OWN)  # noqa: E731
        return touch_counts(env, lambda t: own(t) & t.engaged) / touch_counts(env, own)

    diff, profit = paired(B(0, 1, 0, 0), "sales", "instruction", own_call_met_share)
    assert paired_ci(diff)[0] > 0, report(diff, profit)


class _ReadsAcceptance(Insight):
    """Insight's plan, acting on observed suggestion acceptance: while reps dismiss most suggestions, book the
    biweekly segments monthly (a policy that can act on the feature; not a tuned strategy)."""

    def act(self, obs, mask):
        plays = self.rep_plan(obs)
        acceptance = obs.glob["suggestion_acceptance"]
        if 0.0 < acceptance < 0.5:
            plays = np.where(plays == D.REP_BIWEEKLY, D.REP_MONTHLY, plays)
        return plays


def test_the_orchestrator_sees_suggestion_acceptance_from_sales_1_and_can_act_on_it():
    """Sales 1 (acceptance_visible) is information for the agent only: the environment does nothing with it.  What
    it changes is the observation (the suggestion_acceptance feature is blank below sales 1 and the reps' observed
    acceptance from it), and a policy reading the feature plays differently.  No outcome is asserted."""
    index = D.N_SEGMENTS * len(SEGMENT_FEATURES) + GLOBAL_FEATURES.index("suggestion_acceptance")

    def run(stage, seed):
        env = TerritoryEnv(scenario="default", stage=stage, config=MARKET)
        policy = _ReadsAcceptance()
        obs, _ = env.reset(seed=seed)
        policy.reset(env, seed)
        seen, plays, done = [], [], False
        while not done:
            seen.append(float(obs[index]))
            action, _ = policy.predict(obs, action_masks=env.action_masks())
            plays.append(action)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        return np.array(seen), np.array(plays)

    diff, differing = [], []
    for s in SEEDS:
        seen_hi, plays_hi = run(B(1, 1, 1, 1), s)
        seen_lo, plays_lo = run(B(1, 0, 1, 1), s)
        assert (seen_lo == 0).all()
        diff.append(seen_hi.mean() - seen_lo.mean())
        differing.append(int((plays_hi != plays_lo).any(axis=1).sum()))
    assert paired_ci(diff)[0] > 0, diff
    assert min(differing) > 0, differing


def test_reps_who_record_what_they_know_let_the_system_skip_customers_who_do_not_see_reps():
    """Sales 2 (rep_records_knowledge): reps record the needs of customers they know and flag no-see customers when
    they dismiss.  Direct consequences: no-see customers and needs known to the view, and suggestion acceptance
    (the executor stops suggesting customers the rep would dismiss).  The insight strategy does not ask questions,
    so only the recording differs."""
    diff, profit = paired(B(1, 2, 1, 1), "sales", "insight",
                          lambda env, kpis, other: float(env.world.view.no_see.sum()))
    assert paired_ci(diff)[0] > 0, report(diff, profit)
    acceptance, _ = paired(B(1, 2, 1, 1), "sales", "insight", lambda env, kpis, other: kpis["suggestion_acceptance"],
                           seeds=range(3))
    assert min(acceptance) > 0, acceptance


def test_the_system_asks_the_rep_what_it_does_not_know():
    """Sales 2 (system_asks_questions): the rep_visit_ask play prompts the rep with the questions the system cannot
    answer.  Direct consequence, with the involvement strategy (which asks where needs are mostly unknown): needs
    known to the view (asked and answered, on top of those recorded)."""
    diff, profit = paired(B(1, 2, 1, 1), "sales", "involvement",
                          lambda env, kpis, other: kpis["questions_answered"])
    assert paired_ci(diff)[0] > 0, report(diff, profit)
    needs, _ = paired(B(1, 2, 1, 1), "sales", "involvement",
                      lambda env, kpis, other: float(env.world.view.need_known.sum()), seeds=range(3))
    assert min(needs) > 0, needs


def test_a_rep_measured_on_outcome_fills_her_day_by_what_the_orchestrator_knows():
    """Sales 3 (rep_measured_on_outcome): a level adds information or authority and never takes an option away, so
    the rep still works the time the plan leaves free (her day stays as full as at sales 2); measured on outcome,
    not on a quota, she ranks those own picks by the orchestrator's value of each customer (volume x access, KOL
    reach) instead of potential alone.  Direct consequences: as many calls, and own picks worth more."""
    base = B(2, 2, 1, 2)

    def field(env: TerritoryEnv) -> tuple[float, float]:
        world = env.world
        value = world.pop.class_rx_per_day * world.response.access_factor[world.state.account_access[world.pop.account]]
        own = [r.touches.hcp[(r.touches.channel == REP_VISIT) & (r.touches.origin == ORIGIN_REP_OWN)]
               for r in world.event_log]
        return float(world.ledger.delivered[REP_VISIT]), float(value[np.concatenate(own)].mean())

    pairs = [(field(episode({**base, "sales": 3}, "involvement", s, events=True)[0]),
              field(episode(base, "involvement", s, events=True)[0])) for s in SEEDS]
    calls = [high[0] - low[0] for high, low in pairs]
    assert abs(np.mean(calls)) < 0.02 * np.mean([low[0] for _, low in pairs]), calls
    worth = [high[1] - low[1] for high, low in pairs]
    assert paired_ci(worth)[0] > 0, worth


def test_marketing_that_personalises_from_insight_sends_fewer_messages_out_of_sequence():
    """Marketing 1 (marketing_personalises_from_insight): the calendar keeps its dates and targets but picks each
    customer's message from shared insight instead of the theme of the month.  Direct consequence: fewer touches
    whose message jumps ahead of the customer's progress."""
    diff, profit = paired(B(1, 1, 1, 1), "marketing", "insight",
                          lambda env, kpis, other: kpis["out_of_sequence_touches"])
    assert paired_ci(diff)[1] < 0, report(diff, profit)


def test_an_orchestrator_that_controls_marketing_spends_less_on_it_and_keeps_the_sequence():
    """Marketing 3 (orchestrator_controls_marketing): the calendar stops; remote detail, email, webinar invitations
    and rep+email plays are the orchestrator's, ranked with the field's.  Direct consequences, with the intervention
    strategy on both sides: fewer out-of-sequence touches and a lower variable promotion cost.  Confusion events
    rise (the orchestrator's emails meet the reps' own-pick messages): reported, not asserted."""
    pairs = [(episode(B(2, 2, 3, 2), "intervention", s)[1], episode(B(2, 2, 2, 2), "intervention", s)[1])
             for s in SEEDS]
    profit = [hi["profit_multi_period_usd"] - lo["profit_multi_period_usd"] for hi, lo in pairs]
    oos = [hi["out_of_sequence_touches"] - lo["out_of_sequence_touches"] for hi, lo in pairs]
    cost = [hi["cost_variable_usd"] - lo["cost_variable_usd"] for hi, lo in pairs]
    assert paired_ci(oos)[1] < 0, report(oos, profit)
    assert paired_ci(cost)[1] < 0, report(cost, profit)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_each_it_level_shows_the_orchestrator_more_of_what_happened_sooner(level):
    """IT levels are pipeline levels (config.pipeline.levels): 1 integrates every channel weekly, 2 cuts latency
    and loss, 3 is near real time.  Direct consequences at the horizon: the share of delivered touches the view has
    recorded rises, and the view's error on each customer's message progress falls."""
    stage = {**B(1, 1, 1, 1), "it": level}

    def coverage(env, kpis, other) -> float:
        return float(env.world.view.delivered.sum() / env.world.ledger.delivered.sum())

    def progress_error(env, kpis, other) -> float:
        return float(np.abs(env.world.view.progress - env.world.state.progress).mean())

    diff, profit = paired(stage, "it", "insight", coverage)
    assert paired_ci(diff)[0] > 0, report(diff, profit)
    error, profit = paired(stage, "it", "insight", progress_error, seeds=MORE_SEEDS)
    assert paired_ci(error)[1] < 0, report(error, profit)


IT3 = {"customer": 3, "sales": 3, "marketing": 3, "it": 3}
LEARNING = {"holdout_share": 0.1}  # IT stage 3's holdout test, off by default (pipeline.holdout_share 0)


def uplift_error(world) -> float:
    """Mean absolute error of the view's tested uplift against the same test on the true, complete, timely Rx."""
    view_uplift, _, _ = world.view.efficacy.uplift()
    true_uplift, _, tested = world.efficacy_truth.uplift()
    return float(np.abs(view_uplift - true_uplift)[tested].mean())


def test_tested_predictions_are_only_as_good_as_the_data_pipeline():
    """IT stage 3 tests its touches against holdouts and learns the uplift from the Rx its pipeline publishes: with
    the stage-0 pipeline (monthly batches, 21-day latency, more noise and gaps) in its place, the learned uplift is
    further from what the same holdouts show on the true Rx (holdout 0.1; measured +0.010 share points, CI [0.002, 0.018])."""
    learning = {**MARKET, "pipeline": LEARNING}
    slow = {**MARKET, "pipeline": {**LEARNING, "override": PipelineConfig().levels[0].model_dump()}}
    diff = [uplift_error(episode(IT3, "intervention", s, slow)[0].world)
            - uplift_error(episode(IT3, "intervention", s, learning)[0].world) for s in MORE_SEEDS]
    assert paired_ci(diff)[0] > 0, diff


def test_holdout_share_zero_disables_the_test_and_it_is_idle_below_it_3():
    assert PipelineConfig().holdout_share == 0.0  # off by default: it does not pay at one territory's scale
    env, _ = episode(IT3, "intervention", 0, {**MARKET, "pipeline": {"holdout_share": 0.0}})
    assert env.world.view.efficacy is None and env.world.held_out_touches == 0
    env, _ = episode(IT3, "intervention", 0, {**MARKET, "pipeline": LEARNING})
    assert env.world.held_out_touches > 0 and env.world.view.efficacy.uplift()[2].any()
    below = {**IT3, "it": 2}
    _, low = episode(below, "intervention", 0, {**MARKET, "pipeline": {"holdout_share": 0.0}})
    _, high = episode(below, "intervention", 0, {**MARKET, "pipeline": {"holdout_share": 0.3}})
    assert low == high


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: the holdout's cost exceeds what the test learns at one "
                   "territory's scale (multi-period profit -63k USD, 95% CI [-411k, +284k] over seeds 0-5 of the "
                   "default market; -101k [-184k, -17k] over seeds 0-39); strict, so that it tells us when "
                   "learning starts to pay (then make holdout_share's default > 0)")
def test_learning_from_holdouts_pays_for_the_holdout():
    market = {"env": {"horizon_days": 364}}
    diff = [episode(IT3, "intervention", s, {**market, "pipeline": LEARNING})[1]["profit_multi_period_usd"]
            - episode(IT3, "intervention", s, {**market, "pipeline": {"holdout_share": 0.0}})[1]
            ["profit_multi_period_usd"] for s in SEEDS]
    assert paired_ci(diff)[0] > 0, diff
