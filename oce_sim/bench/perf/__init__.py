"""Performance: measured, reported, and compared with targets.

``run_perf(quick, progress)`` measures, in one run:

1. environment steps/s of ``oce_sim/Territory-v1`` (default scenario, random masked policy) and the share of
   MaskablePPO training wall time spent inside the environment (``step``, ``reset``, ``action_masks``);
2. national scale: 100,000 HCPs over one simulated year for every stage strategy at its own stage, each in
   a fresh (spawned) process pinned to one CPU, so wall time and peak memory are per strategy;
   plus the cost per simulated day against territory size (fixed per-day overhead vs per-HCP cost);
3. reference floors: SimPy's bare event rate and a NumPy vectorised state update over 100,000 HCPs;
4. memory flatness: resident memory over many episodes of env stepping in one process, and resident memory
   over repeated resets of a national-scale env (dead Worlds waiting for the cyclic GC);
5. a sampling profile (pyinstrument, else cProfile) of env stepping and of the slowest national strategy;
6. the native vector env (``oce_sim.envs.vector``): territory-steps/s at 64 territories on one core against raw
   CartPole-v1 steps/s and against N single envs stepped in a loop (``vector``).

Every phase runs in its own spawned process, so the phases do not share caches, imports or heap.
``format_perf_markdown(result)`` renders the Markdown report (absolute figures, ratios against the targets).
Reproduce with ``python experiments/perf_benchmark.py`` or ``oce-sim bench --perf``.

Modules: ``targets`` (targets and sizes), ``helpers`` (memory, pinning, spawned phases), ``measure`` (1, 4),
``national`` (2), ``floors`` (3), ``profiling`` (5), ``vector`` (6), ``run`` (the driver and verdicts), ``report`` (Markdown).
"""

from oce_sim.bench.perf.helpers import current_rss_mib, peak_rss_mib, ru_maxrss_mib
from oce_sim.bench.perf.national import SCALING_HCPS
from oce_sim.bench.perf.report import format_perf_markdown
from oce_sim.bench.perf.run import run_perf
from oce_sim.bench.perf.targets import (
    ENV_ID,
    NATIONAL_DAYS,
    NATIONAL_HCPS,
    NATIONAL_REPS,
    SCHEMA_VERSION,
    SIZES,
    TARGETS,
)

__all__ = [
    "ENV_ID",
    "NATIONAL_DAYS",
    "NATIONAL_HCPS",
    "NATIONAL_REPS",
    "SCALING_HCPS",
    "SCHEMA_VERSION",
    "SIZES",
    "TARGETS",
    "current_rss_mib",
    "format_perf_markdown",
    "peak_rss_mib",
    "ru_maxrss_mib",
    "run_perf",
]
