"""What an interval covers, and whether a choice is settled at this number of seeds.

**What an interval covers.**  ``compare`` and ``whatif`` intervals are t-intervals of the mean paired difference over
the seeds: they cover seed noise (which customers a territory draws, and what they do) and nothing else.  A roadmap's
NPV intervals and P(best) also cover its draws of step costs, ramp-ups and the discount rate.  By default none of them
draws the model's calibrated parameters (:data:`oce_sim.studies.uncertainty.RANGES`): they are held at the scenario's
values, so an interval says how sure the answer is *within the model*, not how sure the model is.  A roadmap run with
``--parameter-draws D`` does draw them (:func:`parameter_mean_draws`).  :func:`seed_noise_coverage` and
:func:`roadmap_coverage` say which in one sentence in every report; :data:`SEED_NOISE_ONLY` and
:func:`roadmap_covers` in the console titles.

**Parameter draws (documented choice).**  With ``--parameter-draws D`` every option of a sub-market runs the same
``--episodes`` seeds under each of D parameter sets drawn from their ranges (fixed draw seeds, so reruns match;
draw d is the same set for every option of a sub-market: paired), each set with its own market history (the
steady-start cache is keyed by the response parameters).  Cost: D times the episodes, and one burn-in per draw and
sub-market.  The unit of pairing becomes (parameter set, seed).  The appraisal pools the draws hierarchically: the
D parameter sets stand for the prior over the parameters, so the k-th draw of the appraisal takes parameter set
k mod D (each set an equal share of the draws) and, within it, the mean over that set's seeds from its
t-distribution (:func:`mean_draws`), every option on the same set and the same weights.  The NPV intervals and
P(best) are then over parameter uncertainty *and* seed noise (a mixture over the sets, not the standard error of
the mean over them); the expected NPV is the mean over every (set, seed) unit.  The verdict's seed count and its
estimate of the seeds to settle are over these units.

**Few seeds (documented choice).**  Resampling n seeds by bootstrap reports certainty it does not have: with two
seeds that agree in sign every resample agrees too, and P(best) is 100%.  The roadmap therefore draws the mean over
the seeds from its t-distribution (:func:`mean_draws`: the mean plus the seeds' paired deviations times normal
weights, scaled by sqrt((n - 1) / chi2(n - 1)): the multivariate t with n - 1 degrees of freedom and scale S / n, S the
seeds' covariance), the small-sample distribution the compare t-intervals already use.  It widens as the seeds get
few (Cauchy-tailed at two) and tends to the bootstrap's normal as they grow; the draws stay paired, every option
weighting the same seeds.  A t-distribution is only as good as the normality it assumes, which a handful of seeds
cannot check, so a choice is also never called settled below :data:`MIN_SEEDS` seeds.

**Settled.**  A choice (a roadmap's recommended option, a comparison's best strategy by profit) is *settled* when
all three hold: (1) at least :data:`MIN_SEEDS` paired seeds; (2) the best option's P(best) is at least
:data:`SETTLED_P_BEST` (0.9); (3) the runner-up lies below it: the interval of the runner-up's result minus the best's,
paired over the same seeds (and, in a roadmap, the same draws), lies entirely below zero (a roadmap's 90% interval
over its draws, ``gap_to_recommended_low_usd > 0``; a comparison's 95% t-interval of the lead, ``diff_low > 0``).
The paired interval, not the overlap of the two options' own intervals: both options share the seeds and the cost
draws, which move them together and make their own intervals overlap even when one is ahead on every draw.

**Seeds to settle it (a rough estimate).**  From the paired per-seed differences between the best and the runner-up
(in a roadmap, their NPVs at the expected costs), with mean m and standard deviation s: the smallest n (at least
:data:`MIN_SEEDS`) at which the t half-width t(n - 1) * s / sqrt(n) at the report's confidence falls below |m|,
assuming m and s stay as measured; "more than :data:`MAX_SEEDS_SUGGESTED`" past it.  Seeds shrink seed noise only: where
n is already enough but the choice is still not settled, what keeps it open is the other draws (costs, ramp-ups, the
discount rate) or a third option close to the best, and the sentence says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
from scipy import stats

SETTLED_P_BEST = 0.9
MIN_SEEDS = 5
MAX_SEEDS_SUGGESTED = 1000
P_BEST_DRAWS = 4000  # a comparison's P(best): enough for a 0.9 threshold to within about +-0.01


# ------------------------------------------------------------------------------------ what an interval covers
def parameters_note(parameter_draws: int = 0, episodes: int = 0) -> str:
    """The clause every coverage sentence ends with: the calibrated parameters are not drawn, or (a roadmap's
    ``--parameter-draws``) are, with what that costs."""
    from oce_sim.studies.uncertainty import RANGES

    if parameter_draws:
        return (f"the model's {len(RANGES)} calibrated parameters ARE drawn: {parameter_draws} parameter sets from their "
                "ranges (oce_sim/studies/uncertainty.py, docs/MODEL.md), the same sets for every option of a "
                "sub-market, each with its own market history, pooled with the seeds (each set an equal share of the "
                f"draws), so the intervals include the model's own uncertainty; cost: {parameter_draws} x the "
                f"{episodes} episodes per option and {parameter_draws} burn-ins per sub-market")
    return (f"the model's {len(RANGES)} calibrated parameters (their ranges are in oce_sim/studies/uncertainty.py, "
            "docs/MODEL.md) are held at the scenario's values, not drawn, so no interval includes the model's own "
            "uncertainty")


SEED_NOISE_ONLY = "intervals: paired seed noise only; model parameters not drawn"
ROADMAP_COVERS = "intervals: seed noise, step costs, ramp-ups, discount rate; model parameters not drawn"


def roadmap_covers(parameter_draws: int = 0) -> str:
    """The roadmap console title's coverage: :data:`ROADMAP_COVERS`, or with the calibrated parameters drawn."""
    if not parameter_draws:
        return ROADMAP_COVERS
    return (f"intervals: seed noise, step costs, ramp-ups, discount rate and model parameters ({parameter_draws} "
            f"parameter sets drawn, {parameter_draws}x the episodes)")


def seed_noise_coverage(episodes: int, confidence: float = 0.95) -> str:
    """One sentence: what a compare or what-if interval covers."""
    return (f"What each interval covers: paired seed noise only, the {confidence:.0%} t-interval of the mean "
            f"difference over the {episodes} paired seeds; {parameters_note()}.")


def roadmap_coverage(episodes: int, draws: int, parameter_draws: int = 0) -> str:
    """One sentence: what a roadmap's NPV intervals and P(best) cover (``parameter_draws``: its
    ``--parameter-draws``, 0 when the calibrated parameters are not drawn)."""
    within = " within each parameter set" if parameter_draws else ""
    return (f"What each interval covers: the NPV intervals (5th-95th percentile) and P(best) are over {draws} draws "
            f"of paired seed noise (the mean over the {episodes} seeds{within} drawn from its t-distribution, the same "
            f"seeds for every option) and of the step costs, ramp-ups and discount rate; "
            f"{parameters_note(parameter_draws, episodes)}.")


# ---------------------------------------------------------------------------------------- the few-seeds draw
def mean_draws(values: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` draws of the mean over the last axis (the seeds) of ``values``, every row paired on the same seeds,
    from the multivariate t with n - 1 degrees of freedom around the sample mean (the module's docstring): shape
    ``(draws, *values.shape[:-1])``.  With one seed every draw is that seed."""
    n = values.shape[-1]
    mean = values.mean(axis=-1)
    if n < 2:
        return np.broadcast_to(mean, (draws, *mean.shape)).copy()
    deviations = values - mean[..., None]
    weights = rng.standard_normal((draws, n))
    normal = np.tensordot(weights, deviations, axes=([1], [-1])) / np.sqrt(n * (n - 1))  # covariance S / n
    widen = np.sqrt((n - 1) / rng.chisquare(n - 1, draws))  # the t's heavier tails at few seeds
    return mean + normal * widen.reshape((draws,) + (1,) * mean.ndim)


def parameter_mean_draws(values: np.ndarray, groups: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """:func:`mean_draws` pooled over parameter sets (the module's docstring): ``values``' last axis holds the
    (parameter set, seed) units, ``groups`` each unit's set.  Draw k takes set k mod D (the sets in sorted order) and
    the mean over that set's seeds from its t-distribution, every row on the same set and weights.  Same shape as
    :func:`mean_draws`."""
    groups = np.asarray(groups)
    sets = np.unique(groups)
    mean = values.mean(axis=-1)
    out = np.empty((draws, *mean.shape))
    which = np.arange(draws) % sets.size
    for j, g in enumerate(sets):
        picked = np.nonzero(which == j)[0]
        if picked.size:
            out[picked] = mean_draws(values[..., groups == g], int(picked.size), rng)
    return out


# ---------------------------------------------------------------------------------------------- the verdict
def seeds_to_settle(differences: np.ndarray, confidence: float) -> int | None:
    """The smallest number of paired seeds (at least :data:`MIN_SEEDS`) at which the t half-width of the mean of
    ``differences`` falls below its absolute mean, their mean and sd as measured; None past
    :data:`MAX_SEEDS_SUGGESTED` or where it cannot be told (fewer than two seeds, no difference)."""
    values = np.asarray(differences, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return None
    mean, sd = abs(float(values.mean())), float(values.std(ddof=1))
    if mean == 0.0:
        return None
    n = np.arange(2, MAX_SEEDS_SUGGESTED + 1)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n)
    enough = np.nonzero(half < mean)[0]
    return None if enough.size == 0 else max(int(n[enough[0]]), MIN_SEEDS)


@dataclass(frozen=True)
class Verdict:
    """Whether a choice is settled (the module's docstring) and the seeds an estimate says would settle it."""

    best: str
    runner_up: str | None
    p_best: float
    separated: bool  # the paired interval of the runner-up minus the best lies below zero
    seeds: int
    seeds_needed: int | None  # the estimate; None: more than MAX_SEEDS_SUGGESTED, or cannot be told

    @property
    def settled(self) -> bool:
        return (self.seeds >= MIN_SEEDS and bool(self.p_best >= SETTLED_P_BEST)
                and (self.runner_up is None or self.separated))


def verdict(best: str, runner_up: str | None, p_best: float, separated: bool, differences: np.ndarray,
            confidence: float) -> Verdict:
    """The verdict from the best option's P(best), whether the runner-up lies below it, and the paired per-seed
    differences between the two (their count is the seeds)."""
    seeds = int(np.asarray(differences).size)
    needed = seeds_to_settle(differences, confidence) if runner_up is not None else MIN_SEEDS
    return Verdict(best, runner_up, float(p_best), bool(separated), seeds, needed)


def verdict_sentence(v: Verdict, where: str = "", other_draws: str = "", parameter_sets: int = 0) -> str:
    """One sentence: is the choice of ``v.best`` (``where``: " for specialty") settled, and if not, why and how many
    seeds would settle it.  ``other_draws`` names what besides seed noise the intervals draw (a roadmap's costs).
    ``parameter_sets`` D > 0 (``--parameter-draws``): the verdict's units are (parameter set, seed) pairs, D per
    seed, so the advice on ``--episodes`` (seeds per set) is the units needed divided by D."""
    per_seed = max(1, parameter_sets)
    unit = "paired seeds" if per_seed == 1 else f"paired (parameter set, seed) units ({per_seed} sets per seed)"
    if v.settled:
        against = f" and the runner-up {v.runner_up} lies below it" if v.runner_up else ""
        return (f"The choice of {v.best}{where} is **settled**: it is the best in {v.p_best:.0%} of the draws (at "
                f"least {SETTLED_P_BEST:.0%}){against}, on {v.seeds} paired seeds.")
    reasons = []
    if v.seeds < MIN_SEEDS:
        reasons.append(f"only {v.seeds} {unit} (at least {MIN_SEEDS} to call a choice settled)")
    if not v.p_best >= SETTLED_P_BEST:
        reasons.append(f"it is the best in {v.p_best:.0%} of the draws (below {SETTLED_P_BEST:.0%})")
    if v.runner_up is not None and not v.separated:
        reasons.append(f"the runner-up {v.runner_up} does not lie below it (their paired interval includes zero)")
    text = f"The choice of {v.best}{where} is **not settled**: {'; '.join(reasons)}. "
    if v.seeds_needed is None:
        text += (f"More than {MAX_SEEDS_SUGGESTED} {unit} would be needed to tell {v.best} from {v.runner_up} "
                 "(their difference is small against its noise): treat them as equivalent.")
    elif v.seeds_needed > v.seeds:
        text += (f"About {v.seeds_needed} {unit} would settle it (an estimate: the units at which the interval "
                 f"of its lead over {v.runner_up} would exclude zero, were the lead's mean and spread to stay as "
                 f"measured: --episodes {-(-v.seeds_needed // per_seed)}).")
    else:
        kept = f"the draws of {other_draws}" if other_draws else "another option close to the best"
        text += (f"More seeds alone will not settle it: seed noise on the lead over {v.runner_up} is already small "
                 f"enough at {v.seeds} seeds; {kept} keep{'s' if not other_draws else ''} it open.")
    return text


# ------------------------------------------------------------------------------------------------- compare
def compare_verdict(results: pd.DataFrame, metric: str, exclude: Iterable[str] = (), confidence: float = 0.95,
                    seed: int = 0) -> Verdict | None:
    """A comparison's ranking by ``metric``: its best strategy's P(best) over t-draws of every ranked strategy's mean
    (paired seeds; strategies identical to the best on every seed count as the best), whether its 95% t-interval
    of the lead over the runner-up excludes zero, and the seeds that would settle it."""
    from oce_sim.studies.evaluation import leader

    top = leader(results, metric, exclude=exclude, confidence=confidence)
    if top is None:
        return None
    frame = results[(results.metric == metric) & ~results.strategy.isin(list(exclude))]
    wide = frame.pivot_table(index="seed", columns="strategy", values="value", aggfunc="first").dropna()
    wide = wide.drop(columns=list(top.same_as))
    if top.runner_up is None:
        return Verdict(top.best, None, 1.0, True, len(wide), MIN_SEEDS)
    drawn = mean_draws(wide.to_numpy().T, P_BEST_DRAWS, np.random.default_rng(seed))
    p_best = float(np.mean(drawn.argmax(axis=1) == list(wide.columns).index(top.best)))
    return verdict(top.best, top.runner_up, p_best, top.diff_low > 0, (wide[top.best] - wide[top.runner_up]).to_numpy(),
                   confidence)


__all__ = ["MAX_SEEDS_SUGGESTED", "MIN_SEEDS", "ROADMAP_COVERS", "SEED_NOISE_ONLY", "SETTLED_P_BEST", "Verdict",
           "compare_verdict", "mean_draws", "parameter_mean_draws", "parameters_note", "roadmap_coverage",
           "roadmap_covers", "seed_noise_coverage", "seeds_to_settle", "verdict", "verdict_sentence"]
