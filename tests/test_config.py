"""Scenario configuration: layering, validation errors that name the field path, YAML loading."""

from __future__ import annotations

import pytest
import yaml

import oce_sim.config.loading as config_module
from oce_sim import ScenarioConfig, ScenarioError, load_scenario
from oce_sim.config import STAGE_NAMES, StageConfig, builtin_scenarios, dump_yaml

from oce_sim.envs.territory import TerritoryEnv

from conftest import make_env


def problems_of(**kwargs) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(**kwargs)
    assert isinstance(caught.value, ValueError)
    assert caught.value.problems, "a ScenarioError lists its problems"
    for problem in caught.value.problems:
        assert problem in str(caught.value)
    return caught.value.problems


def problem_for(problems: list[str], path: str) -> str:
    matching = [p for p in problems if p.startswith(f"{path}: ")]
    assert matching, f"no problem names {path!r}: {problems}"
    return matching[0]


# --------------------------------------------------------------------------------------------- unknown keys


def test_unknown_nested_key_names_path_and_allowed_keys():
    problems = problems_of(overrides={"population": {"n_hcp": 100}})
    problem = problem_for(problems, "population.n_hcp")
    assert "unknown key" in problem
    allowed = problem.split("allowed:", 1)[1]
    for key in ("n_hcps", "n_reps", "archetypes", "email_opt_in"):
        assert key in allowed


def test_unknown_deeply_nested_key():
    problems = problems_of(overrides={"channels": {"rep_visit": {"visit_minute": 10}}})
    problem = problem_for(problems, "channels.rep_visit.visit_minute")
    assert "visit_minutes" in problem and "travel_minutes" in problem


def test_unknown_top_level_key():
    problem = problem_for(problems_of(overrides={"populaton": {}}), "populaton")
    assert "population" in problem and "channels" in problem


def test_unknown_key_in_optional_model():
    problems = problems_of(
        overrides={
            "pipeline": {
                "override": {
                    "batch_interval_days": 7,
                    "latency_days": 2,
                    "covered_channels": ["email"],
                    "rx_noise_cv": 0.1,
                    "missing_share": 0.0,
                    "latency_dayz": 3,
                }
            }
        }
    )
    assert len(problems) == 1
    assert "latency_days" in problem_for(problems, "pipeline.override.latency_dayz")


def test_unknown_channel_name_rejected():
    problem = problem_for(problems_of(overrides={"response": {"channel_effect": {"fax": 1.0}}}),
                          "response.channel_effect")
    assert "fax" in problem and "rep_visit" in problem


def test_unknown_key_rejected_by_the_environment():
    with pytest.raises(ScenarioError) as caught:
        make_env(config={"env": {"horizon": 10}})
    assert problem_for(caught.value.problems, "env.horizon")


# ----------------------------------------------------------------------------------------------- bad values


def test_negative_reps_rejected():
    problem = problem_for(problems_of(overrides={"population": {"n_reps": -1}}), "population.n_reps")
    assert "-1" in problem


@pytest.mark.parametrize("share", [-0.1, 0.6, True, "half"])
def test_holdout_share_validated(share):
    problem_for(problems_of(overrides={"pipeline": {"holdout_share": share}}), "pipeline.holdout_share")


@pytest.mark.parametrize("stage", [7, -1, True, "expert"])
def test_bad_uniform_stage_rejected(stage):
    problems = problems_of(stage=stage)
    assert problem_for(problems, "stage")


def test_bad_entity_stage_rejected():
    problem = problem_for(problems_of(stage={"sales": 7}), "stage.sales")
    assert "7" in problem
    assert problem_for(problems_of(stage={"finance": 2}), "stage.finance")


def test_archetype_shares_must_sum_to_one():
    problem = problem_for(
        problems_of(overrides={"population": {"archetypes": {"traditional": 0.9}}}), "population.archetypes"
    )
    assert "sum to 1" in problem


def test_every_problem_is_reported_at_once():
    problems = problems_of(
        overrides={"population": {"n_reps": -1, "n_hcp": 3}, "env": {"horizon_days": 1}}
    )
    for path in ("population.n_reps", "population.n_hcp", "env.horizon_days"):
        assert problem_for(problems, path)


def test_contact_tolerance_range_validated():
    problem = problem_for(
        problems_of(overrides={"population": {"contact_tolerance_per_month": [5.0, 1.0]}}), "population"
    )
    assert "contact_tolerance_per_month" in problem


# ---------------------------------------------------------------------------------------------- stages


def test_uniform_stage_int_and_name():
    for index, name in enumerate(STAGE_NAMES):
        assert load_scenario(stage=index).stage == StageConfig.uniform(index)
        assert load_scenario(stage=name).stage == StageConfig.uniform(index)


def test_per_entity_stage_mapping():
    stage = load_scenario(stage={"customer": 0, "sales": 2, "marketing": 3, "it": 1}).stage
    assert (stage.customer, stage.sales, stage.marketing, stage.it) == (0, 2, 3, 1)
    assert stage.overall == 0
    # A partial mapping keeps the (default) scenario's other entities.
    partial = load_scenario(stage={"marketing": 3}).stage
    assert (partial.customer, partial.sales, partial.marketing, partial.it) == (1, 1, 3, 1)


def test_per_entity_stage_reaches_the_environment():
    env = make_env(stage={"customer": 3, "sales": 2, "marketing": 0, "it": 3})
    obs, _ = env.reset(seed=0)
    assert env.world.stage.marketing == 0 and env.world.stage.sales == 2
    # the last four observation features are the entity stages / 3
    assert obs[-4:].tolist() == pytest.approx([1.0, 2 / 3, 0.0, 1.0])


def test_partial_stage_mapping_keeps_scenario_stage():
    # launch_kol is an intervention-stage (3) scenario; overriding only marketing must keep the rest at 3.
    stage = load_scenario("launch_kol", stage={"marketing": 0}).stage
    assert (stage.customer, stage.sales, stage.marketing, stage.it) == (3, 3, 0, 3)


# --------------------------------------------------------------------------------------------- loading


def test_default_needs_no_file(monkeypatch, tmp_path):
    monkeypatch.setattr(config_module, "repo_scenario_dir", lambda: tmp_path / "missing")
    config = load_scenario(None)
    assert config.model_dump(exclude={"history"}) == ScenarioConfig().model_dump(exclude={"history"})
    assert config.history.stage == config.stage and config.history.n_reps == config.population.n_reps
    assert config.name == "default"
    assert config.stage == StageConfig.uniform(1)
    assert builtin_scenarios() == {"default": None}


def test_default_file_matches_code_defaults():
    assert load_scenario("default") == load_scenario(None)


@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
def test_builtin_scenarios_load(name):
    config = load_scenario(name)
    assert config.name == name.rsplit("/", 1)[-1]
    assert config.population.n_hcps >= 1


def test_small_scenario_values():
    config = load_scenario("small")
    assert (config.population.n_hcps, config.population.n_reps, config.env.horizon_days) == (120, 1, 182)


def test_yaml_file_loading(tmp_path):
    path = tmp_path / "my_territory.yaml"
    path.write_text(
        "stage: {customer: 2, sales: 3, marketing: 1, it: 0}\n"
        "population:\n  n_hcps: 77\n  n_reps: 2\n"
        "channels:\n  email: {cap_per_30_days: 2}\n",
        encoding="utf-8",
    )
    config = load_scenario(path)
    assert config.name == "my_territory"  # file stem when the file has no name
    assert config.population.n_hcps == 77 and config.population.n_reps == 2
    assert config.channels.email.cap_per_30_days == 2
    assert config.stage == StageConfig(customer=2, sales=3, marketing=1, it=0)
    # str paths work, overrides apply last
    assert load_scenario(str(path), overrides={"population": {"n_hcps": 5}}).population.n_hcps == 5
    # the file drives the environment
    env = TerritoryEnv(scenario=str(path), config={"env": {"horizon_days": 14}})
    env.reset(seed=0)
    assert env.world.pop.n_hcps == 77 and env.world.field.n_reps == 2
    assert env.world.stage.sales == 3


def test_dump_yaml_round_trip(tmp_path):
    original = load_scenario("specialty_access", stage={"marketing": 3})
    path = tmp_path / "round_trip.yaml"
    path.write_text(dump_yaml(original), encoding="utf-8")
    assert load_scenario(path) == original


def test_invalid_yaml_text(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("population: {n_hcps: 10\n  n_reps: [1, 2\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert "not valid YAML" in problem_for(caught.value.problems, "(file)")
    assert caught.value.source == str(path)


def test_yaml_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert problem_for(caught.value.problems, "(top level)")


def test_invalid_values_in_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"population": {"n_reps": -1}}), encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert problem_for(caught.value.problems, "population.n_reps")
    assert caught.value.source == str(path)


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "nope.yaml")
    assert "no such file" in caught.value.problems[0]
    with pytest.raises(ScenarioError) as caught:
        load_scenario("no_such_scenario")
    assert "small" in caught.value.problems[0]


def test_config_is_frozen():
    config = load_scenario("small")
    with pytest.raises(Exception):
        config.population.n_hcps = 3  # type: ignore[misc]
