"""Sweeps that scale and survive: a what-if sweep killed with SIGKILL resumes from its cache without running a
finished episode again, and writes the folder an uninterrupted run writes, byte for byte; a process pool and Ray
give the table the serial run gives.

Kept short: ``small`` with a 91-day horizon, 2 variants x 2 seeds.  Ray is a test dependency (``.[test]``): the Ray
test starts a local instance and skips only outside CI where Ray is not installed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oce_sim.cli import app
from oce_sim.config import load_scenario
from oce_sim.studies import sweep
from oce_sim.studies.sweep import (
    MAX_ENTRY_BYTES,
    CacheError,
    EpisodeCache,
    Job,
    code_version,
    default_cache,
    job_key,
)
from oce_sim.studies.whatif import parse_axis, plan_variants, run_plan
from oce_sim.world.metrics import KPI_NAMES

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "extends: small\nenv: {horizon_days: 91}\n"
GRID = "population.n_reps=1,2"


def plan(tmp_path: Path):
    path = tmp_path / "short91.yaml"
    path.write_text(SCENARIO)
    return plan_variants(load_scenario(str(path)), grid=[parse_axis(GRID)])


def whatif_args(scenario: Path, out: Path) -> list[str]:
    return ["whatif", str(scenario), "--grid", GRID, "--episodes", "2", "--best-plan", "0", "--out", str(out),
            "--no-progress"]


def start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "oce_sim.cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def folder(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def cached(cache: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in cache.rglob("*.json")}


def test_a_sweep_killed_mid_run_resumes_to_the_same_folder(tmp_path):
    scenario = tmp_path / "short91.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "sweep"
    cache = default_cache(out)
    result = CliRunner().invoke(app, whatif_args(scenario, out))  # the uninterrupted run, in-process: cheaper
    assert result.exit_code == 0, result.output
    expected = folder(out)
    total = len(cached(cache))
    assert total >= 4
    for path in (out, cache):
        subprocess.run(["rm", "-rf", str(path)], check=True)
    process = start(whatif_args(scenario, out))  # killed once its first episode is cached, with others to run
    deadline = time.monotonic() + 300
    while not cached(cache) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    before = cached(cache)
    assert 1 <= len(before) < total, "the sweep was not killed mid-run"
    assert not out.exists()
    resumed = start(whatif_args(scenario, out))
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    flat = " ".join(output.split())
    assert f"episodes: {total - len(before)} run, {len(before)} read back" in flat, flat
    after = cached(cache)
    assert len(after) == total and all(after[name] == before[name] for name in before)  # none run twice
    assert folder(out) == expected  # results.csv, summary.csv, summary.json, figures, report: byte for byte


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> str:
    """The sweep's table run in this process, one episode after another, with no cache."""
    return run_plan(plan(tmp_path_factory.mktemp("serial")), "today", 2, 0, progress=False).to_csv(index=False)


def test_pool_and_serial_give_the_same_table(tmp_path, serial):
    pooled = run_plan(plan(tmp_path), "today", 2, 0, progress=False, workers=2)
    assert pooled.to_csv(index=False) == serial


def test_ray_and_local_give_the_same_table(tmp_path, serial):
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("Ray is missing in CI: it is in the test extra (pip install -e '.[test]')")
        pytest.skip("Ray is not installed (pip install 'oce-sim[sweep]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}})
    try:
        on_ray = run_plan(plan(tmp_path), "today", 2, 0, progress=False, executor="ray",
                          cache=tmp_path / "ray.cache")
    finally:
        ray.shutdown()
    assert on_ray.to_csv(index=False) == serial
    assert on_ray.attrs["episodes"]["from_cache"] == 0 and (tmp_path / "ray.cache").is_dir()


def test_keys_change_with_config_seed_strategy_and_code(tmp_path):
    config = load_scenario("small")
    key = job_key(config, "today", {}, 0)
    assert key == job_key(load_scenario("small"), "today", {}, 0)
    assert len({key, job_key(config, "today", {}, 1), job_key(config, "instruction", {}, 0),
                job_key(config, "today", {"field_intensity": 0.5}, 0),
                job_key(load_scenario("small", overrides={"population": {"n_reps": 2}}), "today", {}, 0)}) == 5
    assert code_version().startswith("0.") and "+" in code_version()
    store = EpisodeCache(tmp_path, KPI_NAMES)
    kpis = {name: 0.1 + 0.2 * i for i, name in enumerate(KPI_NAMES)}
    store.put(key, kpis)
    assert store.get(key) == kpis and list(store.get(key)) == list(KPI_NAMES), "floats exactly, in KPI order"
    (tmp_path / key[:2] / f"{key}.json").write_text("{truncated")  # unreadable: run again, not crash
    assert store.get(key) is None and "not valid JSON" in store.refused[-1]


def entry(key: str, **kpis: object) -> str:
    return json.dumps({"key": key, "kpis": {**{name: 1.0 for name in KPI_NAMES}, **kpis}})


@pytest.mark.parametrize("content, why", [
    (lambda key: entry(key, profit_usd="1e9"), "profit_usd: Input should be a valid number"),
    (lambda key: entry(key, profit_usd=True), "profit_usd: Input should be a valid number"),
    (lambda key: entry(key, profit_usd=[1]), "profit_usd: Input should be a valid number"),
    (lambda key: entry(key).replace("1.0", "NaN", 1), "finite number"),
    (lambda key: entry(key).replace("1.0", "1e400", 1), "finite number"),
    (lambda key: json.dumps({"key": key, "kpis": {"profit_usd": 1.0}}), "kpis: missing ["),
    (lambda key: entry(key, forged=1.0), "unknown ['forged']"),
    (lambda key: entry("0" * 64), "it holds episode 000000000000..., not"),  # misplaced: another episode's entry
    (lambda key: json.dumps([key]), "Input should be a valid dictionary"),
    (lambda key: "[" * 20_000, "nested too deeply"),
    (lambda key: " " * (MAX_ENTRY_BYTES + 1), "larger than 1,048,576 bytes"),
    (lambda key: b"\xff\xfe{}", "not UTF-8 text (byte 0xff at offset 0)"),
])
def test_a_damaged_or_misplaced_cache_entry_is_run_again_with_a_note(tmp_path, content, why):
    """Every entry is checked as it is read back: a damaged or misplaced one is refused (so its episode runs again),
    never used and never a traceback; run_jobs says so in one note."""
    key = job_key(load_scenario("small"), "today", {}, 0)
    path = tmp_path / key[:2] / f"{key}.json"
    path.parent.mkdir()
    data = content(key)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    store = EpisodeCache(tmp_path, KPI_NAMES)  # the what-if sweep's cache: every KPI of an episode
    started = time.perf_counter()
    assert store.get(key) is None
    assert time.perf_counter() - started < 5
    assert len(store.refused) == 1 and why in store.refused[0] and str(path) in store.refused[0], store.refused
    notes: list[str] = []
    fake = {name: 2.0 for name in KPI_NAMES}
    job = Job(key, None, "today", 0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep, "run_job", lambda job: fake)
        results, reused = sweep.run_jobs([job], EpisodeCache(tmp_path, KPI_NAMES), note=notes.append)
    assert results == {key: fake} and reused == 0, "run again, not read back"
    assert len(notes) == 1 and "1 cached episode(s)" in notes[0] and "run again" in notes[0], notes
    assert EpisodeCache(tmp_path, KPI_NAMES).get(key) == fake, "the fresh result replaces the damaged entry"


def test_a_cache_that_is_a_file_or_not_writable_is_refused_before_any_episode(tmp_path, monkeypatch):
    scenario = tmp_path / "short91.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    default_cache(out).write_text("not a folder")
    started = time.perf_counter()
    result = CliRunner().invoke(app, whatif_args(scenario, out))
    flat = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in result.output, flat
    # without any whitespace: the console may wrap a long path inside a word
    assert "".join(f"the episode cache {default_cache(out)} exists and is not a folder".split()) in "".join(flat.split())
    assert time.perf_counter() - started < 5 and not out.exists()
    with pytest.raises(CacheError, match="exists and is not a folder"):  # the Python API: before any episode
        run_plan(plan(tmp_path), "today", 1, 0, progress=False, cache=default_cache(out))
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # (the tests may run as root, who writes anywhere)
    with pytest.raises(CacheError, match="is not writable"):
        EpisodeCache(tmp_path / "elsewhere.cache").check()


def test_local_workers_are_bounded_by_the_cores_and_the_memory(tmp_path, monkeypatch):
    """Issue 25: --workers 256 on 2 cores started 23 processes and 4.2 GB; now refused before any, exit 2."""
    from oce_sim.envs import sharded
    from oce_sim.studies import processes as sweep  # where the limit lives (also read through oce_sim.studies.sweep)

    monkeypatch.setattr(sharded, "usable_cpus", lambda: 8)
    monkeypatch.setattr(sweep, "available_memory_bytes", lambda: 3 * sweep.WORKER_MEMORY_BYTES + 1)
    assert sweep.local_worker_limit()[0] == 3  # memory binds
    monkeypatch.setattr(sweep, "available_memory_bytes", lambda: 100 * sweep.WORKER_MEMORY_BYTES)
    assert sweep.local_worker_limit()[0] == 8  # the cores bind
    monkeypatch.setattr(sweep, "available_memory_bytes", lambda: 0)
    assert sweep.local_worker_limit()[0] == 1  # always one: the episodes run in this process
    monkeypatch.setattr(sweep, "available_memory_bytes", lambda: None)
    assert sweep.local_worker_limit() == (8, "8 usable CPUs")
    scenario = tmp_path / "short91.yaml"
    scenario.write_text(SCENARIO)
    result = CliRunner().invoke(app, [*whatif_args(scenario, tmp_path / "out"), "--workers", "9"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 2 and "--workers must be between 0 (one per usable CPU) and 8 here (8 usable CPUs)" in flat
    assert not (tmp_path / "out").exists() and not default_cache(tmp_path / "out").exists()


def test_available_memory_is_read_on_linux():
    from oce_sim.studies.sweep import available_memory_bytes

    memory = available_memory_bytes()
    assert memory is None or 0 <= memory < 2**60
    if sys.platform.startswith("linux"):
        assert memory is not None and memory > 0


def test_a_variants_seeds_run_as_one_batch_and_give_the_episodes_alone(tmp_path):
    """The local executor runs the seeds of one variant and strategy as the territories of one batch: the results are
    the episodes run one by one (``run_job``), in any grouping."""
    from oce_sim.config import load_scenario
    from oce_sim.studies.sweep import job_key, run_job, run_jobs_together, seed_groups

    config = load_scenario("small", overrides={"env": {"horizon_days": 28}})
    jobs = [Job(job_key(config, name, {}, seed), config, name, seed) for name in ("intervention", "insight")
            for seed in (1, 2, 3)]
    groups = seed_groups(jobs)
    assert [[job.seed for job in group] for group in groups] == [[1, 2, 3], [1, 2, 3]]
    assert [len(group) for group in seed_groups(jobs, max_seeds=2)] == [2, 1, 2, 1]
    together = [kpis for group in groups for kpis in run_jobs_together(group)]
    assert together == [run_job(job) for job in jobs]
    results, reused = sweep.run_jobs(jobs, EpisodeCache(None, KPI_NAMES))
    assert [results[job.key] for job in jobs] == together and reused == 0


def test_pool_workers_end_when_their_parent_is_killed(tmp_path):
    """A study's spawned workers wait on their queue; when the process that started them dies (SIGKILL), they end
    within a few seconds instead of staying behind, idle, holding their memory."""
    import signal
    import subprocess

    pids = tmp_path / "pids"
    script = ("import os, sys, time\n"
              "from oce_sim.studies.processes import spawn_pool\n"
              "if __name__ == '__main__':\n"
              "    pool = spawn_pool(1)\n"
              "    pid = pool.submit(os.getpid).result()\n"
              "    open(sys.argv[1], 'w').write(str(pid))\n"
              "    time.sleep(60)\n")
    (tmp_path / "starter.py").write_text(script)
    child = subprocess.Popen([sys.executable, str(tmp_path / "starter.py"), str(pids)])
    deadline = time.monotonic() + 60
    while not (pids.exists() and pids.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    worker = int(pids.read_text())
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the pool's worker outlived its killed parent")
