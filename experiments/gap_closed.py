"""A learner's result, honestly (issue 23, item 6): its share of the gap from intervention to the best policy that
sees only observations, closed, on the test seeds.

The candidates for "the best policy that sees only observations" are the four stage heuristics (each at its own
stage), ``follow_up_everywhere``, with ``--best-plan K`` the planner's best stationary plan at each stage (``best@K``,
searched on validation seeds and cached), and every ``--model`` whose file says it learnt from the observed reward.
The best of them on the selection seeds (validation, from 201,000) is the ceiling; every policy is then reported on
the test seeds (900,000 and up) with its gap closed (Fieller 95% interval) and the adaptivity headroom (the ceiling
minus the best stationary plan).  ``--strategies`` adds references that are not candidates (e.g. ``oracle``, which
reads the future).  Definitions: docs/MODEL.md §4e; code: oce_sim/studies/gap.py.

    python experiments/gap_closed.py --scenario default --best-plan 1000 --model RUN/final/model.safetensors

Writes ``results/gap_closed/<scenario>/``: ``results.csv`` (tidy KPI rows, ``purpose`` select / report),
``gap.csv`` and ``gap.md``; ``--docs`` puts the Markdown into docs/MODEL.md between the scenario's gap-closed
markers.  Cost: (candidates x selection seeds) + (all x test seeds) episodes, plus 4 x K for the
first search of each stage.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from oce_sim.agents import STRATEGIES, make_strategy  # noqa: E402
from oce_sim.config import load_scenario  # noqa: E402
from oce_sim.storage.outputs import atomic_replace_block, atomic_write_text  # noqa: E402
from oce_sim.agents.oracle import OBJECTIVE  # noqa: E402
from oce_sim.studies.evaluation import t_interval  # noqa: E402
from oce_sim.studies.report import git_commit  # noqa: E402
from oce_sim.studies.gap import Measured, candidates, measure, measured_text, sees_only_observations  # noqa: E402
from oce_sim.studies.sweep import code_version  # noqa: E402
from oce_sim.studies.planner import SEARCH_SEEDS  # noqa: E402
from oce_sim.studies.seeds import TEST_SEED, TEST_SEEDS, selection_seeds, validation_seeds  # noqa: E402


@dataclass
class Args:
    scenario: str = "default"
    models: dict[str, Path] = field(default_factory=dict)  # label -> model file
    strategies: list[str] = field(default_factory=list)  # references, not candidates
    best_plan: int = 0  # K of best@K at each stage; 0: no plans among the candidates
    plan_seeds: int = SEARCH_SEEDS
    select_seeds: int = 10
    test_seeds: int = len(TEST_SEEDS)
    cache: Path | None = None  # the plan cache (default: the user's oce-sim cache)
    out: Path = Path("results/gap_closed")
    docs: bool = False


DOCS = ROOT / "docs" / "MODEL.md"
MARKERS = "<!-- gap-closed:{}:begin -->", "<!-- gap-closed:{}:end -->"  # one block per scenario


def main(args: Args) -> str:
    scenario = load_scenario(args.scenario)
    pool = candidates(scenario, args.best_plan, validation_seeds(args.plan_seeds), args.cache)
    agents = {name: make_strategy(name) for name in args.strategies}
    for name, path in args.models.items():
        agents[name] = make_strategy(str(path))
    select, report = selection_seeds(args.select_seeds), range(TEST_SEED, TEST_SEED + args.test_seeds)
    found = measure(scenario, agents, pool, select, report, progress=True)
    text = (f"Measured with `python experiments/gap_closed.py --scenario {args.scenario}"
            f"{f' --best-plan {args.best_plan}' if args.best_plan else ''}` ({args.scenario}, every strategy at its "
            f"own stage; USD per territory, profit year 1 + the value at the horizon; model commit {model_commit()}, "
            f"code {code_version()}).\n\n" + measured_text(found, select, report) + against_best_plan(found, agents))
    folder = args.out / args.scenario
    atomic_write_text(folder / "results.csv", found.results.to_csv(index=False))
    atomic_write_text(folder / "gap.csv", found.table.to_csv(index=False))
    atomic_write_text(folder / "gap.md", text + "\n")
    if args.docs:
        atomic_replace_block(DOCS, *(m.format(args.scenario) for m in MARKERS), text)
    print(text)
    return text


def against_best_plan(found: Measured, agents: Mapping[str, Any]) -> str:
    """The learning target's test (issue 23, item 3): each model minus the best stationary plan on the report seeds,
    paired 95% t-interval, and whether it learnt from a privileged reward (the customers' true state)."""
    if found.best_plan is None or not agents:
        return ""
    report = found.results[(found.results.purpose == "report") & (found.results.metric == OBJECTIVE)]
    wide = report.pivot_table(index="seed", columns="strategy", values="value")
    lines = []
    for name, policy in agents.items():
        diff = t_interval((wide[name] - wide[found.best_plan]).to_numpy(), 0.95)
        kind = "observed reward" if sees_only_observations(policy) else "privileged: not observation-only"
        lines.append(f"{name} ({kind}) minus {found.best_plan}: {diff['diff_mean'] / 1e3:+,.0f}k "
                     f"[{diff['diff_low'] / 1e3:+,.0f}k, {diff['diff_high'] / 1e3:+,.0f}k] USD (paired 95% CI), above it "
                     f"on {int((wide[name] > wide[found.best_plan]).sum())} of {len(wide)} seeds.")
    return "\n\nAgainst the best stationary plan (the learning target): " + " ".join(lines)


def model_commit() -> str:
    """The checkout's commit, short (``+ uncommitted changes`` if any): the model a table was measured on."""
    commit = git_commit()
    return "unknown" if commit is None else commit[:7] + commit[40:]


def parse(argv: list[str] | None = None) -> Args:
    """Typed arguments; a bad one exits 2 with a message, before any work."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=Args.scenario)
    parser.add_argument("--model", dest="models", action="append", default=[],
                        help="a trained model: [LABEL=]PATH.safetensors (label: the run folder's name); repeatable")
    parser.add_argument("--strategies", default="", help=f"comma-separated references, of {', '.join(STRATEGIES)}")
    parser.add_argument("--best-plan", type=int, default=Args.best_plan, help="K of best@K at each stage (0: none)")
    parser.add_argument("--plan-seeds", type=int, default=Args.plan_seeds)
    parser.add_argument("--select-seeds", type=int, default=Args.select_seeds)
    parser.add_argument("--test-seeds", type=int, default=Args.test_seeds)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Args.out)
    parser.add_argument("--docs", action="store_true", help="write the table into docs/MODEL.md")
    ns = parser.parse_args(argv)
    strategies = [s for s in ns.strategies.split(",") if s]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or len(set(strategies)) != len(strategies):
        parser.error(f"--strategies must be distinct names among {', '.join(STRATEGIES)}; got {ns.strategies!r}")
    models: dict[str, Path] = {}
    for given in ns.models:
        label, _, where = given.partition("=") if "=" in given.split("/")[0] else ("", "", given)
        path = Path(where)
        label = label or (path.parent.parent.name if path.parent.name == "final" else path.stem)
        if not path.is_file():
            parser.error(f"--model: no such file: {path}")
        if label in models or label in strategies:
            parser.error(f"--model: the label {label!r} is taken; give each model its own LABEL=")
        models[label] = path
    for name, value, low, high in (("--best-plan", ns.best_plan, 0, 100_000), ("--plan-seeds", ns.plan_seeds, 1, 1_000),
                                   ("--select-seeds", ns.select_seeds, 2, 1_000),
                                   ("--test-seeds", ns.test_seeds, 2, len(TEST_SEEDS))):
        if not low <= value <= high:
            parser.error(f"{name} must be in [{low}, {high}], got {value}")
    return Args(scenario=ns.scenario, models=models, strategies=strategies, best_plan=ns.best_plan,
                plan_seeds=ns.plan_seeds, select_seeds=ns.select_seeds, test_seeds=ns.test_seeds, cache=ns.cache,
                out=ns.out, docs=ns.docs)


if __name__ == "__main__":
    main(parse())
