"""What a strategist runs: studies built on paired episodes of the environments.

- ``evaluation``: strategies on paired seeds (common random numbers), tidy results, CIs of differences, figures.
- ``whatif`` with ``sweep``: what-if variants (sets, grids, tornado, frontier), resumable and parallel.
- ``roadmap``: a stage roadmap per sub-market, net of transformation cost; ``uncertainty``: the calibrated
  parameters' ranges.
- ``calibration``: the model against published figures; ``drivers``: each difference of a comparison split by
  channel (calibration's muted shadow customers); ``report``: HTML and Markdown reports.
- ``gap``: a learner's share of the gap from intervention to the best policy that sees only observations, closed,
  and the adaptivity headroom; ``spillover``: how much of a segment's play lands outside its cohort, where
  factored-ppo's credit does not look.

May import: ``oce_sim.envs``, ``oce_sim.agents``, ``oce_sim.world``, ``oce_sim.config``, ``oce_sim.storage``
(not ``oce_sim.learning``: a trained model reaches a study as a policy of ``oce_sim.agents``).
"""
