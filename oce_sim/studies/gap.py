"""A learner's result, measured honestly: the share of the gap from intervention to the best policy that sees only
observations, closed (issue 23, items 3 and 6; definition in docs/MODEL.md §4e).

The rollout oracle (``agents/oracle.py``) reads the ground truth and the future, and it is a rollout over fixed base
policies, so a share of its margin over no promotion measures a learner against neither the best it could do nor
a reference it could reach: intervention alone earned about 80% of that margin.  Instead, on paired seeds ``s``:

    gap closed = mean_s[agent_s - floor_s] / mean_s[ceiling_s - floor_s]

with ``floor`` the ``intervention`` heuristic (stage 3's rule of thumb) and ``ceiling`` the best *observation-only*
candidate: a policy that reads no hidden state and no future, at decision time or in training (stage heuristics,
fixed plans such as ``follow_up_everywhere``, the planner's ``best@K`` stationary plans, learners trained on the
observed reward).  0 is intervention's level, 1 the best such policy; a learner trained on the privileged (expected)
reward may pass 1, since it is not a candidate.  The ceiling is chosen on selection seeds (validation,
:func:`oce_sim.studies.seeds.selection_seeds`) and the gap measured on test seeds, so the choice does not flatter it.
With no gap (the ceiling not above the floor on average) the share is undefined (NaN), not a division by a small or
negative number.

The interval is Fieller's for a ratio of paired means (the t-interval's assumptions, on the two paired differences
jointly): the set of ratios ``r`` whose ``mean(num - r * den)`` a t-test does not reject.  It is bounded when the
gap itself is significantly above zero at the same level; otherwise its ends are NaN (the data cannot bound it).

:func:`headroom` is the other half of item 3: the best observation-only policy minus the best stationary plan, the
value adapting to the week's observations adds over the best fixed plan (paired t-interval).

:func:`candidates` builds the observation-only set on a scenario (the stage heuristics at their own stage,
``follow_up_everywhere``, and with a budget K the planner's ``best@K`` at each stage); :func:`sees_only_observations`
tells a trained model in (its file records the reward it learnt from; a model without that record is not);
:func:`measure` plays them and any agents on the selection and the test seeds and reports every number above.
``experiments/gap_closed.py`` and ``experiments/train_maskable_ppo.py`` run it; ``experiments/baseline_table.py``
uses the same functions on its own grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from oce_sim.agents import STAGE_STRATEGIES, TrainedModel, make_strategy
from oce_sim.agents.oracle import OBJECTIVE, FollowUpEverywhere
from oce_sim.agents.stationary import StationaryPlan
from oce_sim.config import ScenarioConfig

from .evaluation import evaluate, t_interval

FLOOR = "intervention"
FOLLOW_UP = "follow_up_everywhere"


@dataclass(frozen=True)
class Ratio:
    """A ratio of paired means with its interval (``low``/``high`` NaN where the data cannot bound it; ``estimate``
    NaN where the denominator's mean is not above zero)."""

    estimate: float
    low: float
    high: float
    n_seeds: int

    def percent(self) -> str:
        """``84% [62%, 107%]``, ``84% [unbounded]``, or ``n/a (no gap)``."""
        if math.isnan(self.estimate):
            return "n/a (no gap)"
        interval = "unbounded" if math.isnan(self.low) else f"{self.low:.0%}, {self.high:.0%}"
        return f"{self.estimate:.0%} [{interval}]"


def _paired(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a 1-d array of finite values, got shape {array.shape}")
    return array


def paired_ratio(numerator: Sequence[float] | np.ndarray, denominator: Sequence[float] | np.ndarray,
                 confidence: float = 0.95) -> Ratio:
    """``mean(numerator) / mean(denominator)`` over paired seeds with Fieller's interval (module docstring).

    The estimate is NaN when ``mean(denominator) <= 0``: the ratio is only read as a share of a positive quantity."""
    x, y = _paired("numerator", numerator), _paired("denominator", denominator)
    if x.size != y.size or x.size < 2:
        raise ValueError(f"a paired ratio needs the same seeds (>= 2) on both sides, got {x.size} and {y.size}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = x.size
    a, b = float(x.mean()), float(y.mean())
    if b <= 0:
        return Ratio(float("nan"), float("nan"), float("nan"), n)
    t2 = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) ** 2
    cov = np.cov(x, y, ddof=1) / n  # covariance of the two means
    # {r : (a - r b)^2 <= t^2 var(mean(x) - r mean(y))} = {r : A r^2 - 2 B r + C <= 0}
    quad_a = b * b - t2 * cov[1, 1]
    quad_b = a * b - t2 * cov[0, 1]
    quad_c = a * a - t2 * cov[0, 0]
    if quad_a <= 0:  # the denominator is not significantly above zero: the set is unbounded
        return Ratio(a / b, float("nan"), float("nan"), n)
    root = math.sqrt(max(quad_b * quad_b - quad_a * quad_c, 0.0))  # >= 0 whenever quad_a > 0 (a/b is inside)
    return Ratio(a / b, (quad_b - root) / quad_a, (quad_b + root) / quad_a, n)


def gap_closed(agent: Sequence[float] | np.ndarray, floor: Sequence[float] | np.ndarray,
               ceiling: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Ratio:
    """The share of the gap from ``floor`` to ``ceiling`` that ``agent`` closes, per paired seed arrays of the
    objective (``profit_multi_period_usd``); see the module docstring."""
    agent_, floor_, ceiling_ = (_paired(n, v) for n, v in (("agent", agent), ("floor", floor), ("ceiling", ceiling)))
    if not agent_.size == floor_.size == ceiling_.size:
        raise ValueError(f"agent, floor and ceiling must be on the same seeds, got {agent_.size}, {floor_.size} and "
                         f"{ceiling_.size} values")
    return paired_ratio(agent_ - floor_, ceiling_ - floor_, confidence)


def best_observed(selection_means: Mapping[str, float], candidates: Sequence[str]) -> str:
    """The best candidate by its mean on the selection seeds (ties: the first listed).  Every candidate must have a
    mean: a missing one would silently shrink the set the ceiling is the best of."""
    if not candidates:
        raise ValueError("the best observation-only policy needs at least one candidate")
    missing = [c for c in candidates if c not in selection_means or not math.isfinite(selection_means[c])]
    if missing:
        raise ValueError(f"no finite mean on the selection seeds for {', '.join(missing)}")
    return max(candidates, key=lambda c: (selection_means[c], -list(candidates).index(c)))


def headroom(best: Sequence[float] | np.ndarray, stationary: Sequence[float] | np.ndarray,
             confidence: float = 0.95) -> dict[str, float]:
    """Adaptivity headroom: the best observation-only policy minus the best stationary plan, per paired seed; mean
    and t-interval (``diff_mean``, ``diff_low``, ``diff_high``).  Exactly 0 when the best policy is that plan."""
    best_, plan = _paired("best", best), _paired("stationary", stationary)
    if best_.size != plan.size:
        raise ValueError(f"best and stationary must be on the same seeds, got {best_.size} and {plan.size} values")
    return t_interval(best_ - plan, confidence)


def sees_only_observations(policy: Any) -> bool:
    """A trained model is a candidate only if its file says it learnt from the observed reward (``oce-sim train
    --reward observed``); every other reward is computed from the customers' true state."""
    return isinstance(policy, TrainedModel) and policy.meta.get("reward") == "observed"


def plan_label(budget: int, stage: int) -> str:
    return f"best@{budget} (stage {stage})"


def candidates(scenario: ScenarioConfig, plan_budget: int = 0, plan_seeds: Sequence[int] | None = None,
               cache: Path | None = None) -> dict[str, Any]:
    """The observation-only candidates on ``scenario``: the four stage heuristics (each at its own stage),
    ``follow_up_everywhere`` (stage 3) and, with ``plan_budget`` K > 0, ``best@K`` at each stage (searched on
    validation seeds, cached: ``oce_sim.studies.planner.best_plan``)."""
    chosen: dict[str, Any] = {name: make_strategy(name) for name in STAGE_STRATEGIES}
    chosen[FOLLOW_UP] = FollowUpEverywhere()
    if plan_budget > 0:
        from .planner import best_plan

        for stage in range(len(STAGE_STRATEGIES)):
            found = best_plan(scenario, stage, plan_budget, plan_seeds, cache)
            chosen[plan_label(plan_budget, stage)] = StationaryPlan(found.plan, stage,
                                                                     name=plan_label(plan_budget, stage))
    return chosen


@dataclass
class Measured:
    """What :func:`measure` found: the tidy KPI rows of both seed sets (``purpose`` select / report), the ceiling
    (best observation-only policy), the candidates it was chosen from, the best stationary plan (None without
    one), one row per agent on the report seeds (mean, difference to the floor, gap closed) and the headroom."""

    results: pd.DataFrame
    ceiling: str
    candidates: list[str]
    best_plan: str | None
    table: pd.DataFrame
    headroom: dict[str, float]


def measure(scenario: ScenarioConfig, agents: Mapping[str, Any], candidate_policies: Mapping[str, Any],
            select_seeds: range, report_seeds: range, progress: bool = False) -> Measured:
    """Play the candidates on ``select_seeds`` (choosing the ceiling) and every policy on ``report_seeds``; each
    policy's share of the gap from :data:`FLOOR` to the ceiling closed, and the adaptivity headroom.

    ``agents`` are measured, and join the candidates where :func:`sees_only_observations`; ``candidate_policies``
    must hold the floor.  Stationary plans among the candidates (:class:`StationaryPlan`) give the best plan."""
    if FLOOR not in candidate_policies:
        raise ValueError(f"the candidates must include the floor, {FLOOR!r}")
    if set(select_seeds) & set(report_seeds):
        raise ValueError("the selection and the report seeds overlap: a seed that chose cannot report")
    pool = dict(candidate_policies)
    pool.update({name: policy for name, policy in agents.items() if sees_only_observations(policy)})
    everyone = {**pool, **agents}
    chosen, _ = evaluate(pool, scenario, len(select_seeds), select_seeds.start, progress=progress)
    reported, _ = evaluate(everyone, scenario, len(report_seeds), report_seeds.start, progress=progress)
    results = pd.concat([chosen.assign(purpose="select"), reported.assign(purpose="report")], ignore_index=True)
    wide = {purpose: frame[frame.metric == OBJECTIVE].pivot_table(index="seed", columns="strategy", values="value")
            for purpose, frame in results.groupby("purpose")}
    means = wide["select"].mean().to_dict()
    ceiling = best_observed(means, list(pool))
    plans = [name for name, policy in pool.items() if isinstance(policy, StationaryPlan)]
    plan = best_observed(means, plans) if plans else None
    report = wide["report"]
    rows = []
    for name in everyone:
        share = gap_closed(report[name], report[FLOOR], report[ceiling])
        diff = t_interval((report[name] - report[FLOOR]).to_numpy(), 0.95)
        rows.append(dict(strategy=name, candidate=name in pool, mean=float(report[name].mean()), **diff,
                         gap_closed=share.estimate, gap_low=share.low, gap_high=share.high))
    room = headroom(report[ceiling], report[plan]) if plan else dict(diff_mean=np.nan, diff_low=np.nan,
                                                                       diff_high=np.nan)
    return Measured(results, ceiling, list(pool), plan, pd.DataFrame(rows), room)


def measured_text(found: Measured, select_seeds: range, report_seeds: range) -> str:
    """A Markdown table and the sentence that names the ceiling, its candidate set and the headroom."""
    lines = [f"| strategy | {OBJECTIVE}, USD k | vs {FLOOR}, USD k [paired 95% CI] | gap closed [Fieller 95% CI] |",
             "|---|---:|---|---|"]
    for row in found.table.itertuples():
        diff = ("(the floor)" if row.strategy == FLOOR else
                f"{row.diff_mean / 1e3:+,.0f} [{row.diff_low / 1e3:+,.0f}, {row.diff_high / 1e3:+,.0f}]")
        share = ("0% (the floor)" if row.strategy == FLOOR else "100% (the best)" if row.strategy == found.ceiling
                 else Ratio(row.gap_closed, row.gap_low, row.gap_high, 0).percent())
        lines.append(f"| {row.strategy}{'' if row.candidate else ' (not a candidate)'} | {row.mean / 1e3:,.0f} | "
                     f"{diff} | {share} |")
    text = (f"Best policy that sees only observations: **{found.ceiling}**, the best mean on selection seeds "
            f"{select_seeds[0]:,}-{select_seeds[-1]:,} among {', '.join(found.candidates)}; reported on seeds "
            f"{report_seeds[0]:,}-{report_seeds[-1]:,}.")
    if found.best_plan is not None and found.best_plan == found.ceiling:
        text += (" Adaptivity headroom: none measured, the best policy that sees only observations is itself a "
                 "stationary plan (0 by definition).")
    elif found.best_plan is not None:
        room = found.headroom
        text += (f" Adaptivity headroom ({found.ceiling} minus the best stationary plan, {found.best_plan}): "
                 f"{room['diff_mean'] / 1e3:+,.0f}k [{room['diff_low'] / 1e3:+,.0f}k, {room['diff_high'] / 1e3:+,.0f}k]"
                 " USD (paired 95% CI).")
    return "\n".join(lines) + "\n\n" + text


__all__ = ["FLOOR", "FOLLOW_UP", "Measured", "Ratio", "best_observed", "candidates", "gap_closed", "headroom",
           "measure", "measured_text", "paired_ratio", "plan_label", "sees_only_observations"]
