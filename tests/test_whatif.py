"""The strategist's workbench: an organisation composed per entity, today against a move, what-if sweeps and
scenarios that extend others.

Episodes are short (``small`` cut to 8 weekly decisions, 1-2 episodes) so the module runs in about half a minute.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from oce_sim.agents import STAGE_STRATEGIES, make_strategy
from oce_sim.agents.organisation import Organisation, parse_move
from oce_sim.cli import app
from oce_sim.config import ScenarioError, StageConfig, load_scenario
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.studies.evaluation import play_episode, run_episode, strategy_config
from oce_sim.studies.whatif import BASELINE, apply_settings, parse_setting, plan_variants
from oce_sim.world import dispatch

from test_cli import assert_clean_exit

MIXED = {"customer": 1, "sales": 2, "marketing": 1, "it": 0}
SHORT = {"env": {"horizon_days": 56}}


def short_small() -> object:
    return load_scenario("small", overrides=SHORT)


@pytest.fixture
def cli():
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def short_file(tmp_path: Path) -> Path:
    """``small`` cut to 8 weeks, by extending it."""
    path = tmp_path / "short.yaml"
    path.write_text("extends: small\nenv: {horizon_days: 56}\n")
    return path


# ------------------------------------------------------------------------------------------- organisation


def test_uniform_organisation_plays_exactly_the_stage_heuristic():
    base = short_small()
    for stage, name in enumerate(STAGE_STRATEGIES):
        reference, composed = make_strategy(name), Organisation(stage)
        config = strategy_config(base, composed)
        assert config.stage == StageConfig.uniform(stage)
        env = TerritoryEnv(scenario=config)
        obs, _ = env.reset(seed=3)
        reference.reset(env, 3)
        composed.reset(env, 3)
        done = False
        while not done:
            mask = env.action_masks()
            expected, _ = reference.predict(obs, action_masks=mask)
            actual, _ = composed.predict(obs, action_masks=mask)
            np.testing.assert_array_equal(actual, expected, err_msg=name)
            obs, _, terminated, truncated, _ = env.step(expected)
            done = terminated or truncated
        env.close()


def test_a_mixed_stage_runs_and_differs_from_both_neighbours():
    base = short_small()
    kpis = {}
    for label, stage in (("mixed", MIXED), ("insight", 1), ("involvement", 2)):
        policy = Organisation(stage)
        kpis[label] = run_episode(policy, strategy_config(base, policy), seed=4).kpis
    assert kpis["mixed"] != kpis["insight"] and kpis["mixed"] != kpis["involvement"]
    assert kpis["mixed"]["questions_answered"] > 0 == kpis["insight"]["questions_answered"], "sales 2 asks"
    # IT stage 0: the view sees the rep's calls only, so its pipeline differs from involvement's
    assert kpis["mixed"]["profit_usd"] != kpis["involvement"]["profit_usd"]


def test_marketing_plays_follow_the_marketing_stage_alone():
    policy = Organisation({"customer": 0, "sales": 0, "marketing": 3, "it": 0})
    config = strategy_config(short_small(), policy)
    env = TerritoryEnv(scenario=config)
    obs, _ = env.reset(seed=1)
    policy.reset(env, 1)
    played: set[int] = set()
    for _ in range(4):
        action, _ = policy.predict(obs, action_masks=env.action_masks())
        played |= set(int(a) for a in action)
        obs, *_ = env.step(action)
    env.close()
    assert played & {dispatch.EMAIL_PLAY, dispatch.REP_PLUS_EMAIL, dispatch.WEBINAR_PLAY}, played
    assert dispatch.REP_ASK not in played, "sales 0 asks no questions"


def test_field_intensity_scales_the_visits_the_plan_books():
    """The suggestions the reps work (accept or dismiss) scale with the intensity; total visits need not, because
    below sales 3 a rep pads her day to quota with her own picks whatever the plan books."""
    base = load_scenario("small", overrides={**SHORT, "population": {"n_reps": 2}})  # spare capacity to book
    booked = {}
    for intensity in (0.5, 1.0, 2.0):
        policy = Organisation(1, field_intensity=intensity)
        env = TerritoryEnv(scenario=strategy_config(base, policy))
        play_episode(env, policy, 2)
        ledger = env.world.ledger
        booked[intensity] = ledger.suggestions_accepted + ledger.suggestions_dismissed
    assert booked[0.5] < booked[1.0] < booked[2.0], booked
    with pytest.raises(ValueError, match="field_intensity"):
        Organisation(1, field_intensity=-1)


def test_moves_change_only_what_they_name():
    today = StageConfig.model_validate(MIXED)
    assert parse_move("sales=3", today) == StageConfig(customer=1, sales=3, marketing=1, it=0)
    assert parse_move("stage=intervention", today) == StageConfig.uniform(3)
    assert parse_move("sales=3, it=2", today).it == 2
    for bad in ("sales", "finance=2", "sales=4", "it=x"):
        with pytest.raises(ValueError, match="move"):
            parse_move(bad, today)


# ------------------------------------------------------------------------------------------ today in compare


def test_compare_runs_today_at_the_scenarios_own_stage_against_moves(cli, tmp_path):
    scenario = tmp_path / "mixed.yaml"
    scenario.write_text("extends: small\nstage: {customer: 1, sales: 2, marketing: 1, it: 0}\n"
                        "env: {horizon_days: 56}\n")
    out = tmp_path / "compare"
    assert_clean_exit(cli("compare", scenario, "--episodes", "1", "--best-plan", "0", "--strategies", "instruction", "--move", "sales=3",
                          "--out", out, "--no-progress"), 0, "difference to today", "sales=3")
    results = pd.read_csv(out / "results.csv")
    stages = results.groupby("strategy").stage.first().to_dict()
    assert stages == {"today": "c1s2m1i0", "sales=3": "c1s3m1i0", "instruction": "0-instruction"}
    assert json.loads((out / "summary.json").read_text())["baseline"] == "today"


def test_a_model_run_at_another_stage_or_on_another_scenario_is_labelled_so(capsys):
    from pathlib import Path

    from oce_sim.agents import TrainedModel
    from oce_sim.cli.candidates import _run_label

    small, default = load_scenario("small"), load_scenario("default")
    model = object.__new__(TrainedModel)  # the label needs no weights
    model.name, model.stage, model.path, model.meta = "rl_maskable-ppo", 1, Path("m.safetensors"), {"scenario": "small"}
    assert _run_label(model, 3, small) == "rl_maskable-ppo (trained at 1, run at 3)"
    assert _run_label(model, 1, small) == _run_label(model, None, small) == "rl_maskable-ppo"
    assert "trained on" not in capsys.readouterr().err
    assert _run_label(model, 3, default) == "rl_maskable-ppo (trained on small; trained at 1, run at 3)"
    assert _run_label(model, None, default) == "rl_maskable-ppo (trained on small)"
    model.meta = {"scenario": "small", "reward": "expected"}  # a privileged reward says so; observed does not
    assert _run_label(model, None, small) == "rl_maskable-ppo (privileged reward)"
    model.meta = {"scenario": "small", "reward": "observed"}
    assert _run_label(model, None, small) == "rl_maskable-ppo"
    assert "was trained on scenario 'small'; it is evaluated on 'default'" in " ".join(capsys.readouterr().err.split())
    model.meta = {"scenario": "converted"}  # an SB3 zip converted without its scenario
    assert _run_label(model, None, default) == "rl_maskable-ppo"


def test_run_defaults_to_today(cli, tmp_path, short_file):
    out = tmp_path / "run"
    assert_clean_exit(cli("run", short_file, "--episodes", "1", "--out", out, "--no-progress"), 0)
    results = pd.read_csv(out / "results.csv")
    assert set(results.strategy) == {"today"} and set(results.stage) == {"1-insight"}


# ------------------------------------------------------------------------------------------------ what-if

BAD_SETTINGS = {
    "unknown key": (["--set", "population.n_rep=2"], "population.n_rep: unknown key"),
    "out of range": (["--set", "population.email_opt_in=1.5"], "population.email_opt_in"),
    "wrong type": (["--set", "population.n_reps=two"], "population.n_reps"),
    "bad stage": (["--set", "stage.it=7"], "stage.it"),
    "bad YAML": (["--set", "population.n_reps=[1"], "population.n_reps: not a YAML value"),
    "no value": (["--set", "population.n_reps"], "expected path=value"),
    "bad grid value": (["--grid", "population.n_reps=1,-2"], "population.n_reps"),
    "tornado needs two": (["--tornado", "population.n_reps=1"], "--tornado population.n_reps: give a low"),
    "nothing to do": ([], "nothing to compare"),
    "unknown policy key": (["--set", "policy.nope=1"], "policy.nope: unknown key; allowed: policy.field_intensity"),
    "intensity out of range": (["--set", "policy.field_intensity=9"], "policy.field_intensity: must be a number"),
    "intensity of a named strategy": (["--set", "policy.field_intensity=2", "--strategy", "intervention"],
                                      "policy.* settings set the organisation of --strategy today"),
    "bad move as strategy": (["--set", "population.n_reps=2", "--strategy", "sales=9"], "sales must be 0-3"),
    "unknown strategy": (["--set", "population.n_reps=2", "--strategy", "nope"], "--strategy must be today"),
    # issue 25: bounds before work, every path named, the option given named
    "grid axis twice": (["--grid", "population.n_reps=1,2", "--grid", "population.n_reps=3"],
                        "population.n_reps: given to --grid twice"),
    "set and grid on one path": (["--set", "population.n_reps=1", "--grid", "population.n_reps=2,3"],
                                 "population.n_reps: given to --set and to --grid"),
    "set and tornado on one path": (["--set", "stage.it=1", "--tornado", "stage.it=0,3"],
                                    "stage.it: given to --set and to --tornado"),
    "set below a grid block": (["--set", "stage.it=3", "--grid", "stage=0,1"],
                               "stage.it: given to --set, but --grid stage replaces all of stage"),
    "set below the frontier": (["--set", "stage.it=3", "--frontier"], "but --frontier stage replaces"),
    "grid YAML error names --grid": (["--grid", "population.n_reps=[1"], "--grid population.n_reps: not a YAML"),
    "grid value error names --grid": (["--grid", "population.email_opt_in=0.5,1.5"], "invalid --grid"),
    "tornado value error names --tornado": (["--tornado", "policy.field_intensity=1,9"], "invalid --tornado"),
    "a path under a value": (["--set", "population.n_reps.x=1"], "population.n_reps is a value, not a block"),
    "unknown mapping key": (["--set", "response.channel_effect.emali=1"], "unknown key; allowed: rep_visit"),
    "money that overflows": (["--set", "economics.price_per_rx_usd=1e308"],
                             "economics.price_per_rx_usd: must be at most 1,000,000,000,000 USD"),
    "more workers than the machine": (["--set", "population.n_reps=2", "--workers", "256"],
                                      "--workers must be between 0 (one per usable CPU) and"),
    "negative workers": (["--set", "population.n_reps=2", "--workers", "-1"], "--workers must be between 0"),
}


@pytest.mark.parametrize("args, message", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_bad_settings_exit_2_naming_the_path_before_any_work(cli, tmp_path, args, message):
    out = tmp_path / "out"
    assert_clean_exit(cli("whatif", "small", *args, "--best-plan", "0", "--out", out, "--no-progress"), 2, "error:",
                      message)
    assert not out.exists()


ONES = ",".join(["1"] * 1000)  # 1,000 values within the 2,000 characters a value may have
HUGE_PLANS = {
    # before: 68 s, then a MemoryError traceback
    "3 axes x 1,000 values": (["--grid", f"population.n_reps={ONES}", "--grid", f"population.n_hcps={ONES}", "--grid",
                               f"channels.webinar.seats={ONES}"], ("more than 256 variants", "1000 x 1000 x 1000")),
    # before: refused after 22 s
    "2 axes x 1,000 values": (["--grid", f"population.n_reps={ONES}", "--grid", f"population.n_hcps={ONES}"],
                              ("more than 256 variants",)),
    # before: no answer in 60 s, no path named
    "32 axes on unknown paths": ([a for i in range(32) for a in ("--grid", f"population.nope{i}=1,2")],
                                 ("population.nope0: unknown key; allowed: access", "population.nope19: unknown key",
                                  "... and 12 more problems")),
}


@pytest.mark.parametrize("args, fragments", HUGE_PLANS.values(), ids=HUGE_PLANS.keys())
def test_huge_or_unknown_plans_are_refused_from_their_sizes_at_once(cli, tmp_path, args, fragments):
    out = tmp_path / "out"
    started = time.perf_counter()
    flat = assert_clean_exit(cli("whatif", "small", *args, "--best-plan", "0", "--out", out, "--no-progress"), 2,
                             "error:", *fragments)
    assert time.perf_counter() - started < 5.0  # generous: it is a count and a walk of the schema, no variant
    assert len(flat) < 2000 and not out.exists()


def test_the_variant_count_saturates_and_every_value_is_checked_once_on_top_of_the_sets():
    from oce_sim.studies.whatif import MAX_VARIANTS, WhatIfError, parse_axis, path_problem, variant_count

    assert variant_count([1000] * 32, 0, False) == MAX_VARIANTS + 1
    assert variant_count([3, 2], 2, True) == 10 and variant_count([], 1, False) == 2 and variant_count([], 0, True) == 1
    assert path_problem("pipeline.override.latency_days") is None and path_problem("history.stage.it") is None
    assert path_problem("policy.field_intensity") is None and path_problem("response.channel_effect.email") is None
    assert path_problem("stage.nope").startswith("stage.nope: unknown key; allowed: customer, it, marketing, sales")
    base = short_small()
    # valid only with the --set: checked on top of it, as every variant is built
    sets = [parse_setting("population.initial_adopter_share=0")]
    plan = plan_variants(base, sets, grid=[parse_axis("population.initial_aware_share=0.5,0.85")])
    assert [v.config.population.initial_aware_share for v in plan.variants] == [0.5, 0.85]
    with pytest.raises(WhatIfError, match="invalid --grid") as caught:
        plan_variants(base, grid=[parse_axis("population.initial_aware_share=0.5,0.95")])
    assert "initial aware+trialing+adopter shares exceed 1" in " ".join(caught.value.problems)


def test_settings_keep_the_baselines_market_and_take_shorthands():
    base = load_scenario("default")
    halved = apply_settings(base, [parse_setting("population.n_reps=2")])
    assert halved.population.n_reps == 2 and halved.history.n_reps == base.population.n_reps == 4
    pipeline = apply_settings(base, [parse_setting("pipeline.override=3")])
    assert pipeline.pipeline_level() == base.pipeline.levels[3] and pipeline.stage == base.stage
    partial = apply_settings(base, [parse_setting("pipeline.override.latency_days=2")])
    assert partial.pipeline_level() == base.pipeline_level().model_copy(update={"latency_days": 2.0})
    it3 = apply_settings(base, [parse_setting("stage.it=3")])
    assert it3.stage.it == 3 and it3.history_stage == base.stage and it3.pipeline_level() == base.pipeline.levels[3]


def test_a_grid_is_a_full_factorial_with_its_one_factor_ends():
    from oce_sim.studies.whatif import parse_axis

    base = short_small()
    plan = plan_variants(base, grid=[parse_axis("population.n_reps=1,2,3"), parse_axis("stage=0,1")])
    assert len(plan.variants) == 6
    assert plan.tornado["population.n_reps"] == (("n_reps=1,stage=1", "1"), ("n_reps=3,stage=1", "3"))
    assert plan.tornado["stage"] == (("n_reps=1,stage=0", "0"), ("n_reps=1,stage=1", "1"))


def test_grid_variants_share_the_baselines_seeds(cli, tmp_path, short_file):
    out = tmp_path / "whatif"
    flat = assert_clean_exit(cli("whatif", short_file, "--grid", "population.n_reps=1,2", "--episodes", "2", "--best-plan", "0",
                                 "--seed", "5", "--out", out, "--no-progress"), 0, "n_reps=2", "profit_multi_period_usd")
    assert "[" in flat
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == ["variant", "population.n_reps", "strategy", "seed", "metric", "value"]
    assert results.groupby("variant").seed.apply(lambda s: sorted(set(s))).to_dict() == \
        {BASELINE: [5, 6], "n_reps=1": [5, 6], "n_reps=2": [5, 6]}
    wide = results.pivot_table(index=["variant", "seed"], columns="metric", values="value")
    # the variant equal to the baseline reproduces it exactly: same seeds, same market
    pd.testing.assert_frame_equal(wide.loc["n_reps=1"], wide.loc[BASELINE])
    summary = pd.read_csv(out / "summary.csv")
    row = summary[(summary.variant == "n_reps=2") & (summary.metric == "cost_usd")].iloc[0]
    assert row.diff_low <= row.diff_mean <= row.diff_high and row.diff_mean > 0, "a second rep costs money"
    assert {"profit_usd", "profit_multi_period_usd"} <= set(summary.metric)
    assert (out / "tornado.png").stat().st_size > 5_000


@pytest.mark.parametrize("setting", ["stage.it=3", "population.n_reps=0", "population.email_opt_in=0.9"])
def test_the_strategists_three_what_ifs_run_on_small(cli, tmp_path, setting):
    """IT stage 3's pipeline, the field force halved (small has one rep: none), email opt-in 0.6 -> 0.9."""
    out = tmp_path / "whatif"
    assert_clean_exit(cli("whatif", "small", "--set", setting, "--episodes", "2", "--best-plan", "0", "--out", out,
                          "--no-progress"), 0)
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.variant) == {BASELINE, setting.split(".", 1)[1]}
    headline = summary[(summary.variant != BASELINE) & summary.metric.isin(["profit_usd", "profit_multi_period_usd"])]
    assert len(headline) == 2 and (headline.diff_low <= headline.diff_high).all()


def test_a_single_set_has_a_figure_and_states_its_scale(cli, tmp_path, short_file):
    """One --set: no tornado and no frontier, but still the KPI differences with their CIs (issue 24); every
    amount says what it is of, the variant's headcount beside the baseline's."""
    out = tmp_path / "whatif"
    flat = assert_clean_exit(cli("whatif", short_file, "--set", "population.n_reps=2", "--episodes", "2", "--best-plan", "0", "--out", out,
                                 "--no-progress"), 0, "kpi_differences.png", "per territory of each variant's "
                             "population (baseline: 120 customers, 1 rep)")
    assert "tornado.png" not in flat
    assert (out / "kpi_differences.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "![kpi_differences](kpi_differences.png)" in report and "Each variant's difference to the baseline" in report
    assert ("profit (year 1 + tail) per territory (120 customers, 2 reps in the variant; 120 customers, 1 rep in the "
            "baseline) against the baseline") in report


def test_frontier_draws_profit_against_cost_per_stage(cli, tmp_path, short_file):
    out = tmp_path / "frontier"
    assert_clean_exit(cli("whatif", short_file, "--frontier", "--grid", "stage=0,3", "--episodes", "1", "--best-plan", "0",
                          "--out", out, "--no-progress"), 0, "frontier.png")
    assert (out / "frontier.png").stat().st_size > 10_000
    results = pd.read_csv(out / "results.csv")
    assert set(results["population.n_reps"]) == {1, 2} and set(results["stage"].astype(str)) >= {"0", "3"}


# ------------------------------------------------------------------------------------------------ extends


def test_extends_merges_a_partial_block(tmp_path):
    child = tmp_path / "two_reps.yaml"
    child.write_text("extends: specialty_access\npopulation: {n_reps: 2}\nstage: {sales: 3}\n")
    parent, config = load_scenario("specialty_access"), load_scenario(child)
    assert config.name == "two_reps" and config.population.n_reps == 2
    assert config.population.model_copy(update={"n_reps": parent.population.n_reps}) == parent.population
    assert config.economics == parent.economics
    assert config.stage == parent.stage.model_copy(update={"sales": 3})
    nested = tmp_path / "nested.yaml"
    nested.write_text("extends: two_reps.yaml\neconomics: {gross_margin: 0.5}\n")
    assert load_scenario(nested).population.n_reps == 2 and load_scenario(nested).economics.gross_margin == 0.5


@pytest.mark.parametrize("files, message", [
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "extends: cycle a.yaml -> b.yaml -> a.yaml"),
    ({"a.yaml": "extends: a.yaml\n"}, "extends: cycle a.yaml -> a.yaml"),
    ({"a.yaml": "extends: ../outside.yaml\n"}, "leaves the folder"),
    ({"a.yaml": "extends: /etc/passwd\n"}, "leaves the folder"),
    ({"a.yaml": "extends: missing.yaml\n"}, "no such file"),
    ({"a.yaml": "extends: {x: 1}\n"}, "a built-in scenario name or a relative path"),
    ({"a.yaml": 'extends: "a\\0b"\n'}, "not a usable path"),
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "population: {n_reps: -1}\n"}, "population.n_reps"),
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "a: 1\na: 2\n"}, "duplicate key"),
])
def test_extends_refuses_cycles_escapes_and_bad_parents(tmp_path, files, message):
    (tmp_path / "outside.yaml").write_text("name: outside\n")
    folder = tmp_path / "scenarios"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(folder / "a.yaml")
    assert message in str(caught.value)
