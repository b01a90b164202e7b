"""Reports a strategist can read: one self-contained HTML page (figures embedded as PNG data URIs, inline CSS, no
script, nothing fetched) and its Markdown twin, written into a command's staging folder.

The page reads top to bottom: a plain-language summary, then sections (a table, figures with units and paired
CIs), the definitions of the KPIs shown (from the registry), the assumptions of the resolved scenario and a
reproducibility block (command, seeds, version, git commit, resolved configuration as YAML).  ``compare`` and
``whatif`` write one; a command of its own builds a :class:`Report` and calls :meth:`Report.write`::

    Report("default: what-if", ["Halving the field force adds ..."],
           sections=[("Results", markdown_table, [staging / "tornado.png"])],
           kpis_used=["profit_multi_period_usd"], assumptions=scenario_assumptions(config),
           repro=repro_info(command_line, config, seeds=[0, 1])).write(staging)

Markdown in summaries and sections is rendered as CommonMark with tables; raw HTML in it is escaped, so scenario
names and settings typed by a user are shown as text.
"""

from __future__ import annotations

import base64
import html
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import yaml

from oce_sim.storage.outputs import atomic_write_text
from oce_sim.studies.settling import (
    compare_verdict,
    seed_noise_coverage,
    verdict_sentence,
)
from oce_sim.world.kpis import KPIS, format_value, unit_label

Figure = Path | tuple[Path, str]  # a PNG, optionally with a caption
Section = tuple[str, str, Sequence[Figure]]  # heading, Markdown, figures

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d2430;line-height:1.5}
h1{font-size:1.6em;border-bottom:2px solid #2b5797;padding-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;
color:#2b5797}table{border-collapse:collapse;margin:1em 0;font-size:.88em}th,td{border:1px solid #c8ced8;
padding:.3em .6em;text-align:left;vertical-align:top}th{background:#eef2f8}td:not(:first-child){white-space:nowrap}
.summary{background:#f4f7fb;border-left:4px solid #2b5797;padding:.6em 1em}figure{margin:1.2em 0}
img{max-width:100%;height:auto;border:1px solid #e1e5ec}figcaption{font-size:.88em;color:#4a5568}
code{background:#f1f3f6;padding:0 .2em}pre{background:#f7f8fa;border:1px solid #e1e5ec;padding:.8em;overflow-x:auto;
font-size:.82em}details summary{cursor:pointer;color:#2b5797}.text td{white-space:normal}
.wide{overflow-x:auto;max-width:100%;margin:1em 0}.wide table{margin:0}
"""


def _markdown_html(text: str) -> str:
    """CommonMark with tables; each table in a box that scrolls sideways, so a wide one is never cut off."""
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return rendered.replace("<table>", '<div class="wide"><table>').replace("</table>", "</table></div>")


def _figure(item: Figure) -> tuple[Path, str]:
    return (Path(item[0]), item[1]) if isinstance(item, tuple) else (Path(item), "")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; ``|`` in cells is escaped."""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def kpi_definitions_markdown(names: Iterable[str]) -> str:
    """The registry's label, unit, direction and definition of each KPI (its raw name beneath the label)."""
    rows = [(f"**{KPIS[n].label}** (`{n}`)", unit_label(n).rsplit("(", 1)[-1].rstrip(")"), KPIS[n].better,
             KPIS[n].definition) for n in dict.fromkeys(names) if n in KPIS]
    return markdown_table(["KPI", "unit", "better", "definition"], rows)


def population_text(config: Any) -> str:
    """One territory's people: ``600 customers, 4 reps``."""
    p = config.population
    return f"{p.n_hcps:,} customers, {p.n_reps} rep{'s' if p.n_reps != 1 else ''}"


def territory_scale(config: Any, reference: Any = None) -> str:
    """What one result is of: ``per territory (600 customers, 4 reps)``; with a ``reference`` (a what-if's
    baseline) whose population differs, both."""
    own = population_text(config)
    if reference is None or population_text(reference) == own:
        return f"per territory ({own})"
    return f"per territory ({own} in the variant; {population_text(reference)} in the baseline)"


def difference_sentence(subject: str, metric: str, diff: float, low: float, high: float, reference: str,
                        n: int, scale: str = "") -> str:
    """``subject`` changes ``metric`` by ``diff`` [95% CI low, high] ``scale`` (per territory ...) against
    ``reference`` on n paired seeds, and whether that difference is clear at this number of seeds."""
    label = KPIS[metric].label if metric in KPIS else metric
    unit = " USD" if metric in KPIS and KPIS[metric].unit == "usd" else ""
    verb = "adds" if diff >= 0 else "loses"
    amount = format_value(metric, abs(diff))
    text = f"{subject} {verb} {amount}{unit} of {label}{' ' + scale if scale else ''} against {reference}"
    if diff == low == high == 0:  # the same episodes (today's own stage run by name): no CI to read
        return (f"{subject} makes no difference to {label}{' ' + scale if scale else ''} against {reference}: the "
                f"same result on all {n} paired seeds.")
    if np.isfinite(low) and np.isfinite(high):
        text += (f" [95% CI {format_value(metric, low, True)}, {format_value(metric, high, True)}] on {n} paired "
                 "seeds: ")
        text += ("a clear gain" if low > 0 else "a clear loss" if high < 0 else
                 "not distinguishable from no change at this number of seeds") + "."
    else:
        text += f" on {n} paired seed{'s' if n != 1 else ''} (too few for a confidence interval)."
    return text


def scenario_assumptions(config: Any) -> list[tuple[str, str]]:
    """What the numbers rest on: the market, its organisation, its economics and its history settings."""
    s, p, e, h = config.stage, config.population, config.economics, config.history
    out = [
        ("scenario", f"{config.name}: {config.description}"),
        ("today's stage (customer / sales / marketing / IT)", f"{s.customer} / {s.sales} / {s.marketing} / {s.it}"),
        ("territory", f"{p.n_hcps:,} healthcare professionals, {p.n_reps} field rep{'s' if p.n_reps != 1 else ''}"),
        ("horizon", f"{config.env.horizon_days} days, a decision every {config.env.decision_interval_days} days"),
    ]
    for name, info in type(e).model_fields.items():
        value = getattr(e, name)
        out.append((f"economics: {info.description or name.replace('_', ' ')}", f"{value:,g} ({name})"))
    start = ("near the steady state of its own stage's promotion" if h.start == "steady"
             else "from the configured customer state (a launch)")
    out.append(("market history", f"starts {start}; {h.burn_in_years:g} years of usual promotion before day 0"))
    return out


def git_commit(root: Path | None = None) -> str | None:
    """The checkout's commit (``+ uncommitted changes`` if any), or None outside a git checkout."""
    from oce_sim._checkout import REPO_ROOT

    root = root or REPO_ROOT
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + (" + uncommitted changes" if dirty else "")


def repro_info(command: str, config: Any, seeds: Sequence[int], extra: Mapping[str, Any] | None = None) -> dict:
    """The reproducibility block: the command, seeds, version, commit and the resolved configuration."""
    from oce_sim import __version__

    info: dict[str, Any] = {"command": command, "seeds": list(seeds), "oce-sim version": __version__,
                            "git commit": git_commit() or "not a git checkout"}
    info.update(extra or {})
    info["resolved configuration"] = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
    return info


@dataclass
class Report:
    title: str
    summary_paragraphs: list[str]
    sections: list[Section] = field(default_factory=list)
    kpis_used: Sequence[str] = ()
    assumptions: Sequence[tuple[str, ...]] = ()
    repro: Mapping[str, Any] = field(default_factory=dict)
    assumptions_header: Sequence[str] = ("assumption", "value")  # more value columns: one per sub-market

    # ---------------------------------------------------------------------------------------- parts
    def _kpis(self) -> str:
        return ("How each number is defined (the KPI registry; USD figures in thousands, k).\n\n"
                + kpi_definitions_markdown(self.kpis_used))

    def _assumptions(self) -> str:
        return markdown_table(self.assumptions_header, self.assumptions)

    def _repro_parts(self) -> tuple[str, str]:
        """(Markdown list of the scalar items, YAML of the resolved configuration)."""
        items = {k: v for k, v in self.repro.items() if k != "resolved configuration"}
        lines = []
        for key, value in items.items():
            shown = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            lines.append(f"- {key}: `{shown}`" if key in ("command", "git commit") else f"- {key}: {shown}")
        config = self.repro.get("resolved configuration")
        text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True) if config is not None else ""
        return "\n".join(lines), text

    # ---------------------------------------------------------------------------------------- renderings
    def markdown(self) -> str:
        parts = [f"# {self.title}", "## Summary", "\n\n".join(self.summary_paragraphs)]
        for heading, text, figures in self.sections:
            parts += [f"## {heading}", text] if text else [f"## {heading}"]
            for item in figures:
                path, caption = _figure(item)
                parts.append(f"![{path.stem}]({path.name})" + (f"\n\n*{caption}*" if caption else ""))
        if self.kpis_used:
            parts += ["## KPI definitions", self._kpis()]
        if self.assumptions:
            parts += ["## Assumptions", self._assumptions()]
        if self.repro:
            items, config = self._repro_parts()
            parts += ["## Reproduce", items]
            if config:
                parts.append("Resolved configuration:\n\n```yaml\n" + config + "```")
        return "\n\n".join(p.strip("\n") for p in parts) + "\n"

    def html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>", "<h2>Summary</h2>",
                f'<div class="summary">{_markdown_html(chr(10).join(p + chr(10) for p in self.summary_paragraphs))}</div>']
        for heading, text, figures in self.sections:
            body.append(f"<h2>{html.escape(heading)}</h2>")
            if text:
                body.append(_markdown_html(text))
            for item in figures:
                path, caption = _figure(item)
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                alt = html.escape(caption or path.stem.replace("_", " "), quote=True)
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
                            + (f"<figcaption>{html.escape(caption)}</figcaption>" if caption else "") + "</figure>")
        if self.kpis_used:
            body += ["<h2>KPI definitions</h2>", f'<div class="text">{_markdown_html(self._kpis())}</div>']
        if self.assumptions:
            body += ["<h2>Assumptions</h2>", f'<div class="text">{_markdown_html(self._assumptions())}</div>']
        if self.repro:
            items, config = self._repro_parts()
            body += ["<h2>Reproduce</h2>", _markdown_html(items)]
            if config:
                body.append(f"<details><summary>Resolved configuration (YAML)</summary><pre>{html.escape(config)}"
                            "</pre></details>")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                "<link rel=\"icon\" href=\"data:,\">"  # no favicon request
                f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head>\n<body>\n"
                + "\n".join(body) + "\n</body></html>\n")

    def write(self, staging_dir: Path) -> list[Path]:
        """``report.html`` (self-contained) and ``report.md`` (figures referenced beside it) in ``staging_dir``."""
        staging_dir = Path(staging_dir)
        paths = [staging_dir / "report.html", staging_dir / "report.md"]
        atomic_write_text(paths[0], self.html())
        atomic_write_text(paths[1], self.markdown())
        return paths


# -------------------------------------------------------------------------------------------- commands
RANK_KPI = "profit_multi_period_usd"
YEAR1_KPI = "profit_usd"
PROFIT_NOTE = ("Profit (year 1 + tail) is year-1 gross margin minus every promotion cost, field force included, plus "
               "the discounted value the customer state leaves at the horizon: the number to rank choices by.")


def _move_subject(name: str) -> str:
    """``sales=3,it=3`` -> "Moving sales and IT to stage 3"; a strategy name -> "The <name> strategy"; a column played
    with its stage's best plan (``sales=3 best@1000``, ``today best@1000``) says so."""
    base, best, budget = name.partition(" best@")
    if best:
        from oce_sim.agents import STAGE_STRATEGIES

        who = ("Today's organisation" if base == "today" else f"Stage {STAGE_STRATEGIES.index(base)} ({base}'s)"
               if base in STAGE_STRATEGIES else _move_subject(base))
        return f"{who}, played with the best stationary plan its stage allows (best@{budget}),"
    if "=" not in name:
        return f"The {name} strategy"
    moves = []
    for part in name.split(","):
        entity, _, stage = part.partition("=")
        entity = {"stage": "every entity", "it": "IT"}.get(entity.strip(), entity.strip())
        moves.append(f"{entity} to stage {stage.strip()}")
    return "Moving " + " and ".join(moves)


def _row(summary: Any, key: str, who: str, metric: str) -> Any:
    rows = summary[(summary[key] == who) & (summary.metric == metric)]
    return None if rows.empty else rows.iloc[0]


def _sentences(summary: Any, key: str, names: Sequence[str], reference: str, subject: Callable[[str], str],
               scale: Callable[[str], str]) -> list[str]:
    """One sentence per name: its profit difference to ``reference`` at its scale, year 1 alone in the same
    sentence (so that the scale covers it)."""
    out = []
    for name in names:
        row, year1 = _row(summary, key, name, RANK_KPI), _row(summary, key, name, YEAR1_KPI)
        if row is None or "diff_mean" not in row or not np.isfinite(row.diff_mean):
            continue
        text = difference_sentence(f"**{subject(name)}**", RANK_KPI, row.diff_mean, row.diff_low, row.diff_high,
                                   reference, int(row.n), scale(name))
        identical = row.diff_mean == row.diff_low == row.diff_high == 0  # nothing to add for year 1 either
        if year1 is not None and np.isfinite(year1.diff_mean) and not identical:
            ci = (f" [{format_value(YEAR1_KPI, year1.diff_low, True)}, {format_value(YEAR1_KPI, year1.diff_high, True)}]"
                  if np.isfinite(year1.diff_low) else "")
            text = text.removesuffix(".") + f"; year 1 alone: {format_value(YEAR1_KPI, year1.diff_mean, True)} USD{ci}."
        out.append(text)
    return out


ORACLES = ("oracle", "oracle_greedy")
UNRANKED = (*ORACLES, "random")  # references with foresight and controls: read results against them, do not adopt them


def unranked(strategies: Sequence[str], rank_by: str) -> list[str]:
    """The columns a compare does not rank: the references (oracles, random) and, of each stage or move valued twice,
    the value ``rank_by`` does not use (``best-plan``: the rules of thumb' column; ``rules-of-thumb``: the
    ``best@K`` column).  A strategy with no best plan beside it (no promotion, a trained model) is ranked either
    way."""
    planned = [s for s in strategies if " best@" in s]
    if rank_by == "best-plan":
        return [*UNRANKED, *(s.partition(" best@")[0] for s in planned)]
    return [*UNRANKED, *planned]


def _ranking_sentence(results: Any, summary: Any, baseline: str | None, scale: str,
                      exclude: Sequence[str] = UNRANKED, by: str = "") -> str | None:
    """Which strategy has the highest mean profit, and whether it is distinguishable from the runner-up and from
    the baseline at this number of seeds: "the best" only when it is.  ``by``: what the ranking plays (", with the
    best plan each stage allows")."""
    from oce_sim.studies.evaluation import leader

    top = leader(results, RANK_KPI, exclude=exclude)
    if top is None:
        return None
    named = f" ({_move_subject(top.best).lower().rstrip(',')})" if "=" in top.best else ""
    if top.same_as:
        named += f" (the same result on every seed as {', '.join(top.same_as)})"
    mean = f"{format_value(RANK_KPI, top.mean)} USD {scale}"
    if top.runner_up is None:
        return f"Ranked by profit (year 1 + tail){by}, **{top.best}**{named} is the only strategy ranked, with a mean of {mean}."

    def ci(low: float, high: float) -> str:
        return (f"[95% CI {format_value(RANK_KPI, low, True)}, {format_value(RANK_KPI, high, True)}]"
                if np.isfinite(low) else "(too few seeds for a CI)")

    # the scale is stated once, with the mean, in the same sentence
    gap = f"{format_value(RANK_KPI, top.diff_mean, True)} USD {ci(top.diff_low, top.diff_high)} on {top.n} paired seeds"
    if top.diff_low > 0:
        text = (f"Ranked by profit (year 1 + tail){by}, the best of these strategies is **{top.best}**{named}, with a mean "
                f"of {mean}, ahead of the runner-up {top.runner_up} by {gap}.")
    else:
        text = (f"Ranked by profit (year 1 + tail){by}, **{top.best}**{named} has the highest mean, {mean}, but it is "
                f"not distinguishable from the runner-up {top.runner_up} at this number of seeds (ahead by {gap}).")
    own = _row(summary, "strategy", top.best, RANK_KPI)
    if (baseline and top.best != baseline and top.runner_up != baseline and own is not None
            and "diff_low" in own and not own.diff_low > 0):
        text += (f" Nor is it distinguishable from {baseline} ({format_value(RANK_KPI, own.diff_mean, True)} USD "
                 f"{scale} {ci(own.diff_low, own.diff_high)}).")
    return text


def _kpi_rows_table(wide: Any) -> str:
    """A table with one row per KPI (its label and unit) and one column per strategy or variant."""
    header = ["KPI (unit; USD in thousands: k)", *map(str, wide.index)]
    return markdown_table(header, [(unit_label(m), *wide[m].astype(str)) for m in wide.columns])


def compare_report(config: Any, summary: Any, baseline: str | None, episodes: int, seed: int,
                   figures: Sequence[Path], command: str, results: Any = None,
                   drivers: Section | None = None, twice: Any = None, budget: int = 0,
                   rank_by: str = "rules-of-thumb") -> Report:
    """The report of ``oce-sim compare``: today against each move and strategy on paired seeds (``results``, the
    tidy rows, rank the strategies against the runner-up; ``drivers``, the section of ``oce_sim.studies.drivers``:
    what drives each difference, after the figures; ``twice``, ``oce_sim.studies.planner.twice_values``: each stage
    and move valued with the rules of thumb and with best@``budget``, ranked by ``rank_by``)."""
    from oce_sim.studies.planner import PLANNED_BY, twice_rows, twice_text

    from oce_sim.studies.evaluation import format_table

    strategies = list(dict.fromkeys(summary.strategy))
    others = [s for s in strategies if s != baseline]
    s = config.stage
    scale = territory_scale(config)
    reference = ("today (the organisation at the scenario's own stage: customer {}, sales {}, marketing {}, IT {})"
                 .format(s.customer, s.sales, s.marketing, s.it) if baseline == "today" else baseline)
    paragraphs = [f"{config.name}: {len(strategies)} strategies on the same {episodes} seeds (common random numbers), "
                  f"each compared with {reference}. Every figure is {scale}: the scenario's population. {PROFIT_NOTE}"]
    moves = [n for n in others if "=" in n and " best@" not in n]  # a move's best-plan column is not a move
    paragraphs += _sentences(summary, "strategy", moves + [n for n in others if n not in moves],
                             baseline or "", _move_subject, lambda _: scale)
    exclude = unranked(strategies, rank_by)
    by = f", with {PLANNED_BY[rank_by]}" if twice is not None else ""
    if twice is not None:
        paragraphs.append(twice_text(twice, budget, rank_by, scale))
    ranking = _ranking_sentence(results, summary, baseline, scale, exclude, by) if results is not None else None
    if ranking:
        settled = compare_verdict(results, RANK_KPI, exclude=exclude)
        paragraphs.append(ranking + (" " + verdict_sentence(settled, f" by profit (year 1 + tail){by}")
                                     if settled is not None and settled.runner_up is not None else ""))
    paragraphs.append(seed_noise_coverage(episodes))
    if set(ORACLES) & set(strategies):
        paragraphs.append("The oracle sees the ground truth and the future: it is a benchmark with foresight, not a "
                          "strategy to adopt and not an upper bound (a policy outside its base policies may beat it).")
    table = format_table(summary, baseline)
    captions = {
        "kpis_by_strategy": f"Each strategy's difference to {baseline} with its 95% confidence interval on paired "
                            f"seeds, {scale} (USD in thousands): a bar whose interval does not cross zero is a clear "
                            "difference.",
        "cumulative_profit": f"Cumulative year-1 profit over the days of the episode, {scale} (USD millions, mean over "
                             "seeds).",
        "channel_mix": "Delivered touches per decision epoch by channel (mean over seeds).",
    }
    sections: list[Section] = [] if twice is None else [
        ("Each stage and move, twice", twice_text(twice, budget, rank_by, scale) + "\n\n"
         + markdown_table(*twice_rows(twice, config.stage)), [])]
    sections += [
        ("Results", f"Mean over {episodes} paired seeds; in brackets the 95% CI of the difference to {baseline} "
                    "(paired seed noise only).\n\n"
                    + _kpi_rows_table(table), []),
        ("Figures", "", [(p, captions.get(p.stem, "")) for p in figures]),
    ]
    if drivers is not None:
        sections.append(drivers)
    return Report(f"{config.name}: today against moves and strategies", paragraphs, sections,
                  kpis_used=list(table.columns), assumptions=scenario_assumptions(config),
                  repro=repro_info(command, config, list(range(seed, seed + episodes)),
                                   {"baseline": baseline, "strategies": ", ".join(strategies),
                                    **({"ranked by": PLANNED_BY[rank_by], "best plan budget K": budget}
                                       if twice is not None else {})}))


MAX_SENTENCES = 8
ORGANISATION = {"today": "today's organisation (each entity at the variant's own stage)"}


def whatif_report(plan: Any, summary: Any, strategy: str, episodes: int, seed: int, figures: Sequence[Path],
                  command: str, settings: Sequence[str] = (), twice: Any = None, budget: int = 0,
                  rank_by: str = "rules-of-thumb") -> Report:
    """The report of ``oce-sim whatif``: every variant against the scenario as given, on paired seeds (``summary``
    and ``figures`` of the strategy ``rank_by`` ranks with; ``twice``, ``oce_sim.studies.whatif.twice_values``: each
    variant valued with the rules of thumb and with best@``budget``)."""
    from oce_sim.studies.planner import PLANNED_BY, twice_rows, twice_text
    from oce_sim.studies.whatif import BASELINE, HEADLINE_KPIS, format_summary

    base = plan.baseline
    labels = [v.label for v in plan.variants]
    played = ORGANISATION.get(strategy, f"the strategy {strategy}")
    if twice is not None and rank_by == "best-plan":
        played = f"the best stationary plan each variant's stage allows (best@{budget}; beside {played})"
    paragraphs = [f"{base.name}: {len(labels)} variant{'s' if len(labels) != 1 else ''} of the scenario, each run on "
                  f"the baseline's {episodes} seeds (the scenario as given, whose market history stays pinned) with "
                  f"{played}. Every figure is per territory of the "
                  f"variant's population (the baseline's: {population_text(base)}). "
                  f"{PROFIT_NOTE}"]
    scale = f"per territory of each variant's population (baseline: {population_text(base)})"
    twice_section: list[Section] = []
    if twice is not None:
        explained = twice_text(twice, budget, rank_by, scale, "Each variant", "the baseline")
        paragraphs.append(explained + f" The sentences, table and figures below are those of {PLANNED_BY[rank_by]}.")
        twice_section = [("Each variant, twice", explained + "\n\n" + markdown_table(
            *twice_rows(twice, None, "variant, against the baseline")), [])]
    configs = {v.label: v.config for v in plan.variants}
    shown = labels
    if len(labels) > MAX_SENTENCES:  # the best and the worst; every variant is in the table
        rows = summary[(summary.metric == RANK_KPI) & (summary.variant != BASELINE)].sort_values(
            "diff_mean", ascending=False)
        half = MAX_SENTENCES // 2
        shown = [*rows.variant[:half], *rows.variant[-half:]]
        paragraphs.append(f"The {half} best and {half} worst of the {len(labels)} variants by profit (year 1 + tail) "
                          "follow; the table below has them all.")
    paragraphs += _sentences(summary, "variant", shown, "the baseline", lambda label: "Setting " +
                             label.replace(",", ", "), lambda label: territory_scale(configs[label], base))
    paragraphs.append(seed_noise_coverage(episodes))
    wide = format_summary(summary)
    if len(wide) > 6:
        wide = wide[[m for m in HEADLINE_KPIS if m in wide.columns]]
    captions = {
        "tornado": "One factor at a time: the difference to the baseline at each factor's first and last value, with "
                   "95% confidence intervals on paired seeds (USD in thousands).",
        "frontier": "Profit (year 1 + tail) against total promotion cost per stage through its headcounts; the grey "
                    "line is the efficient frontier (no other point costs less and earns more).",
        "kpi_differences": "Each variant's difference to the baseline with its 95% confidence interval on paired "
                           "seeds, per territory (USD in thousands): a bar whose interval does not cross zero is a "
                           "clear difference.",
    }
    sections: list[Section] = [*twice_section,
        ("Results", f"The baseline's mean over {episodes} paired seeds; for each variant its difference to the "
                    "baseline with the 95% CI in brackets.\n\n" + _kpi_rows_table(wide), []),
    ]
    if figures:
        sections.append(("Figures", "", [(p, captions.get(p.stem, "")) for p in figures]))
    variants = markdown_table(["variant", "settings"], [(v.label, "; ".join(f"{k} = {s.text}" for k, s in
                                                                            v.settings.items()) or "as given")
                                                        for v in plan.variants])
    sections.append(("Variants", variants, []))
    assumptions = scenario_assumptions(base) + [("settings applied to every variant", "; ".join(settings) or "none")]
    return Report(f"{base.name}: what-if against the scenario as given", paragraphs, sections,
                  kpis_used=list(wide.columns), assumptions=assumptions,
                  repro=repro_info(command, base, list(range(seed, seed + episodes)), {
                      "strategy": strategy, **({"ranked by": PLANNED_BY[rank_by], "best plan budget K": budget}
                                               if twice is not None else {})}))


__all__ = ["Report", "compare_report", "whatif_report", "Section", "difference_sentence", "git_commit",
           "kpi_definitions_markdown", "markdown_table", "population_text", "repro_info", "scenario_assumptions",
           "territory_scale"]
