"""The best plan each stage allows (``best@K``): coordinate ascent over stationary plans, on validation seeds.

A *stationary plan* holds one play per segment all year (:class:`~oce_sim.agents.stationary.StationaryPlan`); the
env's mask applies every week, so a play the stage forbids falls back as ``agents.base.apply_mask`` says.  The
planner searches the plans a stage permits:

1. **Starts.**  Each stage heuristic (and the organisation of today's stage and of the searched stage, where those
   are mixed and so differ from every heuristic) is played at the searched stage; its most frequent play per segment
   is a start.  So is ``follow_up_everywhere`` (``rep_visit_plus_email`` wherever the stage allows it).
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
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from oce_sim.agents import TrainedModel
from oce_sim.agents import make_strategy as make_named_strategy
from oce_sim.agents.base import N_SEG, Policy, apply_mask
from oce_sim.agents.oracle import OBJECTIVE
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
    episodes = run_episodes(StationaryPlan(plan, stage), config, list(seeds))
    return np.array([episode.kpis[OBJECTIVE] for episode in episodes], dtype=float)


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
            from .processes import spawn_pool

            self._pool = spawn_pool(self.workers)
        futures = [self._pool.submit(plan_values, self.config, self.stage, plan, self.seeds) for plan in plans]
        return [future.result() for future in futures]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def search_stage(scenario: ScenarioConfig, stage: int | StageConfig | Mapping[str, int], budget: int,
                 seeds: Sequence[int] | None = None, progress: bool = False, workers: int = 1) -> Search:
    """Search the stationary plans ``stage`` permits on ``scenario`` (no cache): see the module docstring.
    ``workers`` > 1 evaluates a coordinate's candidates in that many processes (the same search, faster)."""
    stage = as_stage(stage)
    seeds = list(validation_seeds(SEARCH_SEEDS) if seeds is None else seeds)
    config = strategy_config(scenario, StationaryPlan([0] * N_SEG, stage), stage)
    env = TerritoryEnv(scenario=config)  # one env for every episode: each starts with reset(seed)
    started = time.perf_counter()
    bar = tqdm(total=budget, desc=f"best plan, stage {stage_text(stage)}", disable=not progress)

    def objective(policy: Any) -> np.ndarray:
        values = np.array([play_episode(env, policy, seed)["kpis"][OBJECTIVE] for seed in seeds], dtype=float)
        bar.update(len(seeds))
        return values

    def plan_objective(plan: Plan) -> np.ndarray:  # a plan's seeds as the territories of one batch
        values = plan_values(config, stage, plan, seeds)
        bar.update(len(seeds))
        return values

    pool = _PlanPool(config, stage, seeds, workers)

    def plan_objectives(plans: list[Plan]) -> list[np.ndarray]:
        values = pool.values(plans)
        bar.update(len(seeds) * len(plans))
        return values

    try:
        env.reset(seed=seeds[0])
        world = env.world
        # the plays the stage gives authority over; any other play falls back to one of them in every week
        controllable = dispatch.controllable_plays(world.stage, world.config, world.field.capacity_available)
        static_mask = np.tile(controllable, (N_SEG, 1))

        def canonical(plan: Sequence[int]) -> Plan:
            return tuple(int(p) for p in apply_mask(np.asarray(plan), static_mask))

        starts: dict[str, Plan] = {}
        references: dict[str, float] = {}
        players: dict[str, Policy] = {name: make() for name, make in HEURISTICS.items()}
        for extra in (scenario.stage, stage):  # today's organisation and the stage's own, where mixed
            if not stage_text(extra).isdigit():  # a uniform organisation plays exactly its stage's heuristic
                players.setdefault(f"organisation {stage_text(extra)}", Organisation(extra))
        for name, policy in players.items():
            recorder = _Recorder(policy)
            references[name] = float(objective(recorder).mean())
            starts.setdefault(canonical(most_frequent(recorder.plays)), f"{name} (most frequent plays)")
        starts.setdefault(canonical([dispatch.REP_PLUS_EMAIL] * N_SEG), FOLLOW_UP)
        choices = [np.flatnonzero(controllable).tolist()] * N_SEG
        result = coordinate_ascent(plan_objective, {name: plan for plan, name in starts.items()}, choices, budget,
                                   len(seeds), spent=len(players) * len(seeds), evaluate_many=plan_objectives)
    finally:
        bar.close()
        env.close()
        pool.close()
    result.references = references
    result.seconds = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------------------------------- cache
def plan_key(scenario: ScenarioConfig, stage: int | StageConfig | Mapping[str, int], budget: int,
             seeds: Sequence[int]) -> str:
    """SHA-256 of the resolved scenario at the stage, the stage, today's stage (a mixed one adds a start), K, the seeds
    and the code version."""
    stage = as_stage(stage)
    config = strategy_config(scenario, StationaryPlan([0] * N_SEG, stage), stage)
    payload = json.dumps([config.model_dump(mode="json"), stage.model_dump(), as_stage(scenario.stage).model_dump(),
                          int(budget), [int(s) for s in seeds], code_version()], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def plan_cache_dir() -> Path:
    return cache_root() / "plans"


def search_workers(scenario: ScenarioConfig, budget: int) -> int:
    """Processes for a search of ``budget`` episodes: one per usable CPU where that work pays for starting them."""
    from .evaluation import POOL_MIN_EPISODES
    from .processes import local_worker_limit

    size = scenario.population.n_hcps / 600 * scenario.env.horizon_days / 365
    return local_worker_limit()[0] if budget * size >= POOL_MIN_EPISODES else 1


def best_plan(scenario: ScenarioConfig, stage: int | StageConfig | Mapping[str, int], budget: int,
              seeds: Sequence[int] | None = None, cache: Path | None = None, progress: bool = False,
              workers: int = 1) -> Search:
    """:func:`search_stage`, run once per key and read back from ``cache`` (default :func:`plan_cache_dir`);
    ``workers``: processes for the search (the plan does not depend on it; the CLI gives :func:`search_workers`, a
    script that gives more than 1 needs the ``if __name__ == "__main__":`` guard of Python's spawned processes)."""
    seeds = list(validation_seeds(SEARCH_SEEDS) if seeds is None else seeds)
    key = plan_key(scenario, stage, budget, seeds)
    path = (plan_cache_dir() if cache is None else Path(cache)) / f"{key}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") == key:
            return Search.from_json(data["search"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # absent or damaged: search again
    result = search_stage(scenario, stage, budget, seeds, progress, workers)
    try:
        atomic_write_text(path, json.dumps({"key": key, "search": result.to_json()}, indent=1))
    except OSError:
        pass  # a read-only cache: the plan is still returned
    return result


def make_strategy(name: str, scenario: ScenarioConfig, stage: int | StageConfig | Mapping[str, int] | None = None,
                  seeds: Sequence[int] | None = None, cache: Path | None = None,
                  workers: int = 1) -> Policy | TrainedModel:
    """``best@K``: the stationary plan found with budget K at ``stage`` (default: the scenario's), cached; any other
    name as ``oce_sim.agents.make_strategy``."""
    budget = best_budget(name)
    if budget is None:
        return make_named_strategy(name)
    chosen = scenario.stage if stage is None else as_stage(stage)
    return StationaryPlan(best_plan(scenario, chosen, budget, seeds, cache, workers=workers).plan, chosen, name=name)


def best_label(name: str, budget: int) -> str:
    """The column of ``name`` (today or a move) played with its stage's best plan: ``sales=3 best@1000``."""
    return f"{name} best@{budget}"


def move_values(results: Any, moves: Sequence[str], budget: int, metric: str = OBJECTIVE) -> Any:
    """The value of each move twice, from the tidy results of a compare that ran today, the moves and their
    ``best@K`` columns on the same seeds: move minus today with today's rules of thumb (the organisation's heuristics)
    and with the best plan each stage allows; mean and 95% paired CI (USD per territory)."""
    import pandas as pd

    from oce_sim.studies.evaluation import t_interval

    wide = results[results.metric == metric].pivot_table(index="seed", columns="strategy", values="value")
    rows = []
    for move in moves:
        for planned_by, high, low in (("rules of thumb", move, "today"),
                                      ("best plan", best_label(move, budget), best_label("today", budget))):
            diff = (wide[high] - wide[low]).to_numpy()
            ci = t_interval(diff, 0.95)
            rows.append(dict(move=move, planned_by=planned_by, metric=metric, mean=ci["diff_mean"],
                             ci_low=ci["diff_low"], ci_high=ci["diff_high"], n_seeds=diff.size))
    return pd.DataFrame(rows)


def move_values_text(values: Any, budget: int, scale: str) -> str:
    """One sentence per move: its value with the rules of thumb and with the best plan, and which one ranks."""
    lines = []
    for move, rows in values.groupby("move", sort=False):
        parts = {row.planned_by: f"{row.mean / 1e3:+,.0f}k [{row.ci_low / 1e3:+,.0f}k, {row.ci_high / 1e3:+,.0f}k]"
                 for row in rows.itertuples()}
        lines.append(f"Moving **{move}** is worth {parts['best plan']} USD {scale} with the best plan each stage allows "
                     f"(best@{budget}), and {parts['rules of thumb']} with today's rules of thumb (profit, year 1 + "
                     "tail, paired 95% CI).")
    return (" ".join(lines) + f" Read a move's value from the best plans: the rules of thumb plan some stages worse "
            f"than others, and the best plans were searched on validation seeds "
            f"{SEARCH_SEEDS_TEXT}, never on this run's seeds (docs/MODEL.md §4d).")


SEARCH_SEEDS_TEXT = f"{VALIDATION_SEED:,}-{VALIDATION_SEED + SEARCH_SEEDS - 1:,}"

__all__ = ["Search", "best_label", "best_plan", "coordinate_ascent", "make_strategy", "move_values",
           "move_values_text", "paired_gain", "plan_key", "search_stage"]
