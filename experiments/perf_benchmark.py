"""Performance benchmark: env steps/s, env share of RL training, national scale, floors, memory, profile.

    python experiments/perf_benchmark.py            # full sizes (a few minutes on 2 cores)
    python experiments/perf_benchmark.py --quick    # small sizes; national scale extrapolated (labelled)
    oce-sim bench --perf                            # the same measurements from the CLI

Prints the Markdown report and writes ``DIR/perf.json`` and ``DIR/perf.md`` (atomically).  Targets and what
is measured are described in ``oce_sim/bench/perf/`` and ``docs/PERFORMANCE.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from oce_sim.studies.evaluation import atomic_write_text
from oce_sim.bench.perf import SIZES, format_perf_markdown, run_perf


def parse_size(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    if not sep or key not in SIZES["full"]:
        raise argparse.ArgumentTypeError(f"expected KEY=INT with KEY one of {', '.join(SIZES['full'])}; got {text!r}")
    try:
        return key, int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{key}: {value!r} is not an integer") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (national scale extrapolated, labelled)")
    parser.add_argument("--out", type=Path, default=Path("results/perf"), help="folder for perf.json and perf.md")
    parser.add_argument("--set", dest="sizes", type=parse_size, action="append", default=[], metavar="KEY=INT",
                        help="override one size, e.g. --set train_timesteps=8192 (repeatable)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no phase log on stderr")
    args = parser.parse_args(argv)

    result = run_perf(quick=args.quick, progress=args.progress, sizes=dict(args.sizes) or None)
    report = format_perf_markdown(result)
    atomic_write_text(args.out / "perf.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    atomic_write_text(args.out / "perf.md", report + "\n")
    print(report)
    print(f"written: {args.out / 'perf.json'}, {args.out / 'perf.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
