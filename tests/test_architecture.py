"""The layout is the architecture: layers that import only downwards, no import circles at any depth (imports
inside functions and under ``TYPE_CHECKING`` count), a docstring per subpackage saying what it may import, the
overview in ``docs/ARCHITECTURE.md`` naming every module, and old import paths that still work, with a warning."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

from oce_sim import _moved

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "oce_sim"


def installed_layout(tmp_path: Path) -> Path:
    """The package as a wheel installs it (``agents/`` inside ``oce_sim``), so the import graph sees the agents."""
    target = tmp_path / "site"
    shutil.copytree(PACKAGE, target / "oce_sim", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "agents", target / "oce_sim" / "agents", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def layers() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        contracts = tomllib.load(handle)["tool"]["importlinter"]["contracts"]
    (layered,) = [c for c in contracts if c["type"] == "layers"]
    return [name.strip() for layer in layered["layers"] for name in layer.split("|")]


def test_import_linter_contracts_hold(tmp_path: Path) -> None:
    site = installed_layout(tmp_path)
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter), str(ROOT / "pyproject.toml")], cwd=tmp_path, capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)}, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


def test_a_circle_or_an_upward_import_breaks_the_contracts(tmp_path: Path) -> None:
    """The check itself: one import back up (inside a function) breaks the layers and the no-circle contract."""
    site = installed_layout(tmp_path)
    tail = site / "oce_sim" / "world" / "tail.py"
    tail.write_text(tail.read_text() + "\n\ndef _upward():\n    from oce_sim.envs.territory import TerritoryEnv\n")
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter), str(ROOT / "pyproject.toml")], cwd=tmp_path, capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)}, timeout=300)
    assert result.returncode != 0
    assert "0 kept, 2 broken" in result.stdout


def test_every_layer_is_a_subpackage_whose_docstring_says_what_it_may_import() -> None:
    for name in layers():
        module = importlib.import_module(name)
        assert module.__doc__ and "May import" in module.__doc__, name
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert {name.split(".")[1] for name in layers()} == subpackages | {"agents"}


def test_the_top_of_the_package_holds_only_its_face() -> None:
    """Everything with a concern lives in a layer; the top keeps the ids, the version and import plumbing."""
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top == {"__init__.py", "registration.py", "_checkout.py", "_moved.py"}


def test_the_overview_names_every_subpackage_and_module() -> None:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    modules = [p for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py") and "__pycache__" not in p.parts]
    modules += [p for p in (ROOT / "agents").glob("*.py") if p.name != "__init__.py"]
    missing = [str(p.relative_to(ROOT)) for p in modules if not re.search(rf"\b{re.escape(p.stem)}\b", text)]
    assert not missing, f"docs/ARCHITECTURE.md does not name {missing}"
    for name in layers():
        assert f"`{name.split('.')[-1]}/`" in text, name


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_old_import_paths_still_work_with_a_deprecation_warning(old: str) -> None:
    new = _moved.MOVED[old]
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)


def test_old_from_imports_and_submodules_resolve_to_the_new_modules() -> None:
    from oce_sim.bench.perf import targets
    from oce_sim.studies import evaluation

    sys.modules.pop("oce_sim.evaluation", None)
    sys.modules.pop("oce_sim.perf", None)
    sys.modules.pop("oce_sim.perf.targets", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from oce_sim import evaluation as old_evaluation
        from oce_sim.perf import targets as old_targets
        from oce_sim.bench import run_bench
    assert old_evaluation is evaluation and old_targets is targets
    from oce_sim.bench.gate import run_bench as new_run_bench

    assert run_bench is new_run_bench
    with pytest.warns(DeprecationWarning, match="oce_sim.bench.gate"):
        from oce_sim.bench import SUITE_DIR  # noqa: F401


def test_nothing_in_the_package_uses_an_old_path() -> None:
    sources = [p for p in PACKAGE.rglob("*.py") if p.name != "_moved.py"] + list((ROOT / "agents").glob("*.py"))
    sources += list((ROOT / "experiments").glob("*.py"))
    pattern = re.compile(r"\boce_sim\.(" + "|".join(old.split(".", 1)[1] for old in _moved.MOVED) + r")\b(?!/)")
    from_import = re.compile(r"from oce_sim import ([\w, ]+)")
    old_names = {old.split(".", 1)[1] for old in _moved.MOVED}
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert not pattern.search(text), f"{path}: {pattern.search(text).group(0)}"
        for match in from_import.finditer(text):
            names = {part.strip().split(" ")[0] for part in match.group(1).split(",")}
            assert not names & old_names, f"{path}: {match.group(0)}"
