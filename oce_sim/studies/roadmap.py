"""A stage roadmap per sub-market, net of what each step of the transformation costs.

A **portfolio file** lists sub-markets (market x brand): a scenario, the number of territories it stands for, today's
stage, and what each step of each entity costs (:data:`DEFAULT_STEP_COSTS`, overridable per portfolio and per
sub-market).  For each sub-market the organisation of today, every uniform stage and every single-entity step up
from today run on the same paired seeds (``agents/organisation.py``); each option's annual benefit over today is
phased in over its ramp-up and netted against its one-off and running costs, giving an NPV and a payback over a
stated horizon.  The target recommended is the option with the highest expected NPV; its probability of being the
best choice is the share of ``K`` draws (the mean over the seeds drawn from its t-distribution, step costs, ramp-ups
and the discount rate drawn around their values) in which it has the highest NPV; whether the choice is *settled*, and
how many seeds would settle it, is ``oce_sim/studies/settling.py``'s.  The break-even one-off cost of a move is the one-off
cost at which its NPV is zero, since transformation costs are the least certain input.

**Benefit (documented choice).**  Per territory, an option's benefit over today has two parts, both paired
differences on the same seeds: a *flow*, the difference in the episode's profit (gross margin minus every promotion
cost), annualised by ``365 / horizon_days`` and earned every year of the roadmap horizon at the phase-in of that
month; and a *stock*, the difference in the value the customer state leaves at the episode's horizon
(``value_at_horizon_usd``, §2.17 of docs/MODEL.md), counted once, at the end of the roadmap horizon, at the phase-in
reached then.  This does not count the multi-period value every year (its tail overlaps the next year's profit);
it assumes the state difference a year of the move builds from today's steady start is the difference it holds
at the end of the horizon.

**Leapfrogging.**  Organisations rarely skip a stage (the white paper), and the interview stresses the move is
"not simple, or quick": a jump of more than one level pays every intermediate step's one-off and running cost,
and its ramp-ups add up (the steps of one entity run one after the other); different entities move in parallel, so a
move's ramp-up is the longest of its entities'.  A move down pays no one-off cost, saves the running cost of the
steps given up and takes effect at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from oce_sim.config import (
    ENTITIES,
    STAGE_NAMES,
    ScenarioConfig,
    ScenarioError,
    StageConfig,
    StrictModel,
    builtin_scenarios,
    deep_merge,
    format_validation_error,
    load_scenario,
    read_yaml_mapping,
    uniform_stage,
)
from oce_sim.studies import settling
from oce_sim.studies.report import Report, population_text, repro_info, scenario_assumptions

MONTHS_PER_YEAR = 12
MAX_SUB_MARKETS = 50
MAX_TERRITORIES = 100_000
MAX_HORIZON_YEARS = 20
MAX_PARAMETER_DRAWS = 64
PARAMETER_DRAW_SEED = 24  # fixed: parameter set d of every sub-market is drawn from default_rng([24, d])

# ------------------------------------------------------------------------------------------- step costs
SALES_CLOUD_ENTERPRISE = ("Salesforce Sales Cloud Enterprise list price USD 165 per user per month (after the "
                          "August 2025 increase), redresscompliance.com 'Salesforce Sales Cloud Licensing Guide 2026'")
SALES_CLOUD_UNLIMITED = ("Unlimited edition about twice Enterprise (USD 330 vs 165 per user per month), same "
                         "source: the step adds the difference")
MARKETING_CLOUD_PRO = ("Salesforce Marketing Cloud Engagement Pro about USD 1,000-1,250 per organisation per month, "
                       "redresscompliance.com 'Salesforce Marketing Automation Platforms: CIO Advisory Playbook'")


class StepCost(StrictModel):
    """What one step of one entity (level k-1 -> k) costs a sub-market."""

    one_off_usd: float = Field(0.0, ge=0.0, le=1e10, description="one-off cost per sub-market (build, buy or "
                               "partner; integration; simplification; change programme)")
    one_off_usd_per_rep: float = Field(0.0, ge=0.0, le=1e7, description="one-off cost per rep (training, "
                                       "incentive redesign)")
    running_usd_per_year: float = Field(0.0, ge=0.0, le=1e10, description="running cost per sub-market per year "
                                        "(platform licences, data, people)")
    running_usd_per_rep_per_year: float = Field(0.0, ge=0.0, le=1e7, description="running cost per rep per year "
                                                "(per-user licences)")
    ramp_months: float = Field(6.0, ge=0.0, le=120.0, description="months until the step's benefit is fully in "
                               "(linear phase-in)")
    status: Literal["sourced", "assumption"] = "assumption"
    source: str = ""


class EntitySteps(StrictModel):
    """The three steps of one entity, named by the level they reach."""

    to_1: StepCost = StepCost()
    to_2: StepCost = StepCost()
    to_3: StepCost = StepCost()

    def step(self, level: int) -> StepCost:
        return getattr(self, f"to_{level}")


class StepCosts(StrictModel):
    customer: EntitySteps = EntitySteps()
    sales: EntitySteps = EntitySteps()
    marketing: EntitySteps = EntitySteps()
    it: EntitySteps = EntitySteps()


def _step(one_off: float, running: float, ramp: float, per_rep_one_off: float = 0.0, per_rep_running: float = 0.0,
          status: str = "assumption", source: str = "") -> dict[str, Any]:
    return dict(one_off_usd=one_off, running_usd_per_year=running, ramp_months=ramp, one_off_usd_per_rep=per_rep_one_off,
                running_usd_per_rep_per_year=per_rep_running, status=status, source=source)


# Defaults per sub-market.  Sourced where a public list price exists (per-user CRM licences, a marketing automation
# platform); the rest are assumptions of the order of magnitude of an implementation programme, to be replaced by
# the user's own quotes (the break-even one-off cost says how far they may be off before the answer changes).
DEFAULT_STEP_COSTS: StepCosts = StepCosts.model_validate({
    "customer": {
        "to_1": _step(100_000, 20_000, 6, source="portal that captures customers' questions (web build)"),
        "to_2": _step(150_000, 50_000, 9, source="account stakeholder mapping: reference data licence and curation"),
        "to_3": _step(300_000, 60_000, 12, source="preference centre and experience packages"),
    },
    "sales": {
        "to_1": _step(200_000, 0, 6, 2_000, 1_980, "sourced", "running: " + SALES_CLOUD_ENTERPRISE + "; one-off "
                      "(implementation, rep training) an assumption"),
        "to_2": _step(150_000, 0, 9, 3_000, 0, source="question and recording workflows, coaching, incentives "
                      "redesigned (people and incentives)"),
        "to_3": _step(300_000, 0, 12, 5_000, 1_980, "sourced", "running: " + SALES_CLOUD_UNLIMITED + "; one-off "
                      "(rep-led orchestration, outcome-based incentives) an assumption"),
    },
    "marketing": {
        "to_1": _step(100_000, 15_000, 6, status="sourced", source="running: " + MARKETING_CLOUD_PRO + "; one-off "
                      "an assumption"),
        "to_2": _step(150_000, 30_000, 9, source="joint planning with the field's records (process, analysts)"),
        "to_3": _step(500_000, 150_000, 12, source="journey orchestration / next-best-action engine and its team"),
    },
    "it": {
        "to_1": _step(300_000, 100_000, 9, source="weekly integrated data warehouse of every channel "
                      "(simplification before transformation)"),
        "to_2": _step(300_000, 100_000, 9, source="behavioural data in one place, 4-day latency"),
        "to_3": _step(600_000, 200_000, 12, source="near-real-time integration (daily, 1-day latency)"),
    },
})


class Uncertainty(StrictModel):
    """How the uncertain inputs are drawn for the probability of being the best choice."""

    cost_sigma: float = Field(0.5, ge=0.0, le=3.0, description="sd of log of each step's cost multiplier (lognormal, "
                              "median 1: a factor of 2.7 at 2 sd)")
    ramp_sigma: float = Field(0.3, ge=0.0, le=3.0, description="sd of log of each step's ramp-up multiplier")
    discount_rate_low: float = Field(0.5, ge=0.0, le=10.0, description="discount rate drawn uniform between this and "
                                     "discount_rate_high times the scenario's")
    discount_rate_high: float = Field(1.5, ge=0.0, le=10.0)

    @field_validator("discount_rate_high")
    @classmethod
    def _high_not_below_low(cls, value: float, info: ValidationInfo) -> float:
        # refused here, naming the field: drawn the other way round the draws would be meaningless
        low = info.data.get("discount_rate_low")
        if low is not None and value < low:
            raise ValueError(f"must be at least discount_rate_low ({low:g}), got {value:g}")
        return value


class SubMarket(StrictModel):
    # territories and stage change the answer (a territory's result is multiplied by the first; the options and
    # costs start from the second), so neither is defaulted: a missing one is an error naming it.
    name: str = Field(..., min_length=1, max_length=64, description="the sub-market's name (market x brand)")
    scenario: str = Field(..., min_length=1, max_length=1000, description="a built-in scenario name or a YAML path "
                          "relative to the portfolio file")
    territories: int = Field(..., ge=1, le=MAX_TERRITORIES, description="how many territories the sub-market has: "
                             "a territory's paired result is multiplied by it")
    stage: StageConfig = Field(..., description="today's stage: 0-3 for every entity, or every entity's "
                               "{customer: K, sales: K, marketing: K, it: K}")
    step_costs: StepCosts = DEFAULT_STEP_COSTS
    # the portfolio plan's bounds (oce_sim/studies/portfolio_plan.py, `roadmap --budget`); the roadmap ignores them
    min_stage: Optional[StageConfig] = Field(None, description="the plan's floor: the stage every entity must reach "
                                             "by the horizon (default today's)")
    max_stage: Optional[StageConfig] = Field(None, description="the plan's ceiling: the highest stage of each entity "
                                             "(default today's + 1, at most 3)")

    @field_validator("stage", "min_stage", "max_stage", mode="before")
    @classmethod
    def _stage_from_int(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, Mapping):  # a partial mapping would default the entities it leaves out
            missing = [e for e in ENTITIES if e not in value]
            if missing:
                raise ValueError(f"give every entity's stage; missing: {', '.join(missing)} (today's stage is not "
                                 "defaulted)" if info.field_name == "stage" else
                                 f"give every entity's stage; missing: {', '.join(missing)}")
        return uniform_stage(value)

    @model_validator(mode="after")
    def _plan_bounds(self) -> "SubMarket":
        # a plan only moves up (oce_sim/studies/portfolio_plan.py): today <= min_stage <= max_stage, entity by entity
        problems = []
        for entity in ENTITIES:
            today = getattr(self.stage, entity)
            low = getattr(self.min_stage, entity) if self.min_stage else today
            high = getattr(self.max_stage, entity) if self.max_stage else max(low, today)
            if low < today:
                problems.append(f"min_stage.{entity} {low} is below today's {today} (a plan only moves up)")
            if high < today:
                problems.append(f"max_stage.{entity} {high} is below today's {today} (a plan only moves up)")
            if high < low:
                problems.append(f"max_stage.{entity} {high} is below min_stage.{entity} {low}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Portfolio(StrictModel):
    name: str = Field("portfolio", min_length=1, max_length=64)
    description: str = ""
    horizon_years: float = Field(3.0, gt=0.0, le=MAX_HORIZON_YEARS)
    uncertainty: Uncertainty = Uncertainty()
    step_costs: StepCosts = DEFAULT_STEP_COSTS
    sub_markets: list[SubMarket] = Field(..., min_length=1, max_length=MAX_SUB_MARKETS)

    @field_validator("sub_markets")
    @classmethod
    def _unique_names(cls, value: list[SubMarket]) -> list[SubMarket]:
        names = [m.name for m in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"sub-market names must be unique; repeated: {', '.join(repeated)}")
        return value


class PortfolioError(ValueError):
    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        super().__init__(f"invalid portfolio {source}:\n  " + "\n  ".join(problems))


@dataclass
class Market:
    """A sub-market resolved: its scenario with today's stage (the market's history pinned to it)."""

    spec: SubMarket
    config: ScenarioConfig
    costs_given: tuple[str, ...] = ()  # the step costs the portfolio file gives (entity.to_K.field); the rest default
    best_plan: int = 0  # K > 0: each option plays the best plan its stage allows (best@K), not the rules of thumb

    @property
    def today(self) -> StageConfig:
        return self.config.stage


def _merge_costs(defaults: Mapping[str, Any], override: Any) -> Any:
    return deep_merge(defaults, override) if isinstance(override, Mapping) else override


def _leaves(value: Any, prefix: str = "") -> list[str]:
    """The dotted paths of every value a nested mapping gives."""
    if isinstance(value, Mapping) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{prefix}.{k}" if prefix else str(k))]
    return [prefix] if prefix else []


def load_portfolio(path: Path) -> tuple[Portfolio, list[Market]]:
    """Read and validate a portfolio file (the scenario files' limits and strictness), and resolve every
    sub-market's scenario.  Raises :class:`PortfolioError` listing every problem by field path."""
    source = str(path)
    try:
        data = read_yaml_mapping(path)
    except ScenarioError as exc:
        raise PortfolioError(source, exc.problems) from None
    costs = _merge_costs(DEFAULT_STEP_COSTS.model_dump(), data.get("step_costs", {}))
    shared = _leaves(data.get("step_costs", {}))
    markets = data.get("sub_markets")
    given = [tuple(dict.fromkeys([*shared, *_leaves(m.get("step_costs", {}))])) if isinstance(m, Mapping) else ()
             for m in (markets if isinstance(markets, list) else [])]
    data = {**data, "step_costs": costs}
    if isinstance(markets, list) and isinstance(costs, Mapping):
        data["sub_markets"] = [{**m, "step_costs": _merge_costs(costs, m.get("step_costs", {}))}
                               if isinstance(m, Mapping) else m for m in markets]
    try:
        portfolio = Portfolio.model_validate(data)
    except ValidationError as exc:
        raise PortfolioError(source, format_validation_error(exc, Portfolio)) from None
    resolved, problems = [], []
    for i, market in enumerate(portfolio.sub_markets):
        try:
            config = load_scenario(_scenario_ref(market.scenario, path.parent),
                                   overrides={"stage": market.stage.model_dump()})
            resolved.append(Market(market, config, given[i]))
        except ScenarioError as exc:
            problems += [f"sub_markets.{i}.scenario: {exc.source}: {p}" for p in exc.problems[:5]]
    if problems:
        raise PortfolioError(source, problems)
    return portfolio, resolved


def builtin_portfolios() -> dict[str, Path]:
    """The portfolios shipped with the scenarios (``scenarios/portfolios/*.yaml``), by name."""
    from oce_sim.config import repo_scenario_dir

    folder = repo_scenario_dir() / "portfolios"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def _scenario_ref(scenario: str, folder: Path) -> str:
    """A built-in name, else a path relative to the portfolio's folder that stays inside it."""
    if scenario in builtin_scenarios():
        return scenario
    relative = Path(scenario)
    target = (folder / relative).resolve()
    if relative.is_absolute() or not target.is_relative_to(folder.resolve()):
        raise ScenarioError(scenario, ["(file): give a built-in name or a path inside the portfolio's folder"])
    return str(target)


# ----------------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class Option:
    label: str
    kind: Literal["today", "uniform", "step"]
    stage: StageConfig


def stage_key(stage: StageConfig) -> tuple[int, ...]:
    return tuple(getattr(stage, e) for e in ENTITIES)


def options(today: StageConfig) -> list[Option]:
    """Today, every uniform stage and every single-entity step up from today (each stage once)."""
    found: dict[tuple[int, ...], Option] = {stage_key(today): Option("today", "today", today)}
    for level in range(4):
        stage = StageConfig.uniform(level)
        found.setdefault(stage_key(stage), Option(f"stage={level}", "uniform", stage))
    for entity in ENTITIES:
        for level in range(getattr(today, entity) + 1, 4):
            stage = today.model_copy(update={entity: level})
            found.setdefault(stage_key(stage), Option(f"{entity}={level}", "step", stage))
    return list(found.values())


@dataclass
class MoveCost:
    """What a move from ``today`` to ``target`` costs a sub-market (every intermediate step included)."""

    one_off_usd: float
    running_usd_per_year: float  # negative: running cost saved by a move down
    ramp_months: float
    steps: list[tuple[str, int]] = field(default_factory=list)  # (entity, level reached) for every step paid


def move_cost(today: StageConfig, target: StageConfig, costs: StepCosts, reps: int,
              cost_factor: Mapping[tuple[str, int], float] | None = None,
              ramp_factor: Mapping[tuple[str, int], float] | None = None) -> MoveCost:
    """Sum of every step between ``today`` and ``target``: a jump of more than one level pays each intermediate
    step's one-off and running cost, and its ramp-ups add up; entities move in parallel (the longest ramp counts).
    ``reps``: the sub-market's reps (territories x reps per territory), for per-rep costs.  The factors (drawn
    multipliers per step) default to 1."""
    one_off = running = ramp = 0.0
    steps = []
    for entity in ENTITIES:
        a, b = getattr(today, entity), getattr(target, entity)
        entity_ramp = 0.0
        for level in range(min(a, b) + 1, max(a, b) + 1):
            step = getattr(costs, entity).step(level)
            f = (cost_factor or {}).get((entity, level), 1.0)
            run = f * (step.running_usd_per_year + step.running_usd_per_rep_per_year * reps)
            if b > a:
                one_off += f * (step.one_off_usd + step.one_off_usd_per_rep * reps)
                running += run
                entity_ramp += step.ramp_months * (ramp_factor or {}).get((entity, level), 1.0)
                steps.append((entity, level))
            else:
                running -= run
        ramp = max(ramp, entity_ramp)
    return MoveCost(one_off, running, ramp, steps)


# -------------------------------------------------------------------------------------------- arithmetic
def phase_in(months: np.ndarray, ramp_months: float) -> np.ndarray:
    """The share of the full benefit earned in month ``m`` (1, 2, ...): linear over the ramp-up, at mid-month."""
    if ramp_months <= 0:
        return np.ones_like(months, dtype=float)
    return np.clip((months - 0.5) / ramp_months, 0.0, 1.0)


def cash_flows(benefit_per_year: float, one_off: float, running_per_year: float, ramp_months: float,
               horizon_years: float, terminal: float = 0.0) -> np.ndarray:
    """Monthly cash flows: month 0 holds the one-off cost; month m (1..12Y) the phased benefit minus the running
    cost, a twelfth of a year's each; the last month adds ``terminal`` (the value left) at its phase-in."""
    n = int(round(horizon_years * MONTHS_PER_YEAR))
    months = np.arange(1, n + 1, dtype=float)
    share = phase_in(months, ramp_months)
    flows = np.empty(n + 1)
    flows[0] = -one_off
    flows[1:] = (benefit_per_year * share - running_per_year) / MONTHS_PER_YEAR
    if n:
        flows[-1] += terminal * share[-1]
    return flows


def npv(flows: np.ndarray, rate_per_year: float) -> float:
    """Present value of monthly flows (month m discounted by (1 + rate) ** (-m / 12))."""
    months = np.arange(flows.size, dtype=float)
    return float(np.sum(flows * (1.0 + rate_per_year) ** (-months / MONTHS_PER_YEAR)))


def payback_months(flows: np.ndarray) -> float:
    """Months until the cumulative (undiscounted) cash flow is no longer negative: 0 with no outlay, NaN when
    not within the horizon.  Give it the flows without the value left at the horizon (not cash in hand)."""
    cumulative = np.cumsum(flows)
    if cumulative[0] >= 0 and np.all(cumulative >= 0):
        return 0.0
    negative = np.nonzero(cumulative < 0)[0]
    last = int(negative[-1])
    return float("nan") if last == flows.size - 1 else float(last + 1)


def break_even_one_off(flows: np.ndarray, rate_per_year: float) -> float:
    """The one-off cost at which the NPV is zero (the NPV is linear in it): the NPV of everything else."""
    rest = flows.copy()
    rest[0] = 0.0
    return npv(rest, rate_per_year)


# -------------------------------------------------------------------------------------------- simulation
def parameter_sets(market: Market, parameter_draws: int) -> list[ScenarioConfig]:
    """The sub-market's scenario under ``parameter_draws`` draws of the calibrated parameters
    (``oce_sim/studies/uncertainty.py``), draw d from the fixed seed ``[PARAMETER_DRAW_SEED, d]``: reruns match and
    every option of the sub-market sees the same sets.  Each set's market history is its own (the steady-start cache
    is keyed by the response parameters): one burn-in per set."""
    from oce_sim.studies.uncertainty import draw_scenario

    return [draw_scenario(market.config, np.random.default_rng([PARAMETER_DRAW_SEED, d]))
            for d in range(parameter_draws)]


def player(market: Market, option: Option, progress: bool = False) -> Any:
    """What plays ``option`` in ``market``: the organisation at its stage (today's rules of thumb) or, with
    ``market.best_plan`` K > 0, the best stationary plan its stage allows (searched on the market's scenario, or read
    from the plan cache: a line on stderr says which)."""
    import sys

    from tqdm.auto import tqdm

    from oce_sim.agents import StationaryPlan
    from oce_sim.agents.organisation import Organisation

    if not market.best_plan:
        return Organisation(option.stage, name=option.label)
    from oce_sim.studies.planner import best_plan, search_workers

    found = best_plan(market.config, option.stage, market.best_plan, progress=progress,
                      note=lambda line: tqdm.write(f"{market.spec.name}, {option.label}: {line}", file=sys.stderr),
                      workers=search_workers(market.config, market.best_plan))
    return StationaryPlan(found.plan, option.stage, name=option.label)


def simulate(markets: Sequence[Market], episodes: int, seed: int, progress: bool = True,
             choices: Callable[[Market], list[Option]] | None = None, parameter_draws: int = 0,
             workers: int = 0) -> pd.DataFrame:
    """Every option of every sub-market on seeds ``seed .. seed+episodes-1`` (paired within a sub-market).  Tidy
    rows ``sub_market, scenario, option, stage, seed, metric, value``.  ``choices``: the options of a sub-market
    (default :func:`options` of today; the portfolio plan passes its ladder's other configurations).
    ``parameter_draws`` D > 0: the seeds run under each of :func:`parameter_sets` (D x the episodes), the rows gain
    a ``parameter_draw`` column and the paired unit is (parameter draw, seed).  An option's seeds play as the
    territories of one batch (``evaluation.run_episodes``), the batches in ``workers`` processes (0: one per usable
    CPU when the work pays for starting them); the rows are the same whatever the workers."""
    choices = choices or (lambda market: options(market.today))
    from tqdm.auto import tqdm

    from oce_sim.agents.organisation import stage_text
    from oce_sim.studies.evaluation import Unit, episode_size, play_units, pool_workers, seed_batches, strategy_config

    seeds = list(range(seed, seed + episodes))
    policies: dict[str, Any] = {}
    rows_of: dict[str, dict[str, Any]] = {}  # per (sub-market, option, parameter draw): its rows' leading columns
    units: list[Unit] = []
    for market in markets:
        bases: list[tuple[dict[str, int], ScenarioConfig]] = (
            [({}, market.config)] if not parameter_draws else
            [({"parameter_draw": d}, c) for d, c in enumerate(parameter_sets(market, parameter_draws))])
        for option in choices(market):
            policy = player(market, option, progress)
            for unit, base in bases:
                label = str(len(policies))
                policies[label] = policy
                rows_of[label] = dict(sub_market=market.spec.name, scenario=market.config.name, option=option.label,
                                      stage=stage_text(option.stage), **unit)
                config = strategy_config(base, policy)
                units += [Unit(label, config, batch) for batch in seed_batches(seeds, config.population.n_hcps)]
    if workers == 0:
        workers = pool_workers(sum(len(unit.seeds) * episode_size(unit.config) for unit in units))
    kpis: dict[tuple[str, int], dict[str, float]] = {}
    total = sum(len(unit.seeds) for unit in units)
    with tqdm(total=total, desc="roadmap", unit="episode", disable=not progress) as bar:
        for index, played in play_units(units, policies, workers, {label: 1.0 for label in policies}):
            unit = units[index]
            for unit_seed, episode in zip(unit.seeds, played):
                kpis[unit.label, unit_seed] = episode.kpis
            bar.set_postfix(sub_market=rows_of[unit.label]["sub_market"], option=rows_of[unit.label]["option"])
            bar.update(len(unit.seeds))
    rows = [dict(**rows_of[label], seed=s, metric=metric, value=float(value))
            for label in policies for s in seeds for metric, value in kpis[label, s].items()]
    columns = ["sub_market", "scenario", "option", "stage", *(["parameter_draw"] if parameter_draws else []), "seed",
               "metric", "value"]
    return pd.DataFrame(rows, columns=columns)


def paired_units(results: pd.DataFrame, market: Market) -> list[tuple[int, ...]]:
    """A sub-market's paired units, sorted: ``(seed,)``, or ``(parameter_draw, seed)`` where the results draw the
    calibrated parameters (:func:`simulate`'s ``parameter_draws``)."""
    frame = results[results.sub_market == market.spec.name]
    keys = ["parameter_draw", "seed"] if "parameter_draw" in frame else ["seed"]
    return sorted({tuple(int(v) for v in row) for row in frame[keys].to_numpy()})


def paired_benefits(results: pd.DataFrame, market: Market,
                    labels: Sequence[str] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per option and seed, per territory: the annualised flow benefit (profit difference to today x 365 /
    horizon days) and the stock (difference in value left at the horizon).  Arrays ``[option, seed]``.
    ``labels``: the options, today's first (default every option of :func:`options`)."""
    frame = results[(results.sub_market == market.spec.name)
                    & results.metric.isin(["profit_usd", "value_at_horizon_usd"])]
    keys = ["parameter_draw", "seed"] if "parameter_draw" in frame else ["seed"]
    wide = frame.pivot_table(index=["option", *keys], columns="metric", values="value", aggfunc="first")
    labels = list(labels) if labels is not None else [o.label for o in options(market.today)]
    units = paired_units(frame, market)  # seeds, or (parameter draw, seed) units
    profit = np.array([[wide.loc[(o, *u), "profit_usd"] for u in units] for o in labels])
    value = np.array([[wide.loc[(o, *u), "value_at_horizon_usd"] for u in units] for o in labels])
    annualise = 365.0 / market.config.env.horizon_days
    return labels, (profit - profit[0]) * annualise, value - value[0]


@dataclass
class Appraisal:
    """One sub-market's options appraised at the expected inputs and over the draws."""

    table: pd.DataFrame  # one row per option
    draws: pd.DataFrame  # one row per draw and option: npv_usd


def appraise(results: pd.DataFrame, market: Market, horizon_years: float, uncertainty: Uncertainty, draws: int,
             seed: int) -> Appraisal:
    """NPV, payback and break-even one-off cost of every option at the expected inputs (mean benefit over seeds,
    default costs, the scenario's discount rate), and the NPV of every option in each of ``draws`` draws of the
    uncertain inputs, with which option is best in each.  Results with a ``parameter_draw`` column (the calibrated
    parameters drawn) pool the parameter sets hierarchically (:func:`settling.parameter_mean_draws`)."""
    labels, flow, stock = paired_benefits(results, market)
    units = paired_units(results, market)
    groups = np.array([u[0] for u in units]) if units and len(units[0]) == 2 else None
    opts = options(market.today)
    n_territories = market.spec.territories
    reps = n_territories * market.config.population.n_reps
    costs = market.spec.step_costs
    rate = market.config.economics.discount_rate_per_year
    rows = []
    for i, option in enumerate(opts):
        cost = move_cost(market.today, option.stage, costs, reps)
        benefit = float(flow[i].mean()) * n_territories
        terminal = float(stock[i].mean()) * n_territories
        args = (benefit, cost.one_off_usd, cost.running_usd_per_year, cost.ramp_months, horizon_years)
        flows = cash_flows(*args, terminal)
        rows.append(dict(sub_market=market.spec.name, option=option.label, kind=option.kind,
                         stage=_stage_text(option.stage), benefit_usd_per_year=benefit, value_left_usd=terminal,
                         one_off_usd=cost.one_off_usd, running_usd_per_year=cost.running_usd_per_year,
                         ramp_months=cost.ramp_months, steps=len(cost.steps), npv_usd=npv(flows, rate),
                         payback_months=payback_months(cash_flows(*args)),  # cash only: no value left
                         break_even_one_off_usd=break_even_one_off(flows, rate)))
    table = pd.DataFrame(rows)
    rng = np.random.default_rng([seed, len(market.spec.name), *market.spec.name.encode()])
    # the mean benefit over the seeds from its t-distribution, not a bootstrap of few seeds (settling.py): paired,
    # flow and stock of every option weighting the same seeds
    # with parameter draws: draw k on parameter set k mod D, the mean over that set's seeds from its t-distribution
    means = (settling.mean_draws(np.stack([flow, stock], axis=1), draws, rng) if groups is None else
             settling.parameter_mean_draws(np.stack([flow, stock], axis=1), groups, draws, rng))
    sampled = np.empty((draws, len(opts)))
    all_steps = [(e, k) for e in ENTITIES for k in (1, 2, 3)]
    for d in range(draws):
        cost_f = dict(zip(all_steps, rng.lognormal(0.0, uncertainty.cost_sigma, len(all_steps))))
        ramp_f = dict(zip(all_steps, rng.lognormal(0.0, uncertainty.ramp_sigma, len(all_steps))))
        r = rate * rng.uniform(uncertainty.discount_rate_low, uncertainty.discount_rate_high)
        for i, option in enumerate(opts):
            cost = move_cost(market.today, option.stage, costs, reps, cost_f, ramp_f)
            flows = cash_flows(float(means[d, i, 0]) * n_territories, cost.one_off_usd,
                               cost.running_usd_per_year, cost.ramp_months, horizon_years,
                               float(means[d, i, 1]) * n_territories)
            sampled[d, i] = npv(flows, r)
    best = sampled.argmax(axis=1) if draws else np.array([], dtype=int)
    table["p_best"] = [float(np.mean(best == i)) if draws else float("nan") for i in range(len(opts))]
    table["npv_low_usd"] = np.percentile(sampled, 5, axis=0) if draws else np.nan
    table["npv_high_usd"] = np.percentile(sampled, 95, axis=0) if draws else np.nan
    # how far each option trails the recommended one, paired over the same draws: is the recommendation
    # distinguishable from the runner-up?
    gap = sampled[:, [int(table.npv_usd.to_numpy().argmax())]] - sampled
    table["gap_to_recommended_low_usd"] = np.percentile(gap, 5, axis=0) if draws else np.nan
    table["gap_to_recommended_high_usd"] = np.percentile(gap, 95, axis=0) if draws else np.nan
    sets = np.unique(groups) if groups is not None else None
    draw_frame = pd.DataFrame([dict(sub_market=market.spec.name, draw=d, option=labels[i], npv_usd=sampled[d, i],
                                    **({} if sets is None else {"parameter_draw": int(sets[d % sets.size])}))
                               for d in range(draws) for i in range(len(opts))])
    return Appraisal(_with_verdict(table, flow, stock, market, horizon_years), draw_frame)


def _with_verdict(table: pd.DataFrame, flow: np.ndarray, stock: np.ndarray, market: Market,
                  horizon_years: float) -> pd.DataFrame:
    """``table`` with the sub-market's verdict on every row (settling.py): ``settled``, ``seeds`` and
    ``seeds_to_settle``, estimated from the per-seed NPVs of the best and the runner-up at the expected costs."""
    best, runner = recommend(table), runner_up(table)
    if runner is None or not np.isfinite(best.p_best):
        return table.assign(settled=False, seeds=flow.shape[1], seeds_to_settle=np.nan)
    costs, reps, n = market.spec.step_costs, market.spec.territories * market.config.population.n_reps, market.spec.territories
    rate = market.config.economics.discount_rate_per_year

    def per_seed(row: pd.Series) -> np.ndarray:
        cost = move_cost(market.today, options(market.today)[row.name].stage, costs, reps)
        return np.array([npv(cash_flows(f * n, cost.one_off_usd, cost.running_usd_per_year, cost.ramp_months,
                                        horizon_years, s * n), rate) for f, s in zip(flow[row.name], stock[row.name])])

    v = settling.verdict(best.option, runner.option, best.p_best, runner.gap_to_recommended_low_usd > 0,
                         per_seed(best) - per_seed(runner), confidence=0.9)
    return table.assign(settled=v.settled, seeds=v.seeds,
                        seeds_to_settle=np.nan if v.seeds_needed is None else v.seeds_needed)


def table_verdict(table: pd.DataFrame) -> settling.Verdict:
    """The verdict :func:`appraise` left on a sub-market's options table."""
    best, runner = recommend(table), runner_up(table)
    needed = best.get("seeds_to_settle", np.nan)
    return settling.Verdict(best.option, None if runner is None else runner.option, float(best.p_best),
                            runner is None or bool(runner.gap_to_recommended_low_usd > 0), int(best.get("seeds", 0)),
                            None if not np.isfinite(needed) else int(needed))


def verdict_text(table: pd.DataFrame) -> str:
    """The roadmap table's cell: settled, or not with the seeds that would settle it."""
    v = table_verdict(table)
    if v.settled:
        return "yes"
    if v.seeds_needed is None:
        return f"no (over {settling.MAX_SEEDS_SUGGESTED} seeds)"
    return f"no (about {v.seeds_needed} seeds)" if v.seeds_needed > v.seeds else "no (not by seeds)"


def _stage_text(stage: StageConfig) -> str:
    values = stage_key(stage)
    return f"{values[0]} ({STAGE_NAMES[values[0]]})" if len(set(values)) == 1 else "c{}s{}m{}i{}".format(*values)


def recommend(table: pd.DataFrame) -> pd.Series:
    """The option with the highest expected NPV (today when no move pays)."""
    return table.loc[table.npv_usd.idxmax()]


def runner_up(table: pd.DataFrame) -> pd.Series | None:
    """The option with the highest expected NPV after the recommended one (None with one option)."""
    others = table.drop(index=table.npv_usd.idxmax())
    return None if others.empty else others.loc[others.npv_usd.idxmax()]


# ---------------------------------------------------------------------------------------- defaults and scale
def defaults_used(portfolio: Portfolio, markets: Sequence[Market], horizon_given: bool = False) -> list[str]:
    """Every input that changes the answer and was not given, with the default used (``horizon_given``: the
    command line set the horizon), for the console and the report."""
    lines = []
    if not horizon_given and "horizon_years" not in portfolio.model_fields_set:
        lines.append(f"horizon: {portfolio.horizon_years:g} years (the default; set horizon_years in the portfolio "
                     "or --horizon-years)")
    unset = [n for n in Uncertainty.model_fields if n not in portfolio.uncertainty.model_fields_set]
    if unset:
        lines.append("uncertainty: " + ", ".join(f"{n} {getattr(portfolio.uncertainty, n):g}" for n in unset)
                     + " (the defaults; set them under uncertainty:)")
    for market in markets:
        lines.append(f"{market.spec.name}: step costs {cost_source(market)}")
    return lines


def cost_source(market: Market) -> str:
    """Where a sub-market's step costs come from: the defaults, and which values the portfolio gives."""
    if not market.costs_given:
        return "all the defaults of docs/MODEL.md §4b"
    shown = ", ".join(market.costs_given[:6]) + (f" and {len(market.costs_given) - 6} more"
                                                  if len(market.costs_given) > 6 else "")
    return f"the defaults of docs/MODEL.md §4b except {shown} (given in the portfolio)"


def territory_text(market: Market) -> str:
    """The scale of a sub-market's totals: its territories and what one territory is."""
    n = market.spec.territories
    return f"the sub-market's {n} territor{'ies' if n != 1 else 'y'} in all (each {population_text(market.config)})"


# ------------------------------------------------------------------------------------------------ output
def roadmap_table(markets: Sequence[Market], tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One row per sub-market: today, the recommended target, its NPV with the 90% interval over the draws,
    payback, P(best), and the break-even one-off cost of every move up (against its default)."""
    from oce_sim.studies.planner import PLANNED_BY

    rows = []
    for market, table in zip(markets, tables):
        best = recommend(table)
        moves = table[table.one_off_usd > 0]
        other = ("best_plan" if table.ranked_by.iloc[0] == "rules-of-thumb" else "rules_of_thumb") \
            if "ranked_by" in table else ""
        rows.append({
            "sub-market": market.spec.name, "scenario": market.config.name,
            "territories": market.spec.territories, "today": _stage_text(market.today),
            "recommended": f"{best.option}: {best.stage}" if best.option != "today" else "stay (today)",
            "NPV (USD k) [90%]": f"{best.npv_usd / 1e3:+,.0f} [{best.npv_low_usd / 1e3:+,.0f}, "
                                 f"{best.npv_high_usd / 1e3:+,.0f}]",
            "payback (months)": _months(best.payback_months),
            "P(best)": f"{best.p_best:.0%}",
            "settled": verdict_text(table) if "settled" in table else "",
            "runner-up (NPV vs recommended, USD k) [90%]": _gap_text(table),
            "break-even one-off, USD k (default)": "; ".join(
                f"{r.option} {_break_even_text(r.break_even_one_off_usd)} ({r.one_off_usd / 1e3:,.0f})"
                for r in moves.itertuples()),
            **({"ranked by": PLANNED_BY[table.ranked_by.iloc[0]],
                "recommended with the other plans": str(table[f"recommended_{other}"].iloc[0])}
               if "ranked_by" in table else {}),
        })
    return pd.DataFrame(rows)


PLANNED_COLUMN = {"rules-of-thumb": "rules_of_thumb", "best-plan": "best_plan"}


def with_both_values(table: pd.DataFrame, other: pd.DataFrame, rank_by: str) -> pd.DataFrame:
    """A sub-market's options appraised with the plans ``rank_by`` names (``table``, which ranks) beside the same
    options appraised with the other plans (``other``): ``npv_<plans>_usd`` with its 5th-95th percentiles for both,
    ``recommended_<plans>`` (the option each would recommend) and ``ranked_by``."""
    from oce_sim.studies.planner import RANK_BY

    other_by = next(r for r in RANK_BY if r != rank_by)
    out = table.copy()
    theirs = other.set_index("option").loc[list(table.option)]
    for by, frame in ((rank_by, table.set_index("option").loc[list(table.option)]), (other_by, theirs)):
        name = PLANNED_COLUMN[by]
        for column in ("npv_usd", "npv_low_usd", "npv_high_usd"):
            out[column.replace("npv", f"npv_{name}")] = frame[column].to_numpy()
        out[f"recommended_{name}"] = str(recommend(frame.reset_index()).option)
    out["ranked_by"] = rank_by
    return out


def twice_rows(tables: Sequence[pd.DataFrame]) -> tuple[list[str], list[tuple[str, ...]]]:
    """Each sub-market's options valued twice (tables of :func:`with_both_values`): NPV over today with today's
    rules of thumb and with the best plan each stage allows, USD k [90%]; the recommended option of each marked."""
    def cell(row: Any, name: str) -> str:
        mark = " (recommended)" if row.option == getattr(row, f"recommended_{name}") else ""
        return (f"{getattr(row, f'npv_{name}_usd') / 1e3:+,.0f} [{getattr(row, f'npv_{name}_low_usd') / 1e3:+,.0f}, "
                f"{getattr(row, f'npv_{name}_high_usd') / 1e3:+,.0f}]{mark}")

    rows = [(row.sub_market, row.option, cell(row, "rules_of_thumb"), cell(row, "best_plan"))
            for table in tables for row in table.itertuples()]
    return ["sub-market", "option", "NPV with today's rules of thumb (USD k) [90%]",
            "NPV with the best plan each stage allows (USD k) [90%]"], rows


def _gap_text(table: pd.DataFrame) -> str:
    """The runner-up and its NPV minus the recommended option's, with the 90% interval over the draws."""
    runner = runner_up(table)
    if runner is None:
        return "none"
    gap = (runner.npv_usd - recommend(table).npv_usd) / 1e3
    low, high = -runner.gap_to_recommended_high_usd / 1e3, -runner.gap_to_recommended_low_usd / 1e3
    return f"{runner.option}: {gap:+,.0f} [{low:+,.0f}, {high:+,.0f}]"


def _break_even_text(value: float) -> str:
    """``none`` where the move loses money even if its one-off cost were zero."""
    return "none" if value < 0 else f"{value / 1e3:,.0f}"


def _months(value: float) -> str:
    return "not within horizon" if not np.isfinite(value) else f"{value:.0f}"


def markdown(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in frame.to_numpy()]
    return "\n".join([head, rule, *body])


SETTLED_NOTE = (f"A choice is settled (column settled) when the recommended option is the best in at least "
                f"{settling.SETTLED_P_BEST:.0%} of the draws, the 90% interval (5th-95th percentile) of the runner-up's "
                "NPV minus its own over the same draws lies below zero, and there are at least "
                f"{settling.MIN_SEEDS} seeds; otherwise the column estimates the seeds that would settle it "
                "(oce_sim/studies/settling.py).")
SCALE_NOTE = ("Every USD figure is a sub-market's total: the paired result of one territory times the sub-market's "
              "territories (column territories; one territory's customers and reps are in the assumptions).")


def defaults_paragraph(defaults: Sequence[str]) -> str:
    return f"Defaults used (not given in the portfolio): {'; '.join(defaults)}."


def summary_markdown(portfolio: Portfolio, roadmap: pd.DataFrame, options_table: pd.DataFrame, episodes: int,
                     seed: int, draws: int, horizon_years: float, defaults: Sequence[str] = (),
                     parameter_draws: int = 0) -> str:
    cols = ["sub_market", "option", "stage", "benefit_usd_per_year", "value_left_usd", "one_off_usd",
            "running_usd_per_year", "ramp_months", "npv_usd", "npv_low_usd", "npv_high_usd", "payback_months",
            "p_best", "break_even_one_off_usd"]
    shown = options_table[cols].copy()
    for c in cols[3:]:
        shown[c] = shown[c].map(lambda v, c=c: f"{v:.0%}" if c == "p_best" else _months(v) if c == "payback_months"
                                else f"{v:.0f}" if c == "ramp_months" else f"{v / 1e3:,.0f}")
    shown.columns = ["sub-market", "option", "stage", "benefit (USD k/yr)", "value left (USD k)", "one-off (USD k)",
                     "running (USD k/yr)", "ramp (months)", "NPV (USD k)", "NPV P5", "NPV P95", "payback (months)",
                     "P(best)", "break-even one-off (USD k)"]
    return "\n".join([
        f"# Stage roadmap: {portfolio.name}", "",
        f"{episodes} paired seeds from {seed} per option, {draws} draws of the uncertain inputs, a {horizon_years:g}-"
        "year horizon at each scenario's discount rate. Benefit: the annualised year-1 profit difference to today, "
        "phased in over the ramp-up, plus the difference in the value left at the horizon, once, at the end "
        "(oce_sim/studies/roadmap.py). NPV intervals are the 5th-95th percentiles over the draws; P(best) is the share of "
        f"draws in which the option has the highest NPV. {SCALE_NOTE}", "",
        settling.roadmap_coverage(episodes, draws, parameter_draws),
        "", SETTLED_NOTE, "",
        *([defaults_paragraph(defaults), ""] if defaults else []),
        markdown(roadmap), "", "## Every option", "", markdown(shown), ""])


# The figure's unit, shared by its axis and the report's caption so that they cannot disagree.
NPV_FIGURE_SCALE, NPV_FIGURE_UNIT = 1e6, "USD millions"


def plot_npv(tables: Sequence[pd.DataFrame], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from oce_sim.storage.outputs import atomic_save_figure

    n = len(tables)
    height = max(3.0, 0.3 * max(len(t) for t in tables) + 1.2)
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, height), squeeze=False)
    for ax, table in zip(axes[0], tables):
        y = np.arange(len(table))
        centre = table.npv_usd.to_numpy() / NPV_FIGURE_SCALE
        low, high = table.npv_low_usd.to_numpy() / NPV_FIGURE_SCALE, table.npv_high_usd.to_numpy() / NPV_FIGURE_SCALE
        best = int(table.npv_usd.to_numpy().argmax())
        colours = ["C2" if i == best else "C0" for i in range(len(table))]
        ax.barh(y, centre, color=colours, alpha=0.8)
        ax.errorbar(centre, y, xerr=[np.nan_to_num(np.maximum(centre - low, 0)),
                                     np.nan_to_num(np.maximum(high - centre, 0))],
                    fmt="none", ecolor="black", capsize=3)
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.set_yticks(y, [f"{o} ({p:.0%})" for o, p in zip(table.option, table.p_best)], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"NPV over today, the sub-market's total ({NPV_FIGURE_UNIT})")
        ax.set_title(str(table.sub_market.iloc[0]), fontsize=10)
    fig.suptitle(f"{title}: NPV of each option net of transformation cost\n(bar: expected; whiskers: 5th-95th "
                 "percentile over draws; green: recommended; P(best) in brackets)", fontsize=9)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
    return path


def cost_defaults_markdown(costs: StepCosts = DEFAULT_STEP_COSTS) -> str:
    """The defaults table of docs/MODEL.md."""
    rows = []
    for entity in ENTITIES:
        for level in (1, 2, 3):
            s = getattr(costs, entity).step(level)
            rows.append([entity, f"{level - 1} -> {level}", f"{s.one_off_usd:,.0f}", f"{s.one_off_usd_per_rep:,.0f}",
                         f"{s.running_usd_per_year:,.0f}", f"{s.running_usd_per_rep_per_year:,.0f}",
                         f"{s.ramp_months:g}", s.status, s.source])
    frame = pd.DataFrame(rows, columns=["entity", "step", "one-off (USD)", "one-off per rep (USD)",
                                        "running (USD/yr)", "running per rep (USD/yr)", "ramp (months)", "status",
                                        "what / source"])
    return markdown(frame)


def run(markets: Sequence[Market], portfolio: Portfolio, episodes: int, seed: int, draws: int,
        horizon_years: float, progress: bool = True, parameter_draws: int = 0) -> tuple[pd.DataFrame, list[Appraisal]]:
    """Simulate and appraise every sub-market.  The tidy results gain, per option and seed, the paired differences
    to today the NPV is built from (per territory): ``benefit_usd_per_year`` (annualised profit) and
    ``value_left_difference_usd``.  ``parameter_draws`` D > 0: every option under the same D draws of the
    calibrated parameters (:func:`simulate`), pooled by :func:`appraise`."""
    results = (simulate(markets, episodes, seed, progress, parameter_draws=parameter_draws) if parameter_draws
               else simulate(markets, episodes, seed, progress))
    return appraise_all(results, markets, portfolio, seed, draws, horizon_years)


def appraise_all(results: pd.DataFrame, markets: Sequence[Market], portfolio: Portfolio, seed: int, draws: int,
                 horizon_years: float) -> tuple[pd.DataFrame, list[Appraisal]]:
    """:func:`run` after the simulation (a sub-market's seeds are those of its rows: the sequential stop gives each
    its own count)."""
    appraisals = [appraise(results, m, horizon_years, portfolio.uncertainty, draws, seed) for m in markets]
    rows = []
    for market in markets:
        labels, flow, stock = paired_benefits(results, market)
        keys = results[results.sub_market == market.spec.name].drop_duplicates("option").set_index("option")
        units = paired_units(results, market)
        for i, label in enumerate(labels):
            for j, unit in enumerate(units):
                where = dict(zip(["parameter_draw", "seed"], unit)) if len(unit) == 2 else {"seed": unit[0]}
                for metric, value in (("benefit_usd_per_year", flow[i, j]), ("value_left_difference_usd", stock[i, j])):
                    rows.append(dict(sub_market=market.spec.name, scenario=market.config.name, option=label,
                                     stage=keys.loc[label, "stage"], **where, metric=metric, value=float(value)))
    return pd.concat([results, pd.DataFrame(rows, columns=results.columns)], ignore_index=True), appraisals


__all__ = ["DEFAULT_STEP_COSTS", "Appraisal", "Market", "MoveCost", "Option", "Portfolio", "PortfolioError",
           "StepCost", "StepCosts", "SubMarket", "Uncertainty", "appraise", "appraise_all", "assumptions_table", "break_even_one_off",
           "builtin_portfolios", "cash_flows", "cost_defaults_markdown", "cost_source", "defaults_used", "load_portfolio",
           "move_cost", "npv", "options", "paired_units", "parameter_sets", "payback_months", "phase_in",
           "plot_npv", "recommend",
           "recommendation_sentence", "roadmap_report", "roadmap_table", "run", "runner_up", "simulate",
           "summary_markdown", "territory_text", "twice_rows", "with_both_values"]


def recommendation_sentence(market: Market, table: pd.DataFrame, horizon_years: float) -> str:
    """One sub-market's answer in words, at its scale: the target, its NPV and payback, whether it is
    distinguishable from staying and from the runner-up, and how often it is the best choice over the draws."""
    best, runner = recommend(table), runner_up(table)

    def npv_text(row: pd.Series) -> str:
        return (f"{row.npv_usd / 1e3:+,.0f} [{row.npv_low_usd / 1e3:+,.0f}, {row.npv_high_usd / 1e3:+,.0f}] USD "
                "thousands")

    head = (f"**{market.spec.name}** ({market.spec.territories} territories, today {_stage_text(market.today)}): ")
    if best.option == "today":
        text = (head + f"**stay** where it is: no move has a positive expected NPV over {horizon_years:g} years for "
                f"{territory_text(market)}")
        if runner is not None:
            text += f"; the best move, {runner.option}, has NPV {npv_text(runner)} against today"
    else:
        text = (head + f"move to **{best.option}: {best.stage}**, NPV {npv_text(best)} over {horizon_years:g} years "
                f"against today for {territory_text(market)} (5th-95th percentile of the draws), payback "
                f"{_months(best.payback_months)} months")
        if not best.npv_low_usd > 0:
            text += "; not distinguishable from staying where it is (its interval includes zero)"
        if runner is not None and runner.option != "today":
            gap = f"{(best.npv_usd - runner.npv_usd) / 1e3:+,.0f} [{runner.gap_to_recommended_low_usd / 1e3:+,.0f}, " \
                  f"{runner.gap_to_recommended_high_usd / 1e3:+,.0f}] USD thousands"
            text += (f"; ahead of the runner-up {runner.option} by {gap}" if runner.gap_to_recommended_low_usd > 0
                     else f"; not distinguishable from the runner-up {runner.option} (ahead by {gap})")
    return text + (f"; the best choice in {best.p_best:.0%} of the draws of seeds, costs, ramp-ups and discount "
                   "rate.")


def assumptions_table(markets: Sequence[Market]) -> tuple[list[str], list[tuple[str, ...]]]:
    """Every sub-market's assumptions side by side: (header, rows), one column per sub-market."""
    per_market = [dict(scenario_assumptions(m.config)) for m in markets]
    keys = list(dict.fromkeys(k for items in per_market for k in items))
    rows = [("territories in the sub-market", *(str(m.spec.territories) for m in markets))]
    rows += [(k, *(items.get(k, "") for items in per_market)) for k in keys]
    rows.append(("step costs", *(cost_source(m) for m in markets)))
    return ["assumption", *(m.spec.name for m in markets)], rows


def roadmap_report(portfolio: Portfolio, markets: Sequence[Market], tables: Sequence[pd.DataFrame], summary_md: str,
                   figure: Path, episodes: int, seed: int, draws: int, horizon_years: float, command: str,
                   defaults: Sequence[str] = (), parameter_draws: int = 0) -> Report:
    """The strategist's report of a roadmap run (``oce_sim.studies.report.Report``): recommendations in words first."""
    lines = [recommendation_sentence(m, t, horizon_years) + " " + settling.verdict_sentence(
        table_verdict(t), "", "step costs, ramp-ups and the discount rate", parameter_draws)
        for m, t in zip(markets, tables)]
    coverage = settling.roadmap_coverage(episodes, draws, parameter_draws)
    lines.append(coverage)
    lines.append("Transformation costs are the least certain input: each move's break-even one-off cost (the cost at "
                 "which its NPV is zero) is in the table; most step costs are assumptions (docs/MODEL.md §4b).")
    section = summary_md.split("\n", 2)[-1].replace(coverage + "\n\n", "", 1)
    if defaults:  # first in the summary, not twice
        lines.append(defaults_paragraph(defaults))
        section = section.replace(defaults_paragraph(defaults) + "\n\n", "", 1)
    header, rows = assumptions_table(markets)
    return Report(
        title=f"Stage roadmap: {portfolio.name}",
        summary_paragraphs=lines,
        sections=[("Roadmap and every option", section,
                   [(figure, f"NPV of each option against today per sub-market, the sub-market's total in "
                             f"{NPV_FIGURE_UNIT}, with the 5th-95th percentile over the draws")])],
        kpis_used=("profit_usd", "value_at_horizon_usd", "profit_multi_period_usd"),
        assumptions=rows, assumptions_header=header,
        repro=repro_info(command, portfolio.model_dump(mode="json"), list(range(seed, seed + episodes)),
                         {"draws": draws, "horizon (years)": horizon_years,
                          **({"parameter draws": parameter_draws} if parameter_draws else {})}),
    )
