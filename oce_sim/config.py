"""Typed scenario configuration.

A scenario is layered: the defaults below describe the built-in *default* scenario (a mid-size territory of
a mature market); a YAML file in ``scenarios/`` overrides any subset; keyword overrides passed to
``gymnasium.make`` are applied last.  Every model forbids unknown keys, so a typo is an error that names the
field path and lists what is allowed.  Sources of the default figures are in ``docs/MODEL.md``.
"""

from __future__ import annotations

import copy
import re
import reprlib
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, Mapping

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

CHANNELS: tuple[str, ...] = ("rep_visit", "remote_detail", "email", "webinar", "website")
ENTITIES: tuple[str, ...] = ("customer", "sales", "marketing", "it")
STAGE_NAMES: tuple[str, ...] = ("instruction", "insight", "involvement", "intervention")


# Input rules shared by every block (they apply to fields added later without per-field edits).
INT64_MAX = 2**63 - 1  # the simulation stores counts in int64 arrays
MAX_DAYS = 3650.0  # the longest horizon: no duration, delay or interval needs more
MIN_STEP_DAYS = 1.0 / 24.0  # one hour: shorter repeating intervals stop SimPy's clock in practice
MAX_WORKING_MINUTES = 960.0  # the simulated working day starts at 08:00 and must end by midnight
MAX_TEXT_CHARS = 2000  # names, descriptions and other strings


def _is_probability(field_name: str) -> bool:
    """Shares, probabilities (``p_*``) and availabilities are in [0, 1] by name, wherever they are declared."""
    return "share" in field_name or field_name.startswith("p_") or field_name.endswith("_probability") \
        or field_name in ("availability", "access_factor")


def _leaves(value: Any) -> Iterator[Any]:
    """The scalars inside tuples, lists and dict values (validated sub-models check their own fields)."""
    if isinstance(value, (tuple, list)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif not isinstance(value, BaseModel):
        yield value


def _lists_to_tuples(value: Any, annotation: Any) -> Any:
    """YAML and JSON have no tuples: accept a list wherever the field declares a tuple (strict mode would not)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(annotation):
            if typing.get_origin(arm) is tuple:
                return _lists_to_tuples(value, arm)
        return value
    if origin is not tuple or not isinstance(value, list):
        return value
    args = typing.get_args(annotation)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_lists_to_tuples(item, args[0]) for item in value)
    return tuple(_lists_to_tuples(item, args[i]) if i < len(args) else item for i, item in enumerate(value))


class _Model(BaseModel):
    # strict: a bool is not an int and a string is not a number (int -> float still passes); finite floats only.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _accept_lists_for_tuples(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        return _lists_to_tuples(value, field.annotation) if field is not None else value

    @field_validator("*", mode="after")
    @classmethod
    def _known_dict_keys(cls, value: Any, info: ValidationInfo) -> Any:
        """A mapping field (``availability``, ``access_factor``...) takes the keys of its default, no others."""
        field = cls.model_fields.get(info.field_name or "")
        if not isinstance(value, dict) or field is None or field.default_factory is None:
            return value
        allowed = list(field.get_default(call_default_factory=True, validated_data={}))
        if not allowed:  # an open mapping (empty default): any key
            return value
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise ValueError(f"unknown key(s) {_excerpt(unknown)}; allowed: {', '.join(allowed)}")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _bounded_by_name(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        is_time = name.endswith(("_days", "_day")) and "_per_" not in name  # not cap_per_30_days, calls_per_day
        is_minutes = "minutes" in name  # durations within the working day
        is_step = name.endswith(("interval_days", "period_days"))
        for leaf in _leaves(value):
            if isinstance(leaf, str) and len(leaf) > MAX_TEXT_CHARS:
                raise ValueError(f"text longer than {MAX_TEXT_CHARS} characters ({len(leaf)})")
            if isinstance(leaf, bool) or not isinstance(leaf, (int, float)):
                continue
            if isinstance(leaf, int) and not -INT64_MAX - 1 <= leaf <= INT64_MAX:
                raise ValueError("integer outside the 64-bit range")
            if _is_probability(name) and not 0.0 <= leaf <= 1.0:
                raise ValueError(f"must be in [0, 1] (a share or probability), got {_excerpt(leaf)}")
            if is_time and not 0.0 <= leaf <= MAX_DAYS:
                raise ValueError(f"must be in [0, {MAX_DAYS:g}] days, got {_excerpt(leaf)}")
            if is_minutes and not 0.0 <= leaf <= MAX_WORKING_MINUTES:
                raise ValueError(f"must be in [0, {MAX_WORKING_MINUTES:g}] minutes (a working day starts at 08:00 "
                                 f"and ends by midnight), got {_excerpt(leaf)}")
            if is_step and leaf < MIN_STEP_DAYS:
                raise ValueError(f"must be at least {MIN_STEP_DAYS:.4f} days (one hour), got {_excerpt(leaf)}")
        return value


# Reusable annotated types for new fields (the name rules above apply as well).
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Days = Annotated[float, Field(ge=0.0, le=MAX_DAYS)]
StepDays = Annotated[float, Field(ge=MIN_STEP_DAYS, le=MAX_DAYS, description="a repeating interval")]


def _uniform_stage(value: Any) -> Any:
    """Accept ``2`` or ``"involvement"`` for a uniform stage."""
    if isinstance(value, bool):
        raise ValueError("stage must be an integer 0-3 or a mapping of entity -> 0-3")
    if isinstance(value, int):
        if not 0 <= value <= 3:
            raise ValueError(f"stage must be 0-3 ({', '.join(STAGE_NAMES)}), got {value}")
        return StageConfig.uniform(value)
    if isinstance(value, str) and value in STAGE_NAMES:
        return StageConfig.uniform(STAGE_NAMES.index(value))
    return value


class StageConfig(_Model):
    """Maturity stage (0 instruction .. 3 intervention) of each orchestration entity."""

    customer: int = Field(1, ge=0, le=3, description="3: customers declare preferences (experience packages)")
    sales: int = Field(1, ge=0, le=3, description=">=2: reps record knowledge and answer questions")
    marketing: int = Field(1, ge=0, le=3, description="3: the orchestrator controls marketing channels")
    it: int = Field(1, ge=0, le=3, description="data pipeline level: latency, coverage, quality")

    @classmethod
    def uniform(cls, stage: int) -> "StageConfig":
        return cls(customer=stage, sales=stage, marketing=stage, it=stage)

    @property
    def overall(self) -> int:
        """The lowest entity stage: an organisation is only as mature as its weakest entity."""
        return min(self.customer, self.sales, self.marketing, self.it)


class ArchetypeShares(_Model):
    traditional: float = Field(0.5, ge=0.0, le=1.0)
    digital_first: float = Field(0.3, ge=0.0, le=1.0)
    no_see: float = Field(0.2, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _sums_to_one(self) -> "ArchetypeShares":
        total = self.traditional + self.digital_first + self.no_see
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"archetype shares must sum to 1 (got {total:.3f})")
        return self


class AccessShares(_Model):
    open: float = Field(0.6, ge=0.0, le=1.0)
    restricted: float = Field(0.3, ge=0.0, le=1.0)
    blocked: float = Field(0.1, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _sums_to_one(self) -> "AccessShares":
        total = self.open + self.restricted + self.blocked
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"access shares must sum to 1 (got {total:.3f})")
        return self


class PopulationConfig(_Model):
    n_hcps: int = Field(600, ge=1, le=2_000_000)
    n_reps: int = Field(4, ge=0, le=50_000)
    specialist_share: float = Field(0.3, ge=0.0, le=1.0)
    archetypes: ArchetypeShares = ArchetypeShares()
    kol_share: float = Field(0.03, ge=0.0, le=1.0, description="share of HCPs who are KOLs")
    kol_followers: int = Field(15, ge=0, le=1000, description="HCPs each KOL influences")
    hcps_per_account: int = Field(25, ge=1, le=100_000)
    access: AccessShares = AccessShares()
    top_decile_class_rx_per_week: float = Field(
        14.0, gt=0.0, description="class prescriptions per week written by a decile-10 HCP"
    )
    decile_rx_ratio: float = Field(1.35, ge=1.0, le=3.0, description="class volume ratio between deciles")
    email_opt_in: float = Field(0.6, ge=0.0, le=1.0)
    remote_opt_in: float = Field(0.35, ge=0.0, le=1.0)
    rep_knowledge_share: float = Field(0.3, ge=0.0, le=1.0, description="HCPs whose needs the rep knows")
    initial_aware_share: float = Field(0.5, ge=0.0, le=1.0)
    initial_trialing_share: float = Field(0.1, ge=0.0, le=1.0)
    initial_adopter_share: float = Field(0.1, ge=0.0, le=1.0)
    n_themes: int = Field(4, ge=2, le=12, description="message themes, in their intended order")
    need_concentration: float = Field(0.8, gt=0.0, description="Dirichlet concentration of latent needs")
    contact_tolerance_per_month: tuple[float, float] = Field(
        (4.0, 10.0), description="uniform range of touches per month an HCP tolerates"
    )

    @model_validator(mode="after")
    def _initial_states(self) -> "PopulationConfig":
        total = self.initial_aware_share + self.initial_trialing_share + self.initial_adopter_share
        if total > 1.0 + 1e-9:
            raise ValueError(f"initial aware+trialing+adopter shares exceed 1 (got {total:.3f})")
        lo, hi = self.contact_tolerance_per_month
        if not 0 < lo <= hi:
            raise ValueError("contact_tolerance_per_month must be (low, high) with 0 < low <= high")
        return self


class ResponseConfig(_Model):
    """Customer response: adstock, Hill saturation, sequence, confusion, fatigue, adoption HMM."""

    carryover_per_month: float = Field(
        0.65, gt=0.0, lt=1.0, description="geometric adstock per 30 days (documented range 0.6-0.84: 0.65 follows the "
        "decay of Mizik & Jacobson's new-Rx profile, with the short-term elasticity, 0.84 is the textbook carryover on "
        "sales, which here also carries the repeat prescribing of the patient stock)")
    # bounded so that x ** shape and half ** shape stay finite and non-zero in floating point
    hill_half_saturation: float = Field(6.0, ge=0.01, le=1000.0)
    hill_shape: float = Field(1.0, ge=0.1, le=10.0)
    channel_effect: dict[str, float] = Field(
        default_factory=lambda: {
            "rep_visit": 1.0,
            "remote_detail": 0.6,
            "email": 0.25,
            "webinar": 5.0,
            "website": 0.2,
        }
    )
    repeat_theme_factor: float = Field(0.5, ge=0.0, le=1.0, description="impact of an already-heard theme")
    out_of_sequence_factor: float = Field(0.25, ge=0.0, le=1.0, description="impact of a theme out of order")
    confusion_window_days: float = Field(14.0, ge=0.0)
    confusion_theme_distance: int = Field(2, ge=1, description="theme gap that counts as contradictory")
    confusion_increment: float = Field(0.5, ge=0.0, le=1.0)
    cross_channel_reinforcement: float = Field(
        3.0, ge=0.0, le=10.0, description="extra impact of an engaged touch when another stakeholder delivered a "
        "consistent message (theme gap below confusion_theme_distance) within confusion_window_days: the mirror of "
        "confusion (calibrated: blended rep + digital response 1.5-4x rep-only, Veeva Pulse EU 2022)")
    confusion_half_life_days: float = Field(21.0, gt=0.0)
    fatigue_half_life_days: float = Field(15.0, gt=0.0)
    unsubscribe_base: float = Field(0.002, ge=0.0, le=1.0)
    unsubscribe_per_excess: float = Field(0.08, ge=0.0, le=1.0)
    # daily transition probabilities of the hidden adoption chain
    p_unaware_to_aware: tuple[float, float] = Field((0.001, 0.015), description="(base, per unit response)")
    p_aware_to_trial: float = Field(0.001, ge=0.0, le=1.0, description="per unit response, times access")
    p_aware_to_trial_base: float = Field(
        0.001, ge=0.0, le=1.0, description="without promotion (colleagues, guidelines, patients asking), times access "
        "(calibrated: share of NRx due to details 0.12-0.30, IMS)")
    p_trial_to_adopt: tuple[float, float] = Field((0.004, 0.003), description="(base, per unit response)")
    p_trial_reject: float = Field(0.006, ge=0.0, le=1.0, description="times (1 - response)(1 + confusion)")
    p_adopter_lapse: float = Field(0.0025, ge=0.0, le=1.0, description="times (1 - 0.8 response)(1 + confusion)")
    peer_effect_per_adopter_kol: float = Field(0.002, ge=0.0, le=1.0)
    brand_share_by_state: tuple[float, float, float, float] = Field(
        (0.0, 0.01, 0.12, 0.35), description="brand share of class Rx for unaware, aware, trialing, adopter"
    )
    share_lift_from_response: float = Field(
        0.26, ge=0.0, le=1.0, description="extra share at full response, from the aware state on (documented range "
        "0.18-0.36; calibrated: NRx per extra detail 0.03-0.08 in month 1, 0.10-0.35 over 7 months)")
    patient_persistence_per_month: float = Field(
        0.7, ge=0.0, lt=1.0, description="share of the brand's patients still on it a month later (documented range "
        "0.5-0.9); with refills_per_patient_per_month it splits prescriptions into new (NRx) and repeat (refills)")
    refills_per_patient_per_month: float = Field(
        0.35, ge=0.0, le=30.0, description="repeat prescriptions a patient on the brand gets per month (range 0.2-1.0)")
    access_factor: dict[str, float] = Field(
        default_factory=lambda: {"open": 1.0, "restricted": 0.4, "blocked": 0.05}
    )
    access_review_interval_days: float = Field(91.0, gt=0.0)
    access_upgrade_per_adopter_share: float = Field(0.6, ge=0.0, le=1.0)

    @field_validator("channel_effect")
    @classmethod
    def _known_channels(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channel(s) {_excerpt(unknown)}; allowed: {list(CHANNELS)}")
        return {name: value.get(name, 0.0) for name in CHANNELS}

    @field_validator("access_factor")
    @classmethod
    def _known_access(cls, value: dict[str, float]) -> dict[str, float]:
        allowed = ("open", "restricted", "blocked")
        unknown = sorted(set(value) - set(allowed))
        if unknown or set(value) != set(allowed):
            raise ValueError(f"access_factor needs exactly the keys {list(allowed)} (got {_excerpt(sorted(value))})")
        return value


class RepVisitConfig(_Model):
    # Variable cost of a delivered call (samples, travel, expenses); the rep's salary is the fixed
    # economics.rep_annual_cost_usd. Samples add >= 15% to the published $178 / $267 per call.
    variable_cost_primary_care_usd: float = Field(30.0, ge=0.0, description="samples and travel per call")
    variable_cost_specialist_usd: float = Field(45.0, ge=0.0, description="samples and travel per call")
    working_minutes_per_day: float = Field(480.0, ge=0.0)
    visit_minutes: float = Field(20.0, ge=1.0, description="face time plus waiting room")
    travel_minutes: float = Field(38.0, ge=0.0, description="mean travel between calls")
    question_minutes: float = Field(6.0, ge=0.0, description="extra time to ask a profiling question")
    availability: dict[str, float] = Field(
        default_factory=lambda: {"traditional": 0.85, "digital_first": 0.55, "no_see": 0.08}
    )
    cap_per_30_days: int = Field(4, ge=0, le=8, description="visits per HCP per 30 days")


class RemoteDetailConfig(_Model):
    cost_usd: float = Field(70.0, ge=0.0)
    calls_per_day: int = Field(12, ge=0, description="inside-sales capacity for the territory")
    base_engagement: float = Field(0.55, ge=0.0, le=1.0)
    cap_per_30_days: int = Field(2, ge=0, le=8)
    delay_days: float = Field(2.0, ge=0.0, description="from scheduling to the call")


class EmailConfig(_Model):
    cost_usd: float = Field(3.0, ge=0.0)
    base_open: float = Field(0.2, ge=0.0, le=1.0)
    follow_up_open: float = Field(
        0.65, ge=0.0, le=1.0, description="base_open of an orchestrated email within confusion_window_days of the "
        "rep's met visit: a follow-up opens like a rep-sent approved email (about 42 %, Veeva Pulse 2022)")
    cap_per_30_days: int = Field(5, ge=0, le=8, description="Veeva's typical approved-email cap")
    open_delay_days: float = Field(1.5, ge=0.0)


class WebinarConfig(_Model):
    interval_days: float = Field(28.0, gt=0.0)
    first_day: float = Field(10.0, ge=0.0)
    seats: int = Field(60, ge=0)
    fixed_cost_usd: float = Field(1500.0, ge=0.0)
    cost_per_attendee_usd: float = Field(90.0, ge=0.0)
    base_registration: float = Field(0.18, ge=0.0, le=1.0)
    show_rate: float = Field(0.32, ge=0.0, le=1.0)


class WebsiteConfig(_Model):
    visits_per_day_digital: float = Field(0.02, ge=0.0, description="portal visits per day at full website fit (x0.2 while unaware)")


class ChannelsConfig(_Model):
    rep_visit: RepVisitConfig = RepVisitConfig()
    remote_detail: RemoteDetailConfig = RemoteDetailConfig()
    email: EmailConfig = EmailConfig()
    webinar: WebinarConfig = WebinarConfig()
    website: WebsiteConfig = WebsiteConfig()


class RepBehaviourConfig(_Model):
    initial_trust: float = Field(0.6, ge=0.0, le=1.0, description="probability a suggestion is accepted")
    trust_learning_rate: float = Field(0.05, ge=0.0, le=1.0)
    learn_need_per_visit: float = Field(0.15, ge=0.0, le=1.0, description="chance a visit teaches the rep")
    own_pick_revisit_days: float = Field(14.0, ge=0.0)


class MarketingCalendarConfig(_Model):
    """The campaign calendar marketing runs on its own below marketing stage 3."""

    email_interval_days: float = Field(14.0, gt=0.0)
    theme_period_days: float = Field(30.0, gt=0.0, description="how long each calendar theme runs")
    remote_interval_days: float = Field(28.0, gt=0.0)
    remote_min_decile: int = Field(8, ge=1, le=10)
    invite_all_to_webinars: bool = True


class PipelineLevel(_Model):
    batch_interval_days: float = Field(gt=0.0)
    latency_days: float = Field(ge=0.0)
    covered_channels: tuple[str, ...]
    rx_noise_cv: float = Field(ge=0.0, le=2.0, description="multiplicative noise on observed Rx")
    missing_share: float = Field(ge=0.0, le=1.0, description="records lost on the way")

    @field_validator("covered_channels")
    @classmethod
    def _channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channel(s) {_excerpt(unknown)}; allowed: {list(CHANNELS)}")
        return tuple(value)


def _default_pipeline_levels() -> tuple[PipelineLevel, ...]:
    # IT stage 0: monthly batch, CRM only; 3: near real time, everything integrated.
    return (
        PipelineLevel(batch_interval_days=30, latency_days=21, covered_channels=("rep_visit",),
                      rx_noise_cv=0.3, missing_share=0.15),
        PipelineLevel(batch_interval_days=7, latency_days=7, covered_channels=CHANNELS,
                      rx_noise_cv=0.2, missing_share=0.05),
        PipelineLevel(batch_interval_days=7, latency_days=4, covered_channels=CHANNELS,
                      rx_noise_cv=0.15, missing_share=0.03),
        PipelineLevel(batch_interval_days=1, latency_days=1, covered_channels=CHANNELS,
                      rx_noise_cv=0.1, missing_share=0.01),
    )


class PipelineConfig(_Model):
    """Data pipeline per IT stage (index = stage). ``override`` replaces the stage's level if given."""

    levels: tuple[PipelineLevel, PipelineLevel, PipelineLevel, PipelineLevel] = Field(
        default_factory=_default_pipeline_levels
    )
    override: PipelineLevel | None = None
    declare_share: float = Field(0.35, ge=0.0, le=1.0, description="customer stage 3: HCPs who declare")
    holdout_share: float = Field(
        0.0, ge=0.0, le=0.5, description="IT stage 3: share of the customers each epoch's plan targets that the "
        "executor withholds to test the touches' efficacy (0, the default: no holdout and nothing learned; at one "
        "territory's scale the learning does not pay for the holdout, MODEL.md section 2.15b)"
    )


class EconomicsConfig(_Model):
    """Prices, margins and the field force's fixed cost; what a strategist's P&L is made of."""

    price_per_rx_usd: float = Field(500.0, ge=0.0, description="brand revenue of one Rx (net price, refills lumped)")
    gross_margin: float = Field(0.9, ge=0.0, le=1.0, description="share of revenue left after cost of goods")
    rep_annual_cost_usd: float = Field(
        160_000.0, ge=0.0, description="fully loaded cost of one rep per year (Cutting Edge 2014: $160k primary "
        "care, $228k specialty, $243k hospital)"
    )
    call_cost_share: float = Field(
        1.0, ge=0.0, le=1.0, description="share of the field force's cost this brand carries (1: single-product "
        "reps; the primary product of a multi-product detail carries 0.55-0.65)"
    )
    discount_rate_per_year: float = Field(0.10, ge=0.0, le=1.0, description="discount rate of the value beyond the horizon")
    tail_years: float = Field(2.0, ge=0.0, le=10.0, description="years after the horizon the value left behind is counted")

    @property
    def margin_per_rx_usd(self) -> float:
        return self.price_per_rx_usd * self.gross_margin


class EnvSettings(_Model):
    horizon_days: int = Field(364, ge=7, le=3650)
    decision_interval_days: int = Field(7, ge=1, le=91)
    reward_scale_usd: float = Field(10_000.0, gt=0.0, description="reward = profit / this")
    reward: Literal["realized", "expected"] = Field(
        "realized",
        description="value realised prescriptions, or their expectation given the true state (less noise, "
        "same mean: for training)",
    )
    oracle_view: bool = Field(False, description="orchestrator sees the ground truth (oracle bound)")
    record_events: bool = Field(False, description="keep the full event log (for hashing and debugging)")
    terminal_value: bool = Field(
        True,
        description="add the value the customer state leaves at the horizon (value_at_horizon_usd) to the reward of "
        "the last step, so that a learner cannot gain by cutting promotion before the horizon",
    )
    info_kpis: Literal["every_step", "episode_end"] = Field(
        "every_step",
        description="when info carries the episode KPIs: every step, or only the last step's info (for training: "
        "saves computing and, under SubprocVecEnv, pickling them every step)",
    )
    hcp_rewards: bool = Field(
        False,
        description="add each step's reward split by customer to info (hcp_reward, hcp_segment): what each HCP's "
        "expected prescriptions earned minus what was spent on it, for trainers that give each segment's play its "
        "own credit (oce_sim.factored_ppo)",
    )


SAFE_NAME = re.compile(r"[^\W_][\w .+-]{0,63}")  # a name becomes a folder name (train's run folders)


class HistoryConfig(_Model):
    """How the market got to day 0.

    ``steady``: a mature market starts near the steady state of its own usual promotion (the stage heuristic of
    ``stage``, with ``n_reps`` reps), found by a burn-in that is computed once per market and cached
    (``oce_sim.envs.steady_start``).  ``configured``: the initial shares of ``population`` as given (a launch).
    ``stage`` and ``n_reps`` default to the scenario's own when it is loaded, so that a strategy run at another
    stage, or a what-if with another field force, starts from the same market.
    """

    start: Literal["steady", "configured"] = "steady"
    stage: StageConfig | None = None
    n_reps: int | None = Field(None, ge=0, le=50_000)
    burn_in_years: float = Field(6.0, ge=0.5, le=20.0, description="years of usual promotion before day 0")

    @field_validator("stage", mode="before")
    @classmethod
    def _stage_from_int(cls, value: Any) -> Any:
        return _uniform_stage(value)


class ScenarioConfig(_Model):
    name: str = "default"
    description: str = "Mid-size primary-care territory of a mature market (insight stage)."
    stage: StageConfig = StageConfig()
    population: PopulationConfig = PopulationConfig()
    response: ResponseConfig = ResponseConfig()
    channels: ChannelsConfig = ChannelsConfig()
    reps: RepBehaviourConfig = RepBehaviourConfig()
    marketing: MarketingCalendarConfig = MarketingCalendarConfig()
    pipeline: PipelineConfig = PipelineConfig()
    economics: EconomicsConfig = EconomicsConfig()
    history: HistoryConfig = HistoryConfig()
    env: EnvSettings = EnvSettings()

    @field_validator("stage", mode="before")
    @classmethod
    def _stage_from_int(cls, value: Any) -> Any:
        return _uniform_stage(value)

    @property
    def history_stage(self) -> StageConfig:
        return self.history.stage or self.stage

    @property
    def history_n_reps(self) -> int:
        return self.population.n_reps if self.history.n_reps is None else self.history.n_reps

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not SAFE_NAME.fullmatch(value) or ".." in value:
            raise ValueError("name must be 1-64 letters, digits, spaces or '_.+-', start with a letter or digit and "
                             f"contain no path separator or '..' (it names output folders); got {_excerpt(value)}")
        return value

    def pipeline_level(self) -> PipelineLevel:
        return self.pipeline.override or self.pipeline.levels[self.stage.it]


# ---------------------------------------------------------------------------------------------------------
# Loading and error reporting


MAX_PROBLEMS = 20  # problems listed per error; the rest are counted
MAX_PROBLEM_CHARS = 600  # one problem line: room for the list of allowed keys, not for a huge input
_EXCERPT = reprlib.Repr()
_EXCERPT.maxstring, _EXCERPT.maxother, _EXCERPT.maxlong = 40, 40, 24
_EXCERPT.maxlist = _EXCERPT.maxtuple = _EXCERPT.maxdict = _EXCERPT.maxset = 4
_EXCERPT.maxlevel = 2


def _excerpt(value: Any) -> str:
    """A short repr: error messages quote the offending value, never a huge input."""
    return _EXCERPT.repr(value)


def _clip(text: str, limit: int = MAX_PROBLEM_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ScenarioError(ValueError):
    """A scenario could not be loaded; ``problems`` lists ``field.path: message`` strings (bounded in number and
    length, so that a hostile input cannot make the message itself huge)."""

    def __init__(self, source: str, problems: list[str]):
        self.source = _clip(str(source), 160)
        shown = [_clip(problem) for problem in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - MAX_PROBLEMS} more problems")
        self.problems = shown
        super().__init__(f"invalid scenario {self.source}:\n  " + "\n  ".join(shown))


def repo_scenario_dir() -> Path:
    """The built-in scenarios: package data ``oce_sim/scenarios`` in a wheel install, else ``scenarios/`` at the
    top of the source checkout (``pyproject.toml`` maps one to the other)."""
    packaged = resources.files("oce_sim") / "scenarios"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "scenarios"


def builtin_scenarios() -> dict[str, Path | None]:
    """Built-in scenario names -> YAML path (``default`` needs no file)."""
    found: dict[str, Path | None] = {"default": None}
    directory = repo_scenario_dir()
    if directory.is_dir():
        for path in sorted(directory.glob("*.yaml")):
            found[path.stem] = path
        bench = directory / "benchmark"
        for path in sorted(bench.glob("*.yaml")) if bench.is_dir() else []:
            found[f"benchmark/{path.stem}"] = path
    return found


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _allowed_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Field names allowed at ``loc`` (the parent of an unknown key), walking nested models."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return None


def format_validation_error(error: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """``field.path: message`` lines; ``model`` (default the scenario) lists the keys allowed beside an unknown one."""
    problems = []
    for item in error.errors(include_url=False, include_context=False):
        loc = tuple(item["loc"])
        path = ".".join(_clip(str(part), 40) for part in loc) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            allowed = _allowed_fields(model or ScenarioConfig, loc[:-1])
            message = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        elif item["type"] not in ("value_error", "assertion_error"):
            message = f"{message} (got {_excerpt(item.get('input'))})"
        problems.append(f"{path}: {message}")
    return problems


# Limits on a scenario file: a page of YAML is a few KB; these are far above any real scenario and far below
# what could exhaust memory or time.
MAX_SCENARIO_BYTES = 64 * 1024  # the pure-Python parser reads ~60 KB/s on a busy core
MAX_YAML_DEPTH = 20  # the deepest real path is pipeline.levels[i].covered_channels[j] (depth 5)
MAX_COLLECTION_ITEMS = 1000  # entries of one mapping or list
MAX_YAML_NODES = 20_000  # nodes after alias expansion: refuses an alias bomb before it is built


class ScenarioLimitError(yaml.YAMLError):
    """A scenario file breaks a size, depth or structure limit."""


# YAML 1.1 reads ``1e-3`` as a string; read it as the number everyone means (YAML 1.2 floats).
_FLOAT_12 = re.compile(r"^[-+]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)[eE][-+]?\d+$")


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys, deep nesting, long collections and alias bombs.

    It weighs every node by its size once aliases are expanded, while composing (aliases are still shared
    references then), so a bomb is refused after reading a few hundred bytes, in bounded memory.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._weight: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if parent is not None and len(parent.value) >= MAX_COLLECTION_ITEMS:  # counted as it grows, not after
            line = parent.start_mark.line + 1
            raise ScenarioLimitError(f"more than {MAX_COLLECTION_ITEMS} entries in one collection (line {line})")
        alias = self.check_event(yaml.AliasEvent)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            line = self.peek_event().start_mark.line + 1
            raise ScenarioLimitError(f"nested deeper than {MAX_YAML_DEPTH} levels (line {line})")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if alias:
            if id(node) not in self._weight:
                raise ScenarioLimitError(f"recursive alias (line {node.start_mark.line + 1})")
            return node
        children = node.value if isinstance(node, yaml.SequenceNode) else \
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else []
        weight = 1 + sum(self._weight.get(id(child), 1) for child in children)
        if weight > MAX_YAML_NODES:
            raise ScenarioLimitError(f"more than {MAX_YAML_NODES} values once aliases are expanded "
                                     f"(line {node.start_mark.line + 1})")
        self._weight[id(node)] = weight
        return node

    # The scanner is quadratic in flow nesting ("[[[["): refuse depth as soon as it is scanned, before composing.
    def fetch_flow_collection_start(self, token_class: Any) -> None:
        if self.flow_level >= MAX_YAML_DEPTH:
            raise ScenarioLimitError(f"nested deeper than {MAX_YAML_DEPTH} levels (line {self.line + 1})")
        super().fetch_flow_collection_start(token_class)

    def add_indent(self, column: int) -> bool:
        if len(self.indents) >= MAX_YAML_DEPTH:
            raise ScenarioLimitError(f"nested deeper than {MAX_YAML_DEPTH} levels (line {self.line + 1})")
        return super().add_indent(column)

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            if (key.tag, key.value) in seen:
                raise ScenarioLimitError(f"duplicate key {_excerpt(key.value)} (line {key.start_mark.line + 1})")
            seen.add((key.tag, key.value))
        return node


BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def parse_yaml(raw: bytes) -> Any:
    """Scenario YAML bytes -> Python data, within the limits above; raises ``yaml.YAMLError`` or
    ``UnicodeDecodeError``."""
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioLimitError(f"larger than {MAX_SCENARIO_BYTES // 1024} KiB")
    text = raw.decode("utf-8-sig")  # strict: Latin-1 from a Windows editor is an error, not mojibake
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_SCENARIO_BYTES + 1)
        data = parse_yaml(raw)
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(path), [f"(file): not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                                        f"{exc.start}); save the file as UTF-8"]) from None
    except ScenarioLimitError as exc:
        raise ScenarioError(str(path), [f"(file): {exc}"]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), [f"(file): not valid YAML: {_clip(str(exc), 200)}"]) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. a date 2024-13-45, a 5,000-digit integer
        raise ScenarioError(str(path), [f"(file): unreadable value: {_clip(str(exc), 160)}"]) from None
    except OSError as exc:
        raise ScenarioError(str(path), [f"(file): cannot read: {exc.strerror}"]) from None
    if data is None:  # an empty file (or only comments) is a mistake more often than a wish for every default
        raise ScenarioError(str(path), ["(file): empty; it must hold a mapping of keys (a scenario file holding "
                                        "just 'extends: default' runs the defaults)"])
    if not isinstance(data, dict):
        raise ScenarioError(str(path), ["(top level): a scenario must be a mapping of keys"])
    return data


MAX_EXTENDS_DEPTH = 8  # files in one ``extends:`` chain


def _read_scenario_file(path: Path, source: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """A scenario file with its ``extends:`` chain resolved: the parent (a built-in name, or a path relative to the
    file that stays inside its folder) is read with the same limits, and the file's keys are merged over it (a
    partial nested block overrides only what it names).  Cycles and escaping paths are refused."""
    data = _read_yaml(path)
    if "extends" not in data:
        return data
    parent = data.pop("extends")
    here = str(path.resolve())
    chain = chain or (here,)
    shown = " -> ".join(Path(c).name for c in chain)
    if not isinstance(parent, str) or not parent.strip():
        raise ScenarioError(source, [f"extends: a built-in scenario name or a relative path to a YAML file "
                                     f"(got {_excerpt(parent)}; chain {shown})"])
    builtin = builtin_scenarios()
    if parent in builtin:
        target = builtin[parent]
    else:
        relative = Path(parent)
        folder = path.resolve().parent
        try:
            target = (folder / relative).resolve()
            is_file = target.is_file()
        except (OSError, ValueError) as exc:  # a NUL character, a name too long for the file system
            raise ScenarioError(source, [f"extends: not a usable path {_excerpt(parent)}: {_clip(str(exc), 120)}"]) \
                from None
        if relative.is_absolute() or not target.is_relative_to(folder):
            raise ScenarioError(source, [f"extends: {_excerpt(parent)} leaves the folder of {path.name} (give a "
                                         f"built-in name or a path inside that folder; chain {shown})"])
        if not is_file:
            raise ScenarioError(source, [f"extends: no such file {_excerpt(parent)} next to {path.name}; "
                                         f"built-in scenarios: {', '.join(builtin)} (chain {shown})"])
    key = str(target.resolve()) if target is not None else "default"
    if key in chain:
        cycle = " -> ".join(Path(c).name for c in (*chain, key))
        raise ScenarioError(source, [f"extends: cycle {cycle}"])
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise ScenarioError(source, [f"extends: more than {MAX_EXTENDS_DEPTH} files in the chain {shown}"])
    base = _read_scenario_file(target, source, (*chain, key)) if target is not None else {}
    base.pop("name", None)  # the extending file is another scenario: its own name (or file name) names it
    return deep_merge(_stage_as_mapping(base), _stage_as_mapping(data))


def build_config(data: Mapping[str, Any], source: str = "<overrides>") -> ScenarioConfig:
    try:
        return ScenarioConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ScenarioError(source, format_validation_error(exc)) from None


def scenario_data(scenario: str | Path | Mapping[str, Any] | ScenarioConfig | None) -> tuple[dict[str, Any], str]:
    """Raw (unvalidated) mapping for a scenario name, path, mapping or config, plus its source label."""
    if scenario is None:
        return {}, "default"
    if isinstance(scenario, ScenarioConfig):
        return scenario.model_dump(mode="python"), scenario.name
    if isinstance(scenario, Mapping):
        return dict(scenario), "<mapping>"
    text = str(scenario)
    builtin = builtin_scenarios()
    if text in builtin:
        path = builtin[text]
        return (_read_scenario_file(path, text) if path else {}), text
    path = Path(text)
    try:
        exists, is_file = path.exists(), path.is_file()
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL character
        raise ScenarioError(text, [f"(file): not a usable path: {_clip(str(exc), 120)}"]) from None
    if path.suffix in (".yaml", ".yml") or exists:
        if not is_file:
            raise ScenarioError(text, [f"(file): no such file; built-in scenarios: {', '.join(builtin)}"])
        data = _read_scenario_file(path, str(path))
        # the file name stands in for a missing name: keep it to the characters a name allows
        data.setdefault("name", re.sub(r"[^\w.+-]|\.\.", "_", path.stem)[:64].lstrip("._+-") or "scenario")
        return data, str(path)
    raise ScenarioError(text, [f"(scenario): unknown scenario name; built-in: {', '.join(builtin)}"])


def load_scenario(
    scenario: str | Path | Mapping[str, Any] | ScenarioConfig | None = None,
    stage: int | str | Mapping[str, int] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ScenarioConfig:
    """Resolve defaults <- scenario file <- ``stage`` <- ``overrides`` into a validated config."""
    if overrides is not None and not isinstance(overrides, Mapping):
        raise TypeError(f"overrides must be a mapping or None, got {type(overrides).__name__}")
    data, source = scenario_data(scenario)
    data = _stage_as_mapping(data)
    if overrides:
        data = deep_merge(data, _stage_as_mapping(overrides))
    data = pin_history(data)
    if stage is not None:
        data = deep_merge(data, {"stage": stage}) if isinstance(stage, Mapping) else {**data, "stage": stage}
    return build_config(data, source)


def pin_history(data: Mapping[str, Any]) -> dict[str, Any]:
    """Fix the market's history (stage, field force) to the scenario's own, where it is not set.

    Called once a scenario is defined and before a strategy or a what-if changes its stage or field force, so
    that every variant starts from the same market.
    """
    history = data.get("history") or {}
    if not isinstance(history, Mapping):
        return dict(data)  # validation reports it
    history = dict(history)
    if history.get("stage") is None:
        stage = data.get("stage", StageConfig().model_dump())
        if _valid(StageConfig, _uniform_stage_or_none(stage)):
            history["stage"] = stage
    population = data.get("population") or {}
    if history.get("n_reps") is None and isinstance(population, Mapping):
        n_reps = population.get("n_reps", PopulationConfig().n_reps)
        if isinstance(n_reps, int) and not isinstance(n_reps, bool) and n_reps >= 0:
            history["n_reps"] = n_reps
    return {**data, "history": history}


def _uniform_stage_or_none(value: Any) -> Any:
    try:
        return _uniform_stage(value)
    except ValueError:
        return None


def _valid(model: type[BaseModel], value: Any) -> bool:
    """Whether ``value`` validates as ``model`` (a bad value is left for the real validation to report once)."""
    if value is None:
        return False
    if isinstance(value, BaseModel):
        return True
    try:
        model.model_validate(value)
    except (ValidationError, TypeError):
        return False
    return True


def _stage_as_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """Spell a uniform stage (``2`` or ``"involvement"``) per entity, so a partial mapping overrides one entity."""
    value = data.get("stage")
    if isinstance(value, str) and value in STAGE_NAMES:
        value = STAGE_NAMES.index(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3:
        return {**data, "stage": StageConfig.uniform(value).model_dump()}
    return dict(data)


def dump_yaml(config: ScenarioConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


StageLike = int | Literal["instruction", "insight", "involvement", "intervention"] | Mapping[str, int]
