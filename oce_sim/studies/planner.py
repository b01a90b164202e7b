"""The best plan each stage allows (``best@K``): coordinate ascent over stationary plans, on validation seeds.

A *stationary plan* holds one play per segment all year (:class:`~oce_sim.agents.stationary.StationaryPlan`); the
env's mask applies every week, so a play the stage forbids falls back as ``agents.base.apply_mask`` says.  The
planner searches the plans a stage permits:

1. **Starts.**  Each stage heuristic (and the organisation of today's stage and of the searched stage, where those
   are mixed and so differ from every heuristic) is played at the searched stage on the first search seed; its most
   frequent play per segment is a start.  So is ``follow_up_everywhere`` (``rep_visit_plus_email`` wherever the
   stage allows it).
2. **Coordinate ascent**, from the best start first: segment by segment, every other play the stage controls is
   tried on the same seeds (paired: common random numbers), and the best change is accepted if its mean gain is more
   than one standard error of the paired difference.  A full pass over the nine segments without a change ends the
   ascent; then the next start is tried, until the budget is spent.
3. **Budget.**  K counts every episode the planner runs, the starts' included (at least the first start is always
   evaluated); a plan already evaluated costs nothing again.

The objective is the mean ``profit_multi_period_usd`` on the validation seeds (``studies.seeds``): the search looks
at them many times, so its value there is optimistic (the winner's curse); report the plan on the test seeds.

:func:`best_plan` runs the search once per (resolved scenario at the stage, K, seeds, code version) and caches the
result as a small JSON file (``<cache>/plans/<key>.json``, written atomically; a damaged file is recomputed).
:func:`make_strategy` resolves ``best@K`` to a :class:`StationaryPlan` and any other name as ``agents`` does.

:func:`tune_rules` searches the stage heuristics' own constants (``agents.planning.RulesOfThumb``, over
:data:`RULE_GRID`) the same way, cached beside the plans.  :func:`twice_values` and :func:`paired_twice` give each
stage, move or variant its value twice (with the rules of thumb and with the best plans), for ``compare``,
``whatif`` and ``roadmap`` (``--best-plan K``, ``--rank-by``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from oce_sim.agents import TrainedModel
from oce_sim.agents import make_strategy as make_named_strategy
from oce_sim.agents.base import N_SEG, Policy, apply_mask
from oce_sim.agents.oracle import OBJECTIVE
from oce_sim.agents.planning import DEFAULT_RULES, RulesOfThumb
from oce_sim.agents.organisation import Organisation, as_stage, stage_text
from oce_sim.agents.stage_heuristics import Insight, Instruction, Intervention, Involvement
from oce_sim.agents.stationary import StationaryPlan, best_budget
from oce_sim.config import ScenarioConfig, StageConfig
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.storage.outputs import atomic_write_text, cache_root
from oce_sim.world import dispatch

from .evaluation import play_episode, run_episodes, strategy_config
from .seeds import VALIDATION_SEED, validation_seeds
from .sweep import code_version

Plan = tuple[int, ...]
SEARCH_SEEDS = 8  # validation seeds per evaluation: a paired SE small enough to tell plays apart, cheap enough
HEURISTICS: dict[str, type[Policy]] = {"instruction": Instruction, "insight": Insight, "involvement": Involvement,
                                       "intervention": Intervention}
FOLLOW_UP = "follow_up_everywhere"


@dataclass
class Search:
    """What a search found and what it cost: the plan, its mean objective on the search seeds (USD), the start it
    was reached from, the episodes spent, the incumbent's value after each evaluation (for a plot), the starts'
    values as stationary plans, the heuristics' values as played, how many changes were accepted, and the seconds
    the search took (when it ran, not when it is read back from the cache)."""

    plan: Plan
    value: float
    start: str
    episodes: int
    history: list[tuple[int, float]] = field(default_factory=list)
    starts: dict[str, float] = field(default_factory=dict)
    references: dict[str, float] = field(default_factory=dict)
    accepted: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["plan"] = [dispatch.PLAYS[p] for p in self.plan]  # names: readable, and stable if plays are added
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Search":
        plan = tuple(dispatch.PLAYS.index(p) for p in data["plan"])
        if len(plan) != N_SEG:
            raise ValueError(f"a plan has {N_SEG} plays, got {len(plan)}")
        return cls(plan=plan, value=float(data["value"]), start=str(data["start"]), episodes=int(data["episodes"]),
                   history=[(int(e), float(v)) for e, v in data["history"]],
                   starts={str(k): float(v) for k, v in data["starts"].items()},
                   references={str(k): float(v) for k, v in data["references"].items()},
                   accepted=int(data["accepted"]), seconds=float(data["seconds"]))


# ------------------------------------------------------------------------------------------ the search itself
def paired_gain(candidate: np.ndarray, incumbent: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the paired difference (0 SE with one seed: nothing to estimate it from)."""
    diff = np.asarray(candidate, dtype=float) - np.asarray(incumbent, dtype=float)
    se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
    return float(diff.mean()), se


def coordinate_ascent(evaluate: Callable[[Plan], np.ndarray], starts: Mapping[str, Plan],
                      choices: Sequence[Sequence[int]], budget: int, cost: int, spent: int = 0,
                      evaluate_many: Callable[[list[Plan]], list[np.ndarray]] | None = None) -> Search:
    """Coordinate ascent over plans (one choice per coordinate) under a budget, independent of the simulation.

    ``evaluate(plan)`` returns the objective on each seed (the same seeds for every plan) and costs ``cost`` of the
    ``budget``; ``spent`` was used before (the starts' rollouts).  Starts are evaluated first (at least one, whatever
    the budget), then ascended from the best; see the module docstring for the acceptance rule.  ``evaluate_many``
    (optional) evaluates a coordinate's candidates together, as ``evaluate`` would one by one (in other processes,
    say): the search is the same, only faster."""
    if not starts or budget < 1 or cost < 1:
        raise ValueError(f"coordinate ascent needs a start, a budget >= 1 and a cost >= 1; got {len(starts)} starts, "
                         f"budget {budget}, cost {cost}")
    memo: dict[Plan, np.ndarray] = {}
    ready: dict[Plan, np.ndarray] = {}  # evaluated ahead by evaluate_many, not yet counted
    history: list[tuple[int, float]] = []
    best: list[Any] = [None, -np.inf, ""]  # plan, mean, start: the best plan accepted anywhere so far

    def value(plan: Plan, force: bool = False) -> np.ndarray | None:
        nonlocal spent
        if plan not in memo:
            if spent + cost > budget and not force:
                return None
            memo[plan] = np.asarray(ready.pop(plan) if plan in ready else evaluate(plan), dtype=float)
            spent += cost
            history.append((spent, best[1]))
        return memo[plan]

    def adopt(plan: Plan, start: str) -> None:
        mean = float(memo[plan].mean())
        if mean > best[1]:
            best[:] = [plan, mean, start]
            history[-1] = (history[-1][0], mean) if history else (spent, mean)

    start_values: dict[str, float] = {}
    for i, (name, plan) in enumerate(starts.items()):
        values = value(tuple(plan), force=i == 0)
        if values is None:
            break
        start_values[name] = float(values.mean())
        adopt(tuple(plan), name)
    accepted = 0
    visited: set[Plan] = set()
    exhausted = False
    for name in sorted(start_values, key=start_values.__getitem__, reverse=True):
        incumbent = tuple(starts[name])
        if incumbent in visited or exhausted:
            continue
        while not exhausted:
            changed = False
            for s in range(len(choices)):
                visited.add(incumbent)
                tried: list[tuple[Plan, np.ndarray]] = []
                if evaluate_many is not None:  # the candidates this coordinate will evaluate within the budget
                    ahead = [incumbent[:s] + (int(play),) + incumbent[s + 1:] for play in choices[s]
                             if play != incumbent[s]]
                    ahead = [plan for plan in dict.fromkeys(ahead) if plan not in memo]
                    ahead = ahead[:max(0, (budget - spent) // cost)]
                    if len(ahead) > 1:
                        ready.update(zip(ahead, evaluate_many(ahead)))
                for play in choices[s]:
                    if play == incumbent[s]:
                        continue
                    candidate = incumbent[:s] + (int(play),) + incumbent[s + 1:]
                    values = value(candidate)
                    if values is None:
                        exhausted = True
                        break
                    tried.append((candidate, values))
                gains = [paired_gain(values, memo[incumbent]) for _, values in tried]
                if gains:
                    k = int(np.argmax([gain for gain, _ in gains]))
                    if gains[k][0] > gains[k][1]:  # more than one standard error of the paired difference
                        incumbent, changed, accepted = tried[k][0], True, accepted + 1
                        adopt(incumbent, name)
                if exhausted:
                    break
            if not changed:
                break
    return Search(plan=tuple(int(p) for p in best[0]), value=float(best[1]), start=str(best[2]), episodes=spent,
                  history=history, starts=start_values, accepted=accepted)


# ----------------------------------------------------------------------------------------- on the simulation
class _Recorder:
    """A policy wrapper that keeps the plays it sent (after the mask), for a heuristic's most frequent plays."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.plays: list[np.ndarray] = []

    def reset(self, env: Any, seed: int | None = None) -> None:
        self.policy.reset(env, seed)

    def predict(self, observation: np.ndarray, **kwargs: Any) -> tuple[np.ndarray, Any]:
        action, state = self.policy.predict(observation, **kwargs)
        self.plays.append(np.asarray(action, dtype=np.int64))
        return action, state


def most_frequent(plays: Sequence[np.ndarray]) -> Plan:
    """Per segment, the play sent most often (ties: the lower play index)."""
    stacked = np.stack(plays)
    return tuple(int(np.bincount(stacked[:, s], minlength=dispatch.N_PLAYS).argmax()) for s in range(N_SEG))


def plan_values(config: ScenarioConfig, stage: StageConfig, plan: Plan, seeds: Sequence[int]) -> np.ndarray:
    """The objective of the stationary ``plan`` on each seed, the seeds played as the territories of one batch (each
    the episode it would be alone: ``evaluation.run_episodes``)."""
    return _objective(StationaryPlan(plan, stage), config, seeds)


class _PlanPool:
    """Evaluates a coordinate's candidate plans in ``workers`` processes (one plan's seeds a task), or here."""

    def __init__(self, config: ScenarioConfig, stage: StageConfig, seeds: Sequence[int], workers: int):
        self.config, self.stage, self.seeds = config, stage, list(seeds)
        self.workers = workers
        self._pool: Any = None

    def values(self, plans: list[Plan]) -> list[np.ndarray]:
        if self.workers <= 1:
            return [plan_values(self.config, self.stage, plan, self.seeds) for plan in plans]
        if self._pool is None:
            from .processes import shared_pool

            self._pool = shared_pool(self.workers)  # kept for the next search and the evaluation
        futures = [self._pool.submit(plan_values, self.config, self.stage, plan, self.seeds) for plan in plans]
        try:
            return [future.result() for future in futures]
        except BaseException:  # Ctrl-C or a failed episode: start nothing more of this search
            for future in futures:
                future.cancel()
            raise


def _objective(policy: Any, config: ScenarioConfig, seeds: Sequence[int]) -> np.ndarray:
    """A policy's objective on each seed, the seeds one batch (``evaluation.run_episodes``: each as alone)."""
    return np.array([episode.kpis[OBJECTIVE] for episode in run_episodes(policy, config, list(seeds))], dtype=float)


def search_stage(scenario: ScenarioConfig, stage: int | StageConfig | Mapping[str, int], budget: int,
                 seeds: Sequence[int] | None = None, progress: bool = False, references: bool = False,
                 workers: int = 1) -> Search:
    """Search the stationary plans ``stage`` permits on ``scenario`` (no cache): see the module docstring.  The
    starts are the heuristics' most frequent plays on the first seed (one episode each, counted in the budget);
    ``references``: also play each heuristic on every seed (its value as played, for a plot; not counted).
    ``workers`` > 1 evaluates a coordinate's candidates in that many processes (the same search, faster)."""
    stage = as_stage(stage)
    seeds = list(validation_seeds(SEARCH_SEEDS) if seeds is None else seeds)
    config = strategy_config(scenario, StationaryPlan([0] * N_SEG, stage), stage)
    started = time.perf_counter()
    bar = tqdm(total=budget, desc=f"searching the best plan of stage {stage_text(stage)}", unit="episode",
               disable=not progress)

    def plan_objective(plan: Plan) -> np.ndarray:  # a plan's seeds as the territories of one batch
        values = plan_values(config, stage, plan, seeds)
        bar.update(len(seeds))
        return values

    pool = _PlanPool(config, stage, seeds, workers)

    def plan_objectives(plans: list[Plan]) -> list[np.ndarray]:
        values = pool.values(plans)
        bar.update(len(seeds) * len(plans))
        return values

    env = TerritoryEnv(scenario=config)  # the stage's authority, and the heuristics' episodes for the starts
    try:
        env.reset(seed=seeds[0])
        world = env.world
        # the plays the stage gives authority over; any other play falls back to one of them in every week
        controllable = dispatch.controllable_plays(world.stage, world.config, world.field.capacity_available)
        static_mask = np.tile(controllable, (N_SEG, 1))

        def canonical(plan: Sequence[int]) -> Plan:
            return tuple(int(p) for p in apply_mask(np.asarray(plan), static_mask))

        starts: dict[Plan, str] = {}
        players: dict[str, Callable[[], Policy]] = {name: make for name, make in HEURISTICS.items()}
        for extra in (scenario.stage, stage):  # today's organisation and the stage's own, where mixed
            if not stage_text(extra).isdigit():  # a uniform organisation plays exactly its stage's heuristic
                players.setdefault(f"organisation {stage_text(extra)}", lambda extra=extra: Organisation(extra))
        for name, make in players.items():
            recorder = _Recorder(make())
            play_episode(env, recorder, seeds[0])
            bar.update(1)
            starts.setdefault(canonical(most_frequent(recorder.plays)), f"{name} (most frequent plays)")
        starts.setdefault(canonical([dispatch.REP_PLUS_EMAIL] * N_SEG), FOLLOW_UP)
        choices = [np.flatnonzero(controllable).tolist()] * N_SEG
        result = coordinate_ascent(plan_objective, {name: plan for plan, name in starts.items()}, choices, budget,
                                   len(seeds), spent=len(players), evaluate_many=plan_objectives)
        if references:
            result.references = {name: float(_objective(make(), config, seeds).mean())
                                 for name, make in players.items()}
    finally:
        bar.close()
        env.close()
    result.seconds = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------------------------------- cache
def plan_key(scenario: ScenarioConfig, stage: int | StageConfig | Mapping[str, int], budget: int,
             seeds: Sequence[int], references: bool = False) -> str:
    """SHA-256 of the resolved scenario at the stage, the stage, today's stage (a mixed one adds a start), K, the seeds,
    whether the heuristics' references were played and the code version."""
    stage = as_stage(stage)
    config = strategy_config(scenario, StationaryPlan([0] * N_SEG, stage), stage)
    payload = json.dumps([config.model_dump(mode="json"), stage.model_dump(), as_stage(scenario.stage).model_dump(),
                          int(budget), [int(s) for s in seeds], bool(references), code_version()], sort_keys=True,
                         separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def plan_cache_dir() -> Path:
    return cache_root() / "plans"


def search_workers(scenario: ScenarioConfig, budget: int) -> int:
    """Processes for a search of ``budget`` episodes: one per usable CPU where that work pays for starting them."""
    from .evaluation import episode_size, pool_workers

    return pool_workers(budget * episode_size(scenario))


def _cached(path: Path, key: str, what: str, searching: str, compute: Callable[[], Any],
            dump: Callable[[Any], Any], load: Callable[[Any], Any], note: Callable[[str], None] | None) -> Any:
    """``load`` of the JSON entry filed under ``key`` at ``path``, else ``compute()`` written there (atomically; a
    damaged or misplaced entry is computed again, a read-only cache only loses the entry).  ``note`` is told which,
    before any work."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") == key:
            found = load(data["search"])
            if note:
                note(f"{what}: read from cache {path}")
            return found
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        pass  # absent or damaged: search again
    if note:
        note(f"{what}: {searching} (cached in {path.parent})")
    result = compute()
    try:
        atomic_write_text(path, json.dumps({"key": key, "search": dump(result)}, indent=1))
    except OSError:
        pass  # a read-only cache: the result is still returned
    return result


def best_plan(scenario: ScenarioConfig, stage: int | StageConfig | Mapping[str, int], budget: int,
              seeds: Sequence[int] | None = None, cache: Path | None = None, progress: bool = False,
              references: bool = False, note: Callable[[str], None] | None = None, workers: int = 1) -> Search:
    """:func:`search_stage`, run once per key and read back from ``cache`` (default :func:`plan_cache_dir`).
    ``note`` is told, before any work, whether the plan is read from the cache or searched (and where it goes);
    ``workers``: processes for the search (the plan does not depend on it; the CLI gives :func:`search_workers`, a
    script that gives more than 1 needs the ``if __name__ == "__main__":`` guard of Python's spawned processes)."""
    seeds = list(validation_seeds(SEARCH_SEEDS) if seeds is None else seeds)
    key = plan_key(scenario, stage, budget, seeds, references)
    return _cached((plan_cache_dir() if cache is None else Path(cache)) / f"{key}.json", key,
                   f"best plan of stage {stage_text(as_stage(stage))} (best@{budget})",
                   f"searching, at most {budget:,} episodes on validation seeds {seeds_text(seeds)}",
                   lambda: search_stage(scenario, stage, budget, seeds, progress, references, workers),
                   Search.to_json, Search.from_json, note)


# ------------------------------------------------------------------------------ the heuristics' own constants
# The constants of agents/planning.py's RulesOfThumb that tune_rules searches, with the values tried (each grid holds
# the default); a stage heuristic searches those it reads (RULES_READ).
RULE_GRID: dict[str, tuple[float, ...]] = {
    "rx_per_detail_at_mean_volume": (0.05, 0.1, 0.2, 0.3, 0.5, 1.0),  # which tiers a visit pays for (every stage)
    "ask_below_known_share": (0.2, 0.4, 0.6, 0.8, 1.0),  # where involvement's visit asks (stages 2, 3)
    "field_overbooking": (1.0, 1.3, 1.6, 2.0, 2.5),  # the visits stage 3 books per unit of field capacity
    "remote_detail": (0.1, 0.3, 0.6, 1.0),  # a remote detail's value relative to a detail (stage 3)
    "email": (0.01, 0.03, 0.1, 0.3),  # an email's (stage 3)
    "webinar": (0.3, 1.2, 3.0),  # a webinar attendance's (stage 3)
}
RULES_READ: dict[int, tuple[str, ...]] = {0: ("rx_per_detail_at_mean_volume",), 1: ("rx_per_detail_at_mean_volume",),
                                          2: ("rx_per_detail_at_mean_volume", "ask_below_known_share"),
                                          3: tuple(RULE_GRID)}
RELATIVE = ("remote_detail", "email", "webinar")  # the keys of RulesOfThumb.value_relative_to_detail


def rules_of(values: Mapping[str, float]) -> RulesOfThumb:
    """A RulesOfThumb with ``values`` (RULE_GRID's names) over the defaults."""
    unknown = sorted(set(values) - set(RULE_GRID))
    if unknown:
        raise ValueError(f"unknown rule(s) {', '.join(unknown)}; searched: {', '.join(RULE_GRID)}")
    relative = {**DEFAULT_RULES.value_relative_to_detail, **{k: float(v) for k, v in values.items() if k in RELATIVE}}
    return replace(DEFAULT_RULES, value_relative_to_detail=relative,
                   **{k: float(v) for k, v in values.items() if k not in RELATIVE})


def default_rules() -> dict[str, float]:
    """RULE_GRID's constants at the heuristics' defaults."""
    return {name: float(DEFAULT_RULES.value_relative_to_detail[name] if name in RELATIVE
                        else getattr(DEFAULT_RULES, name)) for name in RULE_GRID}


def tuned_heuristic(stage: int, values: Mapping[str, float]) -> Policy:
    """The stage's heuristic planning with ``values`` (RULE_GRID's names) instead of the defaults."""
    policy = list(HEURISTICS.values())[stage]()
    policy.rules = rules_of(values)  # type: ignore[attr-defined]  (a PlannedPolicy)
    return policy


@dataclass
class Tuning:
    """What :func:`tune_stage` found: the constants (RULE_GRID's names), their mean objective on the search seeds,
    the defaults' value there, the episodes spent, the incumbent's value after each evaluation, the changes
    accepted and the seconds the search took."""

    rules: dict[str, float]
    value: float
    default_value: float
    episodes: int
    history: list[tuple[int, float]] = field(default_factory=list)
    accepted: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Tuning":
        return cls(rules={str(k): float(v) for k, v in data["rules"].items()}, value=float(data["value"]),
                   default_value=float(data["default_value"]), episodes=int(data["episodes"]),
                   history=[(int(e), float(v)) for e, v in data["history"]], accepted=int(data["accepted"]),
                   seconds=float(data["seconds"]))


def tune_stage(scenario: ScenarioConfig, stage: int, budget: int, seeds: Sequence[int] | None = None,
               progress: bool = False) -> Tuning:
    """Coordinate ascent over the constants the stage heuristic reads (RULES_READ, over RULE_GRID's values), from the
    defaults, on ``seeds`` (paired), accepting a change that gains more than one standard error: the same search as
    the plans' (:func:`coordinate_ascent`), played at the heuristic's own stage."""
    if stage not in RULES_READ:
        raise ValueError(f"stage must be one of {sorted(RULES_READ)}, got {stage!r}")
    seeds = list(validation_seeds(SEARCH_SEEDS) if seeds is None else seeds)
    names = RULES_READ[stage]
    defaults = default_rules()
    start = tuple(RULE_GRID[name].index(defaults[name]) for name in names)
    config = strategy_config(scenario, list(HEURISTICS.values())[stage](), stage)
    started = time.perf_counter()
    bar = tqdm(total=budget, desc=f"tuning the {list(HEURISTICS)[stage]} heuristic", unit="episode",
               disable=not progress)

    def values_of(indices: Sequence[int]) -> dict[str, float]:
        return {name: RULE_GRID[name][i] for name, i in zip(names, indices)}

    def objective(indices: Plan) -> np.ndarray:
        values = _objective(tuned_heuristic(stage, values_of(indices)), config, seeds)
        bar.update(len(seeds))
        return values

    try:
        found = coordinate_ascent(objective, {"defaults": start}, [range(len(RULE_GRID[n])) for n in names], budget,
                                  len(seeds))
    finally:
        bar.close()
    return Tuning(rules=values_of(found.plan), value=found.value, default_value=found.starts["defaults"],
                  episodes=found.episodes, history=found.history, accepted=found.accepted,
                  seconds=time.perf_counter() - started)


def tune_rules(scenario: ScenarioConfig, stage: int, budget: int, seeds: Sequence[int] | None = None,
               cache: Path | None = None, progress: bool = False, note: Callable[[str], None] | None = None) -> Tuning:
    """:func:`tune_stage`, run once per (resolved scenario at the stage, K, seeds, code version) and cached beside the
    plans."""
    seeds = list(validation_seeds(SEARCH_SEEDS) if seeds is None else seeds)
    key = hashlib.sha256(("rules:" + plan_key(scenario, stage, budget, seeds)).encode()).hexdigest()
    return _cached((plan_cache_dir() if cache is None else Path(cache)) / f"{key}.json", key,
                   f"the {list(HEURISTICS)[stage]} heuristic's constants (K = {budget})",
                   f"searching, at most {budget:,} episodes on validation seeds {seeds_text(seeds)}",
                   lambda: tune_stage(scenario, stage, budget, seeds, progress), Tuning.to_json, Tuning.from_json,
                   note)


def seeds_text(seeds: Sequence[int]) -> str:
    """``200,000-200,003`` for consecutive seeds, else the list."""
    seeds = [int(s) for s in seeds]
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]:,}-{seeds[-1]:,}" if len(seeds) > 1 else f"{seeds[0]:,}"
    return ", ".join(f"{s:,}" for s in seeds)


def make_strategy(name: str, scenario: ScenarioConfig, stage: int | StageConfig | Mapping[str, int] | None = None,
                  seeds: Sequence[int] | None = None, cache: Path | None = None, progress: bool = False,
                  note: Callable[[str], None] | None = None, workers: int = 1) -> Policy | TrainedModel:
    """``best@K``: the stationary plan found with budget K at ``stage`` (default: the scenario's), cached; any other
    name as ``oce_sim.agents.make_strategy``."""
    budget = best_budget(name)
    if budget is None:
        return make_named_strategy(name)
    chosen = scenario.stage if stage is None else as_stage(stage)
    found = best_plan(scenario, chosen, budget, seeds, cache, progress=progress, note=note, workers=workers)
    return StationaryPlan(found.plan, chosen, name=name)


def best_label(name: str, budget: int) -> str:
    """The column of ``name`` (today, a move or a stage heuristic) played with its stage's best plan:
    ``sales=3 best@200``, ``intervention best@200``."""
    return f"{name} best@{budget}"


def planned_stage(name: str, today: StageConfig) -> StageConfig | None:
    """The stage whose best plan stands beside ``name``: today's, a move's, a stage heuristic's uniform stage; None
    for any other strategy (a control, the oracle, a trained model: no rules of thumb to replace)."""
    from oce_sim.agents import STAGE_STRATEGIES
    from oce_sim.agents.organisation import parse_move

    if name == "today":
        return as_stage(today)
    if name in STAGE_STRATEGIES:
        return StageConfig.uniform(STAGE_STRATEGIES.index(name))
    if "=" in name:
        return parse_move(name, today)
    return None


RANK_BY = ("best-plan", "rules-of-thumb")  # which of the two values ranks: --rank-by
PLANNED_BY = {"rules-of-thumb": "today's rules of thumb", "best-plan": "the best plan each stage allows"}


def twice_values(results: Any, names: Sequence[str], budget: int, rank_by: str, metric: str = OBJECTIVE) -> Any:
    """The value of each stage and move twice, from the tidy results of a compare that ran today, the stage
    heuristics and moves (``names``) and their ``best@K`` columns on the same seeds: minus today with the rules of
    thumb (the organisation's heuristics, or the stage's heuristic) and minus today's best plan with the best plan
    each stage allows (:func:`paired_twice`)."""
    wide = results[results.metric == metric].pivot_table(index="seed", columns="strategy", values="value")
    today = best_label("today", budget)
    return paired_twice(wide, [(name, "move" if "=" in name else "stage", (name, "today"),
                                (best_label(name, budget), today)) for name in names], rank_by, metric)


def paired_twice(wide: Any, options: Sequence[tuple[str, str, Any, Any]], rank_by: str, metric: str = OBJECTIVE) -> Any:
    """Per option (label, kind, (column, reference) with the rules of thumb, (column, reference) with the best plans)
    of ``wide`` (one row per paired unit), the two paired differences: mean and 95% CI (USD per territory), and
    ``used_for_ranking`` on the value ``rank_by`` ranks with."""
    import pandas as pd

    from oce_sim.studies.evaluation import t_interval

    if rank_by not in RANK_BY:
        raise ValueError(f"rank_by must be one of {', '.join(RANK_BY)}, got {rank_by!r}")
    rows = []
    for option, kind, thumb, best in options:
        for planned_by, (high, low) in (("rules-of-thumb", thumb), ("best-plan", best)):
            diff = (wide[high] - wide[low]).to_numpy()
            ci = t_interval(diff, 0.95)
            rows.append(dict(option=option, kind=kind, planned_by=planned_by, metric=metric, mean=ci["diff_mean"],
                             ci_low=ci["diff_low"], ci_high=ci["diff_high"], n_seeds=diff.size,
                             used_for_ranking=planned_by == rank_by))
    return pd.DataFrame(rows, columns=["option", "kind", "planned_by", "metric", "mean", "ci_low", "ci_high",
                                       "n_seeds", "used_for_ranking"])


def _amount(mean: float, low: float, high: float) -> str:
    ci = f" [{low / 1e3:+,.0f}k, {high / 1e3:+,.0f}k]" if np.isfinite(low) else ""
    return f"{mean / 1e3:+,.0f}k{ci}"


def twice_rows(values: Any, today: StageConfig | None = None,
               first: str = "stage or move, against today") -> tuple[list[str], list[tuple[str, str, str]]]:
    """A table of :func:`paired_twice`: header and one row per option (its value with each plan); a stage
    heuristic's row names its stage (``today``: the scenario's stage, for a compare)."""
    rows = []
    for option, group in values.groupby("option", sort=False):
        cells = {row.planned_by: _amount(row.mean, row.ci_low, row.ci_high) for row in group.itertuples()}
        stage = planned_stage(str(option), today) if today is not None else None
        label = f"{option} (stage {stage_text(stage)})" if stage is not None and "=" not in str(option) else str(option)
        rows.append((label, cells["rules-of-thumb"], cells["best-plan"]))
    return [first, "with today's rules of thumb", "with the best plan each stage allows"], rows


def twice_text(values: Any, budget: int, rank_by: str, scale: str, what: str = "Each stage and move",
               against: str = "today") -> str:
    """What the two values are, which one ranks, and where the plans were searched."""
    return (f"{what} is valued twice against {against} (profit, year 1 + tail, USD {scale}, paired 95% CI): "
            f"played with today's rules of thumb (the stage heuristics, the organisation's plan) and with the best "
            f"stationary plan each stage allows (best@{budget}: coordinate ascent over the nine segments' plays, "
            f"searched on validation seeds {SEARCH_SEEDS_TEXT}, never on this run's seeds; docs/MODEL.md §4d). "
            f"**The ranking uses {PLANNED_BY[rank_by]}** (--rank-by {rank_by}).")


def check_seeds(seed: int, episodes: int, budget: int) -> str | None:
    """Why a run on seeds ``seed .. seed+episodes-1`` may not score best@``budget`` (its seeds overlap the search's
    validation seeds: its value there is the search's own, optimistic), else None."""
    searched = validation_seeds(SEARCH_SEEDS)
    if budget and seed <= searched[-1] and searched[0] <= seed + episodes - 1:
        return (f"the best plans (--best-plan {budget}) are searched on validation seeds {searched[0]:,}-"
                f"{searched[-1]:,}: score them on other seeds (--seed {seed} --episodes {episodes} overlaps them; e.g. "
                "--seed 900000, the test seeds), or turn them off with --best-plan 0")
    return None


SEARCH_SEEDS_TEXT = f"{VALIDATION_SEED:,}-{VALIDATION_SEED + SEARCH_SEEDS - 1:,}"

__all__ = ["PLANNED_BY", "RANK_BY", "RULE_GRID", "RULES_READ", "Search", "Tuning", "default_rules", "rules_of",
           "tune_rules", "tune_stage", "tuned_heuristic", "best_label", "best_plan", "coordinate_ascent", "check_seeds",
           "make_strategy", "paired_gain", "paired_twice", "plan_key", "planned_stage", "search_stage", "seeds_text",
           "twice_rows", "twice_text", "twice_values"]
