"""Typed scenario configuration.

A scenario is layered: the defaults below describe the built-in *default* scenario (a mid-size territory of
a mature market); a YAML file in ``scenarios/`` overrides any subset; keyword overrides passed to
``gymnasium.make`` are applied last.  Every model forbids unknown keys, so a typo is an error that names the
field path and lists what is allowed.  Sources of the default figures are in ``docs/MODEL.md``.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CHANNELS: tuple[str, ...] = ("rep_visit", "remote_detail", "email", "webinar", "website")
ENTITIES: tuple[str, ...] = ("customer", "sales", "marketing", "it")
STAGE_NAMES: tuple[str, ...] = ("instruction", "insight", "involvement", "intervention")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


Probability = Field(ge=0.0, le=1.0)


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

    carryover_per_month: float = Field(0.84, gt=0.0, lt=1.0, description="geometric adstock per 30 days")
    hill_half_saturation: float = Field(1.5, gt=0.0)
    hill_shape: float = Field(1.3, gt=0.0)
    channel_effect: dict[str, float] = Field(
        default_factory=lambda: {
            "rep_visit": 1.0,
            "remote_detail": 0.6,
            "email": 0.25,
            "webinar": 1.2,
            "website": 0.2,
        }
    )
    repeat_theme_factor: float = Field(0.5, ge=0.0, le=1.0, description="impact of an already-heard theme")
    out_of_sequence_factor: float = Field(0.25, ge=0.0, le=1.0, description="impact of a theme out of order")
    confusion_window_days: float = Field(14.0, ge=0.0)
    confusion_theme_distance: int = Field(2, ge=1, description="theme gap that counts as contradictory")
    confusion_increment: float = Field(0.5, ge=0.0, le=1.0)
    confusion_half_life_days: float = Field(21.0, gt=0.0)
    fatigue_half_life_days: float = Field(15.0, gt=0.0)
    unsubscribe_base: float = Field(0.002, ge=0.0, le=1.0)
    unsubscribe_per_excess: float = Field(0.08, ge=0.0, le=1.0)
    # daily transition probabilities of the hidden adoption chain
    p_unaware_to_aware: tuple[float, float] = Field((0.001, 0.03), description="(base, per unit response)")
    p_aware_to_trial: float = Field(0.004, ge=0.0, le=1.0, description="per unit response, times access")
    p_trial_to_adopt: tuple[float, float] = Field((0.004, 0.01), description="(base, per unit response)")
    p_trial_reject: float = Field(0.006, ge=0.0, le=1.0, description="times (1 - response)(1 + confusion)")
    p_adopter_lapse: float = Field(0.0025, ge=0.0, le=1.0, description="times (1 - 0.8 response)(1 + confusion)")
    peer_effect_per_adopter_kol: float = Field(0.002, ge=0.0, le=1.0)
    brand_share_by_state: tuple[float, float, float, float] = Field(
        (0.0, 0.01, 0.12, 0.35), description="brand share of class Rx for unaware, aware, trialing, adopter"
    )
    share_lift_from_response: float = Field(0.04, ge=0.0, le=1.0, description="extra share at full response")
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
            raise ValueError(f"unknown channel(s) {unknown}; allowed: {list(CHANNELS)}")
        return {name: value.get(name, 0.0) for name in CHANNELS}

    @field_validator("access_factor")
    @classmethod
    def _known_access(cls, value: dict[str, float]) -> dict[str, float]:
        allowed = ("open", "restricted", "blocked")
        unknown = sorted(set(value) - set(allowed))
        if unknown or set(value) != set(allowed):
            raise ValueError(f"access_factor needs exactly the keys {list(allowed)} (got {sorted(value)})")
        return value


class RepVisitConfig(_Model):
    cost_primary_care_usd: float = Field(178.0, ge=0.0)
    cost_specialist_usd: float = Field(267.0, ge=0.0)
    working_minutes_per_day: float = Field(480.0, ge=0.0)
    visit_minutes: float = Field(20.0, gt=0.0, description="face time plus waiting room")
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
            raise ValueError(f"unknown channel(s) {unknown}; allowed: {list(CHANNELS)}")
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


class EconomicsConfig(_Model):
    rx_value_usd: float = Field(450.0, ge=0.0, description="brand margin of one new Rx incl. refills")


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
    info_kpis: Literal["every_step", "episode_end"] = Field(
        "every_step",
        description="when info carries the episode KPIs: every step, or only the last step's info (for training: "
        "saves computing and, under SubprocVecEnv, pickling them every step)",
    )


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
    env: EnvSettings = EnvSettings()

    @field_validator("stage", mode="before")
    @classmethod
    def _stage_from_int(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("stage must be an integer 0-3 or a mapping of entity -> 0-3")
        if isinstance(value, int):
            if not 0 <= value <= 3:
                raise ValueError(f"stage must be 0-3 ({', '.join(STAGE_NAMES)}), got {value}")
            return StageConfig.uniform(value)
        if isinstance(value, str) and value in STAGE_NAMES:
            return StageConfig.uniform(STAGE_NAMES.index(value))
        return value

    def pipeline_level(self) -> PipelineLevel:
        return self.pipeline.override or self.pipeline.levels[self.stage.it]


# ---------------------------------------------------------------------------------------------------------
# Loading and error reporting


class ScenarioError(ValueError):
    """A scenario could not be loaded; ``problems`` lists ``field.path: message`` strings."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"invalid scenario {source}:\n  " + "\n  ".join(problems))


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


def format_validation_error(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        path = ".".join(str(part) for part in loc) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            allowed = _allowed_fields(ScenarioConfig, loc[:-1])
            message = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        elif item["type"] not in ("value_error", "assertion_error"):
            message = f"{message} (got {item.get('input')!r})"
        problems.append(f"{path}: {message}")
    return problems


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), [f"(file): not valid YAML: {exc}"]) from None
    except OSError as exc:
        raise ScenarioError(str(path), [f"(file): cannot read: {exc.strerror}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ScenarioError(str(path), ["(top level): a scenario must be a mapping of keys"])
    return data


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
        return (_read_yaml(path) if path else {}), text
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ScenarioError(text, [f"(file): no such file; built-in scenarios: {', '.join(builtin)}"])
        data = _read_yaml(path)
        data.setdefault("name", path.stem)
        return data, str(path)
    raise ScenarioError(text, [f"(scenario): unknown scenario name; built-in: {', '.join(builtin)}"])


def load_scenario(
    scenario: str | Path | Mapping[str, Any] | ScenarioConfig | None = None,
    stage: int | str | Mapping[str, int] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ScenarioConfig:
    """Resolve defaults <- scenario file <- ``stage`` <- ``overrides`` into a validated config."""
    data, source = scenario_data(scenario)
    data = _stage_as_mapping(data)
    if overrides:
        overrides = _stage_as_mapping(overrides)
    if stage is not None:
        data = deep_merge(data, {"stage": stage}) if isinstance(stage, Mapping) else {**data, "stage": stage}
    if overrides:
        data = deep_merge(data, overrides)
    return build_config(data, source)


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
