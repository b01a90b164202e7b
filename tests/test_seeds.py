"""The seed protocol (oce_sim/studies/seeds.py): validation, test, training and burn-in seeds never overlap."""

from __future__ import annotations

import pytest

from oce_sim.bench.gate import load_suite
from oce_sim.envs.steady_start import BURN_IN_SEEDS
from oce_sim.learning.factored_ppo import TRAIN_SEED_OFFSET
from oce_sim.studies import seeds


def test_the_ranges_are_disjoint():
    validation, test = set(seeds.VALIDATION_SEEDS), set(seeds.TEST_SEEDS)
    assert not validation & test
    assert not (validation | test) & set(BURN_IN_SEEDS)
    assert TRAIN_SEED_OFFSET > max(validation | test)
    suite = load_suite("quick")
    bench = set(range(suite.seed, suite.seed + suite.episodes))
    assert not bench & (validation | test)


def test_validation_seeds_are_bounded():
    assert list(seeds.validation_seeds(3)) == [200_000, 200_001, 200_002]
    with pytest.raises(ValueError, match="count"):
        seeds.validation_seeds(0)
    assert seeds.is_test_seed(900_019) and not seeds.is_test_seed(900_020)
