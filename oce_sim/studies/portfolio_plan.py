"""A portfolio plan: which sub-markets move to which stage, and when, under a transformation budget per year.

The roadmap (:mod:`oce_sim.studies.roadmap`) ranks each sub-market's targets alone.  A plan chooses, for every
sub-market and every year of the horizon, the configuration (every entity's level) it is at, so that the one-off
step costs paid in each year stay within the year's budget, maximising the portfolio's expected NPV (or its CVaR at
10% over draws of the same kinds as the roadmap's: the seeds' mean from a t-distribution, step costs,
ramp-ups and the discount rate).

**What counts against the budget.**  The one-off cost of every step taken in a year (per sub-market plus per rep,
at the step costs given, not the drawn ones), in the year the step is taken.  Running costs do not: they count
against profit, in the NPV, as in the roadmap.  An unspent budget does not carry over to the next year.

**The ladder.**  A plan only moves up, one or more levels of one or more entities a year, from today to at most
``max_stage`` (default today's + 1 per entity, at most 3), and must end at or above ``min_stage`` (default today's)
(portfolio fields of each sub-market).  Every configuration in that box is simulated (the roadmap's options that
fall inside it are reused, the rest run on the same paired seeds), so each intermediate stage a plan passes
through has its own value: sales 1 -> 2 -> 3 earns stage 2's value while at 2.

**What adds up (assumed).**  A configuration's benefit over today (annualised profit difference, and the value
left at the horizon) is the roadmap's paired difference measured from today's steady start.  A move in year k
(1-based, taken at its start, month 12(k - 1)) from configuration a to b earns ``benefit(b) - benefit(a)`` a year,
phased in linearly over the move's ramp-up from then on (a leap's ramp-ups add up, entities move in parallel, as in
the roadmap), pays its one-off cost at once and its running cost from then on; at the horizon it adds
``value_left(b) - value_left(a)`` at the phase-in reached then.  Moves add up: a plan's cash flows are the sum of
its moves' (a move started while an earlier one still ramps adds its own ramp on top), and sub-markets are
independent (the portfolio's NPV is the sum of theirs; draw d of every sub-market is combined into the portfolio's
draw d).  A plan of one move in year 1 has exactly the roadmap's NPV for that option.

**The solver.**  Per sub-market every step sequence (a nondecreasing level per entity per year) is enumerated
(at most :data:`MAX_PATHS`, from at most :data:`MAX_CONFIGURATIONS` configurations); a depth-first branch and bound
over sub-markets chooses one sequence each under the yearly budget (bound: the best the remaining sub-markets could
add, ignoring the budget; for CVaR, the mean over the partial plan's worst draws), which is exact; it stops with
:class:`PlanSearchLimit` after :data:`MAX_SEARCH_NODES` partial plans.  The budget's **shadow price** is the
objective's gain per extra USD of yearly budget, from re-solving at the budget +/- :data:`BUDGET_STEP_SHARE`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from oce_sim.config import ENTITIES, StageConfig
from oce_sim.studies import roadmap as rm
from oce_sim.studies.settling import mean_draws

Objective = Literal["npv", "cvar10"]
OBJECTIVES: tuple[str, ...] = ("npv", "cvar10")
CVAR_SHARE = 0.10
MAX_CONFIGURATIONS = 81  # per sub-market: the ladder's configurations simulated (3 levels of every entity)
MAX_PATHS = 20_000  # per sub-market: step sequences enumerated
MAX_SEARCH_NODES = 2_000_000  # partial plans one solve visits
MAX_BUDGET_USD = 1e12
BUDGET_STEP_SHARE = 0.10  # the shadow price re-solves at budget x (1 +/- this)
BUDGET_STEP_AT_ZERO_USD = 100_000.0  # ... or at + this when the budget is zero
CURVE_POINTS = 21
MONTHS = rm.MONTHS_PER_YEAR


class PlanSearchLimit(RuntimeError):
    """The plan is too large to solve exactly within the documented limits."""


# -------------------------------------------------------------------------------------------------- ladder
def bounds(spec: rm.SubMarket) -> tuple[StageConfig, StageConfig]:
    """(floor, ceiling) of a sub-market's plan: ``min_stage`` (default today's) and ``max_stage`` (default today's
    + 1 per entity, at most 3, and at least the floor)."""
    low = spec.min_stage or spec.stage
    high = spec.max_stage or StageConfig(**{e: max(getattr(low, e), min(getattr(spec.stage, e) + 1, 3))
                                            for e in ENTITIES})
    return low, high


def ladder(today: StageConfig, high: StageConfig) -> list[StageConfig]:
    """Every configuration a plan can visit (today <= c <= high, entity by entity), today's first."""
    ranges = [range(getattr(today, e), getattr(high, e) + 1) for e in ENTITIES]
    return [StageConfig(**dict(zip(ENTITIES, levels))) for levels in itertools.product(*ranges)]


def ladder_labels(market: rm.Market) -> list[str]:
    """A label per ladder configuration: the roadmap's option label where it is one of its options."""
    known = {rm.stage_key(o.stage): o.label for o in rm.options(market.today)}
    return [known.get(rm.stage_key(c), "ladder " + rm._stage_text(c)) for c in ladder(market.today, bounds(market.spec)[1])]


def extra_options(market: rm.Market) -> list[rm.Option]:
    """The ladder's configurations the roadmap does not already run."""
    configs = ladder(market.today, bounds(market.spec)[1])
    return [rm.Option(label, "step", c) for label, c in zip(ladder_labels(market), configs)
            if label.startswith("ladder ")]


def plan_size(market: rm.Market, years: int) -> tuple[int, int]:
    """(configurations, step sequences) of a sub-market's plan."""
    today, (_, high) = market.today, bounds(market.spec)
    spans = [getattr(high, e) - getattr(today, e) for e in ENTITIES]
    return math.prod(s + 1 for s in spans), math.prod(math.comb(s + years, years) for s in spans)


def size_problems(markets: Sequence[rm.Market], horizon_years: float) -> list[str]:
    """Every sub-market whose plan is over the search limits (found before any simulation)."""
    problems = []
    for market in markets:
        configs, paths = plan_size(market, decision_years(horizon_years))
        if configs > MAX_CONFIGURATIONS or paths > MAX_PATHS:
            problems.append(f"{market.spec.name}: {configs} configurations and {paths} step sequences over "
                            f"{decision_years(horizon_years)} years (limits {MAX_CONFIGURATIONS} and {MAX_PATHS}): "
                            "lower its max_stage or the horizon")
    return problems


def defaults_used(markets: Sequence[rm.Market]) -> list[str]:
    """The plan's bounds a portfolio leaves to their defaults."""
    lines = []
    for market in markets:
        low, high = bounds(market.spec)
        unset = [n for n in ("min_stage", "max_stage") if getattr(market.spec, n) is None]
        if unset:
            lines.append(f"{market.spec.name}: " + ", ".join(
                f"{n} {rm._stage_text(low if n == 'min_stage' else high)}" for n in unset)
                + " (the defaults: today's, and today's + 1 per entity; set them in the sub-market)")
    return lines


def simulate_ladder(markets: Sequence[rm.Market], episodes: int, seed: int, progress: bool = True) -> pd.DataFrame:
    """The ladder configurations the roadmap does not run, on the roadmap's paired seeds."""
    return rm.simulate(markets, episodes, seed, progress, choices=extra_options)


# --------------------------------------------------------------------------------------------- move values
def decision_years(horizon_years: float) -> int:
    return max(1, math.ceil(horizon_years - 1e-9))


def move_npv(benefit: np.ndarray, value_left: np.ndarray, one_off: np.ndarray, running: np.ndarray,
             ramp: np.ndarray, start_month: int, horizon_years: float, rate: np.ndarray) -> np.ndarray:
    """NPV today of a move started at ``start_month`` (arrays over draws): ``roadmap.cash_flows`` over the months
    left, shifted by the start and discounted from today (``roadmap.npv``)."""
    n = int(round(horizon_years * MONTHS)) - start_month
    months = np.arange(1, n + 1, dtype=float)
    ramp = np.asarray(ramp, dtype=float)[:, None]
    share = np.where(ramp > 0, np.clip((months - 0.5) / np.where(ramp > 0, ramp, 1.0), 0.0, 1.0), 1.0)
    disc = (1.0 + np.asarray(rate, dtype=float)[:, None]) ** (-(start_month + months) / MONTHS)
    flows = (np.asarray(benefit)[:, None] * share - np.asarray(running)[:, None]) / MONTHS
    total = (flows * disc).sum(axis=1) + np.asarray(value_left) * share[:, -1] * disc[:, -1] if n else 0.0
    return total - np.asarray(one_off) * (1.0 + np.asarray(rate)) ** (-start_month / MONTHS)


@dataclass
class MarketPaths:
    """Every step sequence of one sub-market: its configurations per year, value and one-off spend per year."""

    name: str
    configs: list[StageConfig]  # the ladder, today's first
    paths: np.ndarray  # [P, years + 1] configuration index per year (column 0: today)
    value: np.ndarray  # [P] expected NPV
    draws: np.ndarray  # [P, D] NPV in each draw of the uncertain inputs
    spend: np.ndarray  # [P, years] one-off cost paid in each year (the step costs given)
    moves: dict[tuple[int, int], rm.MoveCost]  # the expected cost of each move (a, b)
    move_value: dict[tuple[int, int, int], float]  # expected NPV of move (a, b) in year k (0-based)
    step_costs: rm.StepCosts
    reps: int


def market_paths(market: rm.Market, flow: np.ndarray, stock: np.ndarray, horizon_years: float,
                 uncertainty: rm.Uncertainty, draws: int, seed: int) -> MarketPaths:
    """Value every step sequence of a sub-market.  ``flow`` and ``stock``: per ladder configuration (today's first)
    and seed, per territory, the roadmap's paired differences to today (:func:`roadmap.paired_benefits`)."""
    years = decision_years(horizon_years)
    today, (low, high) = market.today, bounds(market.spec)
    configs = ladder(today, high)
    index = {rm.stage_key(c): i for i, c in enumerate(configs)}
    n_terr, costs = market.spec.territories, market.spec.step_costs
    reps = n_terr * market.config.population.n_reps
    rate = market.config.economics.discount_rate_per_year
    # per entity, every nondecreasing sequence of levels over the years; a path is one per entity
    per_entity = [list(itertools.combinations_with_replacement(range(getattr(today, e), getattr(high, e) + 1), years))
                  for e in ENTITIES]
    rows = []
    for combo in itertools.product(*per_entity):
        if all(combo[j][-1] >= getattr(low, e) for j, e in enumerate(ENTITIES)):
            rows.append([0] + [index[tuple(combo[j][k] for j in range(len(ENTITIES)))] for k in range(years)])
    paths = np.array(rows, dtype=int).reshape(-1, years + 1)
    # draws of the same kinds as the roadmap's, on a stream of the plan's own: the mean over the seeds from the
    # t-distribution of settling.mean_draws (paired across configurations; wide at few seeds, unlike a bootstrap),
    # and the step costs, ramp-ups and discount rate
    rng = np.random.default_rng([seed, 24, len(market.spec.name), *market.spec.name.encode()])
    all_steps = [(e, k) for e in ENTITIES for k in (1, 2, 3)]
    means = mean_draws(np.stack([flow, stock]), draws, rng)  # (draws, 2, configurations)
    drawn = []
    for d in range(draws):
        cost_f = dict(zip(all_steps, rng.lognormal(0.0, uncertainty.cost_sigma, len(all_steps))))
        ramp_f = dict(zip(all_steps, rng.lognormal(0.0, uncertainty.ramp_sigma, len(all_steps))))
        r = rate * rng.uniform(uncertainty.discount_rate_low, uncertainty.discount_rate_high)
        drawn.append((means[d, 0] * n_terr, means[d, 1] * n_terr, cost_f, ramp_f, r))
    benefit, left = flow.mean(axis=1) * n_terr, stock.mean(axis=1) * n_terr
    pairs = sorted({(int(p[k]), int(p[k + 1])) for p in paths for k in range(years) if p[k] != p[k + 1]})
    moves, move_value = {}, {}
    exp_value = np.zeros((years, len(configs), len(configs)))
    draw_value = np.zeros((years, len(configs), len(configs), draws))
    spend_of = np.zeros((len(configs), len(configs)))
    for a, b in pairs:
        cost = rm.move_cost(configs[a], configs[b], costs, reps)
        moves[(a, b)] = cost
        spend_of[a, b] = cost.one_off_usd
        drawn_costs = [rm.move_cost(configs[a], configs[b], costs, reps, d[2], d[3]) for d in drawn]
        d_args = (np.array([d[0][b] - d[0][a] for d in drawn]), np.array([d[1][b] - d[1][a] for d in drawn]),
                  np.array([c.one_off_usd for c in drawn_costs]), np.array([c.running_usd_per_year for c in drawn_costs]),
                  np.array([c.ramp_months for c in drawn_costs]))
        rates = np.array([d[4] for d in drawn])
        for k in range(years):
            if k * MONTHS >= int(round(horizon_years * MONTHS)):
                continue
            v = move_npv(np.array([benefit[b] - benefit[a]]), np.array([left[b] - left[a]]),
                         np.array([cost.one_off_usd]), np.array([cost.running_usd_per_year]),
                         np.array([cost.ramp_months]), k * MONTHS, horizon_years, np.array([rate]))[0]
            exp_value[k, a, b] = move_value[(a, b, k)] = float(v)
            if draws:
                draw_value[k, a, b] = move_npv(*d_args, k * MONTHS, horizon_years, rates)
    value = sum(exp_value[k, paths[:, k], paths[:, k + 1]] for k in range(years))
    path_draws = sum(draw_value[k, paths[:, k], paths[:, k + 1]] for k in range(years))
    spend = np.stack([spend_of[paths[:, k], paths[:, k + 1]] for k in range(years)], axis=1)
    return MarketPaths(market.spec.name, configs, paths, np.asarray(value, dtype=float),
                       np.asarray(path_draws, dtype=float).reshape(len(paths), draws), spend, moves, move_value,
                       costs, reps)


# ------------------------------------------------------------------------------------------------- solver
def cvar(values: np.ndarray, share: float = CVAR_SHARE) -> np.ndarray:
    """Mean of the lowest ``share`` of the draws (last axis): the expected NPV in the worst 10% of draws."""
    q = max(1, int(round(share * values.shape[-1])))
    return np.partition(values, q - 1, axis=-1)[..., :q].mean(axis=-1)


@dataclass
class Solution:
    budget_usd_per_year: float
    objective: str
    choice: list[int]  # a path index per sub-market (-1: none feasible)
    objective_usd: float  # nan when no plan meets the floors within the budget
    npv_usd: float
    draws_usd: np.ndarray  # the portfolio's NPV in each draw
    spend_usd: np.ndarray  # one-off cost per year
    nodes: int

    @property
    def feasible(self) -> bool:
        return bool(np.isfinite(self.objective_usd))


def solve(markets: Sequence[MarketPaths], budget_usd_per_year: float, objective: Objective = "npv") -> Solution:
    """The best plan under the yearly budget, exactly (branch and bound over the sub-markets' step sequences)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    tol = 1e-6 * max(1.0, budget_usd_per_year)
    years = markets[0].spend.shape[1]
    n_draws = markets[0].draws.shape[1]
    if objective == "cvar10" and not n_draws:
        raise ValueError("the cvar10 objective needs draws (--draws >= 1)")
    candidates = []
    for m in markets:  # what fits the budget at all, best value first (ties: the cheapest first)
        fits = np.nonzero((m.spend <= budget_usd_per_year + tol).all(axis=1))[0]
        own = m.value[fits] if objective == "npv" else cvar(m.draws[fits])  # good plans early: tighter bounds
        order = np.lexsort((m.spend[fits].sum(axis=1), -own))
        candidates.append(fits[order])
    tops = [float(m.value[c].max(initial=-np.inf)) for m, c in zip(markets, candidates)]
    rest = [sum(tops[i:]) for i in range(len(markets) + 1)]  # the most the sub-markets from i on could add
    best: dict = {"score": -np.inf, "choice": None}
    nodes = 0

    def score(draws_total: np.ndarray, value_total: np.ndarray) -> np.ndarray:
        return value_total if objective == "npv" else cvar(draws_total)

    def bound(i: int, value: float, draws_total: np.ndarray) -> float:
        if objective == "npv":
            return value + rest[i]
        q = max(1, int(round(CVAR_SHARE * n_draws)))
        worst = np.argpartition(draws_total, q - 1)[:q]  # any q draws bound the CVaR from above
        return float(draws_total[worst].mean()) + sum(
            float(markets[j].draws[np.ix_(candidates[j], worst)].mean(axis=1).max(initial=-np.inf))
            for j in range(i, len(markets)))

    def visit(i: int, left: np.ndarray, value: float, draws_total: np.ndarray, choice: list[int]) -> None:
        nonlocal nodes
        nodes += 1
        if nodes > MAX_SEARCH_NODES:
            raise PlanSearchLimit(f"more than {MAX_SEARCH_NODES:,} partial plans: lower some max_stage or the "
                                  "horizon")
        m, cand = markets[i], candidates[i]
        fits = cand[(m.spend[cand] <= left + tol).all(axis=1)]
        if not fits.size:
            return
        if i == len(markets) - 1:  # the last sub-market at once
            if objective == "cvar10":  # only where the mean over the partial plan's worst draws could beat the best
                q = max(1, int(round(CVAR_SHARE * n_draws)))
                worst = np.argpartition(draws_total, q - 1)[:q]
                upper = draws_total[worst].mean() + m.draws[np.ix_(fits, worst)].mean(axis=1)
                fits = fits[upper > best["score"] + 1e-6]
                if not fits.size:
                    return
            scores = score(draws_total + m.draws[fits], value + m.value[fits])
            top = int(np.argmax(scores))
            if scores[top] > best["score"] + 1e-6:
                best.update(score=float(scores[top]), choice=[*choice, int(fits[top])])
            return
        for p in fits:
            v, d = value + float(m.value[p]), draws_total + m.draws[p]
            if (objective == "npv" or i + 2 < len(markets)) and bound(i + 1, v, d) <= best["score"] + 1e-6:
                continue  # (for CVaR the last sub-market bounds its own choices, at once)
            visit(i + 1, left - m.spend[p], v, d, [*choice, int(p)])

    visit(0, np.full(years, float(budget_usd_per_year)), 0.0, np.zeros(n_draws), [])
    if best["choice"] is None:
        return Solution(budget_usd_per_year, objective, [-1] * len(markets), float("nan"), float("nan"),
                        np.full(n_draws, np.nan), np.full(years, np.nan), nodes)
    choice = best["choice"]
    return Solution(budget_usd_per_year, objective, choice, best["score"],
                    float(sum(m.value[p] for m, p in zip(markets, choice))),
                    sum((m.draws[p] for m, p in zip(markets, choice)), np.zeros(n_draws)),
                    sum((m.spend[p] for m, p in zip(markets, choice)), np.zeros(years)), nodes)


@dataclass
class ShadowPrice:
    budget_usd_per_year: float
    step_usd: float
    low: Solution
    high: Solution

    @property
    def usd_per_usd(self) -> float:
        """The objective's gain per extra USD of yearly budget (central difference; one-sided at zero)."""
        span = self.high.budget_usd_per_year - self.low.budget_usd_per_year
        return (self.high.objective_usd - self.low.objective_usd) / span if span > 0 else float("nan")


def shadow_price(markets: Sequence[MarketPaths], budget_usd_per_year: float, objective: Objective = "npv",
                 step_share: float = BUDGET_STEP_SHARE) -> ShadowPrice:
    """Re-solve at the budget +/- a step (``step_share`` of it; :data:`BUDGET_STEP_AT_ZERO_USD` up from zero)."""
    step = step_share * budget_usd_per_year if budget_usd_per_year > 0 else BUDGET_STEP_AT_ZERO_USD
    low = solve(markets, max(budget_usd_per_year - step, 0.0), objective)
    high = solve(markets, budget_usd_per_year + step, objective)
    return ShadowPrice(budget_usd_per_year, step, low, high)


def budget_curve(markets: Sequence[MarketPaths], budget_usd_per_year: float, objective: Objective = "npv",
                 points: int = CURVE_POINTS) -> pd.DataFrame:
    """The best plan's value against the yearly budget, from zero to past where more budget stops helping (the
    unconstrained best plan's largest yearly spend) or twice the budget given, whichever is larger."""
    free = solve(markets, MAX_BUDGET_USD, objective)
    top = max(2.0 * budget_usd_per_year, float(np.nanmax(free.spend_usd)) * 1.1 if free.feasible else 0.0, 1.0)
    budgets = sorted(set(np.linspace(0.0, top, points).tolist()) | {float(budget_usd_per_year)})
    rows = []
    for b in budgets:
        s = free if b >= float(np.nanmax(free.spend_usd, initial=0.0)) and free.feasible else solve(markets, b, objective)
        rows.append(dict(budget_usd_per_year=b, objective=objective, objective_usd=s.objective_usd, npv_usd=s.npv_usd,
                         cvar10_usd=float(cvar(s.draws_usd)) if s.draws_usd.size else float("nan"),
                         spend_usd=float(np.nansum(s.spend_usd)) if s.feasible else float("nan")))
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------- output
def plan_table(markets: Sequence[MarketPaths], solution: Solution) -> pd.DataFrame:
    """One row per entity moved: year (1-based), sub-market, entity, from -> to, one-off cost, and the cumulative
    expected NPV of the plan's moves up to this sub-market's move of this year (``move_npv_usd``: that whole move)."""
    rows, cumulative = [], 0.0
    columns = ["year", "sub_market", "entity", "from_level", "to_level", "from_stage", "to_stage", "one_off_usd",
               "running_usd_per_year", "move_npv_usd", "cumulative_npv_usd"]
    if not solution.feasible:
        return pd.DataFrame(columns=columns)
    years = markets[0].spend.shape[1]
    for k in range(years):
        for m, p in zip(markets, solution.choice):
            a, b = int(m.paths[p, k]), int(m.paths[p, k + 1])
            if a == b:
                continue
            move = m.move_value[(a, b, k)]
            cumulative += move
            for entity in ENTITIES:
                x, y = getattr(m.configs[a], entity), getattr(m.configs[b], entity)
                if x == y:
                    continue
                cost = rm.move_cost(m.configs[a], m.configs[a].model_copy(update={entity: y}), m.step_costs, m.reps)
                rows.append(dict(year=k + 1, sub_market=m.name, entity=entity, from_level=x, to_level=y,
                                 from_stage=rm._stage_text(m.configs[a]), to_stage=rm._stage_text(m.configs[b]),
                                 one_off_usd=cost.one_off_usd, running_usd_per_year=cost.running_usd_per_year,
                                 move_npv_usd=move, cumulative_npv_usd=cumulative))
    return pd.DataFrame(rows, columns=columns)


def plan_markdown(plan: pd.DataFrame, solution: Solution, shadow: ShadowPrice, horizon_years: float,
                  defaults: Sequence[str] = ()) -> str:
    """The plan section of roadmap.md and the report."""
    objective = "expected NPV" if solution.objective == "npv" else "CVaR at 10% (mean NPV of the worst 10% of draws)"
    budget = solution.budget_usd_per_year
    head = (f"Budget USD {budget:,.0f} a year for one-off step costs (paid in the year a step is taken; running costs "
            "count against profit, in the NPV; an unspent budget does not carry over), over "
            f"{decision_years(horizon_years)} decision years of a {horizon_years:g}-year horizon; objective: "
            f"{objective}. A plan only moves up, within each sub-market's min_stage and max_stage; every configuration "
            "it can visit is simulated on the roadmap's paired seeds. Assumed to add up: a move's yearly profit gain "
            "(the difference between the two configurations' benefits over today) phases in over its ramp-up from the "
            "start of its year, moves and sub-markets add up, and the value left at the horizon counts once "
            "(oce_sim/studies/portfolio_plan.py).")
    lines = ["## Portfolio plan", "", head, ""]
    if defaults:
        lines += ["Plan bounds left to their defaults: " + "; ".join(defaults) + ".", ""]
    if not solution.feasible:
        return "\n".join(lines + ["**No plan reaches every sub-market's min_stage within this budget.**", ""])
    low, high = np.percentile(solution.draws_usd, [5, 95]) if solution.draws_usd.size else (np.nan, np.nan)
    lines += [
        f"- expected NPV of the plan: USD {solution.npv_usd / 1e3:+,.0f}k [{low / 1e3:+,.0f}k, {high / 1e3:+,.0f}k] "
        "(5th-95th percentile over the draws); CVaR 10%: "
        f"USD {float(cvar(solution.draws_usd)) / 1e3:+,.0f}k" if solution.draws_usd.size else
        f"- expected NPV of the plan: USD {solution.npv_usd / 1e3:+,.0f}k",
        "- one-off spend per year (USD k): " + ", ".join(f"year {k + 1}: {v / 1e3:,.0f}"
                                                       for k, v in enumerate(solution.spend_usd)),
        f"- shadow price of the budget: {shadow.usd_per_usd:+.2f} USD of objective per extra USD of yearly budget "
        f"(re-solved at USD {shadow.low.budget_usd_per_year:,.0f} and {shadow.high.budget_usd_per_year:,.0f} a year: "
        f"{shadow.low.objective_usd / 1e3:+,.0f}k and {shadow.high.objective_usd / 1e3:+,.0f}k)", ""]
    if plan.empty:
        return "\n".join(lines + ["No step pays within this budget: every sub-market stays where it is.", ""])
    shown = plan.assign(**{"from -> to": plan.from_level.astype(str) + " -> " + plan.to_level.astype(str),
                           "stage": plan.from_stage + " -> " + plan.to_stage,
                           "one-off (USD k)": (plan.one_off_usd / 1e3).map("{:,.0f}".format),
                           "running (USD k/yr)": (plan.running_usd_per_year / 1e3).map("{:,.0f}".format),
                           "move NPV (USD k)": (plan.move_npv_usd / 1e3).map("{:+,.0f}".format),
                           "cumulative NPV (USD k)": (plan.cumulative_npv_usd / 1e3).map("{:+,.0f}".format)})
    shown = shown[["year", "sub_market", "entity", "from -> to", "stage", "one-off (USD k)", "running (USD k/yr)",
                   "move NPV (USD k)", "cumulative NPV (USD k)"]].rename(columns={"sub_market": "sub-market"})
    return "\n".join(lines + [rm.markdown(shown), ""])


def plan_sentence(solution: Solution, shadow: ShadowPrice) -> str:
    """The plan in one sentence for the report's summary."""
    if not solution.feasible:
        return (f"**Portfolio plan**: no plan reaches every sub-market's min_stage within USD "
                f"{solution.budget_usd_per_year:,.0f} a year.")
    return (f"**Portfolio plan** within USD {solution.budget_usd_per_year:,.0f} a year of one-off step costs: expected "
            f"NPV USD {solution.npv_usd / 1e3:+,.0f}k over today; an extra USD of yearly budget adds "
            f"{shadow.usd_per_usd:+.2f} USD to the objective ({solution.objective}).")


CURVE_SCALE, CURVE_UNIT = 1e6, "USD millions"


def plot_budget_curve(curve: pd.DataFrame, budget_usd_per_year: float, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from oce_sim.storage.outputs import atomic_save_figure

    objective = str(curve.objective.iloc[0])
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    x = curve.budget_usd_per_year / CURVE_SCALE
    ax.plot(x, curve.npv_usd / CURVE_SCALE, "o-", color="C0", ms=3, label="expected NPV of the best plan")
    if objective == "cvar10":
        ax.plot(x, curve.cvar10_usd / CURVE_SCALE, "s--", color="C3", ms=3, label="CVaR 10% (the objective)")
    ax.axvline(budget_usd_per_year / CURVE_SCALE, color="grey", lw=0.8, ls=":", label="the budget given")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel(f"transformation budget per year, one-off step costs ({CURVE_UNIT})")
    ax.set_ylabel(f"portfolio NPV over today ({CURVE_UNIT})")
    ax.set_title(f"{title}: the best plan's value against the budget (objective {objective})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
    return path


def run(markets: Sequence[rm.Market], portfolio: rm.Portfolio, results: pd.DataFrame, episodes: int, seed: int,
        draws: int, horizon_years: float, budget_usd_per_year: float, objective: Objective = "npv",
        progress: bool = True) -> tuple[pd.DataFrame, list[MarketPaths], Solution, ShadowPrice, pd.DataFrame]:
    """Simulate the ladder configurations the roadmap's ``results`` lack, value every step sequence and solve:
    (the ladder's results, every sub-market's sequences, the plan, its shadow price, the budget curve)."""
    extra = simulate_ladder(markets, episodes, seed, progress)
    both = pd.concat([results, extra], ignore_index=True)
    paths = []
    for market in markets:
        _, flow, stock = rm.paired_benefits(both, market, ladder_labels(market))
        paths.append(market_paths(market, flow, stock, horizon_years, portfolio.uncertainty, draws, seed))
    solution = solve(paths, budget_usd_per_year, objective)
    return (extra, paths, solution, shadow_price(paths, budget_usd_per_year, objective),
            budget_curve(paths, budget_usd_per_year, objective))


def floors_fit(markets: Sequence[rm.Market], horizon_years: float, budget_usd_per_year: float) -> bool:
    """Whether some plan reaches every sub-market's min_stage within the budget (costs only: before simulating)."""
    zero = [market_paths(m, np.zeros((plan_size(m, 1)[0], 1)), np.zeros((plan_size(m, 1)[0], 1)), horizon_years,
                         rm.Uncertainty(), 0, 0) for m in markets]
    return solve(zero, budget_usd_per_year).feasible
