"""Errors of scenario and other input files: bounded in number and length, so a hostile input cannot make the
message itself huge."""

from __future__ import annotations

import reprlib
from typing import Any

MAX_PROBLEMS = 20  # problems listed per error; the rest are counted
MAX_PROBLEM_CHARS = 600  # one problem line: room for the list of allowed keys, not for a huge input
_EXCERPT = reprlib.Repr()
_EXCERPT.maxstring, _EXCERPT.maxother, _EXCERPT.maxlong = 40, 40, 24
_EXCERPT.maxlist = _EXCERPT.maxtuple = _EXCERPT.maxdict = _EXCERPT.maxset = 4
_EXCERPT.maxlevel = 2


def _excerpt(value: Any) -> str:
    """A short repr: error messages quote the offending value, never a huge input."""
    return _EXCERPT.repr(value)


def _clip(text: str, limit: int = MAX_PROBLEM_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ScenarioError(ValueError):
    """A scenario could not be loaded; ``problems`` lists ``field.path: message`` strings (bounded in number and
    length, so that a hostile input cannot make the message itself huge)."""

    def __init__(self, source: str, problems: list[str]):
        self.source = _clip(str(source), 160)
        shown = [_clip(problem) for problem in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - MAX_PROBLEMS} more problems")
        self.problems = shown
        super().__init__(f"invalid scenario {self.source}:\n  " + "\n  ".join(shown))
