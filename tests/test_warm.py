"""Compiling the kernels on every core before a first run (``oce_sim.world.warm``): the recorded signatures are
readable and still what the model calls, the shares balance, and a warmed cache leaves nothing to compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oce_sim.world import warm
from oce_sim.world.warm import Entry, load_entries, parse_signature, shares

PLAYED_SIGNATURES = """
import importlib, json
from oce_sim.bench.kernel_signatures import play_every_stage
from oce_sim.world.warm import load_entries
play_every_stage()
names = sorted({(e.module, e.name) for e in load_entries()})
print(json.dumps({f"{m}.{n}": sorted(str(s) for s in getattr(importlib.import_module(m), n).signatures)
                  for m, n in names}))
"""


def test_every_recorded_signature_reads_as_types_of_a_kernel() -> None:
    from numba.core import types

    entries = load_entries()
    assert len(entries) >= 15  # the day's phases, the plan, the decisions, the value at the horizon
    for entry in entries:
        parsed = parse_signature(entry.signature)
        assert parsed and all(isinstance(t, types.Type) for t in parsed)
        assert str(parsed) == entry.signature  # read back exactly as Numba wrote it
        assert hasattr(warm._dispatcher(entry), "compile")
        assert entry.compile_s > 0


def test_a_signature_is_read_not_evaluated() -> None:
    with pytest.raises(ValueError, match="not a Numba scalar type"):
        parse_signature("(__import__('os').system('true'),)")
    with pytest.raises(ValueError, match="not a signature"):
        parse_signature("float64")
    assert not parse_signature("(Array(bool, 2, 'C', True, aligned=True), int64)")[0].mutable  # read-only


def test_shares_put_the_costliest_first_on_the_least_loaded() -> None:
    entries = [Entry("m", f"k{i}", "()", cost) for i, cost in enumerate([9.0, 7.0, 5.0, 4.0, 3.0, 2.0])]
    split = shares(entries, 2)
    loads = sorted(sum(e.compile_s for e in share) for share in split)
    assert loads == [15.0, 15.0]
    assert sorted(e.name for share in split for e in share) == sorted(e.name for e in entries)
    assert len(shares(entries[:1], 4)) == 1  # no empty shares, no idle processes


def test_warm_does_nothing_without_a_cache_or_a_record(monkeypatch: pytest.MonkeyPatch) -> None:
    import oce_sim.world.jit as jit

    monkeypatch.setattr(warm, "_warmed", False)
    assert warm.warm(entries=[]) is False  # nothing recorded
    monkeypatch.setattr(warm, "_warmed", False)
    monkeypatch.setattr(jit, "CACHE_ENABLED", False)
    called: list[tuple[int, float]] = []
    assert warm.warm(entries=load_entries(), notify=lambda *said: called.append(said)) is False and not called
    assert load_entries(Path("/nonexistent/kernel_signatures.json")) == []


def test_the_recorded_signatures_are_what_the_model_calls() -> None:
    """Each recorded kernel, after episodes at every stage (one territory and two), was called with exactly the
    recorded signatures: a kernel whose arguments changed fails here until ``python -m
    oce_sim.bench.kernel_signatures`` records it again."""
    out = subprocess.run([sys.executable, "-c", PLAYED_SIGNATURES], check=True, capture_output=True, text=True,
                         timeout=600).stdout
    played = json.loads(out.strip().splitlines()[-1])
    recorded: dict[str, list[str]] = {}
    for entry in load_entries():
        recorded.setdefault(f"{entry.module}.{entry.name}", []).append(entry.signature)
    assert played == {name: sorted(sigs) for name, sigs in recorded.items()}


@pytest.mark.slow
def test_a_warmed_cache_leaves_nothing_to_compile(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "oce_sim.world.warm", "--workers", "2"], env=env, check=True,
                          capture_output=True, text=True, timeout=900)
    assert "kernels compiled" in done.stdout
    again = subprocess.run([sys.executable, "-m", "oce_sim.world.warm"], env=env, check=True, capture_output=True,
                           text=True, timeout=300)
    assert "already cached" in again.stdout
    code = ("from numba.core import event; from oce_sim.bench.kernel_signatures import play_every_stage\n"
            "with event.install_recorder('numba:compile') as rec: play_every_stage()\n"
            "print(sum(1 for _, e in rec.buffer if e.is_start))")
    compiled = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True,
                              timeout=900).stdout
    assert int(compiled.strip().splitlines()[-1]) == 0


def test_a_stale_record_never_fails_a_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A kernel renamed or a module gone since the file was recorded: warming skips it, never raises."""
    stale = [Entry("oce_sim.world.kernels", "renamed_kernel", "(int64,)", 1.0),
             Entry("oce_sim.world.gone", "kernel", "(int64,)", 1.0)]
    assert warm.resolvable(stale) == []
    monkeypatch.setattr(warm, "_warmed", False)
    assert warm.warm(entries=stale) is False


def test_a_worker_ignores_an_oce_sim_folder_in_the_current_directory(tmp_path: Path) -> None:
    fake = tmp_path / "oce_sim" / "world"
    fake.mkdir(parents=True)
    for folder in (tmp_path / "oce_sim", fake):
        (folder / "__init__.py").write_text("")
    (fake / "warm.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('x')\n")
    subprocess.run([sys.executable, "-c", warm.WORKER_CODE, "--compile"], input="[]", text=True, cwd=tmp_path,
                   check=True, timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    assert not (tmp_path / "ran").exists()
