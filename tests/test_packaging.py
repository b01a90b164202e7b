"""Packaging: the wheel carries every built-in scenario, suite and golden file, and the agents inside the
``oce_sim`` namespace; ``oce-sim --version``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

from typer.testing import CliRunner

import oce_sim
from oce_sim.cli import app

ROOT = Path(__file__).resolve().parent.parent


def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def setuptools_builds_wheels() -> bool:
    """setuptools >= 70.1 here builds wheels itself: no isolated build environment needed (faster, offline)."""
    try:
        version = metadata.version("setuptools")
    except metadata.PackageNotFoundError:
        return False
    return tuple(int(part) for part in version.split(".")[:2]) >= (70, 1)


def test_version_comes_from_the_package_metadata():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"oce-sim {oce_sim.__version__}"
    assert oce_sim.__version__ == pyproject()["project"]["version"]


def test_every_package_is_listed():
    setuptools = pyproject()["tool"]["setuptools"]
    source = {package: ROOT / package.replace(".", "/") for package in setuptools["packages"]}
    source.update({package: ROOT / folder for package, folder in setuptools["package-dir"].items()})
    found = {".".join(("oce_sim", *p.parent.relative_to(ROOT / "oce_sim").parts))
             for p in (ROOT / "oce_sim").rglob("__init__.py")} | {"oce_sim.agents"}
    assert found <= set(setuptools["packages"])
    assert all(path.is_dir() for path in source.values())


def test_agents_import_inside_the_oce_sim_namespace():
    from oce_sim.agents import STRATEGIES, make_strategy

    assert make_strategy("oracle").__class__.__module__ == "oce_sim.agents.oracle"
    assert set(STRATEGIES) >= {"instruction", "intervention", "oracle"}


def test_wheel_carries_scenarios_suites_golden_files_and_namespaced_agents(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("oce_sim", "agents", "scenarios"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    isolation = ["--no-build-isolation"] if setuptools_builds_wheels() else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("oce_sim-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"oce_sim/scenarios/{p.relative_to(ROOT / 'scenarios').as_posix()}"
                for p in (ROOT / "scenarios").rglob("*") if p.is_file()}
    assert expected and expected <= names
    assert {"oce_sim/scenarios/benchmark/golden/quick.json", "oce_sim/scenarios/benchmark/suites/quick.yaml"} <= names
    agents = {f"oce_sim/agents/{p.name}" for p in (ROOT / "agents").glob("*.py")}
    assert agents <= names
    top_level = {name.split("/")[0] for name in names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"oce_sim"}  # no top-level agents
