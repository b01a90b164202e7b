"""``oce-sim compare``, the main job: today, each move and every stage strategy on paired seeds
(``oce_sim.studies.evaluation``, ``oce_sim.studies.report``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from oce_sim.cli.candidates import (
    _check_models,
    _labelled,
    _make_candidate,
    _make_policy,
)
from oce_sim.cli.common import (
    MAX_BEST_PLAN_BUDGET,
    RANK_BY_OPTION,
    MAX_EPISODES,
    SCENARIO_ARG,
    _command_line,
    _output_folder,
    _print_table,
    _print_twice,
    best_plan_option,
    check_model,
    check_out,
    check_path,
    check_positive,
    check_rank_by,
    check_seed,
    check_stage,
    check_text,
    check_workers,
    console,
    err,
    fail,
    resolve,
)


def compare(
    ctx: typer.Context,
    scenario: str = SCENARIO_ARG,
    episodes: int = typer.Option(10, help="Paired episodes per strategy."),
    seed: int = typer.Option(0, help="First seed; every strategy sees the same seeds (common random numbers)."),
    out: Path = typer.Option(Path("results/compare"), help="Output folder."),
    model: list[Path] = typer.Option([], help="A trained model .safetensors (or run folder) to add to the comparison "
                                     "(repeatable: training seeds, or a checkpoint against the final model)."),
    strategies: str = typer.Option("instruction,insight,involvement,intervention,no_promotion,random,oracle",
                                   help="Comma-separated strategies."),
    baseline: str = typer.Option("today", help="Strategy the paired differences are taken against (today: the "
                                 "scenario's own stage)."),
    move: list[str] = typer.Option([], help="A candidate move from today's stage, e.g. sales=3, sales=3,it=3 or "
                                   "stage=2 (repeatable)."),
    model_stage: Optional[int] = typer.Option(None, help="Run --model at this stage (0-3) instead of its own."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    workers: int = typer.Option(0, help="Processes that play the episodes (0: one per usable CPU, as many as the "
                                "available memory holds; 1: this process only). The tables are the same whatever it "
                                "is."),
    drivers: bool = typer.Option(False, "--drivers", help="Also split each strategy's paired difference to the "
                                 "baseline in profit (year 1 + tail) by channel (drivers.csv, a table in the report, a "
                                 "waterfall per strategy). Costs five more replays per strategy and seed, one with "
                                 "each channel muted, each two to three times an episode: the strategies decomposed "
                                 "take about 10-15x as long (the oracle, not decomposable, is left out)."),
    best_plan: int = best_plan_option("today, each --move and each stage heuristic"),
    rank_by: Optional[str] = RANK_BY_OPTION,
) -> None:
    """The main job: today's organisation (the scenario's stage), each move and every stage strategy (and a trained
    model) on paired seeds, with 95% CIs of the difference to today."""
    from oce_sim.studies import evaluation
    from oce_sim.studies.planner import PLANNED_BY
    from oce_sim.studies.report import (
        RANK_KPI,
        UNRANKED,
        compare_report,
        territory_scale,
        unranked,
    )
    from oce_sim.studies.settling import (
        SEED_NOISE_ONLY,
        compare_verdict,
        verdict_sentence,
    )

    check_positive("--episodes", episodes, maximum=MAX_EPISODES)
    check_seed(seed, episodes)
    worker_limit = check_workers(workers)
    check_text("--strategies", strategies)
    for name in strategies.split(","):
        check_path("--strategies", Path(name.strip()))
    check_text("--baseline", baseline)
    for spec in move:
        check_text("--move", spec, 200)
    check_stage(model_stage)
    for path in model:
        check_model("--model", path)
    check_positive("--best-plan", best_plan, minimum=0, maximum=MAX_BEST_PLAN_BUDGET)
    rank_by = check_rank_by(rank_by, best_plan)
    if best_plan:
        from oce_sim.studies.planner import check_seeds

        overlap = check_seeds(seed, episodes, best_plan)
        if overlap:
            fail(overlap)
        from oce_sim.agents.organisation import move_label

        move = [move_label(spec) for spec in move]  # one spelling for the columns, the searches and the values
    check_out("--out", out)
    config = resolve(scenario)
    names = ["today", *move, *(s.strip() for s in strategies.split(",") if s.strip())]
    candidates = [(_make_candidate(name, config), None) for name in names]
    planned = _planned(names, config) if best_plan else []
    if planned == ["today"]:  # no stage heuristic and no move to value twice: nothing to search for
        err.print("note: no stage heuristic or --move among the strategies: nothing is valued twice, so no best plan "
                  "is searched and the rules of thumb rank")
        planned, best_plan, rank_by = [], 0, "rules-of-thumb"
    if best_plan:
        candidates += _best_plans(planned, config, best_plan, progress)
    for path in model:
        policy = _make_policy(str(path))
        candidates.append((policy, model_stage))
    policies, stages = _labelled(candidates, config)
    if baseline not in policies:
        fail(f"--baseline {baseline!r} is not among the strategies: {', '.join(policies)}")
    _check_models(policies, config)
    skipped = _check_drivers(policies, baseline) if drivers else []
    started = time.time()
    with _output_folder(out, "compare") as staging:
        if workers == 0:
            workers = worker_limit if evaluation.pool_pays(policies, config, episodes) else 1
        results, series = evaluation.evaluate(policies, config, episodes, seed, stages=stages, progress=progress,
                                              workers=workers)
        summary = evaluation.paired_summary(results, baseline=baseline)
        meta = {"scenario": config.name, "episodes": episodes, "seed": seed, "baseline": baseline,
                "strategies": list(policies), "rank_by": rank_by, "best_plan_budget": best_plan}  # no wall time: a rerun writes a byte-identical folder
        if drivers:
            meta["drivers"] = {"decomposed": [s for s in policies if s != baseline and s not in skipped],
                               "not decomposed": skipped}
        evaluation.write_results(staging, results, summary, meta)
        drawn = evaluation.plot_figures(results, series, staging, config.name, baseline)
        parts = _drivers(staging, policies, config, episodes, seed, baseline, stages, results, progress, skipped) \
            if drivers else None
        twice = None
        if best_plan:
            from oce_sim.studies.planner import twice_values

            twice = twice_values(results, [n for n in planned if n != "today"], best_plan, rank_by)
            evaluation.atomic_write_text(staging / "values_twice.csv", twice.to_csv(index=False))
        report = compare_report(config, summary, baseline, episodes, seed, drawn, _command_line(ctx), results,
                                drivers=parts, twice=twice, budget=best_plan, rank_by=rank_by)
        report.write(staging)
        figures = [out / p.name for p in drawn + ([path for path, _ in parts[2]] if parts else [])]
    shown, note = summary, ""
    if twice is not None:  # a terminal's width: the columns of the value that ranks (the report has them all)
        hidden = [s for s in unranked(list(policies), rank_by) if s not in UNRANKED and s != baseline]
        shown = summary[~summary.strategy.isin(hidden)]
        note = (f"; the columns of {PLANNED_BY[rank_by]} (--rank-by {rank_by}), the others in results.csv and the "
                "report")
    _print_table(evaluation.format_table(shown, baseline),
                 f"{config.name}: mean over {episodes} paired seeds [95% CI of the difference to {baseline}], "
                 f"{territory_scale(config)}; {SEED_NOISE_ONLY}{note}")
    if twice is not None:
        _print_twice(twice, best_plan, rank_by, territory_scale(config),
                     f"{config.name}: each stage and move valued twice against today", today=config.stage)
    settled = compare_verdict(results, RANK_KPI, exclude=unranked(list(policies), rank_by))
    if settled is not None and settled.runner_up is not None:
        console.print(escape(verdict_sentence(settled, f" by profit (year 1 + tail) with {PLANNED_BY[rank_by]}")
                             .replace("**", "")))
    console.print(f"results: {out / 'results.csv'}  summary: {out / 'summary.json'}  ({time.time() - started:.0f} s)")
    console.print("figures: " + ", ".join(str(p) for p in figures))
    if drivers:
        console.print(f"drivers: {out / 'drivers.csv'} (every seed: drivers_by_seed.csv)")
    if twice is not None:
        console.print(f"every stage and move twice: {out / 'values_twice.csv'}")
    console.print(f"report: {out / 'report.html'} (and report.md)")


def _planned(names: list[str], config) -> list[str]:
    """Today, each move and each stage heuristic among ``names``: the columns a best plan stands beside."""
    from oce_sim.studies.planner import planned_stage

    return [name for name in dict.fromkeys(names) if planned_stage(name, config.stage) is not None]


def _best_plans(names: list[str], config, budget: int, progress: bool) -> list:
    """Each of ``names`` played with the best stationary plan its stage allows (searched, or read from the cache:
    a line says which, and where)."""
    from oce_sim.studies.planner import best_label, make_strategy, planned_stage, search_workers

    out = []
    for name in names:
        policy = make_strategy(f"best@{budget}", config, planned_stage(name, config.stage), progress=progress,
                               note=lambda line: err.print(escape(line)), workers=search_workers(config, budget))
        policy.name = best_label(name, budget)
        out.append((policy, None))
    return out


def _check_drivers(policies: dict, baseline: str) -> list[str]:
    """Refuse ``--drivers`` where it cannot apply (exit 2 before any episode); the strategies it leaves out."""
    from oce_sim.studies.drivers import decomposable, replays_world

    if replays_world(policies[baseline]):
        fail(f"--drivers cannot decompose against --baseline {baseline}: the rollout oracle plays ahead on copies of "
             "the world, which would drive the muted shadow customers too; choose another --baseline")
    shown = decomposable(policies, baseline)
    if not shown:
        fail(f"--drivers has nothing to decompose: every strategy besides the baseline {baseline!r} is the rollout "
             "oracle, or there is none; add a --move or a strategy (e.g. --strategies intervention)")
    skipped = [s for s in policies if s != baseline and s not in shown]
    if skipped:
        err.print(f"note: --drivers leaves out {', '.join(skipped)} (the rollout oracle plays ahead on copies of the "
                  "world, which would drive the muted shadow customers too)")
    return skipped


def _drivers(staging: Path, policies: dict, config, episodes: int, seed: int, baseline: str, stages: dict,
             results, progress: bool, skipped: list[str]):
    """The drivers of each difference: drivers.csv, drivers_by_seed.csv, a waterfall per strategy; the report's
    section."""
    from oce_sim.studies import drivers
    from oce_sim.studies.report import territory_scale

    by_seed = drivers.run(policies, config, episodes, seed, baseline, stages, results, progress)
    summary = drivers.summarise(by_seed)
    drivers.write(staging, by_seed, summary)
    figures = drivers.plot_waterfalls(summary, staging, config.name)
    return drivers.section(summary, episodes, territory_scale(config), figures, skipped)
