"""Predictions tested for efficacy (IT stage 3): randomised holdouts and the uplift the company learns from them.

Each epoch the executor withholds a random share of the customers it planned to touch (``pipeline.holdout_share``)
and registers both groups as a *cohort*.  :class:`EfficacyTest` reads prescriptions as they are published to it,
one day after another: a cohort's outcome is each customer's Rx over the ``WINDOW_DAYS`` from the epoch on minus
his Rx over the ``WINDOW_DAYS`` before it (a difference in differences), in units of his class volume (a share
change).  Per (segment, channel) the tested uplift is treated minus held out, with its standard error.  The view's
instance reads the pipeline's published Rx (late, noisy, with gaps), so the data stage limits what is learned;
a second instance fed the true Rx at once is a diagnostic only (the full-information uplift), never read by
decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WINDOW_DAYS = 28  # outcome window after the epoch, and the baseline window before it
WORKING_DAYS_PER_WINDOW = WINDOW_DAYS * 5 / 7
MIN_PER_ARM = 8  # a (segment, channel) needs this many outcomes in each arm before its estimate is used
Z_ONE_SIDED_95 = 1.645


@dataclass
class Cohort:
    day: int  # the epoch's first day
    hcp: np.ndarray
    channel: np.ndarray
    treated: np.ndarray  # False: held out
    segment: np.ndarray
    start_cum: np.ndarray | None = None  # cumulative Rx through day - 1
    baseline: np.ndarray | None = None  # Rx over the window before the epoch


class EfficacyTest:
    """Treated-vs-holdout outcomes per (segment, channel), from the prescriptions this instance is shown."""

    def __init__(self, class_rx_per_day: np.ndarray, n_segments: int, n_channels: int):
        n = class_rx_per_day.size
        self.scale = np.maximum(1e-9, class_rx_per_day * WORKING_DAYS_PER_WINDOW)  # class Rx in one window
        self.cum = np.zeros(n)
        self.ring = np.zeros((WINDOW_DAYS, n), dtype=np.float32)
        self.last_day = -(10**9)
        self.pending: list[Cohort] = []
        # [segment, channel, arm] with arm 0 = held out, 1 = treated: count, sum and sum of squares of outcomes
        self.stats = np.zeros((3, n_segments, n_channels, 2))

    def register(self, day: int, hcp: np.ndarray, channel: np.ndarray, treated: np.ndarray,
                 segment: np.ndarray) -> None:
        if hcp.size == 0:
            return
        cohort = Cohort(day, hcp, channel, treated, segment)
        if self.last_day >= day - 1:  # the day before the epoch is already known (a pipeline without latency)
            self._start(cohort)
        self.pending.append(cohort)

    def on_day(self, day: int, rx: np.ndarray) -> None:
        """Prescriptions of ``day`` (days arrive in order, each once)."""
        self.cum += rx
        self.ring[day % WINDOW_DAYS] = rx
        self.last_day = day
        still: list[Cohort] = []
        for cohort in self.pending:
            if cohort.start_cum is None and day >= cohort.day - 1:
                self._start(cohort)
            if cohort.start_cum is not None and day >= cohort.day + WINDOW_DAYS - 1:
                self._finish(cohort)
            else:
                still.append(cohort)
        self.pending = still

    def _start(self, cohort: Cohort) -> None:
        cohort.start_cum = self.cum[cohort.hcp].copy()
        cohort.baseline = self.ring[:, cohort.hcp].sum(axis=0, dtype=np.float64)

    def _finish(self, cohort: Cohort) -> None:
        y = (self.cum[cohort.hcp] - cohort.start_cum - cohort.baseline) / self.scale[cohort.hcp]
        arm = cohort.treated.astype(np.int64)
        for k, values in enumerate((np.ones_like(y), y, y * y)):
            np.add.at(self.stats[k], (cohort.segment, cohort.channel, arm), values)

    # ------------------------------------------------------------------------------------------ estimates
    def uplift(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``[segment, channel]`` arrays: tested uplift (share of class volume over one window, treated minus held
        out), its standard error, and whether both arms have ``MIN_PER_ARM`` outcomes (else uplift 0, se inf)."""
        n, s1, s2 = self.stats
        mean = s1 / np.maximum(n, 1)
        var = np.maximum(0.0, s2 / np.maximum(n, 1) - mean**2) * n / np.maximum(n - 1, 1)
        tested = (n >= MIN_PER_ARM).all(axis=-1)
        se2 = (var / np.maximum(n, 1)).sum(axis=-1)
        uplift = np.where(tested, mean[..., 1] - mean[..., 0], 0.0)
        se = np.where(tested, np.sqrt(se2), np.inf)
        return uplift, se, tested

    def shrunk_uplift(self, channel: int, n_groups: int) -> np.ndarray | None:
        """Per group of segments (``segment % n_groups``: the believed prescribing state, pooled over potential
        tiers, since outcomes are in units of class volume), the uplift on ``channel`` shrunk toward the
        precision-weighted mean (empirical Bayes, DerSimonian-Laird spread between groups beyond their noise);
        None before two groups are tested."""
        n, s1, s2 = (np.stack([a[g::n_groups, channel].sum(axis=0) for g in range(n_groups)]) for a in self.stats)
        tested = (n >= MIN_PER_ARM).all(axis=-1)
        if tested.sum() < 2:
            return None
        mean = s1[tested] / n[tested]
        var = np.maximum(0.0, s2[tested] / n[tested] - mean**2) * n[tested] / (n[tested] - 1)
        u = mean[:, 1] - mean[:, 0]
        se2 = np.maximum(1e-12, (var / n[tested]).sum(axis=-1))
        w = 1.0 / se2
        centre = float((w * u).sum() / w.sum())
        q = float((w * (u - centre) ** 2).sum())
        tau2 = max(0.0, (q - (u.size - 1)) / (w.sum() - (w**2).sum() / w.sum()))
        shrunk = np.full(n_groups, centre)
        shrunk[tested] = centre + tau2 / (tau2 + se2) * (u - centre)
        return shrunk
