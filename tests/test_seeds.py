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


def test_selection_seeds_are_validation_seeds_apart_from_the_planners():
    chosen = seeds.selection_seeds(10)
    assert list(chosen)[:2] == [201_000, 201_001] and set(chosen) <= set(seeds.VALIDATION_SEEDS)
    assert not set(chosen) & set(seeds.validation_seeds(1_000))  # the planner searches from 200,000
    assert not set(chosen) & set(seeds.TEST_SEEDS)
    with pytest.raises(ValueError, match="count"):
        seeds.selection_seeds(0)
