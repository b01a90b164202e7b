"""Helpers of the measurements: resident memory, CPU pinning, load, JSON-safe results, spawned phases."""

from __future__ import annotations

import datetime as _dt
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Callable

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]


def _log(progress: bool, message: str) -> None:
    if progress:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%H:%M:%S")
        print(f"[perf {stamp}] {message}", file=sys.stderr, flush=True)


def current_rss_mib() -> float:
    """Resident set size now (Linux ``/proc/self/statm``; elsewhere the peak, which only grows)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mib()


def ru_maxrss_mib() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MiB (KiB on Linux, bytes on macOS).

    On Linux this survives ``fork`` + ``exec``: a spawned child starts with its parent's high-water mark, so
    it over-states a child's own peak whenever the parent is the larger process.
    """
    if resource is None:  # pragma: no cover
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def peak_rss_mib() -> float:
    """Peak resident set size of this process image: ``VmHWM`` on Linux (reset by ``exec``), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return ru_maxrss_mib()


def _pin_one_cpu() -> int | None:
    """Pin this process to one CPU (the national-scale target is 'on one core')."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become None, NumPy scalars become Python numbers, tuples become lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _in_subprocess(fn: Callable[..., dict], *args: Any, single_thread: bool = True) -> dict:
    """Run ``fn(*args)`` in a fresh spawned interpreter (own heap, own ``ru_maxrss``).

    ``single_thread`` limits BLAS/OpenMP pools to one thread (the one-core measurements); training keeps the
    library defaults, as ``oce-sim train`` does.
    """
    limits = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"} if single_thread else {}
    saved = {k: os.environ.get(k) for k in limits}
    os.environ.update(limits)
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            return pool.submit(fn, *args).result()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _random_masked_plays(rng, mask_flat):
    """A uniformly random allowed play per segment (vectorised; every row has at least *hold*)."""
    import numpy as np

    from oce_sim.world import dispatch

    mask = mask_flat.reshape(dispatch.N_SEGMENTS, -1)
    scores = rng.random(mask.shape) * mask  # allowed entries in (0, 1), forbidden ones 0
    return np.argmax(scores, axis=1).astype(np.int64)


def _timed_random_step(env, rng, clock) -> tuple[float, bool]:
    """One step with a random allowed play: the env's own seconds (the mask and the step, not the policy's
    draw) and whether the episode ended."""
    t0 = clock()
    mask = env.unwrapped.action_masks()
    t1 = clock()
    plays = _random_masked_plays(rng, mask)
    t2 = clock()
    _, _, terminated, truncated, _ = env.step(plays)
    return (t1 - t0) + (clock() - t2), terminated or truncated
