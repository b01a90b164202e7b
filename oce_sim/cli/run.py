"""``oce-sim run``: one strategy or trained model on a scenario (``oce_sim.studies.evaluation``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from oce_sim.cli.candidates import _check_models, _make_candidate, _run_label
from oce_sim.cli.common import (
    MAX_EPISODES,
    SCENARIO_ARG,
    _output_folder,
    _print_table,
    check_model,
    check_out,
    check_path,
    check_positive,
    check_seed,
    check_stage,
    console,
    resolve,
)


def run(
    scenario: str = SCENARIO_ARG,
    strategy: str = typer.Option("today", help="today (the scenario's own stage), a move from it (sales=3, stage=2), a "
                                 "strategy name (see `oce-sim compare`), a trained model .safetensors or a run folder."),
    episodes: int = typer.Option(5, help="Episodes (seeds seed .. seed+episodes-1)."),
    seed: int = typer.Option(0, help="First seed."),
    stage: Optional[int] = typer.Option(None, help="Run at this stage instead of the strategy's own (0-3)."),
    out: Path = typer.Option(Path("results/run"), help="Output folder."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Run one strategy or trained model on a scenario; writes tidy results.csv and summary.json."""
    from oce_sim.studies import evaluation

    check_positive("--episodes", episodes, maximum=MAX_EPISODES)
    check_seed(seed, episodes)
    check_stage(stage)
    check_path("--strategy", Path(strategy))  # a name or a model path
    if strategy.endswith(".zip") or os.sep in strategy:
        check_model("--strategy", Path(strategy))
    check_out("--out", out)
    config = resolve(scenario)
    policy = _make_candidate(strategy, config)
    if stage is not None and strategy == "today":  # today's organisation at another stage is that move
        policy = _make_candidate(f"stage={stage}", config)
    label = _run_label(policy, stage, config)
    _check_models({label: policy}, config, {label: stage})
    with _output_folder(out, "run") as staging:
        results, series = evaluation.evaluate({label: policy}, config, episodes, seed,
                                              stages={label: stage}, progress=progress)
        summary = evaluation.paired_summary(results, baseline=None)
        evaluation.write_results(staging, results, summary, {"scenario": config.name, "strategy": strategy, "episodes": episodes, "seed": seed})
    _print_table(evaluation.format_table(summary, None), f"{config.name}: {label}")
    console.print(f"results: {out / 'results.csv'}")
