"""Named random streams.

One ``SeedSequence`` from ``reset(seed=...)`` is split into named streams.  The population comes from its
own stream; exogenous per-HCP draws (``transitions``, ``rx``, ``refills``, ``website``) come from generators keyed by
``(stream, 28-day block)`` (see ``World.exogenous_uniforms``), so the same seed gives the same population
and the same exogenous draws whatever the policy does (common random numbers for paired comparisons).
Policy-dependent draws (touch engagement, rep acceptance, pipeline noise) use their own streams so that
they never shift the exogenous ones.
"""

from __future__ import annotations

import zlib

import numpy as np

STREAM_NAMES: tuple[str, ...] = (
    "population",
    "transitions",
    "rx",
    "touches",
    "field",
    "marketing",
    "webinar",
    "website",
    "pipeline",
    "access",
    "territories",
    "refills",
    "holdout",  # IT stage 3's randomised holdouts (keyed by name: adding it shifts no other stream)
)


class RandomStreams:
    def __init__(self, seed: int | None):
        self.root = np.random.SeedSequence(seed)
        self.entropy = self.root.entropy
        self._keys = {name: zlib.crc32(name.encode()) for name in STREAM_NAMES}
        self.population = self.stream("population")

    def stream(self, name: str) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.entropy, self._keys[name]])))

    def daily(self, name: str, day: int) -> np.random.Generator:
        """Generator for ``name`` on ``day``; independent of how many draws other days or streams made."""
        seq = np.random.SeedSequence([self.entropy, self._keys[name], int(day)])
        return np.random.Generator(np.random.PCG64(seq))
