"""Native vector environments for ``oce_sim/Territory-v1``: N territories in one process, stepped in lockstep.

* ``TerritoryVectorEnv``: a ``gymnasium.vector.VectorEnv`` (``gym.make_vec(id, num_envs=N,
  vectorization_mode="vector_entry_point")``) with Gymnasium's seeding (sub-env ``i`` of ``reset(seed=s)`` is
  seeded ``s + i``), next-step autoreset (``AutoresetMode.NEXT_STEP``), batched observations ``(N, 82)``,
  ``action_masks()`` ``(N, 72)`` and Gymnasium vector infos.  (``gym.make_vec(..., workers=W)`` spreads the
  territories over W processes instead: ``oce_sim.envs.sharded``, the same results bit for bit.)
* ``TerritorySB3VecEnv``: the same territories as a Stable-Baselines3 ``VecEnv`` (same-step reset, the last
  observation in ``info["terminal_observation"]``), whose ``env_method("action_masks")`` sb3-contrib's
  ``MaskablePPO`` reads directly (answered from the batched mask, no call per env).

Each sub-env is a ``TerritoryEnv``: the single env stays the reference, and sub-env ``i`` reproduces a single
env seeded ``s + i`` exactly (``tests/test_native_vector.py``).  What is shared: the scenario is loaded once,
the steady-start table is computed once, and the territories' Worlds form **one** batch
(``oce_sim.world.batch.WorldBatch``): one SimPy calendar whose processes advance every territory together, so a
vector step is one ``run(until=...)`` (the territories never interact: each one's event log is the one it has
alone).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from oce_sim.config import ScenarioConfig, StageLike, load_scenario
from oce_sim.envs.territory import StepResults, TerritoryEnv, begin_steps, finish_steps
from oce_sim.envs.territory import observations as observations_of
from oce_sim.world.metrics import episode_kpis
from oce_sim.world.batch import WorldBatch
from oce_sim.world.simulation import Territories

ENTRY_POINT = "oce_sim.envs.vector:TerritoryVectorEnv"
# Territories in one vector env.  Each holds its own World (about 0.3 MB at the default 600 HCPs, more for bigger
# territories) and all step in one process: 4,096 leaves room four times over for 1,024 (large-batch training), is
# about a GB of worlds at the default size, while 10**9 would try to build a billion worlds before answering.
MAX_NUM_ENVS = 4096


def checked_int(name: str, value: Any, low: int, high: int, why: str = "") -> int:
    """``value`` as an int in [low, high]: an int or numpy integer, never a bool, float or string coerced (1.5
    would become 1 and "3" three territories silently).  TypeError for the type, ValueError for the range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer (int or numpy integer; not bool, float or str), got "
                        f"{type(value).__name__} {repr(value)[:40]}")
    value = int(value)
    if not low <= value <= high:
        shown = str(value) if abs(value) < 10**40 else f"an integer of {value.bit_length()} bits"  # no 10**5000 digits
        raise ValueError(f"{name} must be between {low} and {high}{why}, got {shown}")
    return value


def check_num_envs(num_envs: Any) -> int:
    return checked_int("num_envs", num_envs, 1, MAX_NUM_ENVS,
                       " (territories stepped in one process; more than that: several vector envs)")


class TerritoryVectorEnv(VectorEnv):
    """N ``TerritoryEnv`` territories stepped together in one process (see the module docstring)."""

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str | Mapping[str, Any] | ScenarioConfig | None = None,
        stage: StageLike | None = None,
        config: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        shared_simulation: bool = True,
        max_episode_steps: int | None = None,
    ):
        num_envs = check_num_envs(num_envs)  # before any territory is built
        if max_episode_steps is not None:
            raise ValueError("max_episode_steps is not supported: the horizon is config={'env': {'horizon_days': ...}}")
        self.num_envs = num_envs
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping of overrides or None, got {type(config).__name__}")
        scenario_config = load_scenario(scenario, stage=stage, overrides=config)  # once for all territories
        self.envs: list[TerritoryEnv] = [TerritoryEnv(scenario=scenario_config, render_mode=render_mode)
                                         for _ in range(self.num_envs)]
        first = self.envs[0]
        self.scenario = scenario_config
        self.render_mode = render_mode
        self.shared_simulation = bool(shared_simulation)
        self.metadata = dict(self.metadata)
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.horizon_days = first.horizon_days
        self.decision_interval_days = first.decision_interval_days
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._batch: WorldBatch | None = None
        self._started = False

    # ---------------------------------------------------------------------------------------------- API
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset(seed=[...]) needs {self.num_envs} seeds, got {len(seeds)}")
        if options is not None and "reset_mask" in options:
            raise ValueError("partial resets (options['reset_mask']) are not supported: the territories step in "
                             "lockstep; reset all of them")
        self._share_start_table()
        observations, env_infos = self._new_episodes(seeds, options)
        self._autoreset[:] = False
        self._started = True
        return observations, self._batch_infos(env_infos)

    def step(self, actions: Any):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        if actions.shape[:1] != (self.num_envs,):
            raise ValueError(f"actions must have shape {self.action_space.shape}, got {actions.shape}")
        if self._autoreset.any():
            # Next-step autoreset: the territories end together (one horizon), so they start again together.
            if not self._autoreset.all():
                raise RuntimeError("territories out of lockstep")  # cannot happen: one horizon for all
            observations, env_infos = self._new_episodes([None] * self.num_envs, None)
            self._autoreset[:] = False
            nothing = np.zeros(self.num_envs, dtype=bool)
            return (observations, np.zeros(self.num_envs), nothing, nothing.copy(),
                    self._batch_infos(env_infos))
        begun = begin_steps(self.envs, list(actions))
        self._run_to(self.envs[0]._day)
        results = finish_steps(self.envs, begun)
        self._autoreset = results.terminated | results.truncated
        return (results.observations, results.rewards, results.terminated, results.truncated,
                self._step_infos(results, begun))

    def action_masks(self) -> np.ndarray:
        """``(num_envs, 72)`` boolean masks of the next decision (sb3-contrib convention, one row per env)."""
        return np.stack([env.action_masks() for env in self.envs])

    def render(self) -> tuple[str | None, ...] | None:
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()
        self._batch = None

    # ------------------------------------------------------------------------------------------ helpers
    def _share_start_table(self) -> None:
        """The steady-start table depends only on the scenario: compute it once and hand it to every env."""
        first = self.envs[0]
        if first._start_table is None and self.scenario.history.start == "steady":
            from oce_sim.envs.steady_start import steady_start

            first._start_table = steady_start(self.scenario, TerritoryEnv)
        for env in self.envs[1:]:
            env._start_table = first._start_table

    def _step_infos(self, results: StepResults, begun: list[tuple[np.ndarray, int, Any]]) -> dict[str, Any]:
        """A step's vector infos written as arrays straight from the batch's results (what ``_batch_infos`` makes
        of the sub-envs' own infos, without building them: tested equal)."""
        envs, n = self.envs, self.num_envs
        first = envs[0]
        infos: dict[str, Any] = {}

        def put(key: str, value: Any) -> None:
            infos[key] = value
            infos[f"_{key}"] = np.ones(n, dtype=np.bool_)

        put("day", np.array([env._day for env in envs], dtype=int))
        put("plays", np.stack([plays for plays, _, _ in begun]))
        put("masked_actions", np.array([masked for _, masked, _ in begun], dtype=int))
        put("masked_actions_total", np.array([env._masked_total for env in envs], dtype=int))
        components: dict[str, Any] = {}
        for name, values in results.components.items():
            components[name] = values.copy()  # the episode's series reads the results' own arrays
            components[f"_{name}"] = np.ones(n, dtype=np.bool_)
        put("reward_components", components)
        put("action_mask", np.stack([env.action_masks() for env in envs]))
        if results.ended or first._kpis_every_step:
            put("kpis", self._batch_infos([episode_kpis(env.world, env.tail) for env in envs]))
        if first._hcp_rewards:
            put("hcp_reward", np.stack([env._hcp_reward(results.ended) for env in envs]))
            put("hcp_segment", np.stack([env._hcp_segment for env in envs]))
        if results.ended:
            series = np.full(n, fill_value=None, dtype=object)
            for i, env in enumerate(envs):
                series[i] = env.series()
            put("series", series)
        return infos

    def _batch_infos(self, env_infos: list[dict[str, Any]]) -> dict[str, Any]:
        """The vector infos Gymnasium's ``_add_info`` builds from one info per sub-env (same keys, order, dtypes and
        ``_key`` masks), built key by key over all sub-envs at once: ``_add_info`` goes env by env through the
        nested per-step infos and costs about as much as a day of the simulation.  Infos whose keys or nesting differ
        between sub-envs go through ``_add_info``."""
        first = env_infos[0]
        if "final_obs" in first or any(info.keys() != first.keys() for info in env_infos[1:]):
            return self._add_infos_one_by_one(env_infos)
        n = self.num_envs
        batched: dict[str, Any] = {}
        for key, value in first.items():
            values = [info[key] for info in env_infos]
            nested = [isinstance(v, dict) for v in values]
            if any(nested):
                if not all(nested):
                    return self._add_infos_one_by_one(env_infos)
                array: Any = self._batch_infos(values)
            elif type(value) in (int, float, bool) or issubclass(type(value), np.number):
                array = np.array(values, dtype=type(value))
            else:
                if isinstance(value, np.ndarray):
                    array = np.zeros((n, *value.shape), dtype=value.dtype)
                else:
                    array = np.full(n, fill_value=None, dtype=object)
                for i, v in enumerate(values):
                    array[i] = v
            batched[key] = array
            batched[f"_{key}"] = np.ones(n, dtype=np.bool_)
        return batched

    def _add_infos_one_by_one(self, env_infos: list[dict[str, Any]]) -> dict[str, Any]:
        infos: dict[str, Any] = {}
        for i, info in enumerate(env_infos):
            infos = self._add_info(infos, info, i)
        return infos

    def _new_episodes(self, seeds: Sequence[int | None], options: dict[str, Any] | None | Sequence[Any] = None
                      ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Every territory's new World, joined into one batch before the first observations (each World built
        straight into the batch: no batch of its own first); ``options``: one for all, or a list of one per env."""
        per_env = options if isinstance(options, (list, tuple)) else [options] * self.num_envs
        for env, seed, env_options in zip(self.envs, seeds, per_env):
            env._new_episode(seed, env_options, standalone=not self.shared_simulation)
        self._join()
        return observations_of(self.envs), [env._info(None, 0, {}, episode_end=False) for env in self.envs]

    def _join(self) -> None:
        """The territories' new Worlds become one batch (or stay apart, each in a batch of its own)."""
        self._batch = Territories.join([env.world for env in self.envs]) if self.shared_simulation else None

    def _run_to(self, day: int) -> None:
        """Run every territory to ``day``: one run of the shared batch, then each World's own run, which is a no-op
        unless the Worlds are in batches of their own (a copied vector env's Worlds are)."""
        if self._batch is not None:
            self._batch.run_until(day)
        for env in self.envs:
            env.world.run_until(day)

    def __getstate__(self) -> dict[str, Any]:
        # A copy's Worlds rebuild batches of their own (World.__setstate__); the next reset joins them again.
        state = self.__dict__.copy()
        state["_batch"] = None
        return state


@functools.cache
def _sb3_vec_env_class():
    """``TerritorySB3VecEnv``, defined on first use so that importing this module does not import SB3."""
    from stable_baselines3.common.vec_env import VecEnv

    class _TerritorySB3VecEnv(VecEnv):
        """The native vector env as a Stable-Baselines3 ``VecEnv``: same-step reset with
        ``info["terminal_observation"]``; ``env_method("action_masks")`` answered from the batched mask."""

        def __init__(self, num_envs: int = 1, scenario: Any = None, stage: Any = None,
                     config: Mapping[str, Any] | None = None, shared_simulation: bool = True,
                     monitor: bool = False):
            self.vec = TerritoryVectorEnv(num_envs, scenario=scenario, stage=stage, config=config,
                                          shared_simulation=shared_simulation)
            super().__init__(self.vec.num_envs, self.vec.single_observation_space, self.vec.single_action_space)
            self._actions: np.ndarray | None = None
            self._monitor = monitor
            self._ep_return = np.zeros(self.num_envs)
            self._ep_length = np.zeros(self.num_envs, dtype=np.int64)
            self._masks: np.ndarray | None = None

        @property
        def envs(self) -> list[TerritoryEnv]:
            return self.vec.envs

        def reset(self) -> np.ndarray:
            seeds = self._seeds
            obs = self._reset_all(seeds, [options or None for options in self._options])
            self._reset_seeds()
            self._reset_options()
            return obs

        def _reset_all(self, seeds: list[int | None], options: list[Mapping[str, Any] | None]) -> np.ndarray:
            vec = self.vec
            vec._share_start_table()
            observations, self.reset_infos = vec._new_episodes(seeds, list(options))
            vec._started = True
            vec._autoreset[:] = False
            self._ep_return[:] = 0.0
            self._ep_length[:] = 0
            self._masks = np.stack([info["action_mask"] for info in self.reset_infos])
            return observations

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = np.asarray(actions)

        def step_wait(self):
            vec = self.vec
            assert self._actions is not None, "step_async() first"
            begun = begin_steps(vec.envs, list(self._actions))
            vec._run_to(vec.envs[0]._day)
            results = finish_steps(vec.envs, begun)
            observations = results.observations
            rewards = results.rewards  # float64, as SubprocVecEnv (DummyVecEnv: float32)
            dones = results.terminated | results.truncated
            infos: list[dict[str, Any]] = []
            for i, (env, (plays, masked, _)) in enumerate(zip(vec.envs, begun)):
                reward = float(rewards[i])
                terminated, truncated = bool(results.terminated[i]), bool(results.truncated[i])
                info = env._step_info(results, i, plays, masked)
                info["TimeLimit.truncated"] = truncated and not terminated
                self._ep_return[i] += reward
                self._ep_length[i] += 1
                if dones[i] and self._monitor:
                    info["episode"] = {"r": float(self._ep_return[i]), "l": int(self._ep_length[i]), "t": 0.0}
                infos.append(info)
            self._actions = None
            if dones.any():
                if not dones.all():
                    raise RuntimeError("territories out of lockstep")  # one horizon for all: cannot happen
                for i in range(self.num_envs):
                    infos[i]["terminal_observation"] = observations[i]
                observations = self._reset_all([None] * self.num_envs, [None] * self.num_envs)
            else:
                self._masks = np.stack([info["action_mask"] for info in infos])
            return observations, rewards, dones, infos

        def action_masks(self) -> np.ndarray:
            assert self._masks is not None, "reset() first"
            return self._masks.copy()

        def close(self) -> None:
            self.vec.close()

        def get_images(self) -> list[Any]:
            return [None] * self.num_envs

        def _indices(self, indices: Any) -> list[int]:
            if indices is None:
                return list(range(self.num_envs))
            if isinstance(indices, (int, np.integer)):
                return [int(indices)]
            return list(indices)

        def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
            return [getattr(self.envs[i], attr_name) for i in self._indices(indices)]

        def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
            for i in self._indices(indices):
                setattr(self.envs[i], attr_name, value)

        def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
            wanted = self._indices(indices)
            if method_name == "action_masks" and not method_args and not method_kwargs and self._masks is not None:
                return [self._masks[i].copy() for i in wanted]
            return [getattr(self.envs[i], method_name)(*method_args, **method_kwargs) for i in wanted]

        def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
            return [isinstance(self.envs[i], wrapper_class) for i in self._indices(indices)]

    return _TerritorySB3VecEnv


def make_sb3_vec_env(num_envs: int = 1, scenario: Any = None, stage: Any = None,
                     config: Mapping[str, Any] | None = None, shared_simulation: bool = True,
                     monitor: bool = False):
    """The native vector env as a Stable-Baselines3 ``VecEnv`` (see ``TerritorySB3VecEnv``).  With ``monitor``,
    ``info["episode"]`` holds each finished episode's return and length, as SB3's ``Monitor`` writes it."""
    return _sb3_vec_env_class()(num_envs, scenario=scenario, stage=stage, config=config,
                                shared_simulation=shared_simulation, monitor=monitor)


def __getattr__(name: str) -> Any:
    if name == "TerritorySB3VecEnv":
        return _sb3_vec_env_class()
    raise AttributeError(name)
