"""File plumbing: outputs that appear whole or not at all (``outputs``: atomic writes, staged output folders,
locks).

May import: nothing else of ``oce_sim`` (the bottom layer, with ``oce_sim.config``).
"""
