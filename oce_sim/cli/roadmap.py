"""``oce-sim roadmap``: a stage roadmap per sub-market, net of transformation cost (``oce_sim.studies.roadmap``)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from oce_sim.cli.common import (
    MAX_BEST_PLAN_BUDGET,
    MAX_EPISODES,
    RANK_BY_OPTION,
    _command_line,
    _output_folder,
    _rich_table,
    best_plan_option,
    check_out,
    check_path,
    check_positive,
    check_rank_by,
    check_seed,
    console,
    fail,
    pd_concat,
)

MAX_DRAWS = 100_000


def _twice(staging: Path, tables: list, budget: int, rank_by: str) -> tuple[str, str]:
    """values_twice.csv (every option's NPV with each plan) and the report's sentence and section."""
    from oce_sim.studies import evaluation
    from oce_sim.studies import roadmap as rm
    from oce_sim.studies.planner import PLANNED_BY, SEARCH_SEEDS_TEXT
    from oce_sim.studies.report import markdown_table

    columns = ["sub_market", "option", "stage", "ranked_by", *(c.format(n) for n in rm.PLANNED_COLUMN.values() for c in
                                                                ("npv_{}_usd", "npv_{}_low_usd", "npv_{}_high_usd",
                                                                 "recommended_{}"))]
    evaluation.atomic_write_text(staging / "values_twice.csv", pd_concat(tables)[columns].to_csv(index=False))
    sentence = (f"Every option is valued twice: played with today's rules of thumb (the organisation at its stage) "
                f"and with the best stationary plan its stage allows (best@{budget}, searched on each sub-market's "
                f"scenario on validation seeds {SEARCH_SEEDS_TEXT}, never on this run's seeds; docs/MODEL.md §4d). "
                f"**The recommendation ranks by {PLANNED_BY[rank_by]}** (--rank-by {rank_by}); the table gives what "
                "the other plans would recommend (values_twice.csv has both NPVs).")
    return sentence, sentence + "\n\n" + markdown_table(*rm.twice_rows(tables))



def roadmap(
    ctx: typer.Context,
    portfolio: Path = typer.Argument(..., help="Portfolio YAML (or a built-in name: example): sub-markets (scenario, territories, today's stage) and "
                                     "step costs (see scenarios/portfolios/example.yaml)."),
    episodes: int = typer.Option(8, help="Paired episodes per option (seeds seed .. seed+episodes-1)."),
    seed: int = typer.Option(0, help="First seed; every option of a sub-market sees the same seeds."),
    draws: int = typer.Option(400, help="Draws of the uncertain inputs (seeds by bootstrap, step costs, ramp-ups, "
                              "discount rate) for P(best) and the NPV intervals."),
    horizon_years: Optional[float] = typer.Option(None, help="NPV and payback horizon in years (default: the "
                                                  "portfolio's, 3)."),
    until_settled: bool = typer.Option(False, "--until-settled", help="Add seeds in rounds (toward each open "
                                       "sub-market's estimate, at most doubling) until every choice is settled or "
                                       "--max-episodes is reached; reports how many seeds each took."),
    max_episodes: int = typer.Option(64, help="With --until-settled: the most seeds a sub-market may reach."),
    out: Path = typer.Option(Path("results/roadmap"), help="Output folder."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    budget: Optional[float] = typer.Option(None, help="A portfolio plan within this transformation budget, USD per "
                                           "year of one-off step costs (running costs count against profit): adds "
                                           "plan.csv, a plan section and budget_curve.png."),
    objective: Optional[str] = typer.Option(None, help="The plan's objective (with --budget): npv (expected, the "
                                            "default) or cvar10 (mean NPV of the worst 10% of draws)."),
    parameter_draws: int = typer.Option(0, help="Draw the model's calibrated parameters (oce_sim/studies/"
                                        "uncertainty.py): every option runs --episodes seeds under each of this many "
                                        "parameter sets (fixed draw seeds, the same sets for every option; D x the "
                                        "episodes, one burn-in per set), pooled so that the NPV intervals and P(best) "
                                        "cover them. 0: off."),
    best_plan: int = best_plan_option("today and every option of each sub-market"),
    rank_by: Optional[str] = RANK_BY_OPTION,
) -> None:
    """A stage roadmap per sub-market: today, every uniform stage and every single-entity step on paired seeds, net
    of transformation cost: NPV, payback, P(best) and the break-even one-off cost of each move."""
    from oce_sim.studies import evaluation, sequential
    from oce_sim.studies import portfolio_plan as pp
    from oce_sim.studies import roadmap as rm
    from oce_sim.studies.settling import roadmap_covers, verdict_sentence

    check_path("PORTFOLIO", portfolio)
    if not portfolio.is_file():
        shipped = rm.builtin_portfolios()
        if str(portfolio) not in shipped:
            fail(f"no such file: {portfolio}; built-in portfolios: {', '.join(shipped) or 'none'}")
        portfolio = shipped[str(portfolio)]
    check_positive("--episodes", episodes, minimum=2, maximum=MAX_EPISODES)
    check_seed(seed, episodes)
    if until_settled:
        check_positive("--max-episodes", max_episodes, minimum=episodes, maximum=MAX_EPISODES)
        check_seed(seed, max_episodes)
    check_positive("--draws", draws, maximum=MAX_DRAWS)
    if horizon_years is not None and not (math.isfinite(horizon_years) and 0 < horizon_years <= rm.MAX_HORIZON_YEARS):
        fail(f"--horizon-years must be in (0, {rm.MAX_HORIZON_YEARS}], got {horizon_years}")
    check_positive("--best-plan", best_plan, minimum=0, maximum=MAX_BEST_PLAN_BUDGET)
    rank_by = check_rank_by(rank_by, best_plan)
    if best_plan:
        from oce_sim.studies.planner import check_seeds

        if check_seeds(seed, max_episodes if until_settled else episodes, best_plan):
            fail(check_seeds(seed, max_episodes if until_settled else episodes, best_plan))
    check_out("--out", out)
    if budget is not None and not (math.isfinite(budget) and 0 <= budget <= pp.MAX_BUDGET_USD):
        fail(f"--budget must be a number of USD per year in [0, {pp.MAX_BUDGET_USD:.0e}], got {budget}")
    if budget is not None and until_settled:  # the plan reads one seed count for every sub-market
        fail("--budget and --until-settled do not run together yet: settle the choices first, then plan with "
             "--episodes at the seeds they took")
    if not 0 <= parameter_draws <= rm.MAX_PARAMETER_DRAWS:
        fail(f"--parameter-draws must be in [1, {rm.MAX_PARAMETER_DRAWS}] (0: off), got {parameter_draws}")
    if parameter_draws and until_settled:  # the sequential stop counts seeds, not (parameter set, seed) units
        fail("--parameter-draws and --until-settled do not run together: settle the choices first, then draw the "
             "parameters with --episodes at the seeds they took")
    if parameter_draws and budget is not None:  # the plan's ladder runs on the scenario's own parameters
        fail("--parameter-draws and --budget do not run together yet: the portfolio plan does not draw the "
             "calibrated parameters")
    if objective is not None and budget is None:
        fail("--objective needs --budget (it is the portfolio plan's objective)")
    if objective is not None and objective not in pp.OBJECTIVES:
        fail(f"--objective must be one of {', '.join(pp.OBJECTIVES)}, got {objective!r}")
    try:
        spec, markets = rm.load_portfolio(portfolio)
    except rm.PortfolioError as exc:
        fail(f"invalid portfolio {exc.source}", exc.problems)
        return
    if best_plan:  # the plans that rank play every path below; the other plans are appraised beside them
        from dataclasses import replace

        other_markets = [replace(m, best_plan=best_plan if rank_by == "rules-of-thumb" else 0) for m in markets]
        markets = [replace(m, best_plan=best_plan if rank_by == "best-plan" else 0) for m in markets]
    horizon = horizon_years if horizon_years is not None else spec.horizon_years
    defaults = rm.defaults_used(spec, markets, horizon_given=horizon_years is not None)
    if budget is not None:  # the plan's limits and floors need no simulation: refused before any work
        too_big = pp.size_problems(markets, horizon)
        if too_big:
            fail("the portfolio plan is over its search limits", too_big)
        if not pp.floors_fit(markets, horizon, budget):
            fail(f"--budget {budget:,.0f} a year cannot reach every sub-market's min_stage within "
                 f"{pp.decision_years(horizon)} years")
        defaults += pp.defaults_used(markets)
    if defaults:  # before the work: a default that was not meant can be stopped at once
        console.print("defaults used (not given in the portfolio):")
        for line in defaults:
            console.print(f"  - {escape(line)}")
    started = time.time()
    with _output_folder(out, "roadmap") as staging:
        stopped = ""
        seeds_shown = str(episodes)
        if until_settled:
            results, appraisals, outcome = sequential.run_until_settled(markets, spec, episodes, seed, draws, horizon,
                                                                        max_episodes, progress=progress)
            episodes = max(outcome.seeds.values())  # each sub-market's own count is in its sentence and options.csv
            counts = sorted(set(outcome.seeds.values()))
            seeds_shown = f"{counts[0]}-{counts[-1]}" if len(counts) > 1 else str(counts[0])
            stopped = sequential.outcome_sentence(outcome, markets, appraisals, max_episodes)
        else:
            results, appraisals = rm.run(markets, spec, episodes, seed, draws, horizon, progress=progress,
                                         parameter_draws=parameter_draws)
        if best_plan:  # the same options on the same seeds with the other plans (the most seeds any sub-market took)
            _, others = rm.run(other_markets, spec, episodes, seed, draws, horizon, progress=progress,
                               parameter_draws=parameter_draws)
            for appraisal, other in zip(appraisals, others):
                appraisal.table = rm.with_both_values(appraisal.table, other.table, rank_by)
        tables = [a.table for a in appraisals]
        table = rm.roadmap_table(markets, tables)
        every = pd_concat(tables)
        evaluation.atomic_write_text(staging / "results.csv", results.to_csv(index=False))
        evaluation.atomic_write_text(staging / "options.csv", every.to_csv(index=False))
        evaluation.atomic_write_text(staging / "draws.csv", pd_concat([a.draws for a in appraisals]).to_csv(index=False))
        evaluation.atomic_write_text(staging / "roadmap.csv", table.to_csv(index=False))
        plan_md, section = "", None
        if budget is not None:
            goal = objective or "npv"
            extra, _paths, solution, shadow, curve = pp.run(markets, spec, results, episodes, seed, draws, horizon,
                                                            budget, goal, progress)
            plan = pp.plan_table(_paths, solution)
            evaluation.atomic_write_text(staging / "plan.csv", plan.to_csv(index=False))
            evaluation.atomic_write_text(staging / "plan_results.csv", extra.to_csv(index=False))
            evaluation.atomic_write_text(staging / "budget_curve.csv", curve.to_csv(index=False))
            curve_figure = pp.plot_budget_curve(curve, budget, staging / "budget_curve.png", spec.name)
            plan_md = pp.plan_markdown(plan, solution, shadow, horizon)
            section = (pp.plan_sentence(solution, shadow), plan_md.split("\n", 2)[-1], curve_figure)
        meta = {"portfolio": spec.model_dump(mode="json"), "scenarios": {m.spec.name: m.config.name for m in markets},
                "episodes": dict(outcome.seeds) if until_settled else episodes, "seed": seed, "draws": draws, "horizon_years": horizon, "defaults_used": defaults,
                "parameter_draws": parameter_draws,
                "until_settled": {"max_episodes": max_episodes, "seeds": outcome.seeds, "rounds": outcome.rounds}
                if until_settled else None, "roadmap": table.to_dict(orient="records"), "options": json.loads(every.to_json(orient="records"))}
        if section is not None:
            meta["plan"] = {"budget_usd_per_year": budget, "objective": solution.objective,
                            "objective_usd": solution.objective_usd, "npv_usd": solution.npv_usd,
                            "shadow_price_usd_per_usd": shadow.usd_per_usd,
                            "steps": json.loads(plan.to_json(orient="records"))}
        evaluation.atomic_write_text(staging / "roadmap.json", json.dumps(meta, indent=2))  # no wall time: reruns match
        summary_md = rm.summary_markdown(spec, table, every, episodes, seed, draws, horizon, defaults, parameter_draws)
        evaluation.atomic_write_text(staging / "roadmap.md", summary_md + ("\n" + plan_md if plan_md else ""))
        figure = rm.plot_npv(tables, staging / "npv_by_option.png", spec.name)
        report = rm.roadmap_report(spec, markets, tables, summary_md, figure, episodes, seed, draws, horizon,
                                   _command_line(ctx), defaults, parameter_draws)
        if stopped:
            report.summary_paragraphs.insert(len(markets), stopped)
        if best_plan:
            twice = _twice(staging, tables, best_plan, rank_by)
            report.summary_paragraphs.insert(len(markets), twice[0])
            report.sections.insert(0, ("Each option, twice", twice[1], []))
        if section is not None:
            report.summary_paragraphs.insert(len(markets), section[0])
            report.sections.append(("Portfolio plan", section[1], [
                (section[2], f"The best plan's value against the yearly budget ({pp.CURVE_UNIT} on both axes)")]))
        report.write(staging)
    console.print(_rich_table(table, f"{spec.name}: stage roadmap over {horizon:g} years ({seeds_shown} paired seeds, "
                              f"{draws} draws; NPV over today with its 5th-95th percentile; {roadmap_covers(parameter_draws)}; USD "
                              "figures are each sub-market's total over its territories)"))
    for market, options_table in zip(markets, tables):
        console.print(f"{escape(market.spec.name)}: {escape(rm.territory_text(market))}")
        console.print("  " + escape(verdict_sentence(rm.table_verdict(options_table), "",
                                                     "step costs, ramp-ups and the discount rate",
                                                     parameter_draws).replace("**", "")))
    if stopped:
        console.print(escape(stopped))
    if best_plan:
        import pandas as pd

        header, rows = rm.twice_rows(tables)
        console.print(_rich_table(pd.DataFrame(rows, columns=header), f"{spec.name}: every option valued twice (NPV "
                                  "over today, each sub-market's total)"))
        console.print(escape(twice[0].replace("**", "")))
    if budget is not None:
        console.print(escape(pp.plan_sentence(solution, shadow).replace("**", "")))
        console.print(f"plan: {out / 'plan.csv'}  budget curve: {out / 'budget_curve.png'}")
    console.print(f"results: {out / 'results.csv'}  options: {out / 'options.csv'}  summary: {out / 'roadmap.md'}  "
                  f"figure: {out / figure.name}  ({time.time() - started:.0f} s)")
