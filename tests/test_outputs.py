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
    args = ["compare", "small", "--episodes", "1", "--best-plan", "0", "--strategies", "instruction", "--no-progress", "--out", str(out)]
    with exclusive_lock(tmp_path / ".out.lock", "test"):
        result = runner.invoke(app, args)
    assert result.exit_code == 2 and "being written by another oce-sim process" in " ".join(result.output.split())
    assert not out.exists()
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, [*args[:-1], str(tmp_path / "file")])
    assert result.exit_code == 2 and "is not a folder" in result.output
    assert runner.invoke(app, ["bench", "--suite", "quick", "--junit-xml", str(tmp_path)]).exit_code == 2


# ------------------------------------------------------------------------- operating system errors (issue 25)

SHORT = "extends: small\nenv: {horizon_days: 28}\n"
COMMANDS = {
    "run": ["run", "{scenario}", "--episodes", "1", "--no-progress", "--out", "{out}"],
    "compare": ["compare", "{scenario}", "--episodes", "1", "--best-plan", "0", "--strategies", "instruction", "--no-progress",
                "--out", "{out}"],
    "whatif": ["whatif", "{scenario}", "--set", "population.n_reps=2", "--episodes", "1", "--best-plan", "0", "--no-progress",
               "--out", "{out}"],
}


def run_main(monkeypatch, capsys, args: list[str]) -> tuple[int, str]:
    """``oce-sim`` as the console script runs it (cli.main: where OSError is handled); (exit code, stderr)."""
    from oce_sim import cli

    monkeypatch.setattr("sys.argv", ["oce-sim", *args])
    with pytest.raises(SystemExit) as caught:
        cli.main()
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return caught.value.code, captured.err


@pytest.mark.parametrize("command", COMMANDS)
def test_a_full_disk_ends_a_command_with_one_line_and_exit_1(tmp_path, monkeypatch, capsys, command):
    """ENOSPC (simulated at fsync, where a full disk also shows) while writing outputs: one line naming the file
    under --out (not the staging folder) and what to do, exit 1; the earlier set stays as it was."""
    import errno

    scenario = tmp_path / "short.yaml"
    scenario.write_text(SHORT)
    out = tmp_path / "out"
    args = [a.format(scenario=scenario, out=out) for a in COMMANDS[command]]
    code, _ = run_main(monkeypatch, capsys, args)
    assert code in (0, None)
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outputs.os, "fsync", full)
    if command == "whatif":  # the cache beside --out holds the episodes: start without it
        import shutil

        shutil.rmtree(tmp_path / "out.cache")
    code, err = run_main(monkeypatch, capsys, args)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: no space left on device writing ") and \
        lines[0].endswith(": free space or choose another --out"), err
    written = lines[0].split(" writing ", 1)[1].rsplit(": ", 1)[0]
    assert written.startswith(str(out)) and ".staging-" not in written, written
    assert {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]


@pytest.mark.parametrize("command", ["validate", "run", "compare", "whatif", "train"])
def test_any_os_error_of_any_command_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys, command):
    """Handled once, in cli.main: a permission error reading the scenario, whichever command reads it."""
    import errno

    from oce_sim.cli import common

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/data/secret.yaml")

    from oce_sim.config import repo_scenario_dir

    monkeypatch.setattr(common, "load_scenario", denied)
    args = {"validate": ["validate", str(repo_scenario_dir() / "small.yaml")],
            "train": ["train", "small", "--timesteps", "10", "--out", str(tmp_path / "out")]}.get(
        command, [command, "small", "--out", str(tmp_path / "out")])
    code, err = run_main(monkeypatch, capsys, args)
    assert code == 1
    assert err.strip() == "error: permission denied on /data/secret.yaml: check its permissions or choose another " \
                          "path", err


def test_os_error_messages_name_the_path_as_given_and_what_to_do():
    import errno

    from oce_sim.cli.common import os_error_message

    staged = "/r/.out.staging-0123abcd/figures/a.png"
    assert outputs.shown_path(staged) == "/r/out/figures/a.png"
    assert outputs.shown_path("/r/.out.staging-0123abcd") == "/r/out"
    assert outputs.shown_path("/r/out.cache/ab/x.json") == "/r/out.cache/ab/x.json"
    assert os_error_message(OSError(errno.ENOSPC, "No space left on device", staged)) == \
        "no space left on device writing /r/out/figures/a.png: free space or choose another --out"
    assert os_error_message(OSError(errno.EROFS, "Read-only file system", "/r/x")) == \
        "read-only file system writing /r/x: choose a writable --out"
    assert os_error_message(OSError(errno.EMFILE, "Too many open files")) == \
        "too many open files: raise the open-file limit (ulimit -n) or run fewer --workers"
    assert os_error_message(OSError(errno.ELOOP, "Too many levels of symbolic links", "/r/l")) == \
        "too many levels of symbolic links on /r/l: check the path and try again"


def test_an_unnamed_write_error_gets_the_file_it_stopped(tmp_path, monkeypatch):
    import errno

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outputs.os, "fsync", full)
    with pytest.raises(OSError) as caught:
        outputs.atomic_write_text(tmp_path / "a.txt", "x")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "a.txt")
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_a_block_between_markers_is_replaced_and_nothing_else(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- x:begin -->\nold\n<!-- x:end -->\noutro\n<!-- y:begin -->\nkept\n<!-- y:end -->\n")
    outputs.atomic_replace_block(doc, "<!-- x:begin -->", "<!-- x:end -->", "new\\1 $0 table")  # no regex escapes
    assert doc.read_text() == ("intro\n<!-- x:begin -->\nnew\\1 $0 table\n<!-- x:end -->\noutro\n<!-- y:begin -->\n"
                               "kept\n<!-- y:end -->\n")
    with pytest.raises(ValueError, match="no <!-- z:begin --> ... <!-- z:end --> markers"):
        outputs.atomic_replace_block(doc, "<!-- z:begin -->", "<!-- z:end -->", "lost")
    assert "lost" not in doc.read_text()
