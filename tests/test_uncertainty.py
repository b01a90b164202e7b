"""Uncertainty as data: every calibrated parameter has a documented range that holds its default, and draws
validate as scenarios."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oce_sim.studies import uncertainty
from oce_sim.config import load_scenario


def test_every_default_lies_in_its_documented_range():
    config = load_scenario("default")
    for r in uncertainty.RANGES:
        assert r.low < r.high and r.source, r.path
        assert r.low <= uncertainty.value_at(config, r.path) <= r.high, (r.path, uncertainty.value_at(config, r.path))


def test_every_calibrated_response_parameter_has_a_range():
    config = load_scenario("default")
    response = config.response.model_dump()
    calibrated = {"carryover_per_month", "hill_half_saturation", "hill_shape", "share_lift_from_response",
                  "p_aware_to_trial", "p_trial_reject", "p_adopter_lapse", "patient_persistence_per_month",
                  "refills_per_patient_per_month", "peer_effect_per_adopter_kol",
                  "cross_channel_reinforcement", "p_aware_to_trial_base"}
    assert calibrated <= set(response)
    for name in calibrated:
        assert f"response.{name}" in uncertainty.BY_PATH, name
    assert "channels.email.follow_up_open" in uncertainty.BY_PATH


@pytest.mark.parametrize("seed", range(5))
def test_draws_are_inside_their_ranges_and_validate(seed):
    config = load_scenario("default")
    drawn = uncertainty.draw_scenario(config, np.random.default_rng(seed))
    for r in uncertainty.RANGES:
        assert r.low <= uncertainty.value_at(drawn, r.path) <= r.high, r.path
    # both elements of a tuple parameter are drawn, neither overwrites the other
    values = uncertainty.draw_values(np.random.default_rng(seed))
    assert drawn.response.p_trial_to_adopt == pytest.approx(
        (values["response.p_trial_to_adopt.0"], values["response.p_trial_to_adopt.1"]))
    assert drawn.history == config.history, "a draw changes the response, not the market's pinned history"


def test_the_docs_show_the_ranges():
    text = (Path(__file__).resolve().parent.parent / "docs" / "MODEL.md").read_text(encoding="utf-8")
    assert uncertainty.markdown_table() in text
