"""The simulated calendar: time in days (day ``d`` spans ``[d, d+1)``), working days Monday to Friday.

May import: numpy only.
"""

from __future__ import annotations

import numpy as np

HOUR = 1.0 / 24.0


def is_working_day(day: int) -> bool:
    return day % 7 < 5


def add_working_days(day: float, n: int) -> int:
    """The ``n``-th working day on or after ``day`` (0 = first working day on or after)."""
    d = int(np.ceil(day - 1e-9))
    while not is_working_day(d):
        d += 1
    for _ in range(int(n)):
        d += 1
        while not is_working_day(d):
            d += 1
    return d
