"""The maturity matrix declared once (oce_sim/stages.py), and paired tests that each new level's mechanism moves
outcomes in the direction the white paper describes (95% paired CI excludes zero)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from oce_sim import stages
from oce_sim.agents import make_strategy
from oce_sim.config import ENTITIES, PipelineConfig, StageConfig
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.evaluation import play_episode
from oce_sim.world.response import ORIGIN_ORCHESTRATOR, REP_VISIT

MARKET = {"population": {"n_hcps": 300, "n_reps": 2}, "env": {"horizon_days": 182}}
SEEDS = range(6)


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
    re-sequences marketing's emails onto her message."""
    base = {"customer": 2, "sales": 2, "marketing": 1, "it": 2}
    pairs = [(episode({**base, "sales": 3}, "involvement", s)[1], episode(base, "involvement", s)[1]) for s in SEEDS]
    remote = [high["cost_remote_detail_usd"] - low["cost_remote_detail_usd"] for high, low in pairs]
    assert paired_ci(remote)[1] < 0, remote
    confusion = [high["confusion_events"] - low["confusion_events"] for high, low in pairs]
    assert np.mean(confusion) <= 0.5, confusion


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


@pytest.mark.parametrize("entity,level", [("customer", 2), ("marketing", 2), ("sales", 3)])
def test_levels_that_used_to_do_nothing_now_differ_from_the_level_below(entity, level):
    base = StageConfig.uniform(level - 1).model_dump()
    strategy = "involvement" if level - 1 >= 2 else "insight"
    _, low = episode(base, strategy, 0)
    _, high = episode({**base, entity: level}, strategy, 0)
    assert low != high


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
            - uplift_error(episode(IT3, "intervention", s, learning)[0].world) for s in SEEDS]
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
