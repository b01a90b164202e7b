"""Sweeps that scale and survive: the episodes of a what-if sweep as keyed jobs, a cache of finished episodes, and
the executors that run them (in this process, a local process pool, or Ray).

* **Keys.**  An episode is keyed by the SHA-256 of its resolved scenario (as the strategy runs it), the strategy,
  its organisation settings, the seed and the code version (:func:`code_version`: the version and a hash of every
  Python file of ``oce_sim`` and its agents), so a changed model or heuristic never reuses an old result.
  Identical episodes of different variants (the no-promotion counterfactual of variants that differ only in
  headcount) are one job.
* **Cache.**  Each finished episode's KPIs are written, atomically, to ``<cache>/<key[:2]>/<key>.json`` as soon
  as it finishes, by the process that collects the results.  A sweep killed at any moment, SIGKILL included,
  and run again reads the finished episodes back and runs only the others; Python's JSON writes floats exactly, so
  the final table is byte-identical to an uninterrupted run's.  The cache sits beside ``--out``
  (``<out>.cache/``), outside the output folder's transaction, and may be deleted at any time.  Every entry is
  checked as it is read back (:class:`CachedEpisode`: at most ``MAX_ENTRY_BYTES``, the key it is filed under, a
  finite number for every KPI, and the sweep's KPIs exactly), so a damaged or misplaced entry is run again, with a
  note; a folder that is not one, or not writable, is refused before any episode runs.  An entry forged with the right key and plausible
  numbers is not detected: the cache trusts whoever can write to it.
* **Executors.**  ``local`` runs the jobs in this process (``workers=1``) or in a process pool; ``ray`` submits
  them as Ray tasks (``ray.init()`` starts a local instance unless one is running or ``RAY_ADDRESS`` names a
  cluster).  Results are placed by key, so the table's order never depends on which episode finished first.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oce_sim.config import format_validation_error, read_json
from oce_sim.config.errors import _clip, _excerpt
from oce_sim.storage.outputs import atomic_write_text, folder_problem

from .processes import WORKER_MEMORY_BYTES, available_memory_bytes, local_worker_limit, spawn_pool

__all__ = ["WORKER_MEMORY_BYTES", "available_memory_bytes", "local_worker_limit"]  # also read from here

EXECUTORS = ("local", "ray")
MAX_ENTRY_BYTES = 1 << 20  # a cache entry: a sweep's episode is ~1.5 KB, a baseline table's cell a few KB
MAX_ENTRY_VALUES = 10_000


@dataclass(frozen=True)
class Job:
    """One episode: a strategy (``organisation`` with its stage and settings, or a named strategy) on a resolved
    scenario and a seed.  Plain data, so that it pickles to a worker process or a Ray task."""

    key: str
    config: Any  # ScenarioConfig as the strategy runs it
    strategy: str
    seed: int
    stage: Any = None  # the organisation's stage (StageConfig), None for a named strategy
    policy: tuple[tuple[str, float], ...] = ()  # the organisation's settings (policy.*)
    plan: tuple[int, ...] | None = None  # a stationary plan (one play per segment) played at ``stage`` instead


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<version>+<hash>``: the hash covers every Python file of oce_sim and its agents."""
    import oce_sim
    import oce_sim.agents
    from oce_sim import __version__

    digest = hashlib.sha256()
    roots = [Path(oce_sim.__file__).parent, *map(Path, oce_sim.agents.__path__)]
    for root in dict.fromkeys(roots):
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{__version__}+{digest.hexdigest()[:16]}"


def job_key(config: Any, strategy: str, policy: Mapping[str, float], seed: int) -> str:
    payload = json.dumps([config.model_dump(mode="json"), strategy, dict(policy), int(seed), code_version()],
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def run_job(job: Job) -> dict[str, float]:
    """Run one episode (in whatever process executes it); its KPIs as plain floats."""
    return run_jobs_together([job])[0]


def run_jobs_together(jobs: Sequence[Job]) -> list[dict[str, float]]:
    """Run episodes that differ only in their seed (one :func:`seed_groups` group) as the territories of one batch
    (``evaluation.run_episodes``: each episode exactly as alone); their KPIs as plain floats, in order."""
    from oce_sim.agents import StationaryPlan, make_strategy
    from oce_sim.agents.organisation import Organisation
    from oce_sim.studies.evaluation import run_episodes

    job = jobs[0]
    policy = (StationaryPlan(job.plan, job.stage, name=job.strategy) if job.plan is not None else
              Organisation(job.stage, name=job.strategy, **dict(job.policy)) if job.stage is not None
              else make_strategy(job.strategy))
    episodes = run_episodes(policy, job.config, [j.seed for j in jobs])
    return [{metric: float(value) for metric, value in episode.kpis.items()} for episode in episodes]


def seed_groups(jobs: Sequence[Job], max_seeds: int | None = None) -> list[list[Job]]:
    """``jobs`` grouped by everything but the seed (scenario, strategy, organisation), each group cut into batches of
    at most ``evaluation.MAX_BATCH_CUSTOMERS`` customers (and ``max_seeds`` seeds); groups in the order of their
    first job."""
    from oce_sim.studies.evaluation import seed_batches

    groups: dict[str, list[Job]] = {}
    for job in jobs:
        same = json.dumps([job.config.model_dump(mode="json"), job.strategy, repr(job.stage), list(job.policy),
                           job.plan], sort_keys=True, default=str)
        groups.setdefault(same, []).append(job)
    batches: list[list[Job]] = []
    for group in groups.values():
        by_seed = {job.seed: job for job in group}
        for seeds in seed_batches(list(by_seed), group[0].config.population.n_hcps):
            step = max_seeds or len(seeds)
            batches += [[by_seed[seed] for seed in seeds[i:i + step]] for i in range(0, len(seeds), step)]
    return batches


class CacheError(ValueError):
    """The cache folder cannot be used (it is a file, or not writable); raised before any episode runs."""


class CachedEpisode(BaseModel):
    """One cache entry, as :meth:`EpisodeCache.put` writes it: the key it is filed under and its numbers (an
    episode's KPIs), each a finite number under a short name."""

    # strict: a string or a bool is not a number; finite floats only; unknown keys are refused
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    kpis: Annotated[dict[Annotated[str, Field(max_length=100)], float], Field(max_length=MAX_ENTRY_VALUES)]


class EpisodeCache:
    """Finished episodes' KPIs on disk, one JSON file per key (written atomically: complete or absent), each checked
    as it is read back (:class:`CachedEpisode`; with ``names``, an entry must hold exactly those numbers);
    ``refused`` lists the entries found damaged or misplaced (``path: why``)."""

    def __init__(self, folder: Path | None, names: Sequence[str] | None = None):
        self.folder = Path(folder) if folder is not None else None
        self.names = tuple(names) if names is not None else None
        self.refused: list[str] = []

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.json"

    def check(self) -> None:
        """Refuse a cache that exists and is not a folder, or cannot be created or written: found before any
        episode runs, not after the first one."""
        problem = folder_problem(self.folder) if self.folder is not None else None
        if problem:
            raise CacheError(f"the episode cache {problem} (it keeps finished episodes beside --out); remove it or "
                             "choose another --out")

    def get(self, key: str) -> dict[str, float] | None:
        """The KPIs cached under ``key`` (in the order of ``names``, or as written), or None: absent, or refused (run
        it again)."""
        if self.folder is None:
            return None
        path = self._path(key)
        try:
            entry = CachedEpisode.model_validate(read_json(path, MAX_ENTRY_BYTES))
        except FileNotFoundError:
            return None
        except OSError as exc:
            why = f"unreadable ({exc.strerror})"
        except ValidationError as exc:
            why = "; ".join(format_validation_error(exc, CachedEpisode)[:2])
        except ValueError as exc:  # too large, not UTF-8, not JSON
            why = str(exc)
        else:
            missing, unknown = (sorted(set(self.names) - set(entry.kpis)), sorted(set(entry.kpis) - set(self.names))) \
                if self.names is not None else ([], [])
            if entry.key != key:
                why = f"it holds episode {entry.key[:12]}..., not {key[:12]}..."
            elif missing or unknown:
                why = f"kpis: missing {_excerpt(missing)}, unknown {_excerpt(unknown)}"
            else:
                return {name: entry.kpis[name] for name in self.names} if self.names is not None else entry.kpis
        self.refused.append(f"{path}: {why}")
        return None

    def put(self, key: str, kpis: Mapping[str, float]) -> None:
        if self.folder is not None:
            atomic_write_text(self._path(key), json.dumps({"key": key, "kpis": dict(kpis)}))  # KPI order kept


def _note_on_stderr(line: str) -> None:
    print(f"note: {line}", file=sys.stderr)


def run_jobs(jobs: Sequence[Job], cache: EpisodeCache, executor: str = "local", workers: int = 1,
             on_done: Callable[[int], None] | None = None, note: Callable[[str], None] | None = None
             ) -> tuple[dict[str, dict[str, float]], int]:
    """Every job's KPIs by key, from the cache where finished, else run (and cached as each finishes); ``workers``:
    the local executor's processes (0: one per usable CPU when the work pays for starting them, else this process).
    Returns (results, number read from the cache).  ``on_done(n)`` reports progress; ``note`` (default: stderr)
    gets one line about cache entries that were refused and are run again."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    cache.check()
    results: dict[str, dict[str, float]] = {}
    todo: list[Job] = []
    for job in jobs:
        if job.key in results:
            continue
        cached = cache.get(job.key)
        if cached is not None:
            results[job.key] = cached
        else:
            todo.append(job)
    reused = len(results)
    if on_done and reused:
        on_done(reused)
    if cache.refused:
        (note or _note_on_stderr)(f"{len(cache.refused)} cached episode(s) in {cache.folder} are damaged or not "
                                  f"the episode they are filed under, and run again (first: "
                                  f"{_clip(cache.refused[0], 300)})")

    def finish(job: Job, kpis: dict[str, float]) -> None:
        cache.put(job.key, kpis)
        results[job.key] = kpis
        if on_done:
            on_done(1)

    if not todo:
        return results, reused
    if workers == 0:  # one per usable CPU where the work pays for starting them
        from .evaluation import episode_size, pool_workers

        workers = pool_workers(sum(episode_size(job.config) for job in todo))
    if executor == "ray":
        _run_ray(todo, finish)
    elif len(todo) == 1:
        finish(todo[0], run_job(todo[0]))
    elif workers <= 1:
        for group in seed_groups(todo):
            for job, kpis in zip(group, run_jobs_together(group)):
                finish(job, kpis)
    else:
        _run_pool(todo, finish, workers)
    return results, reused


def _run_pool(todo: Sequence[Job], finish: Callable[[Job, dict], None], workers: int) -> None:
    import concurrent.futures

    # spawn: a fresh interpreter per worker (no forked copies of Numba, torch or open files).  No more processes than
    # the machine holds (the CLI refuses more; the table is the same whatever the pool's size)
    # a group's seeds run as one batch in one worker; at least two groups a worker, so that no core waits long
    groups = seed_groups(todo, max_seeds=max(1, -(-len(todo) // (2 * workers))))
    size = min(workers, len(groups), local_worker_limit()[0])
    with spawn_pool(size) as pool:
        pending = {pool.submit(run_jobs_together, group): group for group in groups}
        try:
            for future in concurrent.futures.as_completed(pending):
                for job, kpis in zip(pending[future], future.result()):
                    finish(job, kpis)
        except BaseException:  # Ctrl-C or a failed episode: start nothing more; running episodes end first
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _run_ray(todo: Sequence[Job], finish: Callable[[Job, dict], None]) -> None:
    try:
        import ray
    except ImportError:
        raise RuntimeError("--executor ray needs Ray: pip install 'oce-sim[sweep]' (or pip install ray)") from None
    started = not ray.is_initialized()
    if started:
        from oce_sim._checkout import REPO_ROOT

        runtime_env = {}
        if (REPO_ROOT / "agents" / "__init__.py").is_file() and not os.environ.get("RAY_ADDRESS"):
            # a source checkout on a local instance: Ray's workers import oce_sim from the same place
            path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
            runtime_env = {"env_vars": {"PYTHONPATH": path}}
        ray.init(runtime_env=runtime_env, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(run_job)
        pending = {task.remote(job): job for job in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                finish(pending.pop(ref), ray.get(ref))
    finally:
        if started:
            ray.shutdown()


def default_cache(out: Path) -> Path:
    """The cache folder of ``--out``: ``<out>.cache`` beside it."""
    out = Path(os.path.abspath(out))
    return out.with_name(out.name + ".cache")


__all__ = ["EXECUTORS", "CacheError", "CachedEpisode", "EpisodeCache", "Job", "available_memory_bytes",
           "code_version", "default_cache", "job_key", "local_worker_limit", "run_job", "run_jobs"]
