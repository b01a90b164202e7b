"""The ``oce-sim`` command line, driven in-process with typer's CliRunner."""

from __future__ import annotations

import json
import pandas as pd
import pytest
from typer.testing import CliRunner

from oce_sim.cli import app
from oce_sim.config import builtin_scenarios
from oce_sim.studies.evaluation import RESULT_COLUMNS

FIGURES = ("kpis_by_strategy.png", "cumulative_profit.png", "channel_mix.png")


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def assert_clean_exit(result, code: int, *fragments: str) -> str:
    """Exit ``code`` by ``typer.Exit`` (no exception escaped), no traceback, each fragment in the output."""
    output = result.output
    assert result.exit_code == code, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    flat = " ".join(output.split())  # rich wraps long lines
    for fragment in fragments:
        assert fragment in flat, f"{fragment!r} not in {flat!r}"
    return flat


def test_help_lists_every_command(cli):
    flat = assert_clean_exit(cli("--help"), 0)
    for command in ("scenarios", "validate", "run", "compare", "train", "bench"):
        assert command in flat


def test_train_help_shows_each_algorithms_defaults():
    from oce_sim.learning.training import ALGO_DEFAULTS
    # wide enough that rich does not wrap; a "[default: ...]" in help text would be eaten as rich markup
    output = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "250"}).output
    factored, other = ALGO_DEFAULTS["factored-ppo"], ALGO_DEFAULTS["maskable-ppo"]
    assert f"(default: {factored['n_envs']} for factored-ppo, {other['n_envs']} otherwise)" in output
    assert "(default: 3e-4 for factored-ppo, 1e-3 otherwise)" in output
    assert (factored["learning_rate"], other["learning_rate"]) == (3e-4, 1e-3)
    assert "(default: one per usable CPU" in output


def test_scenarios_lists_default_and_benchmark_scenarios(cli):
    flat = assert_clean_exit(cli("scenarios"), 0, "default", "small", "benchmark/mature_primary_care")
    for name in builtin_scenarios():
        assert name in flat
    assert sum(name.startswith("benchmark/") for name in builtin_scenarios()) == 4


# ----------------------------------------------------------------------------------------------- validate


def test_validate_accepts_a_good_file(cli, tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("description: mine\nstage: {customer: 1, sales: 2, marketing: 1, it: 0}\n"
                    "population: {n_hcps: 50, n_reps: 1}\n")
    assert_clean_exit(cli("validate", good), 0, "OK", "'mine'")
    assert_clean_exit(cli("validate", "scenarios/small.yaml"), 0, "OK", "'small'")


def test_validate_lists_every_problem_by_field_path(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstage: 7\npopulation: {n_hcps: -5, bogus: 1}\n"
                   "channels:\n  rep_visit: {variable_cost_specialist_usd: abc}\neconomics: {price_per_rx_usd: -1}\n")
    result = cli("validate", bad)
    flat = assert_clean_exit(result, 2, "error: invalid scenario")
    problems = [line.strip()[2:] for line in result.output.splitlines() if line.strip().startswith("- ")]
    paths = [p.split(":")[0] for p in problems]
    assert paths == ["stage", "population.n_hcps", "population.bogus", "channels.rep_visit.variable_cost_specialist_usd",
                     "economics.price_per_rx_usd"]
    assert "unknown key; allowed:" in flat and "n_reps" in flat  # says what is allowed


@pytest.mark.parametrize("text, fragment", [
    ("population: [1, 2\n", "not valid YAML"),
    ("- just\n- a list\n", "must be a mapping"),
    ("", "(file): empty"),
    ("# only a comment\n", "(file): empty"),
])
def test_validate_rejects_malformed_yaml(cli, tmp_path, text, fragment):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert_clean_exit(cli("validate", bad), 2, fragment)


def test_validate_missing_file(cli, tmp_path):
    assert_clean_exit(cli("validate", tmp_path / "nope.yaml"), 2, "no such file")
    assert_clean_exit(cli("validate", tmp_path), 2, "is a folder; give a scenario, portfolio or suite YAML file")


def test_validate_tells_portfolios_and_suites_by_their_keys(cli, tmp_path):
    flat = assert_clean_exit(cli("validate", "scenarios/portfolios/example.yaml"), 0, "OK", "portfolio 'example'",
                             "3 sub-markets", "read as a portfolio from its keys")
    assert "sub_markets" in flat
    assert_clean_exit(cli("validate", "scenarios/benchmark/suites/quick.yaml"), 0, "OK", "suite v1",
                      "4 scenarios x 7 strategies", "read as a suite")
    assert_clean_exit(cli("validate", "scenarios/small.yaml"), 0, "OK", "scenario 'small'")
    # --kind overrides the keys: a portfolio read as a scenario is refused by the scenario schema
    assert_clean_exit(cli("validate", "scenarios/portfolios/example.yaml", "--kind", "scenario"), 2,
                      "invalid scenario", "sub_markets: unknown key")
    assert_clean_exit(cli("validate", "scenarios/small.yaml", "--kind", "nope"), 2, "--kind must be one of")


def test_validate_names_each_field_of_a_bad_portfolio(cli, tmp_path):
    bad = tmp_path / "portfolio.yaml"
    bad.write_text("uncertainty: {discount_rate_low: 2, discount_rate_high: 1}\n"
                   "sub_markets:\n  - {name: a, scenario: small, stage: 1}\n"
                   "  - {name: b, scenario: nowhere, territories: 2, stage: 1}\n")
    result = cli("validate", bad)
    assert_clean_exit(result, 2, "invalid portfolio", "uncertainty.discount_rate_high: must be at least "
                      "discount_rate_low (2), got 1", "sub_markets.0.territories: Field required")
    bad.write_text("sub_markets:\n  - {name: b, scenario: nowhere, territories: 2, stage: 1}\n")
    assert_clean_exit(cli("validate", bad), 2, "invalid portfolio", "sub_markets.0.scenario")


def test_validate_checks_what_a_suite_names(cli, tmp_path):
    import yaml

    suite = yaml.safe_load(open("scenarios/benchmark/suites/quick.yaml"))
    suite.update(scenarios=["mature_primary_care", "atlantis"], strategies=["instruction", "orakel"],
                 metrics=["profit_usd", "happiness"], overrides={"population": {"n_reps": -1}})
    bad = tmp_path / "suite.yaml"
    bad.write_text(yaml.safe_dump(suite))
    result = cli("validate", bad)
    flat = assert_clean_exit(result, 2, "invalid suite", "scenarios.1: unknown benchmark scenario 'atlantis'",
                             "strategies.1: unknown strategy 'orakel'", "metrics.1: unknown KPI 'happiness'",
                             "overrides (mature_primary_care): population.n_reps")
    del suite["hash_run"]
    bad.write_text(yaml.safe_dump(suite))
    assert_clean_exit(cli("validate", bad), 2, "invalid suite", "hash_run: Field required")
    assert "Traceback" not in flat


# ------------------------------------------------------------------------------------------ run / compare


def test_run_writes_results_and_summary(cli, tmp_path):
    out = tmp_path / "run"
    assert_clean_exit(cli("run", "small", "--strategy", "intervention", "--episodes", "1", "--seed", "3",
                          "--out", out, "--no-progress"), 0, "results:")
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == RESULT_COLUMNS
    assert set(results.strategy) == {"intervention"} and set(results.seed) == {3}
    assert set(results.stage) == {"3-intervention"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == "small" and summary["strategy"] == "intervention"
    assert {row["metric"] for row in summary["summary"]} >= {"profit_usd", "prescriptions"}


def test_run_at_another_stage(cli, tmp_path):
    out = tmp_path / "run"
    assert_clean_exit(cli("run", "small", "--strategy", "insight", "--stage", "2", "--episodes", "1",
                          "--out", out, "--no-progress"), 0)
    assert set(pd.read_csv(out / "results.csv").stage) == {"2-involvement"}


def test_compare_writes_results_summary_figures_and_prints_the_table(cli, tmp_path):
    out = tmp_path / "compare"
    result = cli("compare", "small", "--episodes", "2", "--best-plan", "0", "--strategies", "instruction,intervention",
                 "--out", out, "--no-progress")
    flat = assert_clean_exit(result, 0, "small: mean over 2 paired seeds", "profit_usd", "confusion_events",
                             "instruction", "intervention", "results:", "figures:")
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == RESULT_COLUMNS
    assert set(results.strategy) == {"today", "instruction", "intervention"}
    assert results.groupby("strategy")["seed"].apply(lambda s: sorted(set(s))).tolist() == [[0, 1]] * 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"] == "today" and summary["strategies"] == ["today", "instruction", "intervention"]
    interv = [r for r in summary["summary"] if r["strategy"] == "intervention" and r["metric"] == "profit_usd"]
    assert len(interv) == 1 and interv[0]["diff_low"] <= interv[0]["diff_mean"] <= interv[0]["diff_high"]
    for name in FIGURES:
        assert (out / name).stat().st_size > 5_000
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "no temporary files left"
    assert not list(out.glob("drivers*")) and "drivers" not in summary, "no decomposition without --drivers"
    assert "[" in flat, "the CI of the paired difference is printed"


# -------------------------------------------------------------------------------------------- bad input

BAD_INPUT = {
    "unknown strategy": (["run", "small", "--strategy", "nope", "--episodes", "1"],
                         "unknown strategy 'nope'; choose today, a move from it (e.g. sales=3"),
    "unknown strategy in compare": (["compare", "small", "--strategies", "instruction,nope", "--episodes", "1"],
                                    "unknown strategy 'nope'"),
    "zero episodes (run)": (["run", "small", "--episodes", "0"], "--episodes must be >= 1, got 0"),
    "zero episodes (compare)": (["compare", "small", "--episodes", "0"], "--episodes must be >= 1, got 0"),
    "too many workers (compare)": (["compare", "small", "--episodes", "1", "--workers", "999"],
                                   "--workers must be between 0 (one per usable CPU) and"),
    "unknown scenario": (["run", "no_such_scenario", "--episodes", "1"], "unknown scenario name"),
    "missing scenario file": (["compare", "missing/file.yaml", "--episodes", "1"], "no such file"),
    "missing model (run)": (["run", "small", "--strategy", "missing/model.zip", "--episodes", "1"],
                            "model file not found"),
    "missing model (compare)": (["compare", "small", "--model", "missing/model.zip", "--episodes", "1"],
                                "model file not found"),
    "unknown algo": (["train", "small", "--algo", "nope", "--timesteps", "10"], "--algo must be one of"),
    "stage 9 (run)": (["run", "small", "--stage", "9", "--episodes", "1"], "--stage must be 0-3"),
    "stage 9 (train)": (["train", "small", "--stage", "9", "--timesteps", "10"], "--stage must be 0-3"),
    "zero timesteps": (["train", "small", "--timesteps", "0"], "--timesteps must be >= 1"),
    "zero minutes": (["train", "small", "--timesteps", "10", "--max-minutes", "0"], "--max-minutes must be"),
    "nan minutes": (["train", "small", "--timesteps", "10", "--max-minutes", "nan"], "--max-minutes must be"),
    "oracle as teacher": (["train", "small", "--timesteps", "10", "--init-from", "oracle"],
                          "--init-from must be a strategy that uses only the view"),
    "teacher for ppo": (["train", "small", "--timesteps", "10", "--algo", "ppo", "--init-from", "intervention"],
                        "--init-from needs --algo maskable-ppo"),
    "teacher for the default algo": (["train", "small", "--timesteps", "10", "--init-from", "intervention"],
                                     "--init-from needs --algo maskable-ppo (got --algo factored-ppo)"),
    "factored in workers": (["train", "small", "--timesteps", "10", "--vec", "subproc"],
                            "--vec subproc is for the SB3 algorithms"),
    "more workers than territories": (["train", "small", "--timesteps", "10", "--n-envs", "2", "--workers", "3"],
                                      "--workers must be at most --n-envs (2)"),
    "workers for an SB3 algorithm": (["train", "small", "--timesteps", "10", "--algo", "ppo", "--workers", "2"],
                                     "--workers is for --algo factored-ppo"),
    "zero workers": (["train", "small", "--timesteps", "10", "--workers", "0"], "--workers must be >= 1"),
    "factored on realised reward": (["train", "small", "--timesteps", "10", "--reward", "realized"],
                                    "--reward realized is for the SB3 algorithms"),
    "unknown reward": (["train", "small", "--timesteps", "10", "--reward", "nope"],
                       "--reward must be expected, observed or realized"),
    "baseline not compared": (["compare", "small", "--strategies", "insight", "--baseline", "instruction",
                               "--episodes", "1"],
                              "--baseline 'instruction' is not among the strategies"),
    "check and update": (["bench", "--check", "--update"], "--check and --update are exclusive"),
    "unknown suite": (["bench", "--suite", "nope"], "--suite 'nope' not found"),
}


@pytest.mark.parametrize("args, message", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_exits_2_with_a_clear_message(cli, tmp_path, args, message):
    out = tmp_path / "out"
    result = cli(*args, "--out", out)
    assert_clean_exit(result, 2, "error:", message)
    assert not out.exists(), "nothing is written on bad input"


def test_train_resume_without_an_earlier_run_is_a_clear_error(cli, tmp_path):
    result = cli("train", "small", "--timesteps", "10", "--resume", "--out", tmp_path / "runs", "--no-progress")
    assert_clean_exit(result, 2, "error:", "--resume: no earlier run small__factored-ppo__0__*")


def test_train_resume_with_other_settings_is_a_clear_error(cli, tmp_path):
    from oce_sim.learning import training

    args = training.resolved(training.TrainArgs(scenario="small", out=str(tmp_path / "runs")))
    training._new_run_folder(tmp_path / "runs", "small__factored-ppo__0", training.training_scenario(args), args)
    result = cli("train", "small", "--timesteps", "10", "--resume", "--n-envs", "4", "--out", tmp_path / "runs",
                 "--no-progress")
    assert_clean_exit(result, 2, "error:", "trained with other arguments: n_envs: run 16, now 4")


def test_train_into_a_file_is_a_clear_error(cli, tmp_path):
    (tmp_path / "file").write_text("x")
    result = cli("train", "small", "--timesteps", "10", "--out", tmp_path / "file", "--no-progress")
    assert_clean_exit(result, 2, "error:", "is not a folder")


def test_model_that_is_not_a_model_is_a_clear_error(cli, tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"not a zip")
    result = cli("run", "small", "--strategy", fake, "--episodes", "1", "--out", tmp_path / "out")
    assert_clean_exit(result, 2, "error:", "is not a model saved by oce-sim train")


def test_typer_usage_errors_are_exit_2(cli):
    result = cli("run", "small", "--episodes", "many")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert "Invalid value for '--episodes'" in result.output


def test_train_says_which_stage_it_trains_at(cli, tmp_path, monkeypatch):
    """Without --stage a model trains at the scenario's own stage: said before any work (issue 24)."""
    from oce_sim.learning import training

    seen = []
    monkeypatch.setattr(training, "train", lambda args, log, **kwargs: seen.append(args.stage) or tmp_path / "run")
    assert_clean_exit(cli("train", "small", "--timesteps", "10", "--out", tmp_path), 0,
                      "training at stage 1 (insight) (scenario small's own; --stage K trains at another)")
    assert_clean_exit(cli("train", "small", "--stage", "3", "--timesteps", "10", "--out", tmp_path), 0,
                      "training at stage 3 (intervention) (--stage)")
    assert seen == [None, 3]
