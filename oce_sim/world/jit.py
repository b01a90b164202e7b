"""``njit`` for the kernels: cached compilation that still works on a read-only install.

Numba caches compiled kernels next to the source (``__pycache__``), else in ``NUMBA_CACHE_DIR`` or the user's
cache folder, and fails at import if none of them is writable (a read-only install in a container with a
read-only home).  Here a per-user folder in the temporary directory is the last resort, and with no writable
folder at all the kernels compile in memory at every start (slower to start, same results).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

import numba
from numba.core import config as numba_config
from numba.misc.appdirs import AppDirs

KERNEL_DIR = Path(__file__).resolve().parent


def writable_dir(directory: Path) -> bool:
    """Whether files can be created in ``directory`` (made if missing): tried, as Numba does, not guessed from
    permission bits (root passes every permission check)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()
        return True
    except OSError:
        return False


def numba_cache_dirs(source_dir: Path = KERNEL_DIR) -> list[Path]:
    """The folders Numba itself would cache in, in its order."""
    dirs = [Path(numba_config.CACHE_DIR)] if numba_config.CACHE_DIR else []
    return dirs + [source_dir / "__pycache__", Path(AppDirs(appname="numba", appauthor=False).user_cache_dir)]


def fallback_cache_dir() -> Path:
    user = getattr(os, "getuid", lambda: "user")()
    return Path(tempfile.gettempdir()) / f"oce_sim-numba-{user}"


def choose_cache(numba_dirs: Iterable[Path], fallback: Path) -> tuple[bool, Path | None]:
    """(cache or not, folder to point ``numba.config.CACHE_DIR`` at, or None to leave Numba's choice)."""
    if any(writable_dir(directory) for directory in numba_dirs):
        return True, None
    if writable_dir(fallback):
        return True, fallback
    return False, None


CACHE_ENABLED, _cache_dir = choose_cache(numba_cache_dirs(), fallback_cache_dir())
if _cache_dir is not None:
    numba_config.CACHE_DIR = str(_cache_dir)  # read by Numba when each cached function is decorated


def njit(*args: Any, cache: bool = False, **kwargs: Any) -> Callable[..., Any]:
    """``numba.njit``; ``cache=True`` caches only where a writable cache folder exists."""
    return numba.njit(*args, cache=cache and CACHE_ENABLED, **kwargs)


__all__ = ["CACHE_ENABLED", "choose_cache", "njit", "writable_dir"]
