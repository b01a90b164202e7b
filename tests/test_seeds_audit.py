"""The seed audit (docs/SEEDS.md) holds: no published figure names the old evaluation range as a reporting range
without saying it is superseded.

Seeds 100,000-100,019 were the evaluation seeds before the seed protocol (oce_sim/studies/seeds.py), and they also
chose lambda, factored-ppo's variants and the oracle's base policies.  A line of README.md or docs/*.md that names
them as seeds passes only if its paragraph says "superseded", or if docs/SEEDS.md's audit lists the line's section
with the status "superseded".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AUDIT = ROOT / "docs" / "SEEDS.md"
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))

# the old range named as seeds: "100,000-100,019", "seed(s) 100,003", "seeds from 100000", "--seed 100000"
OLD_RANGE = re.compile(r"\b100,0\d\d\s*[-–]\s*100,0\d\d\b"
                       r"|\bseeds?\s+(?:from\s+)?100,?0\d\d\b"
                       r"|--seed\s+1000\d\d\b", re.IGNORECASE)
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
SECTION_NUMBER = re.compile(r"^(\d+(?:\.\d+)?[a-z]?)\.?\s")


def section_key(name: str, headings: list[str]) -> str:
    """How the audit names a section, from the headings above a line (outermost first): ``FILE §N`` for the
    innermost numbered one (a ``###`` under ``## 7.`` is in §7), else ``FILE "title"`` of the innermost."""
    for heading in reversed(headings):
        number = SECTION_NUMBER.match(heading)
        if number:
            return f"{name} §{number.group(1)}"
    return f'{name} "{headings[-1].strip()}"' if headings else name


def hits(name: str, text: str) -> list[tuple[str, int, str, str]]:
    """Every line naming the old range: (section key, line number, the line, its paragraph)."""
    lines = text.splitlines()
    found = []
    headings: dict[int, str] = {}  # level -> the heading in force
    for number, line in enumerate(lines, start=1):
        match = HEADING.match(line)
        if match:
            level = len(match.group(1))
            headings = {k: v for k, v in headings.items() if k < level} | {level: match.group(2)}
            continue
        if not OLD_RANGE.search(line):
            continue
        start, end = number - 1, number - 1  # the paragraph: up to the blank lines around it
        while start > 0 and lines[start - 1].strip():
            start -= 1
        while end + 1 < len(lines) and lines[end + 1].strip():
            end += 1
        found.append((section_key(name, [headings[k] for k in sorted(headings)]), number, line, "\n".join(lines[start:end + 1])))
    return found


def superseded_sections(audit: str) -> set[str]:
    """The sections the audit table marks superseded: its ``where`` cell, when the status cell says so."""
    block = audit.split("<!-- seeds-audit:begin -->", 1)[1].split("<!-- seeds-audit:end -->", 1)[0]
    sections = set()
    for row in block.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) >= 6 and cells[-1].lower().startswith("superseded"):
            sections.update(part.strip() for part in cells[0].split(";"))
    return sections


def unmarked(documents: dict[str, str], audit: str) -> list[str]:
    allowed = superseded_sections(audit)
    problems = []
    for name, text in documents.items():
        for key, number, line, paragraph in hits(name, text):
            if "superseded" not in paragraph.lower() and key not in allowed:
                problems.append(f"{name}:{number} ({key}): {line.strip()[:120]}")
    return problems


def test_the_old_evaluation_range_is_named_only_as_superseded() -> None:
    documents = {path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8") for path in DOCS
                 if path != AUDIT}
    problems = unmarked(documents, AUDIT.read_text(encoding="utf-8"))
    assert not problems, "the old evaluation range named without saying it is superseded:\n" + "\n".join(problems)


AUDIT_TABLE = """<!-- seeds-audit:begin -->
| where | figure | seeds | tuned? | model | status |
|---|---|---|---|---|---|
| docs/X.md §7 | a result | 100,000-100,019 | yes | old | superseded by the table below |
| docs/X.md "Intro" | a result | 100,000-100,019 | yes | old | stale |
<!-- seeds-audit:end -->"""


@pytest.mark.parametrize("text, expected", [
    ("## 7. Learning\n\nOn seeds 100,000-100,019 it earns +1k.\n", []),  # listed as superseded
    ("## Intro\n\nOn seeds 100,000-100,019 it earns +1k.\n", ["docs/X.md:3"]),  # listed, but stale
    ("## Intro\n\nOn seeds 100,000-100,019 (superseded: see SEEDS.md) it earns +1k.\n", []),
    ("## 8. Other\n\nrun it with\n`--seed 100000` here.\n", ["docs/X.md:4"]),
    ("## 8. Other\n\nOn evaluation seed 100,003 it books 8,190 visits.\n", ["docs/X.md:3"]),
    ("## 8. Other\n\n`--episodes` in [1, 100,000]; 100,000 HCPs; USD 100,000 a year.\n", []),  # not seeds
    ("## 8. Other\n\nOn the test seeds 900,000-900,019 it earns +1k.\n", []),
])
def test_the_rule_on_known_cases(text: str, expected: list[str]) -> None:
    problems = unmarked({"docs/X.md": text}, AUDIT_TABLE)
    assert [p.split(" ")[0] for p in problems] == expected


def test_sections_are_keyed_as_the_audit_names_them() -> None:
    assert section_key("docs/MODEL.md", ["oce-sim model", "2.14 Orchestrator view"]) == "docs/MODEL.md §2.14"
    assert section_key("docs/MODEL.md", ["4e. A learner's result"]) == "docs/MODEL.md §4e"
    assert section_key("docs/PERFORMANCE.md", ["7. Learning from scratch", "What stands in the way"]) == \
        "docs/PERFORMANCE.md §7"
    assert section_key("README.md", ["oce-sim", "Baselines"]) == 'README.md "Baselines"'
