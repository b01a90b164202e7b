"""Uncertainty as data: a documented range (and a distribution to draw from) for every calibrated parameter.

Each entry names a dotted path into the scenario (``response.carryover_per_month``, ``channels.email.base_open``,
``response.channel_effect.webinar``; a tuple element by its index, ``response.p_trial_to_adopt.1``), the plausible
range, how to draw inside it, and where the range comes from.  What-ifs and roadmaps can draw scenarios from it
(:func:`draw_overrides`), and ``docs/MODEL.md`` shows it (:func:`markdown_table`).  ``tests/test_uncertainty.py``
holds every default inside its range and every draw valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from oce_sim.config import ScenarioConfig, deep_merge, load_scenario


@dataclass(frozen=True)
class Range:
    path: str
    low: float
    high: float
    distribution: Literal["uniform", "log_uniform"]
    source: str


RANGES: tuple[Range, ...] = (
    # carryover and saturation
    Range("response.carryover_per_month", 0.45, 0.84, "uniform",
          "Mizik & Jacobson 2004 (new-Rx decay ~0.5-0.7 a month; the monthly panel's peak in the month of the "
          "details needs about 0.5) to 0.84 (Innovation and Marketing in the Pharmaceutical Industry, ch. 23)"),
    Range("response.hill_half_saturation", 3.0, 12.0, "log_uniform", "assumption: half-saturation within 2x"),
    Range("response.hill_shape", 0.8, 1.3, "uniform",
          "assumption: near 1 (Michaelis-Menten), so one extra detail returns about the average detail (IMS vs M&J)"),
    Range("response.share_lift_from_response", 0.18, 0.36, "uniform",
          "calibration (docs/MODEL.md §6): NRx per extra detail 0.03-0.08 in month 1 (Mizik & Jacobson 2004)"),
    Range("response.cross_channel_reinforcement", 2.5, 6.0, "uniform",
          "calibration: blended rep + digital response 1.5-4x rep-only (Veeva Pulse EU 2022: 3x); 3 gives about "
          "1.56x, so the range lies mostly above it"),
    # channels' relative effect per engaged touch
    Range("response.channel_effect.remote_detail", 0.3, 0.9, "uniform", "assumption: a third to most of a visit"),
    Range("response.channel_effect.email", 0.1, 0.5, "uniform", "assumption: a tenth to half of a visit"),
    Range("response.channel_effect.webinar", 3.0, 8.0, "uniform",
          "Neslin 2001: meetings & events return more per $ than detailing"),
    Range("response.channel_effect.website", 0.05, 0.4, "uniform", "assumption"),
    # sequence and confusion
    Range("response.repeat_theme_factor", 0.3, 0.8, "uniform", "assumption"),
    Range("response.out_of_sequence_factor", 0.1, 0.5, "uniform", "assumption"),
    Range("response.confusion_increment", 0.25, 0.75, "uniform",
          "calibration: 30-55% of KOLs see a confusion event a year at instruction (Veeva Pulse 4Q24: 44%)"),
    Range("response.confusion_half_life_days", 10.0, 42.0, "log_uniform", "assumption"),
    Range("response.fatigue_half_life_days", 7.0, 30.0, "log_uniform", "assumption"),
    Range("response.unsubscribe_base", 0.001, 0.005, "log_uniform",
          "DMD / Indegene: unsubscribes <= 5 per 1,000 emails, not rising with frequency"),
    # the adoption chain (daily probabilities)
    Range("response.p_unaware_to_aware.0", 0.001, 0.004, "log_uniform", "assumption"),
    Range("response.p_unaware_to_aware.1", 0.003, 0.012, "log_uniform",
          "calibration: NRx per extra detail month 6 / month 1 <= 0.25, monthly panel (Mizik & Jacobson 2004)"),
    Range("response.p_aware_to_trial", 0.0005, 0.002, "log_uniform",
          "calibration: NRx per extra detail month 6 / month 1 <= 0.25 (Mizik & Jacobson 2004)"),
    Range("response.p_aware_to_trial_base", 0.0005, 0.002, "log_uniform",
          "calibration: share of NRx due to details 0.12-0.30 (IMS, 68 brands)"),
    Range("response.p_trial_to_adopt.0", 0.002, 0.008, "log_uniform", "assumption"),
    Range("response.p_trial_to_adopt.1", 0.0015, 0.006, "log_uniform", "assumption"),
    Range("response.p_trial_reject", 0.003, 0.012, "log_uniform", "assumption"),
    Range("response.p_adopter_lapse", 0.0012, 0.005, "log_uniform",
          "Montoya, Netzer & Jedidi 2010: detailing mainly acquires; adopters lapse over years"),
    Range("response.peer_effect_per_adopter_kol", 0.001, 0.004, "log_uniform", "assumption"),
    # prescribing and refills
    Range("response.patient_persistence_per_month", 0.5, 0.9, "uniform",
          "Mizik & Jacobson 2004: the total effect doubles with persistence"),
    Range("response.refills_per_patient_per_month", 0.2, 1.0, "uniform", "assumption: chronic therapy refills"),
    # channel operations
    Range("channels.email.base_open", 0.15, 0.3, "uniform", "DMD: mass pharma email open rate 10.75-12.38%"),
    Range("channels.email.follow_up_open", 0.45, 0.85, "uniform", "Veeva Pulse 2022: rep-sent approved email 42% opened"),
    Range("channels.remote_detail.base_engagement", 0.35, 0.75, "uniform", "assumption"),
    Range("channels.webinar.base_registration", 0.1, 0.3, "uniform",
          "Pharmagin 2019: 7.8-14.9 attendees per speaker programme"),
    Range("channels.webinar.show_rate", 0.25, 0.4, "uniform", "industry benchmark: about 32% of registrants"),
    Range("channels.rep_visit.visit_minutes", 12.0, 30.0, "uniform",
          "Cutting Edge 2008: 1-5 min face time, plus waiting; 7-9 calls a day"),
    Range("channels.rep_visit.travel_minutes", 25.0, 50.0, "uniform", "calibration: 7-9 calls per rep per day"),
    # economics
    Range("economics.rep_annual_cost_usd", 150_000.0, 250_000.0, "uniform",
          "Cutting Edge 2014: $160k primary care, $228k specialty, $243k hospital"),
    Range("economics.gross_margin", 0.8, 0.95, "uniform", "assumption: branded pharmaceutical gross margin"),
    Range("economics.discount_rate_per_year", 0.05, 0.15, "uniform", "assumption: a pharma cost of capital"),
)
BY_PATH = {r.path: r for r in RANGES}


def value_at(config: ScenarioConfig, path: str) -> float:
    """The parameter at ``path`` in a resolved scenario (tuple elements by index)."""
    node: Any = config.model_dump(mode="python")
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
    return float(node)


def draw_values(rng: np.random.Generator, paths: tuple[str, ...] | None = None) -> dict[str, float]:
    """One draw of the uncertain parameters (all, or ``paths``): path -> value."""
    values = {}
    for r in RANGES if paths is None else [BY_PATH[p] for p in paths]:
        if r.distribution == "log_uniform":
            values[r.path] = float(np.exp(rng.uniform(np.log(r.low), np.log(r.high))))
        else:
            values[r.path] = float(rng.uniform(r.low, r.high))
    return values


def as_overrides(config: ScenarioConfig, values: dict[str, float]) -> dict[str, Any]:
    """Path -> value as nested scenario overrides; tuple elements (``...p_trial_to_adopt.1``) rewrite their tuple,
    starting from ``config``'s own."""
    data = config.model_dump(mode="python")
    merged: dict[str, Any] = {}
    for path, value in values.items():
        parts = path.split(".")
        if parts[-1].isdigit():
            parent = parts[:-1]
            node: Any = merged
            for part in parent[:-1]:
                node = node.setdefault(part, {})
            if parent[-1] not in node:
                default: Any = data
                for part in parent:
                    default = default[part]
                node[parent[-1]] = list(default)
            node[parent[-1]][int(parts[-1])] = value
        else:
            node = merged
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
    return merged


def draw_overrides(config: ScenarioConfig, rng: np.random.Generator,
                   paths: tuple[str, ...] | None = None) -> dict[str, Any]:
    """One draw of the uncertain parameters (all, or ``paths``) as scenario overrides."""
    return as_overrides(config, draw_values(rng, paths))


def draw_scenario(config: ScenarioConfig, rng: np.random.Generator) -> ScenarioConfig:
    """``config`` with every uncertain parameter drawn (validated by the scenario schema)."""
    return load_scenario(deep_merge(config.model_dump(mode="python"), draw_overrides(config, rng)))


def markdown_table(config: ScenarioConfig | None = None) -> str:
    config = config or load_scenario(None)
    lines = ["| parameter | default | range | draw | source |", "|---|---|---|---|---|"]
    for r in RANGES:
        lines.append(f"| `{r.path}` | {value_at(config, r.path):g} | {r.low:g}-{r.high:g} | {r.distribution} | "
                     f"{r.source} |")
    return "\n".join(lines)
