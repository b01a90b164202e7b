"""The burn-in behind a steady start, computed once per market and cached in memory and on disk.

A mature market has been promoted for years before day 0, by its own stage's usual plan.  Starting it from
arbitrary initial shares puts every strategy on a growth (or decay) transient that has nothing to do with the
strategy.  The burn-in runs the market's history (the organisation of ``history.stage``, entity by entity, with
``history.n_reps`` reps) for ``history.burn_in_years`` on a few fixed seeds, with the processes of an episode: its
formulary reviews open and tighten accounts, each review tightening at the rates that balance its upgrades at the
configured shares (``ResponseModel.balance_access``).  The end states are pooled into a
:class:`~oce_sim.world.start.StartTable`, with the accounts' access and the downgrades per review of the last
``BALANCE_YEARS`` (the rates every episode of the market then keeps: under its usual plan the configured shares
stay stationary, a plan that builds more use opens more accounts, one that builds less loses them).

The cache key is a hash of everything that shapes the market and its history (population, response, channels,
marketing, pipeline, economics, the history block) and of the simulation's source code; environment settings,
the run's own stage and field force, and names are left out, so that every strategy and what-if of one market
shares one burn-in.  Set ``OCE_SIM_CACHE_DIR`` to move the disk cache; an unwritable cache falls back to memory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from oce_sim.agents.organisation import Organisation
from oce_sim.config import ScenarioConfig, load_scenario
from oce_sim.storage.outputs import cache_root
from oce_sim.world.batch import play_in_lockstep, seed_batches
from oce_sim.world.response import (
    balancing_downgrade,
    configured_access_shares,
    stationary_access,
)
from oce_sim.world.simulation import Territories
from oce_sim.world.start import StartTable, cell_of

BURN_IN_SEEDS: tuple[int, ...] = tuple(range(910_001, 910_017))  # a small market's history uses more of them
MIN_BURN_IN_SEEDS = 4
MIN_BURN_IN_HCPS = 2_400  # HCPs pooled over the history's seeds: a 240-HCP market's 4 seeds gave +5% a year of drift
CAMPAIGN_STEPS = 52  # weekly decisions in a brand year: each year starts a new campaign
DAYS_PER_BRAND_YEAR = 7 * CAMPAIGN_STEPS
BALANCE_YEARS = 2.0  # the last years of the history whose reviews set the downgrades every episode keeps
_MEMORY: dict[str, StartTable] = {}


def cache_dir() -> Path:
    return cache_root() / "steady-start"


@functools.lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """Hash of the source the burn-in depends on, so that a model change never reuses a stale table."""
    from oce_sim import agents  # a folder of the checkout, or oce_sim/agents in a wheel

    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    files = sorted((package / "world").glob("*.py")) + [package / "envs" / "territory.py", Path(__file__).resolve()]
    files += sorted((package / "config").glob("*.py"))
    files += sorted(Path(agents.__file__).resolve().parent.glob("*.py"))
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def history_key(config: ScenarioConfig) -> str:
    data = config.model_dump(mode="json", exclude={"name", "description", "env", "stage"})
    data["population"].pop("n_reps")
    data["pipeline"].pop("override")  # the history ran on its own stage's pipeline
    data["history"]["stage"] = config.history_stage.model_dump()
    data["history"]["n_reps"] = config.history_n_reps
    data["history"].pop("start")
    text = json.dumps(data, sort_keys=True) + _code_fingerprint()
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def history_config(config: ScenarioConfig) -> ScenarioConfig:
    """The market as its history ran: its history stage and field force, configured start, weekly decisions."""
    data = config.model_dump(mode="python")
    data["stage"] = config.history_stage.model_dump()
    data["population"]["n_reps"] = config.history_n_reps
    data["pipeline"] = {**data["pipeline"], "override": None}
    data["history"] = {**data["history"], "start": "configured"}
    days = int(round(config.history.burn_in_years * 364 / 7)) * 7
    data["env"] = {"horizon_days": days, "decision_interval_days": 7, "terminal_value": False,
                   "info_kpis": "episode_end"}
    return load_scenario(data)


def steady_start(config: ScenarioConfig, make_env: Callable[..., Any]) -> StartTable | None:
    """The day-0 table of ``config``'s market, or None where the scenario starts as configured.

    ``make_env(scenario=...)`` builds the env the history runs in (``TerritoryEnv``, which calls this at reset:
    it passes itself, so this module does not import it)."""
    if config.history.start != "steady":
        return None
    key = history_key(config)
    table = _MEMORY.get(key)
    if table is None:
        table = _load(key)
        if table is None:
            table = run_burn_in(history_config(config), make_env)
            _save(key, table)
        _MEMORY[key] = table
    return table


def burn_in_seeds(config: ScenarioConfig) -> tuple[int, ...]:
    """The history's seeds: at least ``MIN_BURN_IN_SEEDS``, and enough to pool ``MIN_BURN_IN_HCPS`` HCPs (at most all
    of ``BURN_IN_SEEDS``): a small market's few accounts otherwise leave its start table and its downgrades noisy."""
    count = max(MIN_BURN_IN_SEEDS, -(-MIN_BURN_IN_HCPS // config.population.n_hcps))
    return BURN_IN_SEEDS[: min(count, len(BURN_IN_SEEDS))]


def run_burn_in(config: ScenarioConfig, make_env: Callable[..., Any],
                seeds: tuple[int, ...] | None = None) -> StartTable:
    cells, adoption, goodwill, balance = [], [], [], []
    seeds = burn_in_seeds(config) if seeds is None else seeds
    n_balance = max(1, int(round(BALANCE_YEARS * DAYS_PER_BRAND_YEAR / config.response.access_review_interval_days)))
    for batch in seed_batches(seeds, config.population.n_hcps):  # the seeds' histories as batches
        envs = [make_env(scenario=config) for _ in batch]
        try:
            play_usual_plans(envs, batch, balance_access=True)
            for env in envs:
                world = env.world
                assert world is not None
                cells.append(cell_of(world.pop, world.state.account_access))
                adoption.append(world.state.adoption.astype(np.int64))
                goodwill.append(world.state.goodwill.copy())
                balance += world.response.access_balance_log[-n_balance:]
        finally:
            for env in envs:
                env.close()
    pooled = np.array(balance, dtype=float).reshape(-1, 5).sum(axis=0)
    downgrade = balancing_downgrade(configured_access_shares(config), *pooled[:4])
    # Day 0 draws access from the shares the history's access chain holds (its upgrade pressure and these
    # downgrades): the configured ones unless a rate is clipped.  The few dozen accounts the history visited are too
    # few to estimate them (blocked accounts keep their day-0 draw for decades).
    upgrade = pooled[[0, 2]] / np.maximum(pooled[[1, 3]], 1.0)
    access_share = stationary_access(upgrade, downgrade, configured_access_shares(config))
    return StartTable.from_samples(np.concatenate(cells), np.concatenate(adoption), np.concatenate(goodwill),
                                   access_share, downgrade)


def play_usual_plan(env: Any, seed: int, balance_access: bool = False,
                    on_start: Callable[[Any], None] | None = None,
                    on_year_end: Callable[[Any], None] | None = None) -> None:
    """``play_usual_plans`` for one env."""
    play_usual_plans([env], [seed], balance_access, on_start, on_year_end)


def play_usual_plans(envs: Sequence[Any], seeds: Sequence[int], balance_access: bool = False,
                     on_start: Callable[[Any], None] | None = None,
                     on_year_end: Callable[[Any], None] | None = None) -> None:
    """Play each env's episode (``envs[i]`` on ``seeds[i]``) with its stage's usual promotion (the organisation,
    entity by entity), a new campaign every brand year; ``balance_access``: the history's reviews (downgrades
    balancing the upgrades at the configured shares); ``on_start(world)`` after the reset, ``on_year_end(world)``
    after every full brand year.  The territories advance together as one batch (one calendar, one compiled call
    per phase), each exactly as it would alone (``tests/test_steady_start.py``)."""
    policies = [Organisation(env.scenario.stage) for env in envs]
    observations = []
    for env, policy, seed in zip(envs, policies, seeds):
        obs, _ = env.reset(seed=seed)
        if on_start is not None:
            on_start(env.world)
        env.world.response.balance_access = balance_access  # before the first review (day 91)
        policy.reset(env, seed)
        observations.append(obs)
    if len(envs) > 1:
        Territories.join([env.world for env in envs])

    def year_end(steps: int, done: bool) -> None:
        if steps % CAMPAIGN_STEPS == 0:
            for env in envs:
                if on_year_end is not None:
                    on_year_end(env.world)
                if not done:
                    new_campaign(env.world)

    play_in_lockstep(envs, lambda i, obs, mask: policies[i].predict(obs, action_masks=mask)[0], observations,
                     after_step=year_end)


def yearly_expected_trx(config: ScenarioConfig, make_env: Callable[..., Any], seeds: tuple[int, ...],
                        years: int = 3) -> np.ndarray:
    """[seed, year]: the expected TRx of each brand year of ``config``'s market under its usual plan (its own
    stage's organisation, a new campaign every year), from its day-0 start (steady or configured): how far the
    start is from stationary."""
    data = config.model_dump(mode="python")
    data["env"] = {**data["env"], "horizon_days": years * DAYS_PER_BRAND_YEAR, "decision_interval_days": 7,
                   "terminal_value": False, "info_kpis": "episode_end"}
    played = load_scenario(data)
    price = config.economics.price_per_rx_usd
    out = np.zeros((len(seeds), years))
    row = 0
    for batch in seed_batches(seeds, played.population.n_hcps):  # the seeds as batches
        envs = [make_env(scenario=played) for _ in batch]
        ends: dict[int, list[float]] = {}  # id(World) -> its revenue at each year's end, as TRx

        def year_end(world: Any, ends: dict[int, list[float]] = ends) -> None:
            ends.setdefault(id(world), []).append(world.ledger.expected_revenue_usd / price)

        try:
            play_usual_plans(envs, batch, on_year_end=year_end)
            for env in envs:
                out[row] = np.diff(np.concatenate([[0.0], ends[id(env.world)]]))
                row += 1
        finally:
            for env in envs:
                env.close()
    return out


def new_campaign(world) -> None:
    """The start of a brand year: a new message sequence (nobody has heard it yet) and the year's consent drive
    (consent back to the configured opt-in), as every episode's day 0 has them."""
    world.state.progress[:] = 0
    world.view.progress[:] = 0
    world.field.rep_progress[:] = 0
    for name in ("email_consent", "remote_consent"):
        getattr(world.state, name)[:] = getattr(world.pop, name)
        getattr(world.view, name)[:] = getattr(world.pop, name)


def _load(key: str) -> StartTable | None:
    path = cache_dir() / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            return StartTable(data["state_share"].copy(), data["goodwill"].copy(), data["access_share"].copy(),
                              data["access_downgrade"].copy())
    except (OSError, KeyError, ValueError):
        return None


def _save(key: str, table: StartTable) -> None:
    directory = cache_dir()
    tmp = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{key}.", suffix=".npz")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, state_share=table.state_share, goodwill=table.goodwill, access_share=table.access_share,
                     access_downgrade=table.access_downgrade)
        os.replace(tmp, directory / f"{key}.npz")
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        # a read-only cache: keep the table in memory only
