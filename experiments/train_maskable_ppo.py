"""Train a MaskablePPO orchestrator, then compare it with the stage strategies on paired seeds.

Readable top to bottom (CleanRL style); ``oce-sim train`` and ``oce-sim compare --model`` do the same.  The result
is the model's share of the gap from intervention to the best policy that sees only observations, closed
(oce_sim/studies/gap.py, docs/MODEL.md §4e): the best candidate on selection seeds, then everything on the test seeds.

    python experiments/train_maskable_ppo.py --scenario default --stage 3 --timesteps 160000 --eval-episodes 20
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from oce_sim.agents import make_strategy
from oce_sim.agents.trained import TrainedModel
from oce_sim.config import load_scenario
from oce_sim.learning.training import TrainArgs, model_path, run_stage, train
from oce_sim.studies.evaluation import atomic_write_text, format_table, paired_summary
from oce_sim.studies.gap import candidates, measure, measured_text
from oce_sim.studies.seeds import TEST_SEED, selection_seeds


@dataclass
class Args:
    scenario: str = "default"
    stage: int = 3
    timesteps: int = 160_000  # about 15 minutes on two CPU cores
    seed: int = 0
    init_from: str = "intervention"  # behaviour-clone this strategy first ("" to train from scratch)
    learning_rate: float = 3e-4
    out: str = "runs"
    eval_episodes: int = 20
    eval_seed: int = TEST_SEED  # the test seeds: they only report
    select_seeds: int = 10  # selection seeds (validation): choose the best policy that sees only observations
    best_plan: int = 0  # K: add the planner's best@K at each stage to the candidates (0: none)
    baseline: str = "intervention"


def parse() -> Args:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in Args.__dataclass_fields__.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default.default), default=default.default)
    return Args(**vars(parser.parse_args()))


def main() -> None:
    args = parse()

    # 1. train: the run folder keeps the resolved scenario, TensorBoard logs, checkpoints and the model
    run = train(TrainArgs(scenario=args.scenario, algo="maskable-ppo", stage=args.stage, timesteps=args.timesteps, seed=args.seed,
                          out=args.out, init_from=args.init_from or None, learning_rate=args.learning_rate))

    # 2. the candidates that see only observations (heuristics, follow_up_everywhere, best@K) on selection seeds,
    #    then they, the model and the oracle (a reference that reads the future, not a candidate) on the test seeds
    scenario = load_scenario(args.scenario)
    agents = {"maskable_ppo": TrainedModel(model_path(run), stage=run_stage(run)), "oracle": make_strategy("oracle")}
    select, report = selection_seeds(args.select_seeds), range(args.eval_seed, args.eval_seed + args.eval_episodes)
    found = measure(scenario, agents, candidates(scenario, args.best_plan), select, report, progress=True)

    # 3. paired differences to the baseline, and the share of the gap to the best observation-only policy closed
    results = found.results[found.results.purpose == "report"].drop(columns="purpose")
    summary = paired_summary(results, baseline=args.baseline)
    print(format_table(summary, args.baseline).to_string())
    print(measured_text(found, select, report))
    found.results.to_csv(run / "evaluation.csv", index=False)
    atomic_write_text(run / "evaluation.json", json.dumps({
        "best_observation_only": found.ceiling, "candidates": found.candidates, "best_plan": found.best_plan,
        "headroom": found.headroom, "gap_closed": json.loads(found.table.to_json(orient="records")),
        "summary": json.loads(summary.to_json(orient="records"))}, indent=2))
    print(f"run folder: {Path(run)}")


if __name__ == "__main__":
    main()
