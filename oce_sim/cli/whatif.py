"""``oce-sim whatif``: what-if sweeps on paired seeds (``oce_sim.studies.whatif``, ``oce_sim.studies.sweep``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from oce_sim.cli.common import (
    MAX_BEST_PLAN_BUDGET,
    MAX_EPISODES,
    RANK_BY_OPTION,
    SCENARIO_ARG,
    _clip,
    _command_line,
    _output_folder,
    _print_table,
    _print_twice,
    best_plan_option,
    check_out,
    check_positive,
    check_rank_by,
    check_seed,
    check_text,
    check_workers,
    console,
    err,
    fail,
    resolve,
)
from oce_sim.config import (
    load_scenario,
)


MAX_DIFFERENCE_BARS = 12  # variants drawn in kpi_differences.png (every variant is in the tables)


def whatif(
    ctx: typer.Context,
    scenario: str = SCENARIO_ARG,
    set_: list[str] = typer.Option([], "--set", help="path=value applied to every variant, e.g. population.n_reps=2, "
                                   "stage.it=3, population.email_opt_in=0.9 (repeatable; YAML values)."),
    grid: list[str] = typer.Option([], help="path=v1,v2,... an axis of a full factorial (repeatable)."),
    tornado: list[str] = typer.Option([], help="path=low,high: a one-factor sensitivity bar (repeatable)."),
    frontier: bool = typer.Option(False, help="Sweep headcount x stage (unless --grid gives them) and draw profit "
                                  "against promotion cost per stage: the efficient frontier."),
    strategy: str = typer.Option("today", help="today (the organisation of each variant's own stage), a move from it "
                                 "(sales=3) or a strategy name."),
    episodes: int = typer.Option(4, help="Paired episodes per variant (seeds seed .. seed+episodes-1)."),
    seed: int = typer.Option(0, help="First seed; every variant runs on the baseline's seeds."),
    out: Path = typer.Option(Path("results/whatif"), help="Output folder (finished episodes are kept in "
                             "<out>.cache beside it, so a killed sweep resumes where it stopped)."),
    workers: int = typer.Option(0, help="Processes of the local executor: 0 (default) one per usable CPU when the "
                                "work pays for starting them, 1 this process only; at most the usable CPUs and what "
                                "the available memory holds. The results are the same."),
    executor: str = typer.Option("local", help="local (this machine) or ray (ray.init(): a local Ray instance, "
                                 "or the cluster RAY_ADDRESS names)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    best_plan: int = best_plan_option("the baseline and each variant (with --strategy today or a move)"),
    rank_by: Optional[str] = RANK_BY_OPTION,
) -> None:
    """What-if sweeps: every variant of the scenario against the scenario as given, on paired seeds, with the 95% CI
    of each KPI's difference (year 1 and multi-period), a tornado chart and an efficient frontier."""
    from oce_sim.agents import STRATEGIES
    from oce_sim.studies import evaluation
    from oce_sim.studies import whatif as wi
    from oce_sim.studies.report import population_text, whatif_report
    from oce_sim.studies.settling import SEED_NOISE_ONLY
    from oce_sim.studies.sweep import EXECUTORS, CacheError, EpisodeCache, default_cache

    if executor not in EXECUTORS:
        fail(f"--executor must be one of {', '.join(EXECUTORS)}, got {_clip(repr(executor), 80)}")
    if executor == "local":  # a Ray cluster sizes itself; this machine's processes must fit this machine
        check_workers(workers)
    elif workers < 0:
        fail(f"--workers must be >= 0, got {workers}")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            fail("--executor ray needs Ray: pip install 'oce-sim[sweep]' (or pip install ray)")
    check_positive("--episodes", episodes, maximum=MAX_EPISODES)
    check_seed(seed, episodes)
    for name, items in (("--set", set_), ("--grid", grid), ("--tornado", tornado)):
        for item in items:
            check_text(name, item, wi.MAX_VALUE_CHARS + 200)
    if len(set_) + len(grid) + len(tornado) > wi.MAX_SETTINGS:
        fail(f"at most {wi.MAX_SETTINGS} --set, --grid and --tornado items together")
    if "=" in strategy:
        from oce_sim.agents.organisation import parse_move

        try:
            parse_move(strategy, load_scenario().stage)  # the syntax; applied to each variant's own stage
        except ValueError as exc:
            fail(str(exc))
    elif strategy != "today" and (strategy not in STRATEGIES or strategy == "no_promotion"):
        fail(f"--strategy must be today, a move (sales=3) or one of "
             f"{', '.join(s for s in STRATEGIES if s != 'no_promotion')}, got {_clip(repr(strategy), 80)}")
    check_positive("--best-plan", best_plan, minimum=0, maximum=MAX_BEST_PLAN_BUDGET)
    if best_plan and not (strategy == "today" or "=" in strategy):
        if rank_by == "best-plan":
            fail(f"--rank-by best-plan needs --strategy today or a move: a named strategy ({strategy}) has no rules "
                 "of thumb for a best plan to replace")
        best_plan = 0  # a named strategy is played as it is
    rank_by = check_rank_by(rank_by, best_plan)
    if best_plan:
        from oce_sim.studies.planner import check_seeds

        overlap = check_seeds(seed, episodes, best_plan)
        if overlap:
            fail(overlap)
    check_out("--out", out)
    try:
        EpisodeCache(default_cache(out)).check()
    except CacheError as exc:
        fail(str(exc))
    base = resolve(scenario)
    try:
        sets = [wi.parse_setting(item) for item in set_]
        axes = [wi.parse_axis(item) for item in grid]
        factors = [wi.parse_axis(item, "--tornado") for item in tornado]
        plan = wi.plan_variants(base, sets, axes, factors, frontier=frontier)
    except wi.WhatIfError as exc:
        fail(str(exc), exc.problems)
        return
    if not plan.variants:
        fail("nothing to compare: give --set, --grid, --tornado or --frontier")
    with _output_folder(out, "whatif") as staging:
        try:
            results = wi.run_plan(plan, strategy, episodes, seed, progress=progress, cache=default_cache(out),
                                  executor=executor, workers=workers,
                                  note=lambda line: err.print(f"[yellow]note:[/] {escape(line)}"), best_plan=best_plan)
        except wi.WhatIfError as exc:  # raised before any episode runs
            fail(str(exc), exc.problems)
            return
        except CacheError as exc:  # (checked above; raised before any episode runs)
            fail(str(exc))
            return
        episodes_run = dict(results.attrs.get("episodes", {}))
        twice = None
        if best_plan:  # both values of every variant; the tables, figures and sentences below use the ranked one
            twice = wi.twice_values(results, strategy, best_plan, rank_by)
            evaluation.atomic_write_text(staging / "values_twice.csv", twice.to_csv(index=False))
            everything, results = results, wi.ranked_rows(results, strategy, best_plan, rank_by)
        summary = wi.summarise(results)
        evaluation.atomic_write_text(staging / "summary.csv", summary.to_csv(index=False))
        meta = {"scenario": base.name, "strategy": strategy, "episodes": episodes, "seed": seed, "set": set_,
                "grid": grid, "tornado": tornado, "frontier": frontier,
                "variants": [v.label for v in plan.variants], "rank_by": rank_by,
                "best_plan_budget": best_plan}  # no wall time: a rerun writes the same folder
        # results.csv (tidy, both values' rows) and summary.json (the ranked one)
        evaluation.write_results(staging, everything if twice is not None else results, summary, meta)
        figures = [wi.plot_tornado(summary, plan, staging / "tornado.png", base.name)]
        if frontier:
            figures.append(wi.plot_frontier(results, plan, staging / "frontier.png", base.name))
        if len(plan.variants) <= MAX_DIFFERENCE_BARS:  # a bar per variant and KPI: readable for a few variants
            by_variant = results.drop(columns=["strategy"]).rename(columns={"variant": "strategy"})
            figures.append(evaluation.plot_kpi_differences(by_variant, staging / "kpi_differences.png", base.name,
                                                           wi.BASELINE, what="variant"))
        figures = [p for p in figures if p is not None]
        whatif_report(plan, summary, strategy, episodes, seed, figures, _command_line(ctx), set_, twice=twice,
                      budget=best_plan, rank_by=rank_by).write(staging)
    figures = [out / p.name for p in figures]
    table = wi.format_summary(summary)
    title = (f"{base.name}: what-if ({strategy}), {episodes} paired seeds: baseline mean; each variant's difference "
             f"[95% CI]; per territory of each variant's population (baseline: {population_text(base)}); "
             f"{SEED_NOISE_ONLY}")
    if len(table) <= 6:
        _print_table(table, title)
    else:  # many variants: one row each, the headline KPIs (every KPI is in summary.csv)
        _print_table(table[[m for m in wi.HEADLINE_KPIS if m in table.columns]].T, title, first="variant")
    if twice is not None:
        _print_twice(twice, best_plan, rank_by, f"per territory of each variant's population (baseline: "
                     f"{population_text(base)})", f"{base.name}: each variant valued twice against the baseline",
                     what="Each variant", against="the baseline", first="variant, against the baseline")
    console.print(f"results: {out / 'results.csv'}  summary: {out / 'summary.csv'}"
                  + (f"  both values: {out / 'values_twice.csv'}" if twice is not None else ""))
    if episodes_run.get("from_cache"):
        console.print(f"episodes: {episodes_run['run']} run, {episodes_run['from_cache']} read back from "
                      f"{default_cache(out)} (finished by an earlier run)")
    shown = [str(p) for p in figures if p is not None]
    if shown:
        console.print("figures: " + ", ".join(shown))
    console.print(f"report: {out / 'report.html'} (and report.md)")
