"""The burn-in behind a steady start, computed once per market and cached in memory and on disk.

A mature market has been promoted for years before day 0, by its own stage's usual plan.  Starting it from
arbitrary initial shares puts every strategy on a growth (or decay) transient that has nothing to do with the
strategy.  The burn-in runs the market's history (the organisation of ``history.stage``, entity by entity, with ``history.n_reps`` reps, the
formularies held as configured) for ``history.burn_in_years`` on a few fixed seeds and pools the end states into a
:class:`~oce_sim.world.start.StartTable`.

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
from pathlib import Path
from typing import Any, Callable

import numpy as np

from oce_sim.agents.organisation import Organisation
from oce_sim.config import ScenarioConfig, load_scenario
from oce_sim.storage.outputs import cache_root
from oce_sim.world.start import StartTable, cell_of

BURN_IN_SEEDS: tuple[int, ...] = (910_001, 910_002, 910_003, 910_004)
CAMPAIGN_STEPS = 52  # weekly decisions in a brand year: each year starts a new campaign
_MEMORY: dict[str, StartTable] = {}


def cache_dir() -> Path:
    return cache_root() / "steady-start"


@functools.lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """Hash of the source the burn-in depends on, so that a model change never reuses a stale table."""
    from oce_sim import agents  # a folder of the checkout, or oce_sim/agents in a wheel

    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    files = sorted((package / "world").glob("*.py")) + [package / "envs" / "territory.py"]
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


def run_burn_in(config: ScenarioConfig, make_env: Callable[..., Any],
                seeds: tuple[int, ...] = BURN_IN_SEEDS) -> StartTable:
    cells, adoption, goodwill = [], [], []
    for seed in seeds:
        policy = Organisation(config.stage)  # the history stage's usual promotion, entity by entity
        env = make_env(scenario=config)
        env.world_options = {"access_reviews": False}
        obs, _ = env.reset(seed=seed)
        policy.reset(env, seed)
        done = False
        step = 0
        while not done:
            action, _ = policy.predict(obs, action_masks=env.action_masks())
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            step += 1
            if step % CAMPAIGN_STEPS == 0 and not done:
                new_campaign(env.world)
        world = env.world
        assert world is not None
        cells.append(cell_of(world.pop, world.state.account_access))
        adoption.append(world.state.adoption.astype(np.int64))
        goodwill.append(world.state.goodwill.copy())
        env.close()
    return StartTable.from_samples(np.concatenate(cells), np.concatenate(adoption), np.concatenate(goodwill))


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
            return StartTable(data["state_share"].copy(), data["goodwill"].copy())
    except (OSError, KeyError, ValueError):
        return None


def _save(key: str, table: StartTable) -> None:
    directory = cache_dir()
    tmp = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{key}.", suffix=".npz")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, state_share=table.state_share, goodwill=table.goodwill)
        os.replace(tmp, directory / f"{key}.npz")
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        # a read-only cache: keep the table in memory only
