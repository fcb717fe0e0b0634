"""The HTML reports, opened in headless Chromium as a user sees them; the PNG figures; the
terminal table; progress on stderr.

The browser tests read the page after its scripts ran (DevTools protocol, cimc.view.browser)
and compare what it drew with figures computed here from the mapping itself: the report's
JSON, the map.place ops, and the schedule pass's own solve. Outside CI they are skipped where
no Chromium is installed; in CI (`make test` installs Debian's chromium) they must run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cimc.passes.schedule import SchedulePass
from conftest import ROOT, zoo
from onnx_builders import tiny_cnn

import cimc
from cimc.view import mapping_html, mapping_view
from cimc.view.browser import Browser, find_chromium
from cimc.view.figures import write_pngs

SHOTS = Path(os.environ.get("CIMC_SCREENSHOTS", ROOT / "out" / "screenshots"))


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; make test installs Debian's chromium package.")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with Browser(1400, 1000) as b:
        yield b


def _count(b: Browser, selector: str) -> int:
    return b.eval(f"document.querySelectorAll({json.dumps(selector)}).length")


def _pieces(module) -> dict:
    """Scheduled pieces per K on crossbars and digital units, from the schedule pass itself."""
    sp = SchedulePass(inferences=module.get("stream_inferences"))
    _, results, _ = sp.solve(module)
    return {k: sum(1 for span in [results[k]] for (_, _, placed) in span.values() for res, _ in placed
                   if not (isinstance(res, tuple) and res[0] == "unit")) for k in results}


@pytest.fixture(scope="module")
def resnet20_page(tmp_path_factory, resnet20_path):
    r = cimc.compile(resnet20_path, "rram-256")
    path = tmp_path_factory.mktemp("html") / "resnet20.html"
    path.write_text(mapping_html(r.module, r.report), encoding="utf-8")
    return r, path


# ---- the mapping page ------------------------------------------------------------------------

def test_mapping_page_draws_what_the_mapping_holds(browser, resnet20_page):
    r, path = resnet20_page
    took = browser.open(path)
    rep = json.loads(r.to_json())
    # the summary figures are the JSON report's
    shown = browser.eval("Object.fromEntries([...document.querySelectorAll('#summary-figures tr[data-key]')]"
                         ".map(tr => [tr.dataset.key, +tr.dataset.value]))")
    for key in ("crossbars_used", "utilization", "latency_ns", "throughput_ips", "period_ns", "energy_nj", "area_mm2",
                "edap", "tiles_used"):
        assert shown[key] == pytest.approx(rep[key], rel=1e-12), key
    text = browser.eval("document.querySelector('#summary-figures tr[data-key=latency_ns] td.value').textContent")
    assert text == f"{rep['latency_ns'] / 1e3:.4g} µs"
    assert browser.eval("document.getElementById('period-set-by').dataset.by") == rep["period_set_by"]
    # one row per layer, the bottleneck marked
    assert _count(browser, "#layers-table tbody tr") == len(rep["layers"])
    marked = browser.eval("[...document.querySelectorAll('#layers-table tr.bottleneck td.name')].map(td => td.title)")
    assert marked == [rep["bottleneck"]] and rep["bottleneck"]
    # one element per used crossbar and one per block
    places = [op for op in r.module.ops if op.kind == "map.place"]
    assert _count(browser, "#xbar-map rect.xbar") == len({(p["tile"], p["xbar"]) for p in places}) == rep["crossbars_used"]
    assert _count(browser, "#xbar-map rect.blk") == len(places)
    # one bar per scheduled piece: all units on one page
    browser.eval("(() => { const s = document.getElementById('gantt-rows'); s.value = 'all';"
                 " s.dispatchEvent(new Event('change')); })()")
    pieces = _pieces(r.module)
    assert _count(browser, "#gantt-one rect.bar") == pieces[1]
    assert _count(browser, "#gantt-stream rect.bar") == pieces[rep["stream"]["stream_inferences"]]
    # breakdowns: a bar per non-zero component
    assert _count(browser, "#energy-components rect") == sum(1 for v in rep["energy_breakdown_nj"].values() if v > 0)
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(SHOTS / "resnet20_rram-256.png")
    assert (SHOTS / "resnet20_rram-256.png").stat().st_size > 10_000
    print(f"resnet20 report drawn in {took:.2f} s")


def test_clicking_a_layer_highlights_its_blocks(browser, resnet20_page):
    r, path = resnet20_page
    browser.open(path)
    layer = max(r.report.layers, key=lambda x: x.crossbars)
    i = [x.name for x in r.report.layers].index(layer.name)
    browser.eval(f"document.querySelector('#layers-table tr[data-row=\"{i}\"]').click()")
    blocks = sum(1 for op in r.module.ops if op.kind == "map.place"
                 and r.module.by_name()[op.operands[0]].operands[0] == layer.name)
    assert _count(browser, "#xbar-map rect.blk.on") == blocks > 0
    assert browser.eval("document.getElementById('xbar-map').classList.contains('hl')")
    browser.eval(f"document.querySelector('#layers-table tr[data-row=\"{i}\"]').click()")  # again: off
    assert _count(browser, "#xbar-map rect.blk.on") == 0


def test_sorting_and_filtering_the_layer_table(browser, resnet20_page):
    r, path = resnet20_page
    browser.open(path)
    names = [x.name for x in r.report.layers]
    # "energy" sorts descending first
    browser.eval("[...document.querySelectorAll('#layers-table th')].find(th => th.textContent === 'energy').click()")
    got = browser.eval("[...document.querySelectorAll('#layers-table tbody tr td.name')].map(td => td.title)")
    assert got == [x.name for x in sorted(r.report.layers, key=lambda x: -x.energy_nj)]
    browser.eval("(() => { const f = document.querySelector('#layers input[type=search]'); f.value = 'relu';"
                 " f.dispatchEvent(new Event('input')); })()")
    visible = browser.eval("[...document.querySelectorAll('#layers-table tbody tr')].filter(tr => tr.style.display"
                           " !== 'none').length")
    assert visible == sum(1 for x in r.report.layers if "relu" in (x.name + " " + x.op + " " + x.fn).lower()) > 0
    assert len(names) > visible


def test_hostile_names_stay_text(browser, tmp_path):
    m = tiny_cnn()
    evil = '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    m.graph.name = evil
    m.graph.node[0].name = evil
    r = cimc.compile(m, "rram-256", name=evil[:60])
    # the frontend makes names printable; the page must hold whatever a report says, as text
    layers = tuple(dataclasses.replace(x, name=evil + x.name) if i == 0 else x for i, x in enumerate(r.report.layers))
    report = dataclasses.replace(r.report, model=evil, layers=layers, warnings=(evil,))
    page = mapping_html(r.module, dataclasses.replace(report, bottleneck=layers[0].name))
    assert page.count("<script") == 2  # the data and the page's own script, nothing else
    path = tmp_path / "evil.html"
    path.write_text(page, encoding="utf-8")
    browser.open(path)
    assert browser.eval("window.pwned === undefined")
    assert browser.eval("document.querySelectorAll('img').length") == 0
    assert browser.eval("document.getElementById('title').textContent") == f"{evil} on rram-256"
    assert browser.eval("document.querySelector('#layers-table tbody td.name').title").startswith(evil)


def test_unplaced_and_unscheduled_mappings_say_so(browser, tmp_path, resnet20_path):
    r = cimc.compile(resnet20_path, "rram-256", "fast")
    path = tmp_path / "fast.html"
    path.write_text(mapping_html(r.module, r.report), encoding="utf-8")
    browser.open(path)
    assert "does not place" in browser.eval("document.getElementById('map-none').textContent")
    assert browser.eval("document.getElementById('schedule-none') !== null")
    assert _count(browser, "#layers-table tbody tr") == len(r.report.layers)


@pytest.mark.slow
def test_a_report_of_thousands_of_crossbars_over_chips(browser, tmp_path):
    """ResNet-50 on 256x64 crossbars, one block per crossbar: 12,736 crossbars on 4 chips. The
    time it takes to draw is a benchmark figure (benchmarks/report_render.py), not asserted."""
    r = cimc.compile(zoo("resnet50"), "rram-256", "baseline", xbar_cols=64)
    assert r.report.crossbars_used > 4000 and r.report.chips_used > 1
    path = tmp_path / "resnet50.html"
    path.write_text(mapping_html(r.module, r.report), encoding="utf-8")
    took = browser.open(path, ready_timeout_s=180)
    assert _count(browser, "#xbar-map rect.xbar") == r.report.crossbars_used
    assert _count(browser, "#xbar-map rect.blk") == sum(1 for op in r.module.ops if op.kind == "map.place")
    assert _count(browser, "#chip-graph rect.chip") == r.report.chips_used
    view = mapping_view(r.module, r.report)
    assert _count(browser, "#chip-graph path.link") == len(view["chips"]["links"]) > 0
    print(f"{r.report.crossbars_used} crossbars drawn in {took:.2f} s")


# ---- the search page -------------------------------------------------------------------------

@pytest.mark.slow
def test_search_page_front_trials_and_point_reports(browser, tmp_path):
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "cimc", "search", str(ROOT / "examples/search/quick.toml"),
                          "--trials", "8", "--seed", "0", "--out", str(out), "--no-progress"],
                         check=False, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    doc = json.loads((out / "pareto.json").read_text())
    browser.open(out / "index.html")
    assert _count(browser, "#front-plot circle.front") == len(doc["points"]) > 0
    assert _count(browser, "#trials-table tbody tr") == doc["trials"]
    links = browser.eval("[...document.querySelectorAll('#front-plot a')].map(a => a.getAttribute('href'))")
    assert len(links) == sum(1 for p in doc["points"] if p["report_path"])
    assert all((out / h).is_file() for h in links)
    hv = browser.eval("document.getElementById('hv-plot').querySelector('polyline').getAttribute('points')")
    assert len(hv.split()) == doc["completed"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(SHOTS / "search_quick.png")
    browser.open(out / links[0])  # a point's own mapping report draws
    assert _count(browser, "#layers-table tbody tr") > 0


# ---- files, PNGs and the command line --------------------------------------------------------

def test_page_is_self_contained_and_deterministic(resnet20_page):
    r, path = resnet20_page
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)  # nothing from the network
    assert "@import" not in page and "url(" not in page
    assert mapping_html(r.module, r.report) == mapping_html(r.module, r.report)


def test_pngs(tmp_path, resnet20_page):
    r, _ = resnet20_page
    written = write_pngs(mapping_view(r.module, r.report), tmp_path / "figs")
    assert [p.name for p in written] == ["busy.png", "crossbar_map.png", "schedule.png", "breakdowns.png"]
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 20_000


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cimc", *args], check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_cli_html_png_and_refusals(tmp_path, mobilenet_path):
    html, figs = tmp_path / "r.html", tmp_path / "figs"
    res = _cli("compile", str(mobilenet_path), "--html", str(html), "--png", str(figs))
    assert res.returncode == 0, res.stderr
    assert html.read_text().startswith("<!doctype html>") and (figs / "crossbar_map.png").is_file()
    assert "\033[" not in res.stdout  # not a terminal: no colour
    assert res.stderr == ""  # and no progress
    # the HTML never replaces the model; --png never replaces a file
    before = mobilenet_path.read_bytes()
    res = _cli("compile", str(mobilenet_path), "--html", str(mobilenet_path))
    assert res.returncode == 1 and "input of this command" in res.stderr and "Traceback" not in res.stderr
    assert mobilenet_path.read_bytes() == before
    f = tmp_path / "file"
    f.write_text("keep")
    res = _cli("compile", str(mobilenet_path), "--png", str(f))
    assert res.returncode == 1 and "not a folder" in res.stderr and f.read_text() == "keep"
    mapping = tmp_path / "m.cim"
    assert _cli("compile", str(mobilenet_path), "-o", str(mapping)).returncode == 0
    res = _cli("report", str(mapping), "--html", str(tmp_path / "again.html"), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["schema"] == "cimc.report/1"
    assert (tmp_path / "again.html").is_file()


def test_progress_only_when_asked_or_watched(mobilenet_path):
    res = _cli("compile", str(mobilenet_path), "--progress")
    assert res.returncode == 0
    lines = res.stderr.splitlines()
    assert "cimc: importing the model" in lines
    assert [ln.split()[-1] for ln in lines if " pass " in ln] == ["lower", "partition", "duplicate", "pack",
                                                                 "schedule", "cost"]
    assert _cli("compile", str(mobilenet_path)).stderr == ""


def test_progress_changes_nothing_it_watches(mobilenet_path):
    """The CP-SAT solution callback only watches: the same mapping text with and without it."""
    import io

    from cimc import progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    plain = cimc.compile(mobilenet_path, "rram-256").text()
    stream = Tty()
    with progress.showing(True, stream):
        watched = cimc.compile(mobilenet_path, "rram-256").text()
    assert watched == plain
    assert "CP-SAT: solution" in stream.getvalue() and "\r\033[K" in stream.getvalue()


def test_terminal_table(resnet20_page):
    r, _ = resnet20_page
    plain = r.report.table()
    assert "\033[" not in plain
    marked = [ln for ln in plain.splitlines() if ln.startswith("* ")]
    assert len(marked) == 1 and r.report.bottleneck in marked[0]
    coloured = r.report.table(color=True)
    assert "\033[1;33m* " in coloured and re.sub(r"\033\[[0-9;]*m", "", coloured) == plain
    from cimc.report import middle

    name = "stages.12.body.1.0.Conv_with_a_very_long_name_indeed.weight"
    short = middle(name, 28)
    assert len(short) == 28 and short.startswith(name[:13]) and short.endswith(name[-14:]) and "\u2026" in short
    assert middle("short", 28) == "short"


def test_no_color_env(tmp_path, mobilenet_path):
    """NO_COLOR and --no-color are honoured even on a terminal (script(1) gives one)."""
    if not Path("/usr/bin/script").exists():
        pytest.skip("script(1) not installed")
    cmd = f"{sys.executable} -m cimc compile {mobilenet_path} --no-progress"
    tty = subprocess.run(["script", "-qec", cmd, "/dev/null"], check=False, capture_output=True, text=True, timeout=300)
    assert "\033[1m" in tty.stdout  # a terminal: colour
    for extra, env in (("", {"NO_COLOR": "1"}), (" --no-color", {})):
        out = subprocess.run(["script", "-qec", cmd + extra, "/dev/null"], check=False, capture_output=True, text=True,
                             timeout=300, env={**os.environ, **env})
        assert out.returncode == 0 and "\033[1m" not in out.stdout


def test_view_data_matches_the_mapping(resnet20_page):
    r, _ = resnet20_page
    v = mapping_view(r.module, r.report)
    places = {op.operands[0]: op for op in r.module.ops if op.kind == "map.place"}
    assert len(v["blocks"]) == len(places) and v["unplaced_blocks"] == 0
    for b in v["blocks"]:  # each block inside its crossbar
        x = v["crossbars"][b["x"]]
        assert (x["tile"], x["xbar"]) == (places[b["name"]]["tile"], places[b["name"]]["xbar"])
        assert b["at"][0] + b["h"] <= x["rows"] and b["at"][1] + b["w"] <= x["cols"]
    # each crossbar's load is the sum of its blocks' loads, and none exceeds the period
    load = {}
    for b in v["blocks"]:
        load[b["x"]] = load.get(b["x"], 0.0) + b["load_ns"]
    for i, x in enumerate(v["crossbars"]):
        assert x["load_ns"] == pytest.approx(load[i], abs=0.05)
        assert x["load_ns"] <= r.report.period_ns * (1 + 1e-9)
    # the schedule's one-inference pieces end by the mapping's latency
    one = v["schedule"]["one"]
    assert max(one[5::6]) <= r.report.latency_ns + 0.01
    assert len(one) // 6 == _pieces(r.module)[1]
