"""Record the kernels' entry points for :mod:`oce_sim.world.warm`: ``python -m oce_sim.bench.kernel_signatures``.

Plays short episodes at every stage (one territory and a batch of two, ``small``, the market history included) in
a fresh process with an empty Numba cache, and writes each kernel that Python called, its signature and what
compiling it took (with the callees it compiled) to ``oce_sim/world/kernel_signatures.json``.  Run it after a
change of a kernel's arguments; ``tests/test_warm.py`` fails until then.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from oce_sim.world.warm import KERNEL_MODULES, SIGNATURES_FILE, Entry


def play_every_stage() -> None:
    """Short episodes at every stage, one territory and a batch of two: what the model compiles."""
    from oce_sim.bench.perf.vector import _random_batch
    from oce_sim.envs.vector import TerritoryVectorEnv

    for stage in range(4):
        for n in (1, 2):
            vec = TerritoryVectorEnv(n, scenario="small", stage=stage)
            rng = np.random.default_rng(0)
            vec.reset(seed=0)
            done = False
            while not done:
                _, _, terminated, truncated, _ = vec.step(_random_batch(rng, vec.action_masks()))
                done = bool(terminated.all() or truncated.all())
            vec.close()


def entry_points() -> list[Entry]:
    """Play every stage in this process and return the kernels compiled because Python called them."""
    from numba.core import event

    found: dict[tuple[str, str, str], float] = {}
    with event.install_recorder("numba:compile") as recorder:
        play_every_stage()
    depth, started = 0, 0.0
    for stamp, ev in recorder.buffer:
        if ev.is_start:
            started = stamp if depth == 0 else started
            depth += 1
            continue
        depth -= 1
        if depth == 0:  # an entry point (its callees compiled inside it)
            dispatcher = ev.data["dispatcher"]
            module = dispatcher.py_func.__module__
            if module in KERNEL_MODULES:
                key = (module, dispatcher.py_func.__name__, str(tuple(ev.data["args"])))
                found[key] = found.get(key, 0.0) + stamp - started
    return [Entry(module, name, signature, round(seconds, 3)) for (module, name, signature), seconds in found.items()]


def record(path: Path = SIGNATURES_FILE) -> list[Entry]:
    """Record in a fresh process with an empty cache folder (so every kernel compiles) and write ``path``."""
    import numba

    with tempfile.TemporaryDirectory() as cache:
        code = ("import json, dataclasses; from oce_sim.bench.kernel_signatures import entry_points; "
                "print(json.dumps([dataclasses.asdict(e) for e in entry_points()]))")
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "NUMBA_CACHE_DIR": cache},
                             check=True, capture_output=True, text=True).stdout
    entries = [Entry(**item) for item in json.loads(out.strip().splitlines()[-1])]
    path.write_text(json.dumps({"numba": numba.__version__, "entries": [e.__dict__ for e in entries]}, indent=1)
                    + "\n")
    return entries


if __name__ == "__main__":
    started = time.perf_counter()
    recorded = record()
    print(f"recorded {len(recorded)} entry points in {time.perf_counter() - started:.1f} s: {SIGNATURES_FILE}")
