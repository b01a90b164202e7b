#!/usr/bin/env bash
# Wheel smoke test (after the test suite): build the wheel from the package sources, install it, not editable,
# into a fresh venv, and from outside the checkout run Gymnasium's check_env on every registered id, list the
# built-in scenarios, find the benchmark suites and golden files, run one perf phase and run the single-file
# masked PPO example for a few hundred steps.  About 2-3 minutes, most of it installing the dependencies.
set -euo pipefail
step() { echo "[wheel smoke ${SECONDS}s] $*"; }
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A clean copy of what the wheel is built from (an in-tree build/ folder could hold stale modules).
mkdir "$work/src"
cp "$repo/pyproject.toml" "$repo/README.md" "$work/src/"
cp -r "$repo/oce_sim" "$repo/agents" "$repo/scenarios" "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
step "build the wheel"
python3 -m pip wheel -q --no-deps -w "$work/dist" "$work/src"
ls -l "$work"/dist/*.whl

step "install it into a fresh venv"
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
# the CPU build of torch first, as in the README; --no-compile: no .pyc for the dependencies (saves a minute)
"$py" -m pip install -q --no-compile torch==2.13.0
"$py" -m pip install -q --no-compile "$work"/dist/oce_sim-*.whl

cd "$work"  # nothing from the checkout is importable from here
step "run it"
"$work/venv/bin/oce-sim" --version
"$work/venv/bin/oce-sim" scenarios
"$py" - <<'PY'
import importlib.util
import warnings

import gymnasium as gym
from gymnasium.utils.env_checker import check_env

import oce_sim
from oce_sim.bench.gate import GOLDEN_DIR, SUITE_DIR
from oce_sim.config import builtin_scenarios, repo_scenario_dir

assert "site-packages" in oce_sim.__file__, oce_sim.__file__
assert importlib.util.find_spec("agents") is None, "no top-level agents package"
from oce_sim.agents import STRATEGIES  # noqa: E402

scenarios = builtin_scenarios()
assert all(path is None or path.is_file() for path in scenarios.values())
assert len(scenarios) > 1 and any(name.startswith("benchmark/") for name in scenarios), scenarios
assert "site-packages" in str(repo_scenario_dir())
assert (SUITE_DIR / "quick.yaml").is_file() and (GOLDEN_DIR / "quick.json").is_file(), (SUITE_DIR, GOLDEN_DIR)
from oce_sim.world.warm import load_entries, warm  # noqa: E402

assert len(load_entries()) >= 15, "the kernels' recorded signatures are packaged"
print("kernels warmed on every core:", warm())  # a fresh install: compiles (True) into the wheel's __pycache__
for env_id in oce_sim.ENV_IDS:
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)
    env.close()
    print(f"check_env {env_id}: ok")
print(f"{len(scenarios)} scenarios, {len(STRATEGIES)} strategies, suites and golden files in {SUITE_DIR.parent}")
PY
# the perf harness from the wheel: one phase in a spawned interpreter, as `oce-sim bench --perf` runs them
"$py" -c '
from oce_sim.bench.perf import format_perf_markdown, run_perf
from oce_sim.bench.perf.floors import _measure_floors
from oce_sim.bench.perf.helpers import _in_subprocess
floors = _in_subprocess(_measure_floors, 20_000, 5, 2_000)
print("perf floors phase: SimPy events/s", round(floors["simpy"]["events_per_s"]))
'
"$py" "$repo/experiments/masked_ppo_single_file.py" --total-timesteps 256 --num-envs 2 --num-steps 64
step "wheel smoke test: passed"
