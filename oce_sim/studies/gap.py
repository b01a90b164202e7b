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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from .evaluation import t_interval

FLOOR = "intervention"


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


__all__ = ["FLOOR", "Ratio", "best_observed", "gap_closed", "headroom", "paired_ratio"]
