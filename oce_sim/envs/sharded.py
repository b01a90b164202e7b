"""The native vector env spread over worker processes: ``workers`` shards of contiguous territories, stepped at once.

``TerritoryVectorEnv`` runs every territory in one process, so it uses one core.  ``ShardedTerritoryVectorEnv`` splits
the ``num_envs`` territories into ``workers`` contiguous shards: shard 0 steps in this process while each other
shard steps a ``TerritoryVectorEnv`` of its own in a worker process, at the same time.  The territories never
interact, so the result is the one process's, bit for bit: sub-env ``i`` of ``reset(seed=s)`` is still seeded
``s + i`` (shard ``k`` is reset with ``s`` plus its first territory's index), and the observations, rewards and
vector infos are the shards' concatenated in territory order (``tests/test_sharded_vector.py``).

Made by ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point", workers=W)`` (``workers=1``, the
default, is the one-process env) and by ``oce-sim train --workers W`` (factored-ppo).  As in Gymnasium's
``AsyncVectorEnv``, ``context`` picks how workers start (None: the platform's default, ``fork`` on Linux; ``spawn``
and ``forkserver`` import the main module again, so a script then needs ``if __name__ == "__main__":``).  Workers
ignore Ctrl-C (the learner handles it and closes them) and end with this process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import traceback
from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from oce_sim.envs.vector import TerritoryVectorEnv, check_num_envs, checked_int

START_TIMEOUT_S = 300.0  # a worker imports the package and loads the compiled kernels before it answers
# Worker processes per usable CPU, and at least this many whatever the CPUs: a shard per core is the speed-up, and
# up to twice that costs only time slices (the learner shares the cores too), so a split chosen on a bigger machine
# still runs on a laptop or a 1-2 core CI runner; 1,000 processes on 2 cores (minutes to start, GBs) is refused.
WORKERS_PER_CPU = 2
MIN_WORKER_LIMIT = 4


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container or ``taskset`` narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def max_workers() -> int:
    """The most worker processes a sharded env may start here: ``WORKERS_PER_CPU`` per usable CPU, at least
    ``MIN_WORKER_LIMIT``."""
    return max(MIN_WORKER_LIMIT, WORKERS_PER_CPU * usable_cpus())


def check_workers(workers: Any, num_envs: int) -> int:
    """``workers`` as an int in [1, min(num_envs, max_workers())]; TypeError or ValueError naming the argument."""
    limit = max_workers()
    if num_envs <= limit:
        return checked_int("workers", workers, 1, num_envs, " (num_envs: each worker steps at least one territory)")
    return checked_int("workers", workers, 1, limit, f" ({WORKERS_PER_CPU} per usable CPU: {usable_cpus()} here, "
                       f"never fewer than {MIN_WORKER_LIMIT}; more processes only share the cores)")


def default_workers(num_envs: int) -> int:
    """``oce-sim train``'s default: a process per usable CPU, at most one per territory."""
    return max(1, min(usable_cpus(), int(num_envs)))


def shard_sizes(num_envs: int, workers: int) -> list[int]:
    """Territories per shard: as even as possible, the larger shards first (``[3, 3, 2]`` for 8 over 3).  Even is
    what trains fastest on two cores, although shard 0's process also runs the learner's policy (docs/PERFORMANCE.md
    section 15: 8 + 8 territories against 7 + 9, 6 + 10, 9 + 7 and 10 + 6)."""
    base, extra = divmod(int(num_envs), int(workers))
    return [base + (1 if k < extra else 0) for k in range(int(workers))]


def _worker(conn: Any, num_envs: int, kwargs: dict[str, Any]) -> None:
    """A shard's process: answers ``(command, payload)`` messages until ``close`` (or the learner is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the learner's to handle; it then closes the workers
    try:
        vec = TerritoryVectorEnv(num_envs, **kwargs)
    except BaseException:  # noqa: BLE001  (sent to the learner, which raises it)
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", None))
    while True:
        try:
            command, payload = conn.recv()
        except (EOFError, OSError):  # the learner is gone
            break
        try:
            if command == "reset":
                result: Any = vec.reset(**payload)
            elif command == "step":
                result = vec.step(payload)
            elif command == "action_masks":
                result = vec.action_masks()
            elif command == "render":
                result = vec.render()
            elif command == "close":
                vec.close()
                conn.send(("ok", None))
                break
            else:
                raise ValueError(f"unknown command {command!r}")
        except Exception:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))
            continue
        conn.send(("ok", result))
    conn.close()


def merge_infos(parts: Sequence[dict[str, Any]], sizes: Sequence[int]) -> dict[str, Any]:
    """Gymnasium vector infos of consecutive shards (``sizes`` sub-envs each) as the infos of one vector env: every
    key's array and its ``_key`` mask concatenated in shard order; a key some shard lacks gets that shard's rows
    filled as Gymnasium's ``_add_info`` fills them (zeros, or None for objects) with the mask False there."""
    keys: list[str] = []
    for part in parts:
        for key in part:
            if key.startswith("_") and key[1:] in part:
                continue  # a mask: goes with its key
            if key not in keys:
                keys.append(key)
    merged: dict[str, Any] = {}
    for key in keys:
        present = [part[key] for part in parts if key in part]
        if any(isinstance(value, dict) for value in present):
            merged[key] = merge_infos([part.get(key, {}) for part in parts], sizes)
        else:
            template = np.asarray(present[0])
            columns = []
            for part, n in zip(parts, sizes):
                if key in part:
                    columns.append(np.asarray(part[key]))
                elif template.dtype == object:
                    columns.append(np.full((n, *template.shape[1:]), None, dtype=object))
                else:
                    columns.append(np.zeros((n, *template.shape[1:]), dtype=template.dtype))
            merged[key] = np.concatenate(columns)
        merged[f"_{key}"] = np.concatenate([np.asarray(part.get(f"_{key}", np.zeros(n, dtype=bool)), dtype=bool)
                                            if key in part else np.zeros(n, dtype=bool)
                                            for part, n in zip(parts, sizes)])
    return merged


class ShardedTerritoryVectorEnv(VectorEnv):
    """``num_envs`` territories in ``workers`` processes (see the module docstring).  Same arguments as
    ``TerritoryVectorEnv`` plus ``workers`` (1 to ``num_envs`` and to :func:`max_workers`) and ``context`` (a
    multiprocessing start method)."""

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, workers: int = 2, context: str | None = None, **kwargs: Any):
        num_envs = check_num_envs(num_envs)
        workers = check_workers(workers, num_envs)  # before any territory or process
        self.num_envs = num_envs
        self.workers = workers
        self.sizes = shard_sizes(num_envs, workers)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.local = TerritoryVectorEnv(self.sizes[0], **kwargs)  # also checks the arguments, before any process
        self.scenario = self.local.scenario
        self.render_mode = self.local.render_mode
        self.metadata = dict(self.metadata)
        self.single_observation_space = self.local.single_observation_space
        self.single_action_space = self.local.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.horizon_days = self.local.horizon_days
        self.decision_interval_days = self.local.decision_interval_days
        kwargs = dict(kwargs, scenario=self.scenario, stage=None, config=None)  # resolved once, here
        start = mp.get_context(context)
        self._conns: list[Any] = []
        self._processes: list[Any] = []
        self._waiting: list[bool] = []
        self._closed_workers = False
        try:
            for size in self.sizes[1:]:
                parent, child = start.Pipe()
                process = start.Process(target=_worker, args=(child, size, kwargs), daemon=True)
                process.start()
                child.close()
                self._conns.append(parent)
                self._processes.append(process)
                self._waiting.append(True)
            for k in range(len(self._conns)):
                self._receive(k, timeout=START_TIMEOUT_S)
        except BaseException:
            self._stop_workers()
            raise

    # ---------------------------------------------------------------------------------------------- API
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        if seed is None or isinstance(seed, (int, np.integer)):
            shard_seeds: list[Any] = [None if seed is None else int(seed) + int(start) for start in self.offsets[:-1]]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset(seed=[...]) needs {self.num_envs} seeds, got {len(seeds)}")
            shard_seeds = [seeds[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:])]
        for k in range(len(self._conns)):
            self._send(k, "reset", {"seed": shard_seeds[k + 1], "options": options})
        parts = self._gather(lambda: self.local.reset(seed=shard_seeds[0], options=options))
        return np.concatenate([obs for obs, _ in parts]), merge_infos([info for _, info in parts], self.sizes)

    def step(self, actions: Any):
        actions = np.asarray(actions)
        if actions.shape[:1] != (self.num_envs,):
            raise ValueError(f"actions must have shape {self.action_space.shape}, got {actions.shape}")
        for k in range(len(self._conns)):
            self._send(k, "step", actions[self.offsets[k + 1]:self.offsets[k + 2]])
        parts = self._gather(lambda: self.local.step(actions[:self.offsets[1]]))
        observations, rewards, terminations, truncations = (np.concatenate([p[j] for p in parts]) for j in range(4))
        return observations, rewards, terminations, truncations, merge_infos([p[4] for p in parts], self.sizes)

    def action_masks(self) -> np.ndarray:
        """``(num_envs, 72)`` boolean masks of the next decision, one row per territory."""
        for k in range(len(self._conns)):
            self._send(k, "action_masks", None)
        return np.concatenate(self._gather(self.local.action_masks))

    def render(self) -> tuple[str | None, ...] | None:
        if self.render_mode is None:
            return None
        for k in range(len(self._conns)):
            self._send(k, "render", None)
        parts = self._gather(self.local.render)
        return tuple(frame for part in parts for frame in part)

    def close_extras(self, **kwargs: Any) -> None:
        self.local.close()
        self._stop_workers()

    # ------------------------------------------------------------------------------------------ helpers
    def _gather(self, local_call: Any) -> list[Any]:
        """Shard 0's answer (``local_call``, run while the workers work) and then every worker's, in shard order.
        Every answer is read before an error is raised, so that the pipes stay in step for the next call."""
        errors: list[BaseException] = []
        parts: list[Any] = []
        try:
            parts.append(local_call())
        except Exception as exc:  # noqa: BLE001  (raised below, once the workers have answered)
            errors.append(exc)
        for k in range(len(self._conns)):
            try:
                parts.append(self._receive(k))
            except RuntimeError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return parts

    def _send(self, k: int, command: str, payload: Any) -> None:
        self._conns[k].send((command, payload))
        self._waiting[k] = True

    def _receive(self, k: int, timeout: float | None = None) -> Any:
        conn = self._conns[k]
        if timeout is not None and not conn.poll(timeout):
            raise RuntimeError(f"worker {k + 1} of the sharded vector env did not start within {timeout:.0f} s")
        try:
            status, result = conn.recv()
        except EOFError:
            self._processes[k].join(timeout=5.0)
            raise RuntimeError(f"worker {k + 1} of the sharded vector env ended unexpectedly (exit code "
                               f"{self._processes[k].exitcode}; with context 'spawn' or 'forkserver' a script needs "
                               f"'if __name__ == \"__main__\":')") from None
        self._waiting[k] = False
        if status == "error":
            raise RuntimeError(f"worker {k + 1} of the sharded vector env failed:\n{result}")
        return result

    def _stop_workers(self) -> None:
        """Close every worker: the answer it still owes is read first (a Ctrl-C may fall between a send and its
        receive), then it is asked to close, and it is terminated if it does not end within seconds."""
        if self._closed_workers:
            return
        self._closed_workers = True
        for k, conn in enumerate(self._conns):
            try:
                if self._waiting[k] and conn.poll(10.0):
                    conn.recv()
                conn.send(("close", None))
                if conn.poll(10.0):
                    conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                pass
            conn.close()
        for process in self._processes:
            process.join(timeout=5.0)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5.0)

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a sharded vector env holds worker processes and cannot be pickled or copied; "
                        "copy a TerritoryVectorEnv (workers=1) instead")

    def __del__(self) -> None:
        try:
            self._stop_workers()
        except Exception:  # noqa: BLE001  (interpreter shutdown)
            pass


def make_territory_vector_env(num_envs: int = 1, workers: int = 1, context: str | None = None,
                              **kwargs: Any) -> VectorEnv:
    """The registered ``vector_entry_point``: ``TerritoryVectorEnv`` (``workers=1``) or, with ``workers`` > 1,
    ``ShardedTerritoryVectorEnv`` (the same territories, spread over that many processes).  ``num_envs`` is an
    integer in [1, 4,096] and ``workers`` one in [1, min(num_envs, max_workers())], checked before anything is built
    (TypeError for a bool, float or string, ValueError out of range)."""
    num_envs = check_num_envs(num_envs)
    workers = check_workers(workers, num_envs)
    if workers == 1:
        return TerritoryVectorEnv(num_envs, **kwargs)
    return ShardedTerritoryVectorEnv(num_envs, workers=workers, context=context, **kwargs)
