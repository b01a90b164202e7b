"""Benchmark suites and the regression gate (golden bands + event-log hash).

Fast tests use a tiny two-week suite; the real quick suite against its committed golden file is slow.
"""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from oce_sim.bench import gate as bench
from oce_sim.bench.gate import (
    BenchError,
    Suite,
    check_against_golden,
    event_log_hash,
    golden_bands,
    load_suite,
    markdown_table,
    run_bench,
    run_suite,
)
from oce_sim.cli import app
from oce_sim.config import builtin_scenarios
from oce_sim.studies.evaluation import RESULT_COLUMNS
from oce_sim.world.kpis import KPIS

TINY = {
    "version": 3,
    "description": "tiny test suite",
    "episodes": 2,
    "seed": 5,
    "overrides": {"env": {"horizon_days": 14}},
    "scenarios": ["mature_primary_care", "emerging_field"],
    "strategies": ["instruction", "intervention", "no_promotion"],
    "metrics": ["prescriptions", "profit_usd", "cost_usd", "reach", "confusion_events"],
    "tolerance": {"relative": 0.03, "absolute": {"reach": 0.01, "confusion_events": 3}},
    "hash_run": {"scenario": "mature_primary_care", "strategy": "intervention", "seed": 5, "horizon_days": 14},
}


@pytest.fixture(scope="module")
def tiny() -> Suite:
    return Suite.model_validate(TINY)


@pytest.fixture(scope="module")
def tiny_results(tiny) -> pd.DataFrame:
    return run_suite(tiny, progress=False)


@pytest.fixture
def bench_dirs(tmp_path, monkeypatch):
    """A suite folder holding ``tiny.yaml`` and an empty golden folder, both in tmp_path."""
    suites, golden = tmp_path / "suites", tmp_path / "golden"
    suites.mkdir()
    golden.mkdir()
    (suites / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    monkeypatch.setattr(bench, "SUITE_DIR", suites)
    monkeypatch.setattr(bench, "GOLDEN_DIR", golden)
    return suites, golden


# ----------------------------------------------------------------------------------------------- suites


@pytest.mark.parametrize("name", ["quick", "full"])
def test_committed_suites_validate_and_name_real_scenarios_and_strategies(name):
    from oce_sim.agents import STRATEGIES

    suite = load_suite(name)
    assert suite.version >= 1 and suite.episodes >= 1
    builtin = builtin_scenarios()
    for scenario in [*suite.scenarios, suite.hash_run.scenario]:
        assert f"benchmark/{scenario}" in builtin
    assert set(suite.strategies) <= set(STRATEGIES) and suite.hash_run.strategy in STRATEGIES
    assert set(suite.metrics) <= set(KPIS), "every gated KPI is defined in the registry"


def test_quick_golden_file_matches_the_quick_suite():
    suite = load_suite("quick")
    golden = json.loads((bench.GOLDEN_DIR / "quick.json").read_text())
    assert golden["version"] == suite.version
    assert len(golden["event_hash"]) == 64
    keys = {(b["scenario"], b["strategy"], b["metric"]) for b in golden["bands"]}
    assert {k[0] for k in keys} == set(suite.scenarios)
    assert {k[1] for k in keys} == set(suite.strategies)
    assert {k[2] for k in keys} <= set(suite.metrics)
    assert all(b["low"] <= b["value"] <= b["high"] for b in golden["bands"])


def test_unknown_or_invalid_suite_is_a_bench_error(bench_dirs):
    suites, _ = bench_dirs
    with pytest.raises(BenchError, match="available: tiny"):
        load_suite("nope")
    (suites / "broken.yaml").write_text(yaml.safe_dump({**TINY, "episodes": 0, "bogus": 1}))
    with pytest.raises(BenchError, match="episodes") as info:
        load_suite("broken")
    assert "bogus" in str(info.value)


# ------------------------------------------------------------------------------------- golden comparison


def test_results_within_their_own_bands_pass(tiny, tiny_results, bench_dirs):
    _, golden_dir = bench_dirs
    digest = event_log_hash(tiny)
    golden = {"suite": "tiny", "version": tiny.version, "event_hash": digest, "bands": golden_bands(tiny, tiny_results)}
    (golden_dir / "tiny.json").write_text(json.dumps(golden))
    moved, hash_ok = check_against_golden(tiny, "tiny", tiny_results, digest)
    assert moved == [] and hash_ok
    n_keys = len(tiny.scenarios) * len(tiny.strategies) * len(tiny.metrics)
    assert len(golden["bands"]) == n_keys


def test_tampered_golden_file_reports_the_moved_kpi_and_the_hash(tiny, tiny_results, bench_dirs):
    _, golden_dir = bench_dirs
    digest = event_log_hash(tiny)
    bands = golden_bands(tiny, tiny_results)
    tampered = copy.deepcopy(bands)
    target = next(b for b in tampered if b["strategy"] == "intervention" and b["metric"] == "profit_usd")
    width = target["high"] - target["low"]
    target["low"], target["high"] = target["high"] + width, target["high"] + 2 * width  # band moved up
    (golden_dir / "tiny.json").write_text(json.dumps(
        {"suite": "tiny", "version": tiny.version, "event_hash": "0" * 64, "bands": tampered}))

    moved, hash_ok = check_against_golden(tiny, "tiny", tiny_results, digest)
    assert not hash_ok
    assert [(m["scenario"], m["strategy"], m["metric"]) for m in moved] == [
        (target["scenario"], "intervention", "profit_usd")]
    now = tiny_results[(tiny_results.scenario == target["scenario"]) & (tiny_results.strategy == "intervention")
                       & (tiny_results.metric == "profit_usd")].value.mean()
    assert moved[0]["now"] == pytest.approx(now) and moved[0]["now"] < moved[0]["low"]


def test_a_missing_kpi_counts_as_moved(tiny, tiny_results, bench_dirs):
    _, golden_dir = bench_dirs
    digest = event_log_hash(tiny)
    (golden_dir / "tiny.json").write_text(json.dumps(
        {"version": tiny.version, "event_hash": digest, "bands": golden_bands(tiny, tiny_results)}))
    without = tiny_results[tiny_results.metric != "reach"]
    moved, hash_ok = check_against_golden(tiny, "tiny", without, digest)
    assert hash_ok
    assert {m["metric"] for m in moved} == {"reach"}
    assert len(moved) == len(tiny.scenarios) * len(tiny.strategies)


def test_golden_file_missing_or_for_another_version(tiny, tiny_results, bench_dirs):
    _, golden_dir = bench_dirs
    with pytest.raises(BenchError, match="--update"):
        check_against_golden(tiny, "tiny", tiny_results, "x")
    (golden_dir / "tiny.json").write_text(json.dumps({"version": tiny.version + 1, "event_hash": "x", "bands": []}))
    with pytest.raises(BenchError, match="version"):
        check_against_golden(tiny, "tiny", tiny_results, "x")


def test_the_gate_tells_an_improvement_from_a_regression_by_kpi_direction(tiny, tiny_results):
    digest = event_log_hash(tiny)
    bands = golden_bands(tiny, tiny_results)

    def golden_was(metric: str, side: int) -> dict:
        """A band around a golden value below (side -1) or above (+1) the value now."""
        band = next(b for b in bands if b["strategy"] == "intervention" and b["metric"] == metric)
        value = band["value"] + side * (abs(band["value"]) + 1.0)
        return {**band, "value": value, "low": value - 1e-9, "high": value + 1e-9}

    golden = {"event_hash": digest, "bands": [golden_was("profit_usd", -1), golden_was("profit_usd", 1),
                                                golden_was("cost_usd", -1), golden_was("cost_usd", 1)]}
    checked, hash_ok = bench.gate(golden, tiny_results, digest)
    assert hash_ok and not any(c["passed"] for c in checked)
    # profit: higher is better; cost: lower is better
    assert [c["change"] for c in checked] == ["improved", "regressed", "regressed", "improved"]
    assert bench.change_kind("not_a_registered_kpi", 1.0, 2.0) == "moved"
    assert bench.change_kind("profit_usd", 1.0, float("nan")) == "missing"

    import xml.etree.ElementTree as ET

    root = ET.fromstring(bench.junit_xml("tiny", checked, False, "a" * 64, "b" * 64).split("\n", 1)[1])
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 5 and cases[-1].get("name") == "event_hash"
    assert [c.find("failure").get("type") for c in cases] == ["improved", "regressed", "regressed", "improved",
                                                              "behaviour_changed"]
    assert root.find("testsuite").get("failures") == "5"


def test_check_fails_before_running_anything_without_a_usable_golden_file(bench_dirs, tmp_path, monkeypatch):
    _, golden_dir = bench_dirs

    def no_run(*args, **kwargs):
        raise AssertionError("the suite ran before the golden file was checked")

    monkeypatch.setattr(bench, "run_suite", no_run)
    console = Console(file=open(tmp_path / "console.txt", "w"))
    with pytest.raises(BenchError, match="no golden file"):
        run_bench("tiny", check=True, update=False, perf=False, out=tmp_path / "out", progress=False, console=console)
    (golden_dir / "tiny.json").write_text("{not json")
    with pytest.raises(BenchError, match="unreadable"):
        run_bench("tiny", check=True, update=False, perf=False, out=tmp_path / "out", progress=False, console=console)
    (golden_dir / "tiny.json").write_text(json.dumps({"version": 99, "event_hash": "x", "bands": []}))
    with pytest.raises(BenchError, match="suite version 99"):
        run_bench("tiny", check=True, update=False, perf=False, out=tmp_path / "out", progress=False, console=console)
    assert not (tmp_path / "out").exists()


def test_band_uses_the_larger_of_relative_and_absolute_tolerance(tiny):
    assert tiny.tolerance.band("profit_usd", 1000.0) == pytest.approx((970.0, 1030.0))
    assert tiny.tolerance.band("confusion_events", 10.0) == pytest.approx((7.0, 13.0))
    assert tiny.tolerance.band("reach", 0.0) == pytest.approx((-0.01, 0.01))


# ------------------------------------------------------------------------------------- run_bench end to end


def test_run_bench_update_then_check_then_regression(bench_dirs, tmp_path):
    _, golden_dir = bench_dirs
    console = Console(file=open(tmp_path / "console.txt", "w"), width=200)
    out = tmp_path / "out"
    assert run_bench("tiny", check=False, update=True, perf=False, out=out, progress=False, console=console) == 0
    golden = json.loads((golden_dir / "tiny.json").read_text())
    assert golden["version"] == TINY["version"] and len(golden["event_hash"]) == 64
    assert run_bench("tiny", check=True, update=False, perf=False, out=out, progress=False, console=console) == 0
    report = (out / "bench.md").read_text()
    assert "Regression check: passed" in report and golden["event_hash"] in report
    assert list(pd.read_csv(out / "results.csv").columns) == RESULT_COLUMNS

    golden["event_hash"] = "f" * 64
    (golden_dir / "tiny.json").write_text(json.dumps(golden))
    junit = tmp_path / "junit.xml"
    assert run_bench("tiny", check=True, update=False, perf=False, out=out, progress=False, console=console,
                     junit=junit) == 1
    assert "Regression check: FAILED" in (out / "bench.md").read_text()
    assert junit.read_text().count("<testcase") == len(golden["bands"]) + 1
    assert junit.read_text().count("<failure") == 1 and 'type="behaviour_changed"' in junit.read_text()
    console.file.close()
    assert "event-log hash of the fixed run differs" in " ".join((tmp_path / "console.txt").read_text().split())


def test_bench_cli_check_exit_codes(bench_dirs, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    missing = runner.invoke(app, ["bench", "--suite", "tiny", "--check", "--no-progress", "--out", str(out)])
    assert missing.exit_code == 2 and "no golden file" in missing.output and "Traceback" not in missing.output
    updated = runner.invoke(app, ["bench", "--suite", "tiny", "--update", "--no-progress", "--out", str(out)])
    assert updated.exit_code == 0, updated.output
    checked = runner.invoke(app, ["bench", "--suite", "tiny", "--check", "--no-progress", "--out", str(out)])
    assert checked.exit_code == 0, checked.output
    assert "bench check passed" in checked.output


# ------------------------------------------------------------------------------------- tables and hashing


def test_markdown_table_has_one_row_per_strategy(tiny, tiny_results):
    table = markdown_table(tiny_results, "profit_usd")
    lines = table.splitlines()
    assert lines[0] == "| strategy | mature_primary_care | emerging_field |"
    assert lines[1] == "|---|---|---|"
    rows = lines[2:]
    assert [r.split("|")[1].strip() for r in rows] == tiny.strategies
    for row in rows:
        assert row.count("|") == 4 and "k" in row
    assert "[" not in rows[0], "the baseline has no paired difference"
    assert all("[" in r for r in rows[1:]), "others show the CI of their difference to instruction"


def test_event_log_hash_is_deterministic_and_sensitive(tiny):
    first = event_log_hash(tiny)
    assert len(first) == 64 and int(first, 16) >= 0
    assert event_log_hash(tiny) == first
    assert event_log_hash(Suite.model_validate(copy.deepcopy(TINY))) == first
    other_seed = Suite.model_validate({**TINY, "hash_run": {**TINY["hash_run"], "seed": 6}})
    assert event_log_hash(other_seed) != first
    other_strategy = Suite.model_validate({**TINY, "hash_run": {**TINY["hash_run"], "strategy": "instruction"}})
    assert event_log_hash(other_strategy) != first


@pytest.mark.slow
def test_quick_suite_passes_its_committed_golden_file(tmp_path):
    """The CI gate itself (about 45 s): ``oce-sim bench --check`` on the quick suite."""
    console = Console(file=open(tmp_path / "console.txt", "w"), width=200)
    code = run_bench("quick", check=True, update=False, perf=False, out=tmp_path / "out", progress=False,
                     console=console)
    console.file.close()
    assert code == 0, (tmp_path / "console.txt").read_text()
    assert "Regression check: passed" in (tmp_path / "out" / "bench.md").read_text()
