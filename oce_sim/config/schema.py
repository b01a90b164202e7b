"""The scenario's schema: typed, validated configuration blocks and the constants they share.

A scenario is layered: the defaults below describe the built-in *default* scenario (a mid-size territory of
a mature market); a YAML file in ``scenarios/`` overrides any subset; keyword overrides passed to
``gymnasium.make`` are applied last.  Every model forbids unknown keys, so a typo is an error that names the
field path and lists what is allowed.  Sources of the default figures are in ``docs/MODEL.md``.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any, Iterator, Literal, Mapping

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from oce_sim.config.errors import _excerpt

CHANNELS: tuple[str, ...] = ("rep_visit", "remote_detail", "email", "webinar", "website")
ENTITIES: tuple[str, ...] = ("customer", "sales", "marketing", "it")
STAGE_NAMES: tuple[str, ...] = ("instruction", "insight", "involvement", "intervention")


# Input rules shared by every block (they apply to fields added later without per-field edits).
INT64_MAX = 2**63 - 1  # the simulation stores counts in int64 arrays
MAX_DAYS = 3650.0  # the longest horizon: no duration, delay or interval needs more
MIN_STEP_DAYS = 1.0 / 24.0  # one hour: shorter repeating intervals stop SimPy's clock in practice
MAX_WORKING_MINUTES = 960.0  # the simulated working day starts at 08:00 and must end by midnight
MAX_TEXT_CHARS = 2000  # names, descriptions and other strings
# Every amount of money (a field named *_usd): a trillion dollars is over 30 times the yearly revenue of the largest
# drug brand and millions of times a rep's cost, yet times any count the model makes (2 million HCPs, 50,000 reps,
# years of days, their prescriptions) it stays hundreds of orders of magnitude below float overflow (1.8e308):
# 1e308 USD per Rx made revenue, profit and the report inf.
MAX_USD = 1e12


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


class StrictModel(BaseModel):
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
        is_money = name.endswith("_usd")
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
            if is_money and not -MAX_USD <= leaf <= MAX_USD:
                raise ValueError(f"must be at most {MAX_USD:,.0f} USD (an amount of money), got {_excerpt(leaf)}")
            if is_step and leaf < MIN_STEP_DAYS:
                raise ValueError(f"must be at least {MIN_STEP_DAYS:.4f} days (one hour), got {_excerpt(leaf)}")
        return value


# Reusable annotated types for new fields (the name rules above apply as well).
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Days = Annotated[float, Field(ge=0.0, le=MAX_DAYS)]
StepDays = Annotated[float, Field(ge=MIN_STEP_DAYS, le=MAX_DAYS, description="a repeating interval")]


def uniform_stage(value: Any) -> Any:
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


class StageConfig(StrictModel):
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


class ArchetypeShares(StrictModel):
    traditional: float = Field(0.5, ge=0.0, le=1.0)
    digital_first: float = Field(0.3, ge=0.0, le=1.0)
    no_see: float = Field(0.2, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _sums_to_one(self) -> "ArchetypeShares":
        total = self.traditional + self.digital_first + self.no_see
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"archetype shares must sum to 1 (got {total:.3f})")
        return self


class AccessShares(StrictModel):
    open: float = Field(0.6, ge=0.0, le=1.0)
    restricted: float = Field(0.3, ge=0.0, le=1.0)
    blocked: float = Field(0.1, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _sums_to_one(self) -> "AccessShares":
        total = self.open + self.restricted + self.blocked
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"access shares must sum to 1 (got {total:.3f})")
        return self


class PopulationConfig(StrictModel):
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


class ResponseConfig(StrictModel):
    """Customer response: adstock, Hill saturation, sequence, confusion, fatigue, adoption HMM."""

    carryover_per_month: float = Field(
        0.52, gt=0.0, lt=1.0, description="geometric adstock per 30 days (documented range 0.45-0.84: 0.52 follows "
        "Mizik & Jacobson's new-Rx profile measured as their monthly panel did, where the month of the details holds "
        "the largest effect; 0.84 is the textbook carryover on sales, which here also carries the repeat prescribing "
        "of the patient stock)")
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
    p_unaware_to_aware: tuple[float, float] = Field(
        (0.002, 0.006), description="(base, per unit response); awareness is permanent, so its response term is "
        "small (calibrated: a detail's NRx is gone by month 6 of Mizik & Jacobson's monthly panel)")
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
        0.28, ge=0.0, le=1.0, description="extra share at full response, from the aware state on (documented range "
        "0.18-0.36; calibrated: NRx per extra detail 0.03-0.08 in month 1, 0.10-0.35 over 7 months)")
    patient_persistence_per_month: float = Field(
        0.7, ge=0.0, lt=1.0, description="share of the brand's patients still on it a month later (documented range "
        "0.5-0.9); with refills_per_patient_per_month it splits prescriptions into new (NRx) and repeat (refills)")
    refills_per_patient_per_month: float = Field(
        0.5, ge=0.0, le=30.0, description="repeat prescriptions a patient on the brand gets per month (range 0.2-1.0; "
        "calibrated: long-term / current-period effect 3-8, with the one extra visit and the monthly panel)")
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


class RepVisitConfig(StrictModel):
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


class RemoteDetailConfig(StrictModel):
    cost_usd: float = Field(70.0, ge=0.0)
    calls_per_day: int = Field(12, ge=0, description="inside-sales capacity for the territory")
    base_engagement: float = Field(0.55, ge=0.0, le=1.0)
    cap_per_30_days: int = Field(2, ge=0, le=8)
    delay_days: float = Field(2.0, ge=0.0, description="from scheduling to the call")


class EmailConfig(StrictModel):
    cost_usd: float = Field(3.0, ge=0.0)
    base_open: float = Field(0.2, ge=0.0, le=1.0)
    follow_up_open: float = Field(
        0.65, ge=0.0, le=1.0, description="base_open of an orchestrated email within confusion_window_days of the "
        "rep's met visit: a follow-up opens like a rep-sent approved email (about 42 %, Veeva Pulse 2022)")
    cap_per_30_days: int = Field(5, ge=0, le=8, description="Veeva's typical approved-email cap")
    open_delay_days: float = Field(1.5, ge=0.0)


class WebinarConfig(StrictModel):
    interval_days: float = Field(28.0, gt=0.0)
    first_day: float = Field(10.0, ge=0.0)
    seats: int = Field(60, ge=0)
    fixed_cost_usd: float = Field(1500.0, ge=0.0)
    cost_per_attendee_usd: float = Field(90.0, ge=0.0)
    base_registration: float = Field(0.18, ge=0.0, le=1.0)
    show_rate: float = Field(0.32, ge=0.0, le=1.0)


class WebsiteConfig(StrictModel):
    visits_per_day_digital: float = Field(0.02, ge=0.0, description="portal visits per day at full website fit (x0.2 while unaware)")


class ChannelsConfig(StrictModel):
    rep_visit: RepVisitConfig = RepVisitConfig()
    remote_detail: RemoteDetailConfig = RemoteDetailConfig()
    email: EmailConfig = EmailConfig()
    webinar: WebinarConfig = WebinarConfig()
    website: WebsiteConfig = WebsiteConfig()


class RepBehaviourConfig(StrictModel):
    initial_trust: float = Field(0.6, ge=0.0, le=1.0, description="probability a suggestion is accepted")
    trust_learning_rate: float = Field(0.05, ge=0.0, le=1.0)
    learn_need_per_visit: float = Field(0.15, ge=0.0, le=1.0, description="chance a visit teaches the rep")
    own_pick_revisit_days: float = Field(14.0, ge=0.0)


class MarketingCalendarConfig(StrictModel):
    """The campaign calendar marketing runs on its own below marketing stage 3."""

    email_interval_days: float = Field(14.0, gt=0.0)
    theme_period_days: float = Field(30.0, gt=0.0, description="how long each calendar theme runs")
    remote_interval_days: float = Field(28.0, gt=0.0)
    remote_min_decile: int = Field(8, ge=1, le=10)
    invite_all_to_webinars: bool = True


class PipelineLevel(StrictModel):
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


class PipelineConfig(StrictModel):
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


class EconomicsConfig(StrictModel):
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


class EnvSettings(StrictModel):
    horizon_days: int = Field(364, ge=7, le=3650)
    decision_interval_days: int = Field(7, ge=1, le=91)
    # at least a dollar: a smaller scale only inflates rewards, and a tiny one divides them into inf
    reward_scale_usd: float = Field(10_000.0, ge=1.0, description="reward = profit / this")
    reward: Literal["realized", "expected", "observed"] = Field(
        "realized",
        description="value realised prescriptions; their expectation given the true state (less noise, same mean, "
        "but computed from hidden state: a privileged training signal); or the prescriptions the pipeline "
        "publishes to the view during the step (late, noisy, gappy: what a deployment observes; no value at the "
        "horizon is paid, the last step truncates)",
    )
    oracle_view: bool = Field(False, description="orchestrator sees the ground truth (the oracles)")
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
        "own credit (oce_sim.learning.factored_ppo)",
    )


SAFE_NAME = re.compile(r"[^\W_][\w .+-]{0,63}")  # a name becomes a folder name (train's run folders)


class HistoryConfig(StrictModel):
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
        return uniform_stage(value)


class ScenarioConfig(StrictModel):
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
        return uniform_stage(value)

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


StageLike = int | Literal["instruction", "insight", "involvement", "intervention"] | Mapping[str, int]
