"""The planner of "the best plan each stage allows" (best@K): its search on known answers, the stationary plan it
returns, and the cache that runs each search once."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oce_sim.agents import StationaryPlan, make_strategy
from oce_sim.agents.base import apply_mask
from oce_sim.agents.stationary import best_budget, plan_text
from oce_sim.config import load_scenario
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.studies import planner
from oce_sim.studies.evaluation import play_episode, strategy_config
from oce_sim.world import dispatch as D

SEEDS = 5
# a separable objective with a known best plan: plan value = sum of the table's entries, plus a per-seed level that
# every plan shares (common random numbers), so that paired differences have no noise
TABLE = np.array([[0, 3, 1], [2, 0, 5], [4, 4.5, 0], [1, 1, 1]], dtype=float)
LEVEL = np.arange(SEEDS) * 100.0


def separable(plan: tuple[int, ...]) -> np.ndarray:
    return LEVEL + sum(TABLE[s, p] for s, p in enumerate(plan))


def test_coordinate_ascent_finds_the_known_best_plan_and_records_its_value() -> None:
    choices = [[0, 1, 2]] * len(TABLE)
    found = planner.coordinate_ascent(separable, {"zeros": (0, 0, 0, 0)}, choices, budget=10_000, cost=SEEDS)
    assert found.plan == (1, 2, 1, 0)  # the ties of row 3 stay where they started: no gain, no change
    assert found.value == pytest.approx(LEVEL.mean() + 3 + 5 + 4.5 + 1)
    assert found.accepted == 3 and found.start == "zeros"
    # the start, pass 1 (4 segments x 2 other plays), pass 2 (which finds every plan of segments 2 and 3 evaluated
    # already: an evaluated plan costs nothing again)
    assert found.episodes == SEEDS * (1 + 8 + 4)
    spent, values = zip(*found.history)
    assert spent == tuple(SEEDS * np.arange(1, 14)) and values[-1] == pytest.approx(found.value)
    assert all(np.diff(values) >= 0)  # the incumbent's value never falls


def test_coordinate_ascent_keeps_a_gain_within_one_standard_error_and_stops_at_the_budget() -> None:
    noise = np.array([1.0, -1.0, 1.0, -1.0])

    def noisy(plan: tuple[int, ...]) -> np.ndarray:  # play 1 gains 0.1 on average, with a paired SE of 0.5
        return 0.1 * plan[0] + noise * plan[0]

    kept = planner.coordinate_ascent(noisy, {"hold": (0,)}, [[0, 1]], budget=100, cost=4)
    assert kept.plan == (0,) and kept.accepted == 0
    # two starts: the better one is ascended first; the budget stops the search after the starts
    found = planner.coordinate_ascent(separable, {"a": (0, 0, 0, 0), "b": (1, 2, 1, 0)}, [[0, 1, 2]] * 4,
                                      budget=3 * SEEDS, cost=SEEDS)
    assert found.plan == (1, 2, 1, 0) and found.start == "b" and found.episodes == 3 * SEEDS
    assert set(found.starts) == {"a", "b"}
    # the first start is evaluated whatever the budget, so that a plan is always found
    assert planner.coordinate_ascent(separable, {"a": (0, 0, 0, 0)}, [[0]] * 4, budget=1, cost=SEEDS).plan == (0,) * 4


def test_a_stationary_plan_plays_its_plan_masked_every_week() -> None:
    plan = [D.REP_PLUS_EMAIL, D.WEBINAR_PLAY, D.REP_ASK, D.REMOTE, D.HOLD, "email", "rep_visit_monthly",
            D.REP_BIWEEKLY, D.REP_PLUS_EMAIL]
    policy = StationaryPlan(plan, stage=0)
    config = strategy_config(load_scenario("small"), policy)
    assert config.stage.sales == 0
    env = TerritoryEnv(scenario=config)
    obs, _ = env.reset(seed=200_000)
    policy.reset(env, 200_000)
    for _ in range(3):
        mask = env.action_masks().reshape(D.N_SEGMENTS, D.N_PLAYS)
        action, _ = policy.predict(obs, action_masks=mask)
        assert np.array_equal(action, apply_mask(policy.plays, mask))
        assert not mask[0, D.REP_PLUS_EMAIL] and action[0] in (D.REP_BIWEEKLY, D.REP_MONTHLY, D.HOLD)  # stage 0
        obs, *_ = env.step(action)
    env.close()
    assert plan_text(policy.plays).startswith("low_non_prescriber=rep_visit_plus_email, low_trialing=webinar_invite")
    with pytest.raises(ValueError, match="9 plays"):
        StationaryPlan([0] * 8)


def test_best_at_k_is_named_in_agents_and_resolved_by_the_planner() -> None:
    assert best_budget("best@40") == 40 and best_budget("best@0") is None and best_budget("best") is None
    with pytest.raises(ValueError, match="oce_sim.studies.planner.make_strategy"):
        make_strategy("best@40")
    assert planner.make_strategy("insight", load_scenario("small")).name == "insight"


def test_best_plan_is_cached_and_a_damaged_entry_is_searched_again(tmp_path, monkeypatch) -> None:
    scenario, seeds, budget = load_scenario("small"), [200_000], 12  # the starts (4 heuristics) and 8 plans
    calls: list[int] = []
    search = planner.search_stage

    def counted(*args, **kwargs):
        calls.append(1)
        return search(*args, **kwargs)

    monkeypatch.setattr(planner, "search_stage", counted)
    policy = planner.make_strategy(f"best@{budget}", scenario, 3, seeds=seeds, cache=tmp_path)
    assert isinstance(policy, StationaryPlan) and policy.name == "best@12" and len(calls) == 1
    (entry,) = tmp_path.glob("*.json")
    first = json.loads(entry.read_text())
    assert first["search"]["episodes"] <= budget and len(first["search"]["plan"]) == D.N_SEGMENTS
    again = planner.best_plan(scenario, 3, budget, seeds, cache=tmp_path)
    assert len(calls) == 1 and again.plan == tuple(policy.plays)  # read back, not searched
    entry.write_text(entry.read_text()[:40])  # damaged (a truncated file)
    planner.best_plan(scenario, 3, budget, seeds, cache=tmp_path)
    second = json.loads(entry.read_text())
    assert second["search"].pop("seconds") > 0 and first["search"].pop("seconds") > 0
    assert len(calls) == 2 and second == first  # searched again, the same result
    planner.best_plan(scenario, 2, budget, seeds, cache=tmp_path)  # another stage: another key
    assert len(calls) == 3 and len(list(tmp_path.glob("*.json"))) == 2
    # the played plan scores as the search said, on the search's seed
    config = strategy_config(scenario, policy)
    env = TerritoryEnv(scenario=config)
    value = play_episode(env, policy, seeds[0])["kpis"]["profit_multi_period_usd"]
    env.close()
    assert value == pytest.approx(again.value)


def test_compare_gives_each_move_twice_with_the_best_plans(tmp_path, monkeypatch):
    """oce-sim compare --best-plan K: today and each move also play their stage's best stationary plan, and each
    move's value is given with the rules of thumb and with the best plans (issue 23, item 1)."""
    import pandas as pd
    from typer.testing import CliRunner

    from oce_sim.cli import app

    monkeypatch.setenv("OCE_SIM_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["compare", "small", "--episodes", "2", "--move", "sales=3", "--best-plan", "12",
                                      "--strategies", "intervention", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    values = pd.read_csv(out / "values_twice.csv")
    assert list(values.planned_by) == ["rules-of-thumb", "best-plan"] * 2
    assert list(values.option) == ["sales=3", "sales=3", "intervention", "intervention"]
    assert list(values.used_for_ranking) == [False, True, False, True]  # ranked by the best plan by default
    results = pd.read_csv(out / "results.csv")
    assert {"today best@12", "sales=3 best@12", "intervention best@12"} <= set(results.strategy)
    # the best plan's value of a move is its best@K column minus today's, seed by seed
    profit = results[results.metric == "profit_multi_period_usd"].pivot_table(index="seed", columns="strategy",
                                                                               values="value")
    best = values[(values.option == "sales=3") & (values.planned_by == "best-plan")].iloc[0]
    assert best["mean"] == pytest.approx((profit["sales=3 best@12"] - profit["today best@12"]).mean())
    report = (out / "report.md").read_text()
    assert "**The ranking uses the best plan each stage allows** (--rank-by best-plan)" in report
    assert "## Each stage and move, twice" in report
    assert json.loads((out / "summary.json").read_text())["rank_by"] == "best-plan"
    assert "ranked by the best plan each stage allows" in " ".join(result.output.split())
    # ranked by the rules of thumb: the verdict names a column without a best plan
    again = CliRunner().invoke(app, ["compare", "small", "--episodes", "2", "--move", "sales=3", "--best-plan", "12",
                                     "--rank-by", "rules-of-thumb", "--strategies", "intervention", "--out",
                                     str(tmp_path / "thumb"), "--no-progress"])
    assert again.exit_code == 0, again.output
    assert "read from cache" in again.output  # the plans searched above
    assert "**The ranking uses today's rules of thumb** (--rank-by rules-of-thumb)" in \
        (tmp_path / "thumb" / "report.md").read_text()
    for args, message in ((["--best-plan", "0", "--rank-by", "best-plan"], "needs the best plans"),
                          (["--rank-by", "heuristics"], "--rank-by must be one of")):
        refused = CliRunner().invoke(app, ["compare", "small", "--episodes", "2", *args, "--out", str(tmp_path / "no")])
        assert refused.exit_code == 2 and message in " ".join(refused.output.split())


def test_best_plan_review_findings(tmp_path, monkeypatch):
    """A spaced --move keeps one spelling; seeds that overlap the search seeds are refused; the cache key follows
    today's stage (a mixed today adds a start); a best-plan column is not read as a move in the report."""
    import pandas as pd
    from typer.testing import CliRunner

    from oce_sim.cli import app
    from oce_sim.config import load_scenario
    from oce_sim.studies.planner import plan_key

    monkeypatch.setenv("OCE_SIM_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["compare", "small", "--episodes", "2", "--move", "sales=3, it=3",
                                      "--best-plan", "8", "--strategies", "no_promotion", "--out", str(out),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(out / "values_twice.csv").option) == {"sales=3,it=3"}
    report = (out / "report.md").read_text()
    assert "best@8 adds" not in report and "The today best@8 strategy" not in report
    overlap = CliRunner().invoke(app, ["compare", "small", "--episodes", "2", "--seed", "200006", "--move", "sales=3",
                                       "--best-plan", "8", "--out", str(tmp_path / "no")])
    assert overlap.exit_code == 2 and "are searched on validation seeds" in " ".join(overlap.output.split())
    assert "--best-plan 0" in " ".join(overlap.output.split())
    one, two = load_scenario("small", stage=1), load_scenario("small", stage={"customer": 1, "sales": 2,
                                                                              "marketing": 1, "it": 1})
    assert plan_key(one, 3, 8, [1, 2]) != plan_key(two, 3, 8, [1, 2])


def test_whatif_gives_each_variant_twice_and_ranks_by_the_chosen_one(tmp_path, monkeypatch):
    """oce-sim whatif: each variant also plays the best plan its stage allows on its own scenario; values_twice.csv
    holds both differences to the baseline and the summary is that of --rank-by's strategy."""
    import pandas as pd
    from typer.testing import CliRunner

    from oce_sim.cli import app

    monkeypatch.setenv("OCE_SIM_CACHE_DIR", str(tmp_path / "cache"))
    runs = {}
    for rank_by in ("best-plan", "rules-of-thumb"):
        out = tmp_path / rank_by
        result = CliRunner().invoke(app, ["whatif", "small", "--set", "population.n_reps=2", "--episodes", "2",
                                          "--best-plan", "12", "--rank-by", rank_by, "--out", str(out),
                                          "--no-progress"])
        assert result.exit_code == 0, result.output
        runs[rank_by] = out
    out = runs["best-plan"]
    values = pd.read_csv(out / "values_twice.csv")
    assert list(values.option) == ["n_reps=2"] * 2 and list(values.used_for_ranking) == [False, True]
    results = pd.read_csv(out / "results.csv")
    assert set(results.strategy) == {"today", "today best@12"}
    profit = results[results.metric == "profit_multi_period_usd"].pivot_table(
        index="seed", columns=["variant", "strategy"], values="value")
    for planned_by, label in (("rules-of-thumb", "today"), ("best-plan", "today best@12")):
        row = values[values.planned_by == planned_by].iloc[0]
        assert row["mean"] == pytest.approx((profit[("n_reps=2", label)] - profit[("baseline", label)]).mean())
    # the summary (tables, tornado, sentences) is the ranked strategy's: its difference is values_twice's
    for rank_by, planned_by in (("best-plan", "best-plan"), ("rules-of-thumb", "rules-of-thumb")):
        summary = pd.read_csv(runs[rank_by] / "summary.csv")
        row = summary[(summary.variant == "n_reps=2") & (summary.metric == "profit_multi_period_usd")].iloc[0]
        assert row.diff_mean == pytest.approx(values[values.planned_by == planned_by].iloc[0]["mean"])
        assert json.loads((runs[rank_by] / "summary.json").read_text())["rank_by"] == rank_by
    assert "## Each variant, twice" in (out / "report.md").read_text()
    refused = CliRunner().invoke(app, ["whatif", "small", "--set", "population.n_reps=2", "--strategy", "intervention",
                                       "--rank-by", "best-plan", "--out", str(tmp_path / "no")])
    assert refused.exit_code == 2 and "needs --strategy today or a move" in " ".join(refused.output.split())


def test_roadmap_values_every_option_twice_and_recommends_by_the_chosen_one(tmp_path, monkeypatch):
    """oce-sim roadmap: every option is appraised with the rules of thumb and with the best plan its stage allows;
    the recommendation is --rank-by's (options.csv, roadmap.csv, the report say which) and values_twice.csv has both."""
    import pandas as pd
    from typer.testing import CliRunner

    from oce_sim.cli import app

    monkeypatch.setenv("OCE_SIM_CACHE_DIR", str(tmp_path / "cache"))
    portfolio = tmp_path / "tiny.yaml"
    portfolio.write_text("name: tiny\nsub_markets:\n  - {name: one, scenario: small, territories: 2, stage: 2}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["roadmap", str(portfolio), "--episodes", "2", "--draws", "20", "--best-plan", "6",
                                      "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    twice = pd.read_csv(out / "values_twice.csv")
    options = pd.read_csv(out / "options.csv")
    assert set(twice.ranked_by) == {"best-plan"} and list(twice.option) == list(options.option)
    assert np.allclose(options.npv_usd, twice.npv_best_plan_usd)  # the ranked NPV is the best plans'
    for name in ("best_plan", "rules_of_thumb"):
        assert set(twice[f"recommended_{name}"]) == {twice.option[twice[f"npv_{name}_usd"].idxmax()]}
    roadmap = pd.read_csv(out / "roadmap.csv")
    assert roadmap["ranked by"].iloc[0] == "the best plan each stage allows"
    assert "**The recommendation ranks by the best plan each stage allows** (--rank-by best-plan)" in \
        (out / "report.md").read_text()
    assert "read from cache" not in result.output  # every option's plan searched once, in this empty cache


def test_the_heuristics_constants_are_searched_from_their_defaults(tmp_path):
    """tune_stage: coordinate ascent over the constants a stage heuristic reads (RULE_GRID), from the defaults; the
    defaults play exactly as the plain heuristic; the result is cached like a plan."""
    from oce_sim.agents.planning import DEFAULT_RULES

    scenario, seeds = load_scenario("small"), [200_000, 200_001]
    assert planner.rules_of(planner.default_rules()) == DEFAULT_RULES
    with pytest.raises(ValueError, match="unknown rule"):
        planner.rules_of({"visits_per_week": 1.0})
    # the defaults, exposed as constants, plan as before: the same episode as the plain heuristic
    config = strategy_config(scenario, make_strategy("involvement"), 2)
    env = TerritoryEnv(scenario=config)
    plain = play_episode(env, make_strategy("involvement"), seeds[0])["kpis"]["profit_multi_period_usd"]
    tuned = play_episode(env, planner.tuned_heuristic(2, planner.default_rules()), seeds[0])["kpis"]
    env.close()
    assert tuned["profit_multi_period_usd"] == plain
    # a lower value of a detail books fewer visits: the constant reaches the plan
    assert planner.rules_of({"rx_per_detail_at_mean_volume": 0.05}).rx_per_detail_at_mean_volume == 0.05
    found = planner.tune_rules(scenario, 2, 30, seeds, cache=tmp_path)
    assert set(found.rules) == set(planner.RULES_READ[2]) == {"rx_per_detail_at_mean_volume", "ask_below_known_share"}
    assert all(value in planner.RULE_GRID[name] for name, value in found.rules.items())
    assert found.episodes <= 30 and found.value >= found.default_value  # the incumbent never falls
    assert [v for _, v in found.history] == sorted(v for _, v in found.history)
    notes: list[str] = []
    again = planner.tune_rules(scenario, 2, 30, seeds, cache=tmp_path, note=notes.append)
    assert again.rules == found.rules and notes and "read from cache" in notes[0]


def test_a_search_in_two_processes_is_the_search_in_one() -> None:
    """``workers`` > 1 evaluates each coordinate's candidates together in other processes (each plan's seeds one
    batch): the same plan, values, history and cost as one process evaluating them one by one."""
    scenario = load_scenario("small", overrides={"env": {"horizon_days": 28}})
    one = planner.search_stage(scenario, 3, 40, seeds=[200_000, 200_001], workers=1)
    two = planner.search_stage(scenario, 3, 40, seeds=[200_000, 200_001], workers=2)
    for found in (one, two):
        found.seconds = 0.0
    assert one == two and one.episodes > 8  # the starts and more


def test_coordinate_ascent_with_candidates_evaluated_together_is_the_same_search() -> None:
    batches: list[int] = []

    def many(plans):
        batches.append(len(plans))
        return [separable(plan) for plan in plans]

    for budget in (10_000, 37 * SEEDS, 5 * SEEDS):
        alone = planner.coordinate_ascent(separable, {"a": (0, 0, 0, 0), "b": (1, 2, 1, 0)}, [[0, 1, 2]] * 4,
                                          budget=budget, cost=SEEDS)
        together = planner.coordinate_ascent(separable, {"a": (0, 0, 0, 0), "b": (1, 2, 1, 0)}, [[0, 1, 2]] * 4,
                                             budget=budget, cost=SEEDS, evaluate_many=many)
        assert alone == together
    assert batches and max(batches) == 2
