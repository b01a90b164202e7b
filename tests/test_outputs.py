"""Output transactions (oce_sim/storage/outputs.py): a folder holds the old complete set or the new one, one writer at a
time, --out checked before any work, leftovers of killed runs cleaned up."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from oce_sim.storage import outputs
from oce_sim.cli import app
from oce_sim.storage.outputs import MANIFEST, OutputError, exclusive_lock, transaction


def write_set(out, **files: str) -> None:
    with transaction(out, "test") as staging:
        for name, text in files.items():
            (staging / name).write_text(text)


def contents(folder) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def siblings(out) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


@pytest.mark.parametrize("can_exchange", [True, False], ids=["renameat2", "fallback"])
def test_a_new_set_replaces_the_old_one_whole(tmp_path, monkeypatch, can_exchange):
    if not can_exchange:
        monkeypatch.setattr(outputs, "exchange", lambda a, b: False)
    out = tmp_path / "out"
    write_set(out, **{"a.csv": "old", "b.png": "old"})
    write_set(out, **{"a.csv": "new"})
    assert set(contents(out)) == {"a.csv", MANIFEST}, "nothing of the old set stays"
    assert contents(out)["a.csv"] == "new"
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["written_by"] == "oce-sim test" and list(manifest["files"]) == ["a.csv"]
    assert manifest["files"]["a.csv"] == outputs.file_digest(out / "a.csv")
    assert siblings(out) == [".out.lock"], "no staging or old folder left"


def test_a_failure_leaves_the_old_set_untouched(tmp_path):
    out = tmp_path / "out"
    write_set(out, **{"a.csv": "old"})
    before = contents(out)
    with pytest.raises(KeyboardInterrupt):
        with transaction(out, "test") as staging:
            (staging / "a.csv").write_text("half")
            raise KeyboardInterrupt
    assert contents(out) == before and siblings(out) == [".out.lock"]


def test_a_second_writer_is_refused_at_once(tmp_path):
    out = tmp_path / "out"
    with transaction(out, "test"):
        with pytest.raises(OutputError, match=rf"is being written by another oce-sim process \(pid {os.getpid()}\)"):
            with transaction(out, "test"):
                pass
    write_set(out, **{"a.csv": "x"})  # the lock went with the first writer


def test_leftovers_of_killed_runs_are_cleaned_and_a_half_swap_rolled_back(tmp_path):
    out = tmp_path / "out"
    write_set(out, **{"a.csv": "old"})
    (tmp_path / ".out.staging-dead").mkdir()
    (tmp_path / ".out.staging-dead" / "a.csv").write_text("half")
    os.rename(out, tmp_path / ".out.old-dead")  # killed between the fallback's two renames
    write_set(out, **{"a.csv": "new"})
    assert contents(out)["a.csv"] == "new" and siblings(out) == [".out.lock"]
    os.rename(out, tmp_path / ".out.old-dead")
    with pytest.raises(RuntimeError):
        with transaction(out, "test"):
            raise RuntimeError("fails after the recovery")
    assert contents(out)["a.csv"] == "new", "the previous complete set was rolled back into place"


def test_out_is_checked_before_any_work(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        write_set(a_file)
    with pytest.raises(OutputError, match="cannot create"):
        write_set(a_file / "sub" / "out")
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(OutputError, match=r"holds files oce-sim did not write \(thesis.tex\)"):
        write_set(foreign)
    assert (foreign / "thesis.tex").read_text() == "precious"
    legacy = tmp_path / "legacy"  # what an older oce-sim wrote: replaced
    legacy.mkdir()
    (legacy / "results.csv").write_text("old")
    (legacy / ".kpis_by_strategy.abc.png").write_text("temp of a killed savefig")
    write_set(legacy, **{"results.csv": "new"})
    assert set(contents(legacy)) == {"results.csv", MANIFEST}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_parent_is_refused(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            write_set(parent / "out")
    finally:
        parent.chmod(0o700)


def test_cli_refuses_a_busy_or_unusable_out_before_running(tmp_path):
    out = tmp_path / "out"
    runner = CliRunner()
    args = ["compare", "small", "--episodes", "1", "--strategies", "instruction", "--no-progress", "--out", str(out)]
    with exclusive_lock(tmp_path / ".out.lock", "test"):
        result = runner.invoke(app, args)
    assert result.exit_code == 2 and "being written by another oce-sim process" in " ".join(result.output.split())
    assert not out.exists()
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, [*args[:-1], str(tmp_path / "file")])
    assert result.exit_code == 2 and "is not a folder" in result.output
    assert runner.invoke(app, ["bench", "--suite", "quick", "--junit-xml", str(tmp_path)]).exit_code == 2
