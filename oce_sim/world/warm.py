"""Compile the kernels once, on every core: what a fresh install's first run would otherwise do on one.

A first run compiles about fifty Numba kernels one after another (about 25 s on one core of this project's
machine) before the first day is simulated; every later process loads them from Numba's cache.  :func:`warm`
splits the kernels the model calls (their signatures recorded in ``kernel_signatures.json``) over worker
processes that compile them into that cache at the same time, so the first run waits about as long as the largest
share.  It does nothing when the cache already holds them (a check of a few files), when no cache folder is
writable, or when the recorded signatures cannot be read: a kernel not warmed still compiles on first use, and
nothing here changes a result.

``python -m oce_sim.world.warm`` warms the cache; the CLI's commands, training, every process pool of the studies
(``studies.processes.spawn_pool``) and the test session (``tests/conftest.py``) call :func:`warm` before their work,
so a first run's processes do not each compile the same kernels.
``python -m oce_sim.bench.kernel_signatures`` records the signature file from episodes at every stage
(``tests/test_warm.py`` checks that it still covers what the model compiles).

May import: numba and ``oce_sim.world.jit`` (the kernels' modules by name, when compiling).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIGNATURES_FILE = Path(__file__).with_name("kernel_signatures.json")
KERNEL_MODULES = ("oce_sim.world.kernels", "oce_sim.world.tail")
_ARRAY = re.compile(r"Array\((\w+), (\d+), '([CFA])', (True|False), aligned=True\)")
_warmed = False  # once per process
WORKER_TIMEOUT_S = 600.0  # a worker's share takes seconds; a stuck one is killed, its kernels compile on first use
# A worker runs this package's module without the current folder on sys.path (``-m`` would put it first, and an
# ``oce_sim`` folder there would run instead).
WORKER_CODE = "import runpy, sys; sys.path.pop(0); runpy.run_module('oce_sim.world.warm', run_name='__main__')"


@dataclass(frozen=True)
class Entry:
    """One compiled entry point: a kernel called from Python with one signature, and what compiling it cost."""

    module: str
    name: str
    signature: str  # Numba's text of the argument types
    compile_s: float  # measured when recorded (with the callees it compiled): the weight of its share


def _scalar(name: str) -> Any:
    from numba.core import types

    kind = types.boolean if name == "bool" else getattr(types, name, None)
    if not isinstance(kind, types.Type):
        raise ValueError(f"not a Numba scalar type: {name!r}")
    return kind


def parse_signature(text: str) -> tuple[Any, ...]:
    """Numba's text of a signature, ``(Array(float64, 1, 'C', False, aligned=True), int64, ...)``, as types.  Only
    arrays and scalars are read (no code is evaluated); anything else is a ValueError."""
    from numba.core import types

    inner = text.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        raise ValueError(f"not a signature: {text[:80]!r}")
    inner = inner[1:-1].rstrip(",")
    parts: list[str] = []
    depth, start = 0, 0
    for i, char in enumerate(inner):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(inner[start:i].strip())
            start = i + 1
    if inner[start:].strip():
        parts.append(inner[start:].strip())
    parsed: list[Any] = []
    for part in parts:
        array = _ARRAY.fullmatch(part)
        if array:
            dtype, ndim, layout, readonly = array.groups()
            parsed.append(types.Array(_scalar(dtype), int(ndim), layout, readonly=readonly == "True"))
        else:
            parsed.append(_scalar(part))
    return tuple(parsed)


def load_entries(path: Path = SIGNATURES_FILE) -> list[Entry]:
    """The recorded entry points (empty when the file is missing or unreadable: warming is optional)."""
    try:
        data = json.loads(path.read_text())
        return [Entry(str(e["module"]), str(e["name"]), str(e["signature"]), float(e["compile_s"]))
                for e in data["entries"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def shares(entries: Sequence[Entry], workers: int) -> list[list[Entry]]:
    """``entries`` over ``workers`` processes, the costliest first onto the least loaded (longest processing time
    first), so the shares take about as long as each other."""
    loads = [0.0] * workers
    out: list[list[Entry]] = [[] for _ in range(workers)]
    for entry in sorted(entries, key=lambda e: -e.compile_s):
        k = loads.index(min(loads))
        out[k].append(entry)
        loads[k] += entry.compile_s
    return [share for share in out if share]


def _dispatcher(entry: Entry) -> Any:
    return getattr(importlib.import_module(entry.module), entry.name)


def resolvable(entries: Sequence[Entry]) -> list[Entry]:
    """The entries whose kernel still exists (a kernel renamed since the file was recorded is left out)."""
    found = []
    for entry in entries:
        try:
            if hasattr(_dispatcher(entry), "compile"):
                found.append(entry)
        except Exception:  # noqa: BLE001  (a module or kernel gone: nothing to warm)
            continue
    return found


def is_cached(entries: Sequence[Entry]) -> bool:
    """Whether Numba's cache holds a current index for every kernel of ``entries`` (the file its loader reads
    first, checked against the source's stamp as Numba does; Numba's own loader, so this reads nothing else)."""
    for entry in entries:
        try:
            cache_file = getattr(getattr(_dispatcher(entry), "_cache", None), "_cache_file", None)
            if cache_file is None or not cache_file._load_index():
                return False
        except Exception:  # noqa: BLE001  (another Numba: treat as not cached)
            return False
    return True


def compile_entries(entries: Sequence[Entry]) -> None:
    """Compile (or load from the cache) each entry's signature; one that no longer parses or types is skipped."""
    for entry in entries:
        try:
            _dispatcher(entry).compile(parse_signature(entry.signature))
        except Exception:  # noqa: BLE001  (a stale signature costs only its compile on first use)
            continue


def warm(workers: int | None = None, entries: Sequence[Entry] | None = None,
         notify: Callable[[int, float], None] | None = None) -> bool:
    """Compile every recorded kernel into Numba's cache on ``workers`` processes (None: one per usable CPU, at
    most 4), once per process; True when it compiled (False: already cached, no cache, or nothing recorded).
    ``notify(processes, seconds)`` is called before compiling (a first run says why it waits): ``seconds`` is the
    largest share's compile time as recorded (on the machine that recorded it, ``compile_s``)."""
    global _warmed
    from oce_sim.world.jit import CACHE_ENABLED

    if _warmed or not CACHE_ENABLED:
        return False
    _warmed = True
    try:
        return _warm(workers, resolvable(load_entries() if entries is None else list(entries)), notify)
    except Exception:  # noqa: BLE001  (warming is an optimisation: it never fails a command)
        return False


def _warm(workers: int | None, entries: list[Entry], notify: Callable[[int, float], None] | None) -> bool:
    if not entries or is_cached(entries):
        return False
    if workers is None:
        workers = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
    groups = shares(entries, workers)
    if notify is not None:
        notify(len(groups), max(sum(e.compile_s for e in group) for group in groups))
    if len(groups) == 1:
        compile_entries(groups[0])
        return True
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    started: list[subprocess.Popen[bytes]] = []
    here = list(groups[0])
    finished = False
    try:
        for group in groups[1:]:
            try:
                proc = subprocess.Popen([sys.executable, "-c", WORKER_CODE, "--compile"], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                started.append(proc)  # reaped below whatever happens next
                assert proc.stdin is not None
                with proc.stdin:  # the share as JSON (long: not a command-line argument)
                    proc.stdin.write(json.dumps([[e.module, e.name, e.signature] for e in group]).encode())
            except OSError:  # no process to start, or it died at once: this process compiles that share too
                here += group
        compile_entries(here)
        for proc in started:
            proc.wait(timeout=WORKER_TIMEOUT_S)
        finished = True
    finally:
        if not finished:  # an error, a timeout or Ctrl-C: no worker outlives the command
            for proc in started:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
    return True


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m oce_sim.world.warm", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per usable CPU, <= 4)")
    parser.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)  # a worker: its share on stdin
    args = parser.parse_args(argv)
    if args.compile:
        compile_entries([Entry(m, n, s, 0.0) for m, n, s in json.loads(sys.stdin.read())])
        return
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    started = time.perf_counter()
    compiled = warm(args.workers)
    print(f"kernels {'compiled' if compiled else 'already cached'} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
