"""A steady start: day-0 customer state drawn from what years of the market's usual promotion left behind.

A :class:`StartTable` holds, per *cell* of HCPs that look alike to the market (potential decile x archetype x
formulary access), the distribution of adoption states and the mean goodwill in each state at the end of a
burn-in, with the shares of open, restricted and blocked accounts the history ended with and the downgrades per
formulary review that keep the configured shares stationary (``ResponseModel.review_access``).
:meth:`StartTable.apply` draws each account's access with the account's own uniform, then each HCP's day-0 state
from its cell with the HCP's own initial uniform (the population stream's draws, so the start stays a common random
number across strategies).  The burn-in
itself is run by :mod:`oce_sim.envs.steady_start`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oce_sim.world.population import ARCHETYPES, Population

N_DECILES = 10
N_ACCESS = 3
N_STATES = 4
N_CELLS = N_DECILES * len(ARCHETYPES) * N_ACCESS
PRIOR_WEIGHT = 4.0  # pseudo-HCPs of the decile's pooled distribution that smooth a thin cell


def cell_of(pop: Population, account_access: np.ndarray) -> np.ndarray:
    access = account_access[pop.account].astype(np.int64)
    return ((pop.decile.astype(np.int64) - 1) * len(ARCHETYPES) + pop.archetype) * N_ACCESS + access


@dataclass(frozen=True)
class StartTable:
    state_share: np.ndarray  # [N_CELLS, 4]: distribution of adoption states
    goodwill: np.ndarray  # [N_CELLS, 4]: mean goodwill of the cell's HCPs in each state
    access_share: np.ndarray  # [3]: shares of open, restricted and blocked accounts at the end of the history
    access_downgrade: np.ndarray  # [2]: per review, open -> restricted and restricted -> blocked

    def __post_init__(self) -> None:
        if self.access_share.shape != (N_ACCESS,) or not np.isclose(self.access_share.sum(), 1.0):
            raise ValueError(f"access_share must be {N_ACCESS} shares summing to 1, got {self.access_share!r}")
        if self.access_downgrade.shape != (2,) or not np.all((self.access_downgrade >= 0) & (self.access_downgrade <= 1)):
            raise ValueError(f"access_downgrade must be 2 probabilities, got {self.access_downgrade!r}")

    @classmethod
    def from_samples(cls, cells: np.ndarray, adoption: np.ndarray, goodwill: np.ndarray, access_share: np.ndarray,
                     access_downgrade: np.ndarray) -> "StartTable":
        """Pool the end states of burn-in HCPs; thin cells lean on their decile's pooled distribution."""
        counts = np.zeros((N_CELLS, N_STATES))
        goodwill_sum = np.zeros((N_CELLS, N_STATES))
        np.add.at(counts, (cells, adoption), 1.0)
        np.add.at(goodwill_sum, (cells, adoption), goodwill)
        by_decile = counts.reshape(N_DECILES, -1, N_STATES).sum(axis=1)
        decile_share = (by_decile + 1e-9) / (by_decile + 1e-9).sum(axis=1, keepdims=True)
        prior = np.repeat(decile_share, N_CELLS // N_DECILES, axis=0)
        share = (counts + PRIOR_WEIGHT * prior) / (counts.sum(axis=1, keepdims=True) + PRIOR_WEIGHT)
        decile_goodwill = goodwill_sum.reshape(N_DECILES, -1, N_STATES).sum(axis=1) / np.maximum(by_decile, 1.0)
        prior_goodwill = np.repeat(decile_goodwill, N_CELLS // N_DECILES, axis=0)
        mean_goodwill = (goodwill_sum + PRIOR_WEIGHT * prior_goodwill) / (counts + PRIOR_WEIGHT)
        return cls(share, mean_goodwill, np.asarray(access_share, dtype=float), np.asarray(access_downgrade, dtype=float))

    def apply(self, pop: Population, adoption: np.ndarray, goodwill: np.ndarray, account_access: np.ndarray) -> None:
        """Overwrite ``account_access`` with a draw from the history's shares (each account's own uniform: the
        configured draw's cut points moved to the history's), then ``adoption`` and ``goodwill`` with a draw from
        each HCP's cell, all in place."""
        cumulative = np.cumsum(self.access_share)
        drawn = (cumulative / cumulative[-1]).searchsorted(pop.account_uniform, side="right")
        account_access[:] = np.minimum(drawn, N_ACCESS - 1)
        cells = cell_of(pop, account_access)
        # Highest state first, as in generate_population: a low uniform means a further-along prescriber.
        cumulative = np.cumsum(self.state_share[cells][:, ::-1], axis=1)
        state = N_STATES - 1 - (pop.initial_uniform[:, None] >= cumulative).sum(axis=1)
        state = np.clip(state, 0, N_STATES - 1).astype(adoption.dtype)
        adoption[:] = state
        goodwill[:] = self.goodwill[cells, state]
