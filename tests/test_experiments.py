"""The experiment scripts run as documented (small sizes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_script(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_calibrate_prints_every_reference_quantity():
    from oce_sim.calibration import ROWS

    out = run_script("experiments/calibrate.py", "--scenario", "small", "--seeds", "1")
    for _, figure, *_ in ROWS:
        assert figure in out


def test_instruction_vs_intervention_writes_tidy_results(tmp_path):
    out = run_script("experiments/instruction_vs_intervention.py", "--episodes", "2", "--out", str(tmp_path))
    results = pd.read_csv(tmp_path / "results.csv")
    assert list(results.columns) == ["scenario", "stage", "strategy", "seed", "episode", "metric", "value"]
    assert set(results.strategy) == {"instruction", "intervention"}
    assert (tmp_path / "differences.md").read_text().count("profit_usd") == 4
    assert "confusion_events" in out


@pytest.mark.parametrize("script", ["train_maskable_ppo.py", "perf_benchmark.py", "oracle_bound.py"])
def test_long_scripts_document_their_arguments(script):
    assert "usage" in run_script(f"experiments/{script}", "--help")
