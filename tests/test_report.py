"""Reports a strategist can read: ``compare`` and ``whatif`` write a self-contained ``report.html`` and its Markdown
twin, and a real headless Chromium renders the page with every figure and no console error.

Chromium comes from Debian's packages (``.ci/install_chromium.sh``, run by ``.ci/run``); these tests skip only where
it is absent and cannot be installed, never in CI (``CI`` set: they fail instead).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oce_sim.cli import app
from oce_sim.studies.settling import SEED_NOISE_ONLY, seed_noise_coverage
from oce_sim.world.kpis import KPIS
from oce_sim.studies.report import Report, kpi_definitions_markdown

from test_cli import assert_clean_exit

CHROMIUM = Path("/usr/bin/chromium")
HEADINGS = ("Summary", "Results", "Figures", "KPI definitions", "Assumptions", "Reproduce")

# Injected before the page's own content: console errors, failed loads and script errors are recorded; after the
# load event every <img>'s state is written into the DOM, which --dump-dom prints.
PROBE = """<script>
window.__errors = [];
for (const level of ["error", "warn"]) {
  const original = console[level];
  console[level] = (...args) => { window.__errors.push(level + ": " + args.join(" ")); original.apply(console, args); };
}
window.addEventListener("error", e => window.__errors.push("load/script error: " +
  (e.message || (e.target && (e.target.src || e.target.href)) || "?")), true);
window.addEventListener("unhandledrejection", e => window.__errors.push("rejection: " + e.reason));
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth, alt: i.alt}));
  const result = {images, errors: window.__errors, title: document.title, h2: [...document.querySelectorAll("h2")]
    .map(h => h.textContent), height: document.body.scrollHeight, width: document.documentElement.scrollWidth,
    tables: [...document.querySelectorAll("table")].map(t => {
      const box = t.parentElement;
      return {boxed: box.className === "wide", scroll: box.scrollWidth, client: box.clientWidth,
              overflow: getComputedStyle(box).overflowX};
    })};
  const out = document.createElement("pre");
  out.id = "__probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


def chromium() -> Path:
    """Chromium's path; skip (fail in CI) where it is absent and cannot be installed."""
    if not CHROMIUM.exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, timeout=900)
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/install_chromium.sh should have installed it")
        pytest.skip("Chromium is not installed and cannot be installed here (apt-get install chromium)")
    return CHROMIUM


WINDOW_WIDTH = 1280  # the width at which wide tables were cut off (issue 24)


def render(page: Path, tmp_path: Path) -> tuple[dict, str]:
    """Load ``page`` (with the probe injected) in headless Chromium, a window ``WINDOW_WIDTH`` px wide; (the
    probe's result, Chromium's stderr)."""
    probed = tmp_path / f"probed-{page.parent.name}.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    profile = tmp_path / f"profile-{page.parent.name}"
    command = [str(chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
               f"--window-size={WINDOW_WIDTH},900", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r'<pre id="__probe">(.*?)</pre>', done.stdout, re.S)
    assert match, f"the page did not finish loading:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
    import html

    return json.loads(html.unescape(match.group(1))), done.stderr


def console_errors(stderr: str) -> list[str]:
    """Console messages of the page at error level that Chromium logged (``CONSOLE`` lines)."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line and ("ERROR" in line or "error" in line)]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """A compare report and a whatif report on ``small`` cut to 8 weeks, 2 paired episodes."""
    root = tmp_path_factory.mktemp("reports")
    scenario = root / "short.yaml"
    scenario.write_text("extends: small\nenv: {horizon_days: 56}\n")
    runner = CliRunner()
    runs = {
        "compare": ["compare", scenario, "--episodes", 2, "--best-plan", 0, "--move", "sales=3", "--strategies", "intervention",
                    "--out", root / "compare", "--no-progress", "--drivers"],
        "whatif": ["whatif", scenario, "--grid", "population.n_reps=1,2", "--episodes", 2, "--best-plan", 0,
                   "--out", root / "whatif", "--no-progress"],
    }
    for name, args in runs.items():
        # the console title says what its intervals cover (issue 24, item 2)
        assert_clean_exit(runner.invoke(app, [str(a) for a in args]), 0, "report.html", SEED_NOISE_ONLY)
    return {name: root / name for name in runs}


@pytest.mark.parametrize("command", ["compare", "whatif"])
def test_the_report_says_what_its_intervals_cover(reports, command):
    text = (reports[command] / "report.md").read_text(encoding="utf-8")
    summary = text.split("## Summary", 1)[1].split("## Results", 1)[0]
    assert seed_noise_coverage(2) in summary and text.count(seed_noise_coverage(2)) == 1
    if command == "compare":  # two seeds never settle a ranking
        assert "by profit (year 1 + tail) is **not settled**: only 2 paired seeds" in summary


@pytest.mark.parametrize("command", ["compare", "whatif"])
def test_report_is_self_contained_and_in_reading_order(reports, command):
    folder = reports[command]
    page = (folder / "report.html").read_text(encoding="utf-8")
    text = (folder / "report.md").read_text(encoding="utf-8")
    # nothing fetched: every image is a data URI, no script, no external link
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)
    assert "<script" not in page and "http://" not in page and "https://" not in page
    images = re.findall(r'<img src="data:image/png;base64,', page)
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert len(images) == len(pngs) >= 1
    for name in pngs:  # the Markdown twin references the figures beside it
        assert f"]({name})" in text
    for rendering in (page, text):
        positions = [rendering.find(h) for h in HEADINGS]
        assert -1 not in positions and positions == sorted(positions), (command, positions)
    summary = text.split("## Summary", 1)[1].split("## Results", 1)[0]
    assert re.search(r"(adds|loses) [\d,]+k USD of profit \(year 1 \+ tail\) per territory \(120 customers, [^)]*\) "
                     r"against .* \[95% CI [+-][\d,]+k, [+-][\d,]+k\] on 2 paired seeds", summary), summary
    assert_every_amount_has_its_scale(summary, "per territory (")
    # KPIs by their label and unit, with the registry's definition
    assert KPIS["profit_multi_period_usd"].definition in text
    assert "| profit (year 1 + tail) (USD) |" in text
    assert "economics: brand revenue of one Rx" in text and "market history" in text
    # reproducible: the command, the seeds, the version and the resolved configuration
    assert f"`oce-sim {command} " in text and "- seeds: 0, 1" in text and "oce-sim version" in text
    assert "Resolved configuration" in text and "horizon_days: 56" in text
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"report.html", "report.md"} <= set(manifest["files"])


def assert_every_amount_has_its_scale(summary: str, scale: str) -> None:
    """Each sentence of the summary that states an amount of USD says what it is of (issue 24)."""
    sentences = [s for paragraph in summary.split("\n\n") for s in re.split(r"(?<=[.!?])\s+(?=[A-Z*])", paragraph)]
    amounts = [s for s in sentences if re.search(r"[\d,]+k USD|USD thousands", s)]
    assert amounts, summary
    for sentence in amounts:
        assert scale in sentence, sentence


def test_report_escapes_what_a_user_typed(tmp_path):
    figure = tmp_path / "f.png"
    figure.write_bytes(b"\x89PNG\r\n\x1a\n")
    Report("<b>title</b>", ["a <script>alert(1)</script> summary"], [("h", "| a |\n|---|\n| <img src=x> |",
                                                                         [figure])],
           kpis_used=["reach"], repro={"command": "oce-sim x"}).write(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page and "<img src=x>" not in page and "<b>title</b>" not in page
    assert "&lt;script&gt;" in page and "| **reach** (`reach`) | share |" in kpi_definitions_markdown(["reach"])


@pytest.mark.parametrize("command", ["compare", "whatif"])
def test_report_renders_in_headless_chromium(reports, command, tmp_path):
    started = time.perf_counter()
    result, stderr = render(reports[command] / "report.html", tmp_path)
    assert result["title"].startswith("short: ")
    assert result["h2"][:2] == ["Summary", "Results"] and "Reproduce" in result["h2"]
    if command == "compare":  # with --drivers: the table and a waterfall per strategy
        assert "What drives each difference" in result["h2"]
        assert {"drivers_sales-3.png", "drivers_intervention.png"} <= {p.name for p in reports[command].glob("*.png")}
    pngs = list(reports[command].glob("*.png"))
    assert len(result["images"]) == len(pngs) >= 1
    for image in result["images"]:
        assert image["complete"] and image["width"] > 0, image
    assert result["errors"] == [] and console_errors(stderr) == [], (result["errors"], console_errors(stderr))
    assert result["height"] > 1000  # laid out, not an empty page
    assert_wide_tables_scroll(result)
    assert time.perf_counter() - started < 60


def assert_wide_tables_scroll(result: dict) -> list[dict]:
    """Every table sits in a box that scrolls sideways, and the page itself is no wider than the window: a wide
    table is scrolled, never cut off.  Returns the tables that do scroll."""
    assert result["tables"] and all(t["boxed"] and t["overflow"] == "auto" for t in result["tables"]), result["tables"]
    assert result["width"] <= WINDOW_WIDTH, result["width"]
    return [t for t in result["tables"] if t["scroll"] > t["client"]]


def test_a_wide_table_scrolls_instead_of_being_cut_off(tmp_path):
    header = [f"column {i} with a long heading" for i in range(30)]
    table = "| " + " | ".join(header) + " |\n|" + "---|" * 30 + "\n| " + " | ".join(["+1,234k [-5k, +6k]"] * 30) + " |"
    Report("wide", ["a very wide table"], [("Results", table, [])], assumptions=[("a", "b", "c")],
           assumptions_header=("assumption", "one", "two")).write(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert page.count("<table>") == page.count('<div class="wide"><table>') == 2
    result, _ = render(tmp_path / "report.html", tmp_path)
    scrolled = assert_wide_tables_scroll(result)
    assert len(scrolled) == 1 and scrolled[0]["scroll"] > 2 * scrolled[0]["client"]
    assert "| assumption | one | two |" in (tmp_path / "report.md").read_text()


def test_the_browser_check_sees_a_broken_figure(tmp_path):
    """The probe is not vacuous: a figure that does not decode is reported (naturalWidth 0, an error event)."""
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    Report("broken", ["a figure that does not decode"], [("Figures", "", [broken])]).write(tmp_path)
    result, _ = render(tmp_path / "report.html", tmp_path)
    assert [image["width"] for image in result["images"]] == [0]
    assert result["errors"], result


# ------------------------------------------------------------------------------------ what a summary may claim
def _compare_summary(values: dict[str, list[float]]) -> str:
    """The summary paragraphs of a compare report over the given profits per strategy and seed."""
    import pandas as pd

    from oce_sim.config import load_scenario
    from oce_sim.studies.evaluation import RESULT_COLUMNS, paired_summary
    from oce_sim.studies.report import compare_report

    rows = [dict(scenario="small", stage="1-insight", strategy=strategy, seed=seed, episode=seed, metric=metric,
                 value=v * (0.25 if metric == "profit_usd" else 1.0))
            for strategy, per_seed in values.items() for seed, v in enumerate(per_seed)
            for metric in ("profit_multi_period_usd", "profit_usd")]
    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    config = load_scenario("small")
    summary = paired_summary(results, baseline="today", metrics=["profit_multi_period_usd", "profit_usd"])
    report = compare_report(config, summary, "today", 3, 0, [], "oce-sim compare small", results)
    return "\n\n".join(report.summary_paragraphs)


def test_the_summary_calls_a_strategy_the_best_only_when_its_lead_is_clear():
    clear = _compare_summary({"today": [100e3, 110e3, 120e3], "sales=3": [150e3, 161e3, 169e3],
                              "insight": [101e3, 108e3, 121e3]})
    assert ("the best of these strategies is **sales=3** (moving sales to stage 3), with a mean of 160k USD per "
            "territory (120 customers, 1 rep), ahead of the runner-up today by +50k USD [95% CI +48k, +52k]") in clear
    assert "Nor is it" not in clear  # the runner-up is today
    close = _compare_summary({"today": [100e3, 110e3, 120e3], "sales=3": [90e3, 140e3, 115e3],
                              "insight": [105e3, 112e3, 123e3]})
    assert "the best of" not in close
    assert ("**sales=3** (moving sales to stage 3) has the highest mean, 115k USD per territory (120 customers, 1 "
            "rep), but it is not distinguishable from the runner-up insight at this number of seeds") in close
    assert "Nor is it distinguishable from today (+5k USD per territory (120 customers, 1 rep) [95% CI" in close
    assert_every_amount_has_its_scale(close, "per territory (120 customers, 1 rep)")


def test_a_strategy_that_is_todays_organisation_makes_no_difference_rather_than_a_zero_ci():
    text = _compare_summary({"today": [100e3, 110e3, 120e3], "insight": [100e3, 110e3, 120e3],
                             "stage=2": [130e3, 150e3, 160e3], "involvement": [130e3, 150e3, 160e3]})
    assert ("**The insight strategy** makes no difference to profit (year 1 + tail) per territory (120 customers, 1 "
            "rep) against today: the same result on all 3 paired seeds.") in text
    assert ("**stage=2** (moving every entity to stage 2) (the same result on every seed as involvement), with a mean "
            "of 147k USD") in text and "ahead of the runner-up today by +37k USD" in text


def test_the_summary_mentions_the_oracle_only_when_it_ran():
    without = _compare_summary({"today": [100e3, 110e3, 120e3], "insight": [101e3, 108e3, 121e3]})
    assert "oracle" not in without.lower()
    with_oracle = _compare_summary({"today": [100e3, 110e3, 120e3], "oracle": [200e3, 210e3, 220e3]})
    assert "The oracle sees the ground truth" in with_oracle
    assert "the best of these strategies is **oracle**" not in with_oracle  # a reference with foresight, not a strategy to adopt
