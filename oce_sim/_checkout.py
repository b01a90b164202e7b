"""Source-checkout support: the repository keeps ``agents/`` and ``scenarios/`` at its top level, and a wheel
installs them as ``oce_sim/agents`` and ``oce_sim/scenarios`` (``package-dir`` in ``pyproject.toml``).  An
editable install maps them itself; this lets a checkout that is only on ``sys.path`` (or was installed before
the mapping existed) import ``oce_sim.agents`` too.  Nothing here is used by a wheel install."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


class CheckoutAgentsFinder(importlib.abc.MetaPathFinder):
    """Finds ``oce_sim.agents`` in the repository's ``agents/`` (its submodules then follow its ``__path__``)."""

    name = "oce_sim.agents"

    def find_spec(self, fullname: str, path=None, target=None) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        directory = REPO_ROOT / "agents"
        return importlib.util.spec_from_file_location(fullname, directory / "__init__.py",
                                                      submodule_search_locations=[str(directory)])


def install() -> None:
    """Add the finder, first, when this is a checkout without ``oce_sim/agents``: ``oce_sim`` was imported from
    this checkout, so its agents are this checkout's too, not those an editable install of another checkout (a
    second git worktree sharing one virtual environment) maps ``oce_sim.agents`` to."""
    if (PACKAGE_DIR / "agents").exists() or not (REPO_ROOT / "agents" / "__init__.py").is_file():
        return
    if not any(isinstance(finder, CheckoutAgentsFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, CheckoutAgentsFinder())


def version() -> str:
    """The version in ``pyproject.toml``, for a checkout that is not installed."""
    try:
        import tomllib  # Python 3.11+

        with open(REPO_ROOT / "pyproject.toml", "rb") as handle:
            return tomllib.load(handle)["project"]["version"]
    except (ImportError, OSError, KeyError, ValueError):  # TOMLDecodeError is a ValueError
        return "0+unknown"
