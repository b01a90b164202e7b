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
    .map(h => h.textContent), height: document.body.scrollHeight};
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


def render(page: Path, tmp_path: Path) -> tuple[dict, str]:
    """Load ``page`` (with the probe injected) in headless Chromium; (the probe's result, Chromium's stderr)."""
    probed = tmp_path / f"probed-{page.parent.name}.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    profile = tmp_path / f"profile-{page.parent.name}"
    command = [str(chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
               "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()]
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
        "compare": ["compare", scenario, "--episodes", 2, "--move", "sales=3", "--strategies", "intervention",
                    "--out", root / "compare", "--no-progress"],
        "whatif": ["whatif", scenario, "--grid", "population.n_reps=1,2", "--episodes", 2,
                   "--out", root / "whatif", "--no-progress"],
    }
    for name, args in runs.items():
        assert_clean_exit(runner.invoke(app, [str(a) for a in args]), 0, "report.html")
    return {name: root / name for name in runs}


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
    assert re.search(r"(adds|loses) [\d,]+k USD of profit \(year 1 \+ tail\) against .* \[95% CI [+-][\d,]+k, "
                     r"[+-][\d,]+k\] on 2 paired seeds", summary), summary
    # KPIs by their label and unit, with the registry's definition
    assert KPIS["profit_multi_period_usd"].definition in text
    assert "| profit (year 1 + tail) (USD) |" in text
    assert "economics: brand revenue of one Rx" in text and "market history" in text
    # reproducible: the command, the seeds, the version and the resolved configuration
    assert f"`oce-sim {command} " in text and "- seeds: 0, 1" in text and "oce-sim version" in text
    assert "Resolved configuration" in text and "horizon_days: 56" in text
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"report.html", "report.md"} <= set(manifest["files"])


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
    pngs = list(reports[command].glob("*.png"))
    assert len(result["images"]) == len(pngs) >= 1
    for image in result["images"]:
        assert image["complete"] and image["width"] > 0, image
    assert result["errors"] == [] and console_errors(stderr) == [], (result["errors"], console_errors(stderr))
    assert result["height"] > 1000  # laid out, not an empty page
    assert time.perf_counter() - started < 60


def test_the_browser_check_sees_a_broken_figure(tmp_path):
    """The probe is not vacuous: a figure that does not decode is reported (naturalWidth 0, an error event)."""
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    Report("broken", ["a figure that does not decode"], [("Figures", "", [broken])]).write(tmp_path)
    result, _ = render(tmp_path / "report.html", tmp_path)
    assert [image["width"] for image in result["images"]] == [0]
    assert result["errors"], result
