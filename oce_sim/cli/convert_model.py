"""``oce-sim convert-model``: an old pickle-based .zip into a data-only model file
(``oce_sim.agents.model_file``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from oce_sim.cli.common import check_stage, console, fail


def convert_model(
    file: Path = typer.Argument(..., help="A Stable-Baselines3 .zip saved by an older oce-sim."),
    out: Optional[Path] = typer.Option(None, help="The .safetensors file to write (default: beside FILE)."),
    stage: Optional[int] = typer.Option(None, help="The stage it was trained at (0-3), so it is evaluated there."),
    trust: bool = typer.Option(False, help="Required: loading a .zip runs code from it; convert only files you trust."),
) -> None:
    """Convert an old pickle-based model .zip into a model file that is data only (.safetensors)."""
    from oce_sim.agents.model_file import ModelFileError, convert_sb3_zip

    check_stage(stage)
    if not file.is_file():
        fail(f"no such file: {file}")
    if not trust:
        fail(f"loading {file} unpickles it, which runs any code it holds; if you trust where it came from, "
             "repeat with --trust")
    target = out or file.with_suffix(".safetensors")
    try:
        meta = convert_sb3_zip(file, target, stage, scenario="converted")
    except ModelFileError as exc:
        fail(str(exc))
        return
    console.print(f"model file: {target} ({meta['algo']}, {meta['num_timesteps']:,} steps, stage {meta['stage']})")
