"""Worker processes on this machine: how many it holds, and a pool of fresh interpreters.

Every study that plays many independent episodes (``evaluation.evaluate``, the planner's candidates, calibration's
seeds, a sweep's groups) may spread them over processes; the results never depend on how many.

May import: the standard library, ``oce_sim.envs.sharded`` (for the usable CPUs) and ``oce_sim.world.warm`` (the kernels
compiled before a pool starts).
"""

from __future__ import annotations

import atexit
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# What one local worker process needs, roughly: a spawned interpreter that has imported the package, loaded the
# compiled kernels and run an episode of ``small`` peaks at about 350 MB resident (measured); rounded up.
WORKER_MEMORY_BYTES = 400 * 2**20


def available_memory_bytes() -> int | None:
    """Memory new processes can still take: ``MemAvailable`` of /proc/meminfo, or less where a cgroup (a
    container) limits this process; None where neither can be read (not Linux)."""
    found: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        try:  # free pages only (no reclaimable cache): an underestimate, which only lowers the bound
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit, usage = Path(limit_file).read_text().strip(), Path(usage_file).read_text().strip()
            if limit != "max" and int(limit) < 2**60:  # v1 writes "no limit" as a huge number
                found.append(max(0, int(limit) - int(usage)))
        except (OSError, ValueError):
            continue
    return min(found) if found else None


def local_worker_limit() -> tuple[int, str]:
    """The most worker processes the local executor may start here, and why: one per usable CPU (an episode is
    single-threaded, so more only share the cores) and as many as the available memory holds at
    ``WORKER_MEMORY_BYTES`` each.  (A Ray cluster's size is Ray's business: not bounded here.)"""
    from oce_sim.envs.sharded import usable_cpus  # here: importing the envs costs a fifth of a second

    cpus = usable_cpus()
    memory = available_memory_bytes()
    if memory is None:
        return cpus, f"{cpus} usable CPUs"
    by_memory = max(1, memory // WORKER_MEMORY_BYTES)
    return max(1, min(cpus, by_memory)), (f"{cpus} usable CPUs and {memory / 2**30:.1f} GiB of available memory at "
                                          f"about {WORKER_MEMORY_BYTES >> 20} MiB per worker")


def ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the parent, which stops the work (finished results stay where they were kept),
    and end when the parent is gone (killed with SIGKILL, a worker would otherwise wait on its queue for ever)."""
    import signal
    import threading
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


_SHARED: dict[int, ProcessPoolExecutor] = {}


def shared_pool(workers: int) -> ProcessPoolExecutor:
    """The pool of ``workers`` spawned interpreters that this process's studies share (a compare's plan searches and
    its evaluation, say), started at the first use and kept until exit: each worker imports the package, loads the
    compiled kernels and builds a market's history once, not once per search."""
    pool = _SHARED.get(workers)
    if pool is None or getattr(pool, "_broken", False):
        if not _SHARED:
            atexit.register(_shut_shared)
        pool = _SHARED[workers] = spawn_pool(workers)
    return pool


def _shut_shared() -> None:
    for pool in _SHARED.values():
        pool.shutdown(wait=False, cancel_futures=True)
    _SHARED.clear()


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh interpreters (spawn: no forked copies of Numba, torch or open files) that ignore
    Ctrl-C.  A script that starts one needs Python's ``if __name__ == "__main__":`` guard."""
    import multiprocessing

    from oce_sim.world.warm import warm

    warm()  # a fresh install: compile the kernels once on every core, not once in each worker
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=ignore_sigint)
