"""The experiment scripts run as documented (small sizes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_script(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def load_experiment(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_calibrate_prints_every_reference_quantity():
    from oce_sim.studies.calibration import ROWS

    out = run_script("experiments/calibrate.py", "--scenario", "small", "--seeds", "1")
    for _, figure, *_ in ROWS:
        assert figure in out


def test_calibrate_on_held_out_seeds_names_them():
    """--first-seed measures the rows on other seeds than the fit's, and the header says which (not the CLI's
    command, which measures on seeds 0..)."""
    from oce_sim.studies import calibration

    out = run_script("experiments/calibrate.py", "--scenario", "small", "--seeds", "1", "--first-seed", "900000")
    assert out.startswith("Measured with `python experiments/calibrate.py --scenario small --seeds 1 --first-seed "
                          "900000` (paired seeds 900,000-900,000)")
    rows = calibration.calibrate("small", 1, first_seed=900_000)
    assert calibration.markdown(rows, "small", 1).split("\n", 1)[1] in out  # the same rows, measured on that seed


def test_instruction_vs_intervention_writes_tidy_results(tmp_path):
    out = run_script("experiments/instruction_vs_intervention.py", "--episodes", "2", "--out", str(tmp_path))
    results = pd.read_csv(tmp_path / "results.csv")
    assert list(results.columns) == ["scenario", "stage", "strategy", "seed", "episode", "metric", "value"]
    assert set(results.strategy) == {"instruction", "intervention"}
    assert (tmp_path / "differences.md").read_text().count("profit_usd") == 4
    assert "confusion_events" in out


@pytest.mark.parametrize("script", ["train_maskable_ppo.py", "perf_benchmark.py", "oracle_margins.py",
                                    "gap_closed.py"])
def test_long_scripts_document_their_arguments(script):
    assert "usage" in run_script(f"experiments/{script}", "--help")


def test_baseline_table_end_to_end_and_resumes(tmp_path):
    """A tiny grid (1 scenario, the intervention heuristic and PPO on 2 training seeds, 2 evaluation seeds, 2
    selection seeds): the table's numbers are the results', and a rerun reads every finished cell (and finished
    training run) back."""
    out = tmp_path / "baselines"
    args = ["experiments/baseline_table.py", "--scenarios", "mature_primary_care", "--agents", "intervention,ppo",
            "--train-seeds", "2", "--timesteps", "200", "--eval-seeds", "2", "--select-seeds", "2", "--out", str(out),
            "--no-progress"]
    first = run_script(*args)
    assert "compute budget: 1 scenarios x 2 agents: 3 cells; 2 RL runs x 200 env steps" in first
    assert "0 of 3 cells read from the cache" in first
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == ["scenario", "agent", "train_seed", "eval_seed", "purpose", "metric", "value"]
    every = results[results.metric == "profit_multi_period_usd"]
    assert sorted(set(every[every.purpose == "select"].eval_seed)) == [201_000, 201_001]  # selection: validation
    profit = every[every.purpose == "report"]
    assert sorted(set(zip(profit.agent, profit.train_seed.fillna(-1)))) == [("intervention", -1), ("ppo", 0), ("ppo", 1)]
    assert sorted(set(profit.eval_seed)) == [900_000, 900_001] and len(profit) == 6  # reported on the test seeds

    ppo = profit[profit.agent == "ppo"]
    per_seed = ppo.groupby("train_seed").value.mean() / 1e3
    base = profit[profit.agent == "intervention"].set_index("eval_seed").value
    diff = (ppo.groupby("eval_seed").value.mean() - base) / 1e3
    steps = results[(results.agent == "ppo") & (results.metric == "train_env_steps")].value
    assert (steps >= 200).all()
    table = (out / "table.md").read_text()
    assert "**mature_primary_care**" in table and "2 paired evaluation seeds from 900,000" in table
    row = next(line for line in table.splitlines() if line.startswith("| ppo |"))
    assert f"| {per_seed.median():,.0f} [{per_seed.min():,.0f}, {per_seed.max():,.0f}] |" in row
    assert f"| {diff.mean():+,.0f} [" in row and "] | n/a | " in row and row.endswith(f"| {steps.mean():,.0f} |")
    # intervention is the only observation-only candidate here (ppo learns from the true state): no gap to close
    assert next(line for line in table.splitlines() if line.startswith("| intervention |")).endswith(
        "| (baseline) | 0% (the floor) | - | - |")
    assert "Best policy that sees only observations: **intervention**" in table
    assert "No best-plan row in the grid: adaptivity headroom not measured." in table
    curves = pd.read_csv(out / "learning_curves.csv")
    assert set(curves.train_seed) == {0, 1} and curves.timesteps.max() <= steps.max()
    assert (out / "learning_curves.png").stat().st_size > 0

    before = (out / "results.csv").read_bytes()
    assert "3 of 3 cells read from the cache" in run_script(*args)
    assert (out / "results.csv").read_bytes() == before
    # a cell whose numbers are lost (killed after training): its finished run is evaluated again, not retrained
    cells = (tmp_path / "baselines.cache" / "cells").rglob("*.json")
    next(p for p in cells if json.loads(p.read_text())["kpis"]["train_env_steps"] > 0).unlink()
    assert "2 of 3 cells read from the cache" in run_script(*args)
    again = pd.read_csv(out / "results.csv")
    timing = results.metric == "eval_wall_seconds"
    pd.testing.assert_frame_equal(again[~timing].reset_index(drop=True), results[~timing].reset_index(drop=True))
    assert len(list((tmp_path / "baselines.cache" / "runs").glob("*/*/args.json"))) == 2


def test_baseline_table_gap_closed_and_headroom(tmp_path):
    """The new rows on a tiny setting: the best observation-only policy is the best candidate on the selection
    seeds, each agent's gap closed and the headroom are computed from the test seeds' results."""
    from oce_sim.studies.gap import gap_closed

    out = tmp_path / "baselines"
    text = run_script("experiments/baseline_table.py", "--scenarios", "emerging_field", "--agents",
                      "intervention,follow_up_everywhere,best-plan-3,factored-ppo,factored-ppo-observed",
                      "--train-seeds", "1", "--timesteps", "200", "--eval-seeds", "3", "--select-seeds", "2",
                      "--plan-budget", "6", "--plan-seeds", "2", "--out", str(out), "--no-progress")
    assert "1 plan searches x 6 episodes" in text
    results = pd.read_csv(out / "results.csv")
    profit = results[results.metric == "profit_multi_period_usd"]
    select = profit[profit.purpose == "select"].groupby("agent").value.mean()
    candidates = ["intervention", "follow_up_everywhere", "best-plan-3", "factored-ppo-observed"]
    best = select[candidates].idxmax()  # the privileged learner is no candidate
    report = profit[profit.purpose == "report"].pivot_table(index="eval_seed", columns="agent", values="value")
    room = pd.read_csv(out / "headroom.csv").iloc[0]
    assert room.best_observed == best and room.best_plan == "best-plan-3"
    assert room.candidates == ",".join(candidates)
    assert room.diff_mean == pytest.approx((report[best] - report["best-plan-3"]).mean())
    summary = pd.read_csv(out / "summary.csv").set_index("agent")
    for agent in ("factored-ppo", "follow_up_everywhere"):
        share = gap_closed(report[agent], report["intervention"], report[best])
        assert summary.loc[agent, "gap_closed"] == pytest.approx(share.estimate, nan_ok=True)
    table = (out / "table.md").read_text()
    assert "| best@6 (stage 3) |" in table and "**Adaptivity headroom**: it minus the best stationary plan" in table
    # the header marks the rows that learn from the true state, and names the model's commit
    assert "Trained on a privileged reward (the customers' true state): factored-ppo. Table:" in table
    assert "model commit " in table and "model commit unknown" not in table
    assert any(line.startswith(f"| {'best@6 (stage 3)' if best == 'best-plan-3' else best} |")
               and "| 100% (the best) |" in line for line in table.splitlines())
    assert len(list((tmp_path / "baselines.cache" / "plans").glob("*.json"))) == 1


def test_baseline_table_candidates_see_only_observations():
    module = load_experiment("baseline_table")
    chosen = [agent for agent in module.AGENTS if module.observation_only(agent)]
    assert chosen == ["instruction", "insight", "involvement", "intervention", "follow_up_everywhere",
                      "best-plan-0", "best-plan-1", "best-plan-2", "best-plan-3", "factored-ppo-observed"]


def test_gap_closed_script_reports_on_the_test_seeds(tmp_path):
    out = run_script("experiments/gap_closed.py", "--scenario", "small", "--strategies", "random", "--best-plan", "8",
                     "--plan-seeds", "2", "--select-seeds", "2", "--test-seeds", "2", "--cache",
                     str(tmp_path / "cache"), "--out", str(tmp_path / "out"))
    gap = pd.read_csv(tmp_path / "out" / "small" / "gap.csv")
    assert list(gap.strategy)[-5:] == ["best@8 (stage 0)", "best@8 (stage 1)", "best@8 (stage 2)", "best@8 (stage 3)",
                                       "random"]
    results = pd.read_csv(tmp_path / "out" / "small" / "results.csv")
    assert set(results[results.purpose == "report"].seed) == {900_000, 900_001}
    assert "Adaptivity headroom" in out and "| random (not a candidate) |" in out
    bad = subprocess.run([sys.executable, "experiments/gap_closed.py", "--strategies", "planner"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "--strategies must be distinct names" in bad.stderr


def test_gap_closed_labels_its_models(tmp_path, capsys):
    module = load_experiment("gap_closed")
    model = tmp_path / "run" / "final" / "model.safetensors"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"")
    assert module.parse(["--model", str(model)]).models == {"run": model}  # the run folder's name
    assert module.parse(["--model", f"learner={model}"]).models == {"learner": model}
    for argv, message in ((["--model", f"a={model}", "--model", f"a={model}"], "the label 'a' is taken"),
                          (["--model", str(tmp_path / "none.safetensors")], "no such file"),
                          (["--test-seeds", "21"], "--test-seeds must be in [2, 20]")):
        with pytest.raises(SystemExit) as exit_info:
            module.parse(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_baseline_table_refuses_bad_arguments(tmp_path, capsys):
    module = load_experiment("baseline_table")
    for argv, message in ((["--agents", "intervention,dqn"], "--agents must be distinct names among"),
                          (["--scenarios", "mature_primary_care,mature_primary_care"], "--scenarios must be distinct"),
                          (["--eval-seeds", "1"], "--eval-seeds must be >= 2"),
                          (["--eval-seed", "1"], "--eval-seed must be >= 3"),
                          (["--train-minutes", "0"], "--train-minutes must be in (0, 1440]"),
                          (["--eval-seed", "201005"], "overlap the --select-seeds (201,000-201,009)"),
                          (["--eval-seed", "200000", "--select-seeds", "2"], "overlap the --plan-seeds"),
                          (["--plan-budget", "0"], "--plan-budget must be >= 1"),
                          (["--timesteps", "1000", "--train-minutes", "5"], "not both")):
        with pytest.raises(SystemExit) as exit_info:
            module.parse([*argv, "--out", str(tmp_path / "x")])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert module.parse(["--timesteps", "1000", "--agents", "ppo"]).agents == ["ppo"]
    # issue 23, item 5: every learner the same environment steps by default; wall clock only when asked
    default = module.parse([])
    assert default.timesteps == 500_032 and default.train_minutes is None
    assert module.budget(default) == {"timesteps": 500_032}
    assert module.budget(module.parse(["--train-minutes", "5"])) == {"train_minutes": 5.0}



def test_level_ladder_runs_and_writes_its_tables(tmp_path):
    out = run_script("experiments/level_ladder.py", "--seeds", "2", "--scenarios", "launch_kol", "--out",
                     str(tmp_path))
    ladder = pd.read_csv(tmp_path / "ladder.csv")
    assert len(ladder) == 15 and set(ladder.columns) >= {"step", "lower_plan", "higher_plan", "ci_high_usd", "passes"}
    assert "outcomes moved" in out


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["mature_primary_care", "emerging_field", "specialty_access", "launch_kol"])
def test_no_level_takes_an_option_away(tmp_path, scenario):
    """The metamorphic test of the stage matrix (issue 22): with the best plan each stage allows (until the planner
    lands, the best of the heuristics and follow_up_everywhere), one entity one level up never earns less: the paired
    95% CI of the multi-period profit difference has an upper bound >= 0, on 20 validation seeds."""
    ladder = load_experiment("level_ladder")
    result = ladder.main(ladder.Args(seeds=20, scenarios=(scenario,), out=tmp_path))
    failing = result[~result.passes]
    assert failing.empty, failing.to_string()


def test_best_plan_searches_scores_and_draws(tmp_path):
    """A tiny budget (the starts of stage 3 on 2 seeds): every output appears, the search is cached, and the table
    compares best@K with the stage heuristic and follow_up_everywhere on the test seeds."""
    out = run_script("experiments/best_plan.py", "--scenario", "small", "--budget", "12", "--tune-budget", "6",
                     "--search-seeds", "2", "--test-seeds", "2", "--stages", "3", "--out", str(tmp_path / "out"),
                     "--cache", str(tmp_path / "cache"))
    folder = tmp_path / "out" / "small"
    results = pd.read_csv(folder / "results.csv")
    profit = results[results.metric == "profit_multi_period_usd"]
    assert set(profit.strategy) == {"best@12", "intervention", "intervention tuned", "follow_up_everywhere"}
    assert set(profit.seed) == {900_000, 900_001}  # scored on the test seeds only
    search = pd.read_csv(folder / "search.csv")
    assert set(search.stage) == {3} and search.episodes.max() <= 12
    assert len(pd.read_csv(folder / "plans.csv")) == 9
    assert (folder / "best_plan_search.png").stat().st_size > 0
    assert "| 3 | " in out and "best@12 - heuristic" in (folder / "best_plan.md").read_text()
    assert "tuned - heuristic" in (folder / "best_plan.md").read_text()
    assert len(pd.read_csv(folder / "rules.csv")) == 6  # the six constants stage 3 reads
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2  # the plan and the constants


@pytest.mark.slow
def test_the_block_tail_moves_no_paired_difference_of_the_golden_suite():
    """Every strategy pair of the quick suite (its scenarios, strategies and seeds), profit year 1 + tail: the block
    tail moves no paired difference by more than a quarter of its 95% CI half-width against the daily one."""
    module = load_experiment("tail_method")
    frame, shifts = module.main(module.Args())
    assert len(shifts) == 4 * 21
    assert shifts.shift_of_half_width.max() <= module.MAX_SHIFT_OF_HALF_WIDTH, shifts.nlargest(3, "shift_of_half_width")
    np.testing.assert_allclose(frame.tail_blocks, frame.tail_daily, rtol=1e-3)


def test_the_stage_ranking_simulates_the_axes_plans_respond_to(tmp_path):
    """--call-cost / --price: each variant is simulated (its own episodes and history), ranked, and its cost stated;
    the re-priced grid of the x1, x1 episodes is unchanged in form."""
    module = load_experiment("stage_ranking")
    report = module.main(module.Args(seeds=2, out=tmp_path, call_cost=(1.0, 3.0), scenarios=("mature_primary_care",),
                                     strategies=("insight", "no_promotion")))
    assert report.count("\n| ×") == 9
    assert "| mature_primary_care | ×3 | ×1 |" in report and "| mature_primary_care | ×1 | ×1 |" in report
    assert "call cost ×3, price ×1:" in report
    base = module.with_economics(module.load_scenario("default"), 3.0, 0.5)
    assert base.channels.rep_visit.variable_cost_primary_care_usd == pytest.approx(
        3 * module.load_scenario("default").channels.rep_visit.variable_cost_primary_care_usd)
    assert base.economics.price_per_rx_usd == pytest.approx(0.5 * module.load_scenario("default").economics.price_per_rx_usd)


def test_the_stage_ranking_runs_a_scenario_outside_the_suite_and_names_its_seeds(tmp_path):
    """--scenarios may name a scenario the quick suite does not hold (run as given), and the report says which seeds
    and which arguments it was measured with (the test seeds here)."""
    module = load_experiment("stage_ranking")
    report = module.main(module.Args(seeds=2, seed=900_000, out=tmp_path, scenarios=("small",),
                                     strategies=("intervention", "no_promotion")))
    assert report.startswith("Measured with `python experiments/stage_ranking.py --seeds 2 --seed 900000 --scenarios "
                             "small --strategies intervention,no_promotion` (paired seeds 900,000-900,001")
    assert "**small**" in report and report.count("\n| ×") == 9
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    assert set(ranking.seed) == {900_000, 900_001} and set(ranking.scenario) == {"small"}


def test_values_twice_gives_every_stage_and_move_both_values_and_the_mechanism(tmp_path, monkeypatch):
    """experiments/values_twice.py on a short scenario: both values of each stage and move against today, the gap's
    mechanism per column (KPIs and channel parts) and the plays that differ, from one compare with --drivers."""
    monkeypatch.setenv("OCE_SIM_CACHE_DIR", str(tmp_path / "cache"))
    scenario = tmp_path / "short.yaml"
    scenario.write_text("extends: small\nenv: {horizon_days: 56}\n")
    out = run_script("experiments/values_twice.py", "--scenario", str(scenario), "--episodes", "2", "--seed",
                     "900000", "--move", "sales=3", "--budget", "6", "--out", str(tmp_path / "out"))
    assert "| sales=3 | " in out and "| intervention | " in out  # the values table, a row per stage and move
    assert out.count("| today | ") == 1  # the mechanism table's row of today (today has no value against itself)
    assert "segments whose play differs" in out
    compare = tmp_path / "out" / "short" / "compare"
    results = pd.read_csv(compare / "results.csv")
    assert {"today best@6", "sales=3 best@6", "instruction best@6"} <= set(results.strategy)
    assert set(results.seed) == {900_000, 900_001}
