"""``oce-sim bench``: the benchmark suites and the regression gate (``oce_sim.bench.gate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from oce_sim.cli.common import SIMPLE_NAME, _clip, check_out, console, fail, warm_kernels


def bench(
    suite: str = typer.Option("quick", help="Benchmark suite: quick or full."),
    check: bool = typer.Option(False, help="Compare with the committed golden file; exit 1 on regression."),
    update: bool = typer.Option(False, help="Rewrite the golden file from this run."),
    perf: bool = typer.Option(False, help="Also measure performance (steps/s, training share, national scale, floors), at the sizes the suite names in perf_sizes."),
    out: Path = typer.Option(Path("results/bench"), help="Output folder."),
    junit_xml: Optional[Path] = typer.Option(None, "--junit-xml", help="With --check: write JUnit XML here (a testcase per gated band and the event hash)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Run every strategy on every benchmark scenario; tidy results, a Markdown table, a regression gate."""
    from oce_sim.bench import gate as bench_mod
    from oce_sim.storage.outputs import OutputError

    if check and update:
        fail("--check and --update are exclusive: check against the golden file, or rewrite it")
    if not SIMPLE_NAME.fullmatch(suite):  # a file name in scenarios/benchmark/suites, never a path
        fail(f"--suite must be a suite name (letters, digits, '_' or '-', at most 64), got {_clip(repr(suite), 80)}")
    check_out("--out", out)
    if junit_xml is not None and not check:
        fail("--junit-xml reports the gate: it needs --check")
    if junit_xml is not None and junit_xml.is_dir():
        fail(f"--junit-xml {junit_xml} is a folder; give a file path")
    warm_kernels()
    try:
        code = bench_mod.run_bench(suite=suite, check=check, update=update, perf=perf, out=out, progress=progress,
                                   console=console, junit=junit_xml)
    except (bench_mod.BenchError, OutputError) as exc:
        fail(str(exc))
        return
    raise typer.Exit(code)
