"""What a command compares: today's organisation, a move from it, a built-in strategy or a trained model, each
labelled once (a model run off its own scenario or stage says so)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from rich.markup import escape

from oce_sim.cli.common import err, fail
from oce_sim.config import (
    ScenarioConfig,
)


def _make_candidate(name: str, config: ScenarioConfig):
    """``today`` (the organisation at the scenario's stage), a move from it (``sales=3``) or :func:`_make_policy`."""
    from oce_sim.agents.organisation import Organisation, move_label, parse_move

    if name == "today":
        return Organisation(config.stage, name="today")
    if "=" in name:
        try:
            return Organisation(parse_move(name, config.stage), name=move_label(name))
        except ValueError as exc:
            fail(str(exc))
    return _make_policy(name)


def _run_label(policy, stage: Optional[int], config: ScenarioConfig) -> str:
    """A trained model run on another scenario, or at another stage, than it was trained on says so, in its label
    and in a note on stderr (the spaces match, so it runs; whether the result means anything is the user's call).
    A model trained on a privileged reward (expected or realised prescriptions, the value at the horizon: computed
    from the simulator's true state, which no deployment sees) says that too."""
    from oce_sim.agents import TrainedModel

    if not isinstance(policy, TrainedModel):
        return policy.name
    notes = []
    trained_on = policy.meta.get("scenario")
    if isinstance(trained_on, str) and trained_on not in (config.name, "converted"):  # converted: not recorded
        notes.append(f"trained on {trained_on}")
        err.print(f"[yellow]note:[/] {escape(str(policy.path))} was trained on scenario {escape(repr(trained_on))}; "
                  f"it is evaluated on {escape(repr(config.name))}")
    if policy.meta.get("reward") in ("expected", "realized"):
        notes.append("privileged reward")
    trained = getattr(policy, "stage", None)
    if stage is not None and trained is not None and stage != trained:
        notes.append(f"trained at {trained}, run at {stage}")
    return f"{policy.name} ({'; '.join(notes)})" if notes else policy.name


def _labelled(candidates: list, config: ScenarioConfig) -> tuple[dict, dict[str, int | None]]:
    """Label each (policy, stage) once.  Trained models of one algorithm (training seeds, a checkpoint against the
    final model) keep a column each, every one named by its run folder (and checkpoint); a strategy named twice
    runs once; the same model file twice is refused."""
    from collections import Counter

    from oce_sim.agents import TrainedModel

    labels = [_run_label(policy, stage, config) for policy, stage in candidates]
    model_labels = Counter(label for label, (policy, _) in zip(labels, candidates) if isinstance(policy, TrainedModel))
    seen: set[Path] = set()
    policies: dict = {}
    stages: dict[str, int | None] = {}
    for label, (policy, stage) in zip(labels, candidates):
        if isinstance(policy, TrainedModel):
            path = Path(policy.path)
            if path.resolve() in seen:
                fail(f"the model {path} is given twice; name each model once")
            seen.add(path.resolve())
            if model_labels[label] > 1:
                source = path.parent.parent.name if path.parent.name == "final" else \
                    f"{path.parent.parent.name}/{path.stem}" if path.parent.name == "checkpoints" else path.stem
                label = f"{label} ({source})"
                if label in policies:
                    fail(f"two models would both be labelled {label!r}; name each model once")
        policies[label] = policy
        if stage is not None:
            stages[label] = stage
    return policies, stages


def _make_policy(name: str):
    from oce_sim.agents import STRATEGIES, TrainedModel, make_strategy
    from oce_sim.agents.model_file import ModelFileError
    from oce_sim.learning.training import model_path

    path = Path(name)
    if path.is_dir():
        if not model_path(path).is_file():
            fail(f"{path} is a folder without a trained model ({model_path(path).relative_to(path)}); "
                 "give a run folder of `oce-sim train` or a model .safetensors file")
        path = model_path(path)
    elif not name.endswith((".safetensors", ".zip")):
        try:
            return make_strategy(name)
        except ValueError:
            fail(f"unknown strategy {name!r}; choose today, a move from it (e.g. sales=3 or stage=2), one of "
                 f"{', '.join(STRATEGIES)}, a model .safetensors file or a run folder")
    if not path.is_file():
        fail(f"model file not found: {name}")
    try:
        return TrainedModel(path)  # evaluated at the stage its file says it was trained at
    except (ModelFileError, OSError) as exc:
        fail(str(exc))


def _check_models(policies: dict, config: ScenarioConfig, stages: dict | None = None) -> None:
    """Refuse a trained model whose spaces are not those of the scenario it would run on, before any episode."""
    from oce_sim.agents import TrainedModel
    from oce_sim.agents.model_file import ModelFileError
    from oce_sim.envs.territory import TerritoryEnv
    from oce_sim.studies.evaluation import strategy_config

    for label, policy in policies.items():
        if isinstance(policy, TrainedModel):
            env = TerritoryEnv(scenario=strategy_config(config, policy, (stages or {}).get(label)))
            try:
                policy.check_env(env, f"scenario {config.name!r}")
            except ModelFileError as exc:
                fail(str(exc))
            finally:
                env.close()
