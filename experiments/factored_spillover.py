"""How much of a segment's play lands outside its segment, where factored-ppo's credit does not look (issue 23).

For each segment, the base plan (default: ``follow_up_everywhere``'s play, ``rep_visit_plus_email``, in every
segment: the plan factored-ppo converges to on the default scenario) is played on paired validation seeds with and
without that segment's play (``hold`` in its place for the window's weeks); the play's effect on its own cohort and
on every other HCP is compared (``oce_sim.studies.spillover``).  Validation seeds: a design measurement, chosen on
nothing.

    python experiments/factored_spillover.py --scenario default --seeds 100            # about 1,000 episodes
    python experiments/factored_spillover.py --scenario default --seeds 100 --docs     # into docs/PERFORMANCE.md

Writes ``results/spillover/<scenario>/``: ``units.csv`` (one row per seed and segment, USD), ``summary.csv`` and
``spillover.md``.  ``--docs`` puts the Markdown into docs/PERFORMANCE.md between the spillover markers.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from oce_sim.config import load_scenario  # noqa: E402
from oce_sim.storage.outputs import atomic_replace_block, atomic_write_text  # noqa: E402
from oce_sim.studies.seeds import VALIDATION_SEED, validation_seeds  # noqa: E402
from oce_sim.studies.spillover import Window, measure, summarise  # noqa: E402
from oce_sim.world import dispatch  # noqa: E402

DOCS = ROOT / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- spillover:begin -->", "<!-- spillover:end -->"


@dataclass
class Args:
    scenario: str = "default"
    seeds: int = 100  # validation seeds from 200,000
    play: str = "rep_visit_plus_email"  # the base plan's play in every segment
    segments: tuple[int, ...] = tuple(range(dispatch.N_SEGMENTS))
    first_week: int = 0
    weeks: int = 52
    out: Path = Path("results/spillover")
    docs: bool = False


def _usd(value: float, low: float, high: float) -> str:
    return f"{value / 1e3:+,.0f}k [{low / 1e3:+,.0f}k, {high / 1e3:+,.0f}k]"


def _ratio(row: pd.Series) -> str:
    if pd.isna(row.ratio):
        return "n/a (own effect not above zero)"
    interval = "unbounded" if pd.isna(row.ratio_low) else f"{row.ratio_low:+.2f}, {row.ratio_high:+.2f}"
    return f"{row.ratio:+.2f} [{interval}]"


def report(args: Args, summary: pd.DataFrame, seconds: float) -> str:
    seeds = validation_seeds(args.seeds)
    options = "" if args.play == Args.play else f" --play {args.play}"
    if args.segments != Args.segments:
        options += f" --segments {','.join(dispatch.SEGMENTS[s] for s in args.segments)}"
    if (args.first_week, args.weeks) != (Args.first_week, Args.weeks):
        options += f" --first-week {args.first_week} --weeks {args.weeks}"
    lines = [f"Measured with `python experiments/factored_spillover.py --scenario {args.scenario} --seeds {args.seeds}"
             f"{options}`"
             f": base plan `{args.play}` in every segment at stage 3; each segment's play replaced by `hold` in weeks "
             f"{args.first_week}-{args.first_week + args.weeks - 1}, on validation seeds {seeds[0]:,}-{seeds[-1]:,} "
             f"(paired); {seconds:.0f} s. The play's effect (with it minus without it, USD per territory, year 1 and "
             "the value at the horizon) on its own cohort and on every other HCP, mean [95% CI]; the spillover ratio "
             "others / own [Fieller 95% CI].", "",
             "| segment | own cohort (HCPs) | effect on its own cohort | effect on every other HCP | spillover ratio |",
             "|---|---:|---|---|---|"]
    for row in summary.itertuples(index=False):
        hcps = "-" if row.segment == "all" else f"{row.cohort_hcps:,.0f}"
        lines.append(f"| {'**pooled**' if row.segment == 'all' else row.segment} | {hcps} | "
                     f"{_usd(row.own_usd, row.own_low, row.own_high)} | "
                     f"{_usd(row.others_usd, row.others_low, row.others_high)} | {_ratio(pd.Series(row._asdict()))} |")
    return "\n".join(lines)


def main(args: Args) -> str:
    started = time.time()
    units = measure(load_scenario(args.scenario), [args.play] * dispatch.N_SEGMENTS, validation_seeds(args.seeds),
                    args.segments, Window(args.first_week, args.weeks))
    summary = summarise(units)
    sizes = units.groupby("segment", sort=False).cohort_hcps.mean()
    summary["cohort_hcps"] = summary.segment.map(sizes)
    text = report(args, summary, time.time() - started)
    folder = args.out / args.scenario
    atomic_write_text(folder / "units.csv", units.to_csv(index=False))
    atomic_write_text(folder / "summary.csv", summary.to_csv(index=False))
    atomic_write_text(folder / "spillover.md", text + "\n")
    if args.docs:
        atomic_replace_block(DOCS, BEGIN, END, text)
    print(text)
    return text


def parse(argv: list[str] | None = None) -> Args:
    """Typed arguments; a bad one exits 2 with a message, before any work."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=Args.scenario)
    parser.add_argument("--seeds", type=int, default=Args.seeds, help=f"validation seeds from {VALIDATION_SEED:,}")
    parser.add_argument("--play", default=Args.play, choices=[p for p in dispatch.PLAYS if p != "hold"],
                        help="the base plan's play in every segment")
    parser.add_argument("--segments", default=",".join(dispatch.SEGMENTS),
                        help="comma-separated segment names whose play is held, one at a time")
    parser.add_argument("--first-week", type=int, default=Args.first_week)
    parser.add_argument("--weeks", type=int, default=Args.weeks)
    parser.add_argument("--out", type=Path, default=Args.out)
    parser.add_argument("--docs", action="store_true", help="write the table into docs/PERFORMANCE.md")
    ns = parser.parse_args(argv)
    names = [s for s in ns.segments.split(",") if s]
    unknown = [s for s in names if s not in dispatch.SEGMENTS]
    if unknown or not names or len(set(names)) != len(names):
        parser.error(f"--segments must be distinct names among {', '.join(dispatch.SEGMENTS)}; got {ns.segments!r}")
    if not 2 <= ns.seeds <= 10_000:
        parser.error(f"--seeds must be in [2, 10000], got {ns.seeds}")
    if ns.first_week < 0 or ns.weeks < 1:
        parser.error(f"--first-week must be >= 0 and --weeks >= 1, got {ns.first_week} and {ns.weeks}")
    return Args(scenario=ns.scenario, seeds=ns.seeds, play=ns.play,
                segments=tuple(dispatch.SEGMENTS.index(s) for s in names), first_week=ns.first_week,
                weeks=ns.weeks, out=ns.out, docs=ns.docs)


if __name__ == "__main__":
    main(parse())
