"""The scenario: its schema and how a scenario is read and resolved.

- ``schema``: typed, validated configuration blocks (population, response, channels, marketing, pipeline,
  economics, env, history) and the constants they share (``CHANNELS``, ``ENTITIES``, ``STAGE_NAMES``).
- ``files``: bounded reading of input files: YAML (size, depth, structure and alias limits) and small JSON files.
- ``loading``: built-in scenarios, ``extends:`` chains, layering (defaults <- file <- stage <- overrides).
- ``errors``: ``ScenarioError``, whose problems name the field path and what is allowed.

May import: nothing else of ``oce_sim`` (it is the bottom layer with ``oce_sim.storage``).
"""

from oce_sim.config.errors import ScenarioError
from oce_sim.config.files import (
    ScenarioLimitError,
    parse_json,
    parse_yaml,
    read_json,
    read_yaml_mapping,
)
from oce_sim.config.loading import (
    build_config,
    builtin_scenarios,
    deep_merge,
    dump_yaml,
    format_validation_error,
    load_scenario,
    pin_history,
    repo_scenario_dir,
    scenario_data,
)
from oce_sim.config.schema import (
    CHANNELS,
    ENTITIES,
    STAGE_NAMES,
    AccessShares,
    ArchetypeShares,
    ChannelsConfig,
    EconomicsConfig,
    EmailConfig,
    EnvSettings,
    HistoryConfig,
    MarketingCalendarConfig,
    PipelineConfig,
    PipelineLevel,
    PopulationConfig,
    RemoteDetailConfig,
    RepBehaviourConfig,
    RepVisitConfig,
    ResponseConfig,
    ScenarioConfig,
    StageConfig,
    StageLike,
    StrictModel,
    WebinarConfig,
    WebsiteConfig,
    uniform_stage,
)

__all__ = [
    "CHANNELS", "ENTITIES", "STAGE_NAMES", "AccessShares", "ArchetypeShares", "ChannelsConfig", "EconomicsConfig",
    "EmailConfig", "EnvSettings", "HistoryConfig", "MarketingCalendarConfig", "PipelineConfig", "PipelineLevel",
    "PopulationConfig", "RemoteDetailConfig", "RepBehaviourConfig", "RepVisitConfig", "ResponseConfig",
    "ScenarioConfig", "ScenarioError", "ScenarioLimitError", "StageConfig", "StageLike", "StrictModel", "WebinarConfig",
    "WebsiteConfig", "build_config", "builtin_scenarios", "deep_merge", "dump_yaml", "format_validation_error",
    "load_scenario", "parse_json", "parse_yaml", "pin_history", "read_json", "read_yaml_mapping", "repo_scenario_dir",
    "scenario_data", "uniform_stage",
]
