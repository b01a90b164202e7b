"""``oce_sim/Territory-v1``: orchestrate customer engagement in one sales territory."""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from oce_sim.config import CHANNELS, ScenarioConfig, StageLike, load_scenario
from oce_sim.envs.steady_start import steady_start
from oce_sim.world import dispatch
from oce_sim.world.metrics import episode_kpis, reward_components
from oce_sim.world.observation import GLOBAL_FEATURES, SEGMENT_FEATURES, STALE_DAYS
from oce_sim.world.response import REP_VISIT
from oce_sim.world.simulation import World
from oce_sim.world.stages import has
from oce_sim.world.start import StartTable
from oce_sim.world.tail import TailValue, tail_value

assert REP_VISIT == 0  # segment_features reads the rep-visit column as column 0

# env.reward -> the reward component it pays (oce_sim.world.metrics.reward_components)
REWARD_COMPONENTS = {"realized": "profit", "expected": "expected_profit", "observed": "observed_profit"}
RESET_OPTIONS: tuple[str, ...] = ()  # reset() takes no options: the scenario is fixed at construction


def begin_steps(envs: Sequence[TerritoryEnv], actions: Sequence[Any]) -> list[tuple[np.ndarray, int, Any]]:
    """``begin_step`` of several envs: every action checked first, then the plays of envs whose worlds share a batch
    applied together (one plan for all of them: ``Territories.apply_plays``), then each env's next day set."""
    checked = [env._checked_action(action) for env, action in zip(envs, actions)]  # all, before any side effect
    started = [env._masked_plays(plays) for env, plays in zip(envs, checked)]
    by_batch: dict[int, tuple[Any, dict[int, np.ndarray]]] = {}
    for env, (plays, _, _) in zip(envs, started):
        world = env.world
        assert world is not None
        territories = world._territories()
        by_batch.setdefault(id(territories), (territories, {}))[1][world._row] = plays
    for territories, plays_by_row in by_batch.values():
        territories.apply_plays(plays_by_row)
    for env in envs:
        env._day = min(env.horizon_days, env._day + env.decision_interval_days)
    return started


class StepResults(NamedTuple):
    """What :func:`finish_steps` computes for several envs at once (one row per env)."""

    observations: np.ndarray  # (N, 82) float32
    rewards: np.ndarray  # (N,) float64
    terminated: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool
    components: dict[str, np.ndarray]  # reward component -> (N,) USD
    ended: bool  # the episodes' last step (one horizon: all envs end together)


def finish_steps(envs: Sequence[TerritoryEnv], started: Sequence[tuple[np.ndarray, int, Any]]) -> StepResults:
    """``finish_step`` of envs stepped together (``begin_steps``, then their worlds run to the next decision):
    rewards and observations as rows, each env's series step recorded; infos are the caller's (``_step_info`` for
    one env's dict, the vector env's arrays)."""
    first = envs[0]
    days = {env._day for env in envs}
    if len(days) > 1:
        raise RuntimeError("envs finished together must be at one day")
    worlds = [env.world for env in envs]
    assert all(world is not None and world.now >= first._day for world in worlds)
    components = reward_components([before for _, _, before in started], [world.ledger for world in worlds],
                                   first.scenario.economics)
    ended = first._day >= first.horizon_days
    if ended:
        # What the customer state still earns after the horizon, without further promotion.
        for env in envs:
            env.tail = tail_value(env.world, by_hcp=env._hcp_rewards)
        components["terminal_value"] = np.array([env.tail.margin_usd for env in envs], dtype=float)
    rewards = np.empty(len(envs))
    terminated = np.zeros(len(envs), dtype=bool)
    for i, env in enumerate(envs):  # one scenario in a vector env; envs finished one by one may differ
        reward = components[env._reward_component][i]
        if ended and env._terminal_value:
            reward += components["terminal_value"][i]
        rewards[i] = reward / env.reward_scale_usd
        # With the terminal value in the reward the horizon is a terminal state: the reward has paid what the
        # customer state earns after it, so a learner must not bootstrap V(s_T) on top (SB3 does on truncation).
        terminated[i] = ended and env._terminal_value
        env._series.append((float(env._day), components, i, env.world.ledger.delivered.copy()))
    return StepResults(observations(envs), rewards, terminated, ~terminated & ended, components, ended)


def observations(envs: Sequence[TerritoryEnv]) -> np.ndarray:
    """``(N, 82)`` float32: each env's observation now (the segment features of a batch in one compiled call)."""
    rows = np.empty((len(envs), dispatch.N_SEGMENTS * len(SEGMENT_FEATURES) + len(GLOBAL_FEATURES)))
    for i, env in enumerate(envs):
        world = env.world
        assert world is not None
        view, pop = world.view, world.pop
        now = world.now
        stage = env.scenario.stage
        answered = view.suggestions_accepted + view.suggestions_dismissed
        acceptance = view.suggestions_accepted / answered if answered and has(stage, "acceptance_visible") else 0.0
        capacity = world.field_calls_per_epoch * world.field.n_reps / pop.n_hcps
        epoch = env._day // env.decision_interval_days
        features = world.segment_features()
        rows[i, :features.size] = features.ravel()
        rows[i, features.size:] = (
            env._day / env.horizon_days,
            min(STALE_DAYS, now - view.published_through_day) / STALE_DAYS,
            acceptance,
            min(1.0, capacity),
            epoch % 2,  # calendar position, so that a policy can alternate channels week by week
            (epoch % 4) / 3,
            stage.customer / 3,
            stage.sales / 3,
            stage.marketing / 3,
            stage.it / 3,
        )
    return np.clip(rows.astype(np.float32), 0.0, 1.0)


class TerritoryEnv(gym.Env[np.ndarray, np.ndarray]):
    """
    ## Description

    A pharma brand engages the HCPs of one territory through field reps and marketing channels (remote
    detail, email, webinars; HCPs also visit the website on their own).  Ground truth (latent needs, channel
    preferences, adoption state, confusion, fatigue, consent) evolves in a SimPy simulation; the agent is
    the *orchestrator* and sees only what its maturity stage lets it see, through a data pipeline with
    latency, coverage gaps and noise.  See ``docs/MODEL.md`` for the equations and sources.

    ## Action Space

    ``MultiDiscrete([8] * 9)``: one *play* per customer segment for the next decision epoch.  Segments are
    what the orchestrator can tell apart (potential tier ``low/mid/high`` x believed state
    ``non_prescriber/trialing/adopter``, in ``env.unwrapped.segment_names`` order).  Plays
    (``env.unwrapped.play_names``):

    | index | play | needs |
    |---|---|---|
    | 0 | hold | - |
    | 1 | rep_visit_biweekly: suggest visits to customers not seen for 14 days | field capacity |
    | 2 | rep_visit_monthly: same, 28 days | field capacity |
    | 3 | rep_visit_ask: visit and ask the questions the system cannot answer | sales stage >= 2 |
    | 4 | remote_detail (14-day cadence, inside-sales capacity) | marketing stage 3, remote opt-in |
    | 5 | email (7-day cadence, 30-day cap) | marketing stage 3, email opt-in |
    | 6 | webinar_invite (next scheduled webinar) | marketing stage 3, email opt-in |
    | 7 | rep_visit_plus_email: biweekly visits, email to those not visited this epoch | marketing stage 3 |

    The executor picks customers (value x overdue), one message per customer (next theme in the intended
    order, or the known need) and respects consent, caps and capacity.  Rep suggestions are executed only
    if the rep accepts them.  ``action_masks()`` returns the flattened ``(72,)`` boolean mask
    (sb3-contrib convention); a masked play is replaced by *hold* and counted in ``info["masked_actions"]``.
    An action outside the space raises ``ValueError``.

    ## Observation Space

    ``Box(0, 1, (82,), float32)``: for each segment the 8 features of ``SEGMENT_FEATURES`` (from the
    orchestrator's view, never the ground truth), then ``GLOBAL_FEATURES``: episode progress, data
    staleness, observed suggestion acceptance, field capacity per customer, calendar position (epoch
    parity, epoch within a four-epoch cycle) and the four entity stages / 3.

    ## Rewards

    The epoch's profit divided by ``env.reward_scale_usd``: gross margin on its prescriptions minus the field
    force's fixed cost (salaries) and every channel's variable cost; on the last step, plus the value the
    customer state leaves at the horizon when ``env.terminal_value`` is on.  ``info["reward_components"]``
    holds the named parts in USD (``revenue``, ``expected_revenue``, ``gross_margin``,
    ``expected_gross_margin``, ``observed_revenue``, ``observed_gross_margin``, ``field_fixed_cost``,
    ``rep_visit_cost``, ``remote_detail_cost``, ``email_cost``, ``webinar_cost``, ``profit``, ``expected_profit``,
    ``observed_profit``, and ``terminal_value`` on the last step).  ``env.reward`` chooses what the reward values:

    * ``realized`` (default): the prescriptions written (the Poisson draw).  KPIs always count these.
    * ``expected``: their expectation given the customers' *true* state: same mean, much less noise, but computed
      from hidden state no deployment sees: a **privileged** training signal.
    * ``observed``: the prescriptions the data pipeline *published to the view* during the step (late by the IT
      stage's latency, noisy, with lost rows), minus the touch costs the company knows: what a deployment
      observes.  No value computed from the true state is paid, not even at the horizon: the last step
      *truncates* (``env.terminal_value`` is not paid) and a learner bootstraps.

    With ``config={"env": {"hcp_rewards": True}}`` each step's info also splits the reward by customer:
    ``info["hcp_reward"]`` (``(n_hcps,)`` float, reward units: each HCP's gross margin, expected or, with
    ``reward: observed``, as published, minus what its touches cost, plus its value at the horizon on the last
    step when that is paid) and ``info["hcp_segment"]`` (``(n_hcps,)`` int8: the segment each HCP was in when the
    step's plays were chosen).  ``hcp_reward.sum()`` is the ``expected`` (or ``observed``) reward plus the field
    force's salaries (no HCP's, and no play changes them); with ``realized`` the split is the expected one.
    ``oce_sim.learning.factored_ppo`` credits each segment's play with its own cohort's return.

    ## Starting State

    A population drawn from the scenario with ``reset(seed=...)``; the view holds 28 days of syndicated
    prescription history.

    ## Episode End

    Ends at ``env.horizon_days`` (default 364 days = 52 weekly decisions).  With ``env.terminal_value`` on (the
    default, and a reward other than ``observed``) the last step *terminates*: its reward already holds the value the customer state leaves beyond the
    horizon, so a learner that bootstraps on truncation (SB3's ``TimeLimit.truncated``) must not add ``V(s_T)``
    again.  With ``env.terminal_value: false`` (the year-1 objective) it *truncates*: the market goes on after a
    horizon the reward ignores.
    ``info["kpis"]`` holds the running episode KPIs (prescriptions, profit, cost, ROI, reach, frequency,
    engagement rate, confusion events, unsubscribes, suggestion acceptance...); with
    ``config={"env": {"info_kpis": "episode_end"}}`` only the last step's info has them (for training).
    ``info["action_mask"]`` (from ``reset`` and every ``step``) is the flattened mask of the next decision, the
    same as ``action_masks()``: vectorised trainers can read it from the infos instead of calling back into the
    workers (``oce_sim.learning.training.ActionMasksFromInfo``).

    ## Arguments

    ```python
    gymnasium.make("oce_sim/Territory-v1", scenario="default", stage=None, config=None)
    ```
    * ``scenario``: built-in name (``oce-sim scenarios``), a YAML path, a mapping or a ``ScenarioConfig``.
    * ``stage``: 0-3, a stage name, or a mapping ``{customer, sales, marketing, it}``; overrides the scenario.
    * ``config``: nested overrides, e.g. ``{"population": {"n_hcps": 200}, "env": {"horizon_days": 182}}``.

    ## Version History

    * v0: initial release (82 observation features, 8 plays); ``info["action_mask"]``, the ``env.info_kpis``
      setting and the opt-in ``env.hcp_rewards`` split were added later without changing observations, actions or
      rewards.
    * v1: with ``env.terminal_value`` on (the default) the last step returns ``terminated=True`` instead of
      ``truncated=True``: its reward holds the value beyond the horizon, and SB3's bootstrap of ``V(s_T)`` on
      truncation counted it twice.  Observations, actions and rewards are as in v0.  Later, without changing the
      defaults: ``env.reward: observed`` (opt-in), and from sales stage 3 the reps work the time the plan leaves
      free (a model change: stage-3 results moved, the benchmark's golden file was re-recorded).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        scenario: str | Mapping[str, Any] | ScenarioConfig | None = None,
        stage: StageLike | None = None,
        config: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
    ):
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping of overrides such as {{'population': {{'n_hcps': 200}}}} "
                            f"or None, got {type(config).__name__}")
        self.scenario: ScenarioConfig = load_scenario(scenario, stage=stage, overrides=config)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            # as Gymnasium does: a warning, not an error, so that generic wrappers (SB3's make_vec_env) work;
            # render() then returns None
            gym.logger.warn(f"render_mode={render_mode!r} is not supported ({self.metadata['render_modes']} or None); "
                            "render() will return None")
        self.render_mode = render_mode
        settings = self.scenario.env
        self.horizon_days = settings.horizon_days
        self.decision_interval_days = settings.decision_interval_days
        self.reward_scale_usd = settings.reward_scale_usd
        self._reward_component = REWARD_COMPONENTS[settings.reward]
        self._observed = settings.reward == "observed"
        self._kpis_every_step = settings.info_kpis == "every_step"
        # an observed reward pays nothing computed from the true state, the value at the horizon included
        self._terminal_value = settings.terminal_value and not self._observed
        self._hcp_rewards = settings.hcp_rewards
        self.world_options: dict[str, Any] = {}  # extra World arguments (the steady-start burn-in sets some)
        self._start_table: StartTable | None = None
        self.tail: TailValue | None = None
        self.segment_names = dispatch.SEGMENTS
        self.play_names = dispatch.PLAYS
        self.action_space = spaces.MultiDiscrete(np.full(dispatch.N_SEGMENTS, dispatch.N_PLAYS, dtype=np.int64))
        n_obs = dispatch.N_SEGMENTS * len(SEGMENT_FEATURES) + len(GLOBAL_FEATURES)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(n_obs,), dtype=np.float32)
        self.world: World | None = None
        self._day = 0

    # ---------------------------------------------------------------------------------------------- API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._new_episode(seed, options, standalone=True)
        return self._observation(), self._info(None, 0, {}, episode_end=False)

    def _new_episode(self, seed: int | None, options: dict[str, Any] | None, standalone: bool) -> None:
        """``reset`` up to the first observation: a new World (``standalone``: in a batch of its own; else left for
        the vector env to join with its other territories)."""
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"reset(options=...) must be a mapping or None, got {type(options).__name__}")
        unknown = sorted(map(str, set(options or {}) - set(RESET_OPTIONS)))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown[:5]}; allowed: {list(RESET_OPTIONS) or 'none'} "
                             f"(set scenario values with config=... instead)")
        super().reset(seed=seed)
        world_seed = seed if seed is not None else int(self.np_random.integers(0, 2**63 - 1))
        if self.world is not None:
            self.world.close()
        if self._start_table is None and self.scenario.history.start == "steady":
            self._start_table = steady_start(self.scenario, TerritoryEnv)  # once per env: the scenario never changes
        self.world = World(self.scenario, seed=world_seed, start=self._start_table, standalone=standalone,
                           **self.world_options)
        self.tail: TailValue | None = None
        self._day = 0
        self._masked_total = 0
        # per step: day, the step's reward components (arrays over the envs stepped with this one), this env's
        # index in them, deliveries per channel: rows made only when the series is read (at the episode's end)
        self._series: list[tuple[float, dict[str, np.ndarray], int, np.ndarray]] = []

    def step(self, action: Any):
        started = self.begin_step(action)
        self.world.run_until(self._day)
        return self.finish_step(*started)

    begin_steps = staticmethod(begin_steps)

    def begin_step(self, action: Any) -> tuple[np.ndarray, int, Any]:
        """The first half of ``step``: apply the action and set the day the step runs to (``self._day``), without
        running the simulation.  ``step`` is ``begin_step``, ``world.run_until(self._day)``, ``finish_step``; a
        vector env runs many worlds' simulations in between (``oce_sim.envs.vector``) and begins its territories'
        steps together (:func:`begin_steps`)."""
        return begin_steps([self], [action])[0]

    def _checked_action(self, action: Any) -> np.ndarray:
        """The action as plays, or an error (no side effect)."""
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        if self._day >= self.horizon_days:  # Gymnasium: stepping past the end is undefined; say so
            raise RuntimeError(f"the episode ended at day {self._day} (horizon_days); call reset() "
                               f"before step()")
        return self._validate(action)

    def _masked_plays(self, plays: np.ndarray) -> tuple[np.ndarray, int, Any]:
        """``begin_step`` up to applying the checked plays: masked (and counted), and what the reward is measured
        from."""
        assert self.world is not None
        mask = self.world.action_mask()
        allowed = mask[np.arange(dispatch.N_SEGMENTS), plays]
        masked = int((~allowed).sum())
        self._masked_total += masked
        self.world.ledger.masked_actions += masked
        plays = np.where(allowed, plays, dispatch.HOLD)
        before = self.world.ledger.snapshot()
        if self._hcp_rewards:  # the cohorts the plays address, and what each HCP had earned and cost before them
            self._hcp_segment = self.world.segments().astype(np.int8)
            self._hcp_earned_before = self._hcp_rx_margin().copy()
            self._hcp_cost_before = self.world.hcp_cost_usd.copy()
        return plays, masked, before

    def finish_step(self, plays: np.ndarray, masked: int, before: Any):
        """The second half of ``step``, once the world has run to ``self._day``: reward, observation, info."""
        results = finish_steps([self], [(plays, masked, before)])
        return (results.observations[0], float(results.rewards[0]), bool(results.terminated[0]),
                bool(results.truncated[0]), self._step_info(results, 0, plays, masked))

    def _step_info(self, results: StepResults, i: int, plays: np.ndarray, masked: int) -> dict[str, Any]:
        """This env's step info out of ``results`` (it is env ``i`` of them)."""
        components = {name: float(values[i]) for name, values in results.components.items()}
        info = self._info(plays, masked, components, episode_end=results.ended)
        if self._hcp_rewards:
            info["hcp_reward"] = self._hcp_reward(results.ended)
            info["hcp_segment"] = self._hcp_segment
        if results.ended:
            info["series"] = self.series()
        return info

    def series(self) -> list[dict[str, float]]:
        """The episode's steps so far: day, reward components and deliveries per channel (one row per step)."""
        rows = []
        for day, components, i, delivered in self._series:
            row = {"day": day, **{name: float(values[i]) for name, values in components.items()}}
            row.update({f"delivered_{name}": float(v) for name, v in zip(CHANNELS, delivered)})
            rows.append(row)
        return rows

    def close(self) -> None:
        if self.world is not None:
            self.world.close()
            self.world = None
        super().close()

    def action_masks(self) -> np.ndarray:
        if self.world is None:
            raise RuntimeError("call reset() before action_masks()")
        return self.world.action_mask().ravel()

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self.world is None:
            return None
        k = episode_kpis(self.world, self.tail)
        return (f"day {self._day:>3}  Rx {k['prescriptions']:.0f}  profit ${k['profit_usd']:,.0f}  "
                f"reach {k['reach']:.0%}  confusion {k['confusion_events']:.0f}  unsub {k['unsubscribes']:.0f}")

    # ------------------------------------------------------------------------------------------ helpers
    def _validate(self, action: Any) -> np.ndarray:
        arr = np.asarray(action)
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        valid = arr.shape == self.action_space.shape and arr.dtype.kind in "iu"
        if not (valid and arr.min() >= 0 and arr.max() < dispatch.N_PLAYS):
            raise ValueError(
                f"action must be {dispatch.N_SEGMENTS} integers in [0, {dispatch.N_PLAYS - 1}] "
                f"(one play per segment: {', '.join(self.play_names)}); got {action!r}"
            )
        return arr.astype(np.int64)

    def _hcp_rx_margin(self) -> np.ndarray:
        """Each HCP's running gross margin as the reward values it: expected, or on the Rx published to the view."""
        assert self.world is not None and self.world.hcp_margin_usd is not None
        if self._observed:
            return self.world.view.published_rx * self.scenario.economics.margin_per_rx_usd
        return self.world.hcp_margin_usd

    def _hcp_reward(self, ended: bool) -> np.ndarray:
        """The step's reward split by HCP (reward units): gross margin (expected, or on the Rx published to the view)
        minus the HCP's touch costs (and, on the last step, the HCP's value at the horizon when it is paid).  Their
        sum is the reward plus the field force's salaries, which are no HCP's and which no play changes."""
        assert self.world is not None and self.world.hcp_cost_usd is not None
        earned = (self._hcp_rx_margin() - self._hcp_earned_before) - (self.world.hcp_cost_usd - self._hcp_cost_before)
        if ended and self._terminal_value and self.tail is not None:
            earned = earned + self.tail.margin_per_hcp_usd
        return earned / self.reward_scale_usd

    def _observation(self) -> np.ndarray:
        return observations([self])[0]

    def _info(self, plays: np.ndarray | None, masked: int, components: dict[str, float],
              episode_end: bool) -> dict[str, Any]:
        assert self.world is not None
        info: dict[str, Any] = {
            "day": self._day,
            "plays": plays,
            "masked_actions": masked,
            "masked_actions_total": self._masked_total,
            "reward_components": components,
            "action_mask": self.world.action_mask().ravel(),
        }
        if episode_end or self._kpis_every_step:
            info["kpis"] = episode_kpis(self.world, self.tail)
        return info
