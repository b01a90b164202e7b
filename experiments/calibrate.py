"""Calibration: the model's figures next to the published ones in ``../shared/reference-figures.md``.

    python experiments/calibrate.py [--scenario default] [--seeds 10] [--first-seed 0]
    python experiments/calibrate.py --seeds 20 --first-seed 900000   # held out: the test seeds (studies/seeds.py)

A thin wrapper of ``oce-sim calibrate`` (``oce_sim/studies/calibration.py``): every row of issue 10's table, measured
on paired seeds (common random numbers), printed as Markdown.  ``oce-sim calibrate`` measures on seeds 0.., the
seeds the constants were fitted on; ``--first-seed`` measures the same rows on seeds no fit has seen.
"""

from __future__ import annotations

import argparse

from oce_sim.studies import calibration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0, help="the first paired seed (default 0)")
    args = parser.parse_args()
    if args.seeds < 1 or args.first_seed < 0:
        parser.error(f"--seeds must be at least 1 and --first-seed at least 0; got {args.seeds}, {args.first_seed}")
    rows = calibration.calibrate(args.scenario, args.seeds, first_seed=args.first_seed)
    table = calibration.markdown(rows, args.scenario, args.seeds)
    if args.first_seed:  # the table's first line names the CLI, which measures on seeds 0..
        last = args.first_seed + args.seeds - 1
        table = (f"Measured with `python experiments/calibrate.py --scenario {args.scenario} --seeds {args.seeds} "
                 f"--first-seed {args.first_seed}` (paired seeds {args.first_seed:,}-{last:,})"
                 + table.split("`", 2)[2])
    print(table)


if __name__ == "__main__":
    main()
