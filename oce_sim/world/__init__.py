"""The model: one territory's customers, reps, channels and data pipeline, simulated day by day on a SimPy
calendar with compiled kernels for the per-customer work.

- ``simulation``: ``World``, the day's processes (reviews, publish, field day, marketing, webinars, touches,
  delivery, dynamics, booking) and its ledger; ``population``, ``response``, ``field``, ``view``, ``efficacy``,
  ``start``, ``streams``: its parts; ``kernels`` (with ``jit``): the compiled per-customer work.
- ``stages``: the stage capability table (what each entity sees and may do at each stage).
- ``dispatch``: the orchestrator's action language (a play per segment); ``observation``: its observation layout.
- ``tail``, ``uplift``: the value left at the horizon and the expected value of a touch.
- ``kpis``, ``metrics``: the KPI registry and the KPIs and reward parts computed from a world's ledger.

May import: ``oce_sim.config`` only.
"""
