"""``python -m oce_sim.cli``: the same as the ``oce-sim`` command."""

from oce_sim.cli.app import main

if __name__ == "__main__":
    main()
