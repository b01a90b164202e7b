"""Shared by every command: the consoles, argument limits and checks (exit 2 naming the argument before any
work), scenario resolution, the all-or-nothing output folder, the report's command line and rich tables."""

from __future__ import annotations

import errno
import math
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from oce_sim.config import (
    ScenarioConfig,
    ScenarioError,
    load_scenario,
)

console = Console() if sys.stdout.isatty() else Console(width=160)


err = Console(stderr=True)


SCENARIO_ARG = typer.Argument("default", help="Built-in scenario name (see `oce-sim scenarios`) or a YAML path.")


# Argument limits, checked before any work starts (exit 2 naming the argument and what is allowed).
MAX_SEED = 2**32 - 1  # numpy's legacy seeding (used by Stable-Baselines3) takes 32-bit seeds


MAX_EPISODES = 100_000
# K of the best plans that compare, whatif and roadmap play beside the rules of thumb (oce_sim.studies.planner): the
# starts and about 20 evaluations, some 15-20 s a stage on the default scenario when not cached (docs/MODEL.md §4d)
BEST_PLAN_BUDGET = 200
MAX_BEST_PLAN_BUDGET = 100_000  # episodes per stage's search


def best_plan_option(what: str) -> Any:
    """``--best-plan K`` of compare, whatif and roadmap; ``what`` says which columns it plays twice."""
    return typer.Option(BEST_PLAN_BUDGET, "--best-plan", help=(
        f"K: {what} also play the best stationary plan their stage allows (best@K: coordinate ascent over the nine "
        "segments' plays on validation seeds 200,000-200,007, at most K episodes per stage; cached per scenario, stage, "
        "K and code version), so that each is valued twice, with today's rules of thumb and with the best plans "
        "(values_twice.csv). The first search of a stage costs about K episodes (K = 200: some 15-20 s on the default "
        "scenario), a cached one nothing; a line says which. 0: off (and ranked by the rules of thumb)."))


RANK_BY_OPTION = typer.Option(None, "--rank-by", help="Which of the two values ranks and recommends: best-plan (the "
                              "default while --best-plan K > 0: the best plan each stage allows) or rules-of-thumb "
                              "(today's stage heuristics and organisation).")


MAX_TIMESTEPS = 10**10


MAX_N_ENVS = 256


MAX_PATH_CHARS = 4096  # PATH_MAX on Linux


MAX_PATH_PART_BYTES = 255  # NAME_MAX: one folder or file name


MAX_TEXT_CHARS = 1000  # strategy lists and other names


MAX_MESSAGE_CHARS = 600  # an error line quotes at most this much


SIMPLE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def print_error(message: str, problems: list[str] | None = None, one_line: bool = False) -> None:
    # escaped: user input in a message is text, not rich markup (a stray "[/]" would raise); one_line: not wrapped
    # at the console's width, so that a path in it can be copied whole
    err.print(f"[bold red]error:[/] {escape(_clip(message))}", soft_wrap=one_line)
    for problem in problems or []:
        err.print(f"  - {escape(_clip(problem))}")


def fail(message: str, problems: list[str] | None = None, code: int = 2) -> None:
    print_error(message, problems)
    raise typer.Exit(code)


# What to do about the operating system errors a run can meet once its inputs were checked (exit 1).
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
_OS_ADVICE = {
    errno.ENOSPC: "free space or choose another --out",
    errno.EDQUOT: "free space within your disk quota or choose another --out",
    errno.EFBIG: "choose another --out on a file system that takes larger files",
    errno.EROFS: "choose a writable --out",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EMFILE: "raise the open-file limit (ulimit -n) or run fewer --workers",
    errno.ENFILE: "raise the open-file limit (ulimit -n) or run fewer --workers",
    errno.ENOMEM: "free memory, or run fewer --workers or a smaller scenario",
    errno.EIO: "check the disk or choose another --out",
}


def os_error_message(exc: OSError) -> str:
    """One line for an OSError that ends a command: what happened, to which path, and what to do."""
    from oce_sim.storage.outputs import shown_path

    reason = (exc.strerror or str(exc) or type(exc).__name__).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    advice = _OS_ADVICE.get(exc.errno or 0, "check the path and try again")
    if exc.filename is None:
        return f"{reason}: {advice}"
    name = exc.filename
    path = _clip(shown_path(os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name)), 300)
    where = f"writing {path}" if exc.errno in _WRITE_ERRORS else f"on {path}"
    return f"{reason} {where}: {advice}"


def resolve(scenario: str, stage: Optional[int] = None) -> ScenarioConfig:
    check_path("SCENARIO", Path(scenario))
    try:
        return load_scenario(scenario, stage=stage)
    except ScenarioError as exc:
        fail(f"invalid scenario {exc.source}", exc.problems)
        raise  # unreachable


def check_workers(workers: int) -> int:
    """``--workers`` of a command that plays episodes in a process pool: 0 (one per usable CPU) up to what this machine
    holds (refused before any work, naming the reason); returns that limit."""
    from oce_sim.studies.processes import local_worker_limit

    limit, why = local_worker_limit()
    if workers < 0 or workers > limit:
        fail(f"--workers must be between 0 (one per usable CPU) and {limit} here ({why}), got {workers}")
    return limit


def check_positive(name: str, value: int, minimum: int = 1, maximum: int | None = None) -> None:
    if value < minimum:
        fail(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        fail(f"{name} must be <= {maximum}, got {_clip(str(value), 40)}")


def check_seed(seed: int, count: int = 1) -> None:
    """Seeds ``seed .. seed + count - 1`` must all be valid seeds."""
    if not 0 <= seed <= MAX_SEED - (count - 1):
        fail(f"--seed must be in [0, {MAX_SEED - (count - 1)}] (seeds seed .. seed+{count - 1} are used), "
             f"got {_clip(str(seed), 40)}")


def check_learning_rate(value: float) -> None:
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        fail(f"--learning-rate must be a finite number in (0, 1], got {value}")


def check_text(name: str, value: str, limit: int = MAX_TEXT_CHARS) -> None:
    if len(value) > limit or "\0" in value:
        fail(f"{name} must be at most {limit} characters with no NUL character (got {len(value)} characters)")


def check_path(name: str, path: Path) -> None:
    """A path the operating system can take: no NUL, not too long overall or in any one part."""
    text = str(path)
    check_text(name, text, MAX_PATH_CHARS)
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if longest > MAX_PATH_PART_BYTES:
        fail(f"{name}: a folder or file name is longer than {MAX_PATH_PART_BYTES} bytes ({longest}): "
             f"{_clip(text, 80)}")


def check_out(name: str, out: Path) -> None:
    """The output folder must be creatable and writable: found now, not after every episode has run."""
    from oce_sim.storage.outputs import folder_problem

    check_path(name, out)
    problem = folder_problem(out)
    if problem:
        fail(f"{name} {problem}")


def check_model(name: str, model: Path) -> None:
    check_path(name, model)
    if model.is_dir():
        if not (model / "final" / "model.safetensors").is_file():  # training.model_path (no torch import here)
            fail(f"{name} {_clip(str(model), 200)} is not a finished run folder (no final/model.safetensors): give "
                 "a run folder or a model .safetensors file")
    elif not model.is_file():
        fail(f"{name}: model file not found: {_clip(str(model), 200)}")


def check_stage(stage: Optional[int]) -> None:
    if stage is not None and not 0 <= stage <= 3:
        fail(f"--stage must be 0-3 (0 instruction, 1 insight, 2 involvement, 3 intervention), got {stage}")


def warm_kernels() -> None:
    """Before a command's work: on a fresh install, compile the simulation kernels on every core at once
    (``oce_sim.world.warm``; a few file checks once they are cached)."""
    from oce_sim.world.warm import warm

    def say(processes: int, seconds: float) -> None:
        typer.echo(f"Compiling the simulation kernels once for this install ({processes} processes, about "
                   f"{seconds:.0f} s on the 2-core machine that recorded them)...", err=True)

    warm(notify=say)


@contextmanager
def _output_folder(out: Path, command: str) -> Iterator[Path]:
    """The staging folder of ``out`` (see oce_sim.storage.outputs); a bad or busy ``--out`` is exit 2 before any work."""
    from oce_sim.storage.outputs import OutputError, transaction

    try:
        with transaction(out, command) as staging:
            warm_kernels()
            yield staging
    except OutputError as exc:
        fail(str(exc))


# Options that change how or where a command runs, not what it computes: left out of a report's command line, so
# that the same run written to another folder, or a sweep run serially, on a pool or on Ray, writes the same report.
NOT_RESULTS = frozenset({"progress", "workers", "executor", "out"})


def _command_line(ctx: typer.Context) -> str:
    """The running command as a user would type it, every option that shapes the results spelled out."""
    import shlex

    words = ["oce-sim", ctx.info_name or ""]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in NOT_RESULTS or value is None or value == [] or value == ():
            continue
        if param.param_type_name == "argument":
            words.append(str(value))
            continue
        flag = max(param.opts, key=len)
        if isinstance(value, bool):
            if param.secondary_opts or value:
                words.append(flag if value else max(param.secondary_opts, key=len))
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            words += [flag, str(item)]
    return shlex.join(words)


def pd_concat(frames):
    import pandas as pd

    return pd.concat(list(frames), ignore_index=True)


def _rich_table(frame, title: str) -> Table:
    table = Table(title=title, show_lines=True)
    for column in frame.columns:
        listed = frame[column].astype(str).str.contains("; ").any()
        table.add_column(str(column), overflow="fold", no_wrap=bool(listed))  # a list: one short item per line
    for row in frame.to_numpy():
        table.add_row(*[escape(str(v)).replace("; ", "\n") for v in row])  # a list (moves) one per line
    return table


def _print_table(frame, title: str, first: str = "metric") -> None:
    """Metrics as rows and strategies as columns, so the table fits a terminal."""
    table = Table(title=title, show_lines=True)
    from oce_sim.world.kpis import KPIS, unit_label

    table.add_column("KPI (unit; USD in thousands: k)" if first == "metric" else first)
    for strategy in frame.index:
        table.add_column(str(strategy), justify="right")
    for metric in frame.columns:
        table.add_row(f"{unit_label(metric)}\n[dim]{metric}[/]" if metric in KPIS else str(metric),
                      *[str(v).replace(" [", "\n[") for v in frame[metric].to_numpy()])
    console.print(table)


def check_rank_by(rank_by: str | None, budget: int) -> str:
    """--rank-by of compare, whatif and roadmap, checked: best-plan by default while the best plans are played, else
    rules-of-thumb."""
    from oce_sim.studies.planner import RANK_BY

    if rank_by is None:
        return "best-plan" if budget else "rules-of-thumb"
    if rank_by not in RANK_BY:
        fail(f"--rank-by must be one of {', '.join(RANK_BY)}, got {rank_by!r}")
    if rank_by == "best-plan" and not budget:
        fail("--rank-by best-plan needs the best plans: --best-plan K with K > 0 (e.g. the default, "
             f"{BEST_PLAN_BUDGET})")
    return rank_by


def _print_twice(values, budget: int, rank_by: str, scale: str, title: str, what: str = "Each stage and move",
                 against: str = "today", first: str = "stage or move, against today", today=None) -> None:
    """Each option valued twice (``oce_sim.studies.planner.paired_twice``): a table, and a line saying what the two
    values are and which one ranks."""
    import pandas as pd

    from oce_sim.studies.planner import PLANNED_BY, twice_rows, twice_text

    header, rows = twice_rows(values, today, first)
    frame = pd.DataFrame([row[1:] for row in rows], index=[row[0] for row in rows], columns=header[1:]).T
    _print_table(frame, f"{title} (profit, year 1 + tail, {scale}; ranked by {PLANNED_BY[rank_by]})", first=header[0])
    console.print(escape(twice_text(values, budget, rank_by, scale, what, against).replace("**", "")))
