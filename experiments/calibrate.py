"""Calibration: the model's figures next to the published ones in ``../shared/reference-figures.md``.

    python experiments/calibrate.py [--scenario default] [--seeds 10]

A thin wrapper of ``oce-sim calibrate`` (``oce_sim/studies/calibration.py``): every row of issue 10's table, measured
on paired seeds (common random numbers), printed as Markdown.
"""

from __future__ import annotations

import argparse

from oce_sim.studies import calibration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    rows = calibration.calibrate(args.scenario, args.seeds)
    print(calibration.markdown(rows, args.scenario, args.seeds))


if __name__ == "__main__":
    main()
