"""The seed protocol: which seeds may shape a choice and which may only report its result.

Paired seeds are common random numbers: the same seed is the same market, the same customers and the same luck
for every strategy.  A figure is honest only if the seeds it is reported on were never used to choose what it
measures (a plan, a learner's settings, a base policy of the oracle, a calibration constant).  So:

* ``VALIDATION_SEEDS`` (200,000 and up): every design and tuning choice.  Search on them, compare variants on them.
* ``TEST_SEEDS`` (900,000-900,019): reporting only.  Nothing is chosen while looking at them.
* ``SELECTION_SEEDS`` (validation seeds from 201,000): choosing among finished candidates (which policy that sees
  only observations is the best, ``oce_sim.studies.gap``), apart from the planner's search seeds (200,000 and up), so
  that a plan's winner's curse on its own search seeds does not pick it.
* Training: ``oce-sim train``'s territories are seeded far from both (factored-ppo: 1,000,000 x (1 + seed) and up,
  ``oce_sim.learning.factored_ppo.TRAIN_SEED_OFFSET``; the SB3 algorithms: the training seed and the env index).
* The market's history (the steady start) runs on ``BURN_IN_SEEDS`` 910,001-910,016 (``oce_sim.envs.steady_start``;
  4 of them, more for a market under 600 HCPs): a market's past, the same for every episode, not an episode of its
  own.

The everyday commands (``compare``, ``whatif``, ``roadmap``) start at seed 0 by default: a strategist's own study.
docs/SEEDS.md lists which published figure rests on which seeds, and whether it is current.
"""

from __future__ import annotations

VALIDATION_SEED = 200_000
VALIDATION_SEEDS = range(VALIDATION_SEED, VALIDATION_SEED + 100_000)
TEST_SEED = 900_000
TEST_SEEDS = range(TEST_SEED, TEST_SEED + 20)
SELECTION_SEED = VALIDATION_SEED + 1_000  # validation seeds, clear of the planner's search seeds 200,000 and up


def validation_seeds(count: int) -> range:
    """The first ``count`` validation seeds."""
    if not 1 <= count <= len(VALIDATION_SEEDS):
        raise ValueError(f"count must be in [1, {len(VALIDATION_SEEDS)}], got {count}")
    return range(VALIDATION_SEED, VALIDATION_SEED + count)


def selection_seeds(count: int) -> range:
    """The first ``count`` selection seeds (validation seeds from :data:`SELECTION_SEED`)."""
    if not 1 <= count <= VALIDATION_SEEDS.stop - SELECTION_SEED:
        raise ValueError(f"count must be in [1, {VALIDATION_SEEDS.stop - SELECTION_SEED}], got {count}")
    return range(SELECTION_SEED, SELECTION_SEED + count)


def is_test_seed(seed: int) -> bool:
    return seed in TEST_SEEDS
