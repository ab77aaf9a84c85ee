"""The HTML report: sections, one embedded plotly.js, readings computed from the data; in headless
Chromium (slow) it renders with no console errors, also from a real smoke run of the training core.

    python -m pytest tests/test_analysis_report.py -q                 # fast tests
    python -m pytest tests/test_analysis_report.py -q -m slow         # Chromium + real smoke run
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pandas as pd
import pytest

from analysis.load import load
from analysis.report import KNOWN, build_report, main
from analysis.synthetic import EXPERIMENTS, Plant, write_synthetic

TINY = dict(seeds=[0, 1], epochs=12)


@pytest.fixture(scope="module")
def all_roots(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("all"))
    write_synthetic(base, list(EXPERIMENTS), Plant(n_diverged=1, seed=1), **TINY)
    return [os.path.join(base, e) for e in EXPERIMENTS]


@pytest.fixture(scope="module")
def page(all_roots):
    runs, epochs = load(all_roots)
    return build_report(runs, epochs, n_boot=100, source="synthetic")


def _plotlyjs_head():
    from plotly.offline import get_plotlyjs
    return get_plotlyjs()[:200]


def test_one_section_per_experiment_plus_clocks_and_linear_model(page):
    ids = re.findall(r"<section id='([^']+)'>", page)
    assert ids == ["paper_check"] + list(KNOWN) + ["clocks", "linear_model"]
    assert page.count("<p class='reading'>") == len(ids)
    for title in ("Table 4", "Table 5", "Table 6", "Table 7", "Tables 2-3", "Figure 1a", "Figure 2", "Figure 3a",
                  "Figure 4", "Figure 5", "Figure 8", "Figure 9", "Collapse score", "Forgetting clocks"):
        assert title in page, title


def test_plotlyjs_embedded_once_and_every_figure_uses_it(page):
    assert page.count(_plotlyjs_head()) == 1
    assert not [t for t in re.findall(r"<script\b[^>]*>", page) if "src=" in t]  # nothing loaded from outside
    n_fig = page.count("<div class='fig'>")
    assert n_fig >= 20 and page.count("Plotly.newPlot(") == n_fig


def test_reading_states_the_planted_spreads(tmp_path):
    root = str(tmp_path / "mg")
    write_synthetic(root, "main_grid", Plant(mem="paper", noise=0.0, seed_noise=0.0), seeds=[0, 1],
                    sigmas=[0.1, 1.3, 2.5], epochs=10)
    runs, epochs = load(root)
    html = build_report(runs, epochs, n_boot=50, linear_model=False)
    text = re.search(r"<section id='main_grid'><h2>[^<]*</h2><p class='reading'>(.*?)</p>", html).group(1)
    assert "At b=128, SGD keeps 26.5 pp of memory" in text
    assert "Adam 4.3 pp" in text and "AdamW 4.7 pp" in text and "Muon 4.0 pp" in text
    assert "SGD&#x27;s spread runs from 22.8 pp (b=16) to 25.7 pp (b=256)" in text


def test_unknown_experiment_gets_a_generic_section(all_roots):
    runs, epochs = load(all_roots[0])
    runs = runs[runs["optimizer"] == "sgd"].assign(experiment="my_sweep")
    epochs = epochs[epochs["run"].isin(runs["run"])]
    html = build_report(runs, epochs, n_boot=20, linear_model=False)
    assert re.findall(r"<section id='([^']+)'>", html) == ["paper_check", "my_sweep", "clocks"]
    assert "Experiment my_sweep" in html and "Largest spread" in html


def test_cli_writes_one_file(all_roots, tmp_path):
    out = str(tmp_path / "r.html")
    main([all_roots[2], "-o", out, "--n-boot", "20", "--no-linear-model"])
    html = open(out, encoding="utf-8").read()
    assert re.findall(r"<section id='([^']+)'>", html) == ["paper_check", "lr_l2", "clocks"]


def test_empty_results_still_build(all_roots):
    # build_report is pure: empty frames (a filter that selects nothing) still give a page; a path
    # without results is refused before (test_analysis_input.py)
    runs, epochs = load(all_roots[0], filters=[("experiment", "==", "nothing")])
    html = build_report(runs, epochs, linear_model=False)
    assert "No runs in the results" in html


# ------------------------------------------------------------------ headless Chromium (slow)
def _chromium():
    webdriver = pytest.importorskip("selenium.webdriver")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1100",
              f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
        opts.add_argument(a)
    opts.binary_location = binary
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=opts)
    # record uncaught errors and console.error calls from the first script on
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
        window.__errors = [];
        window.addEventListener('error', e => window.__errors.push(String(e.message)));
        const ce = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); ce(...a); };"""})
    return d


def _open(path, png):
    d = _chromium()
    try:
        d.get("file://" + os.path.abspath(path))
        for _ in range(60):  # wait until every figure has drawn its SVG
            n = d.execute_script("return [document.querySelectorAll('div.fig .js-plotly-plot').length,"
                                 " document.querySelectorAll('div.fig').length]")
            if n[0] == n[1]:
                break
            time.sleep(0.25)
        info = d.execute_script("""
            const plots = [...document.querySelectorAll('div.fig .js-plotly-plot')];
            return {figs: document.querySelectorAll('div.fig').length, plots: plots.length,
                    drawn: plots.filter(p => p.querySelector('.main-svg') && p.querySelectorAll('.trace, .hm').length > 0).length,
                    errors: window.__errors};""")
        logs = [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        first = d.find_elements("css selector", "div.fig")[0]
        d.execute_script("arguments[0].scrollIntoView()", first)
        time.sleep(0.3)
        d.save_screenshot(png)
        return info, logs
    finally:
        d.quit()


def _check_png(png):
    assert os.path.getsize(png) > 20_000
    try:
        from PIL import Image
    except ImportError:
        return
    im = Image.open(png).convert("RGB")
    colors = im.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50  # a rendered figure, not a blank page


@pytest.mark.slow
def test_report_renders_in_headless_chromium(page, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    png = str(tmp_path / "report.png")
    info, logs = _open(str(path), png)
    assert info["errors"] == [] and logs == [], (info["errors"], logs)
    assert info["plots"] == info["figs"] == info["drawn"] and info["figs"] >= 20
    _check_png(png)
    print(f"screenshot: {png}")


def _has_training_core() -> bool:
    try:
        from initmem.train import train_pack  # noqa: F401
    except Exception:
        return False
    return subprocess.run([sys.executable, "-m", "initmem", "train", "--help"], capture_output=True).returncode == 0


@pytest.mark.slow
def test_report_from_a_real_smoke_run(tmp_path):
    if not _has_training_core():
        pytest.skip("initmem.train.train_pack / `python -m initmem train` not available yet")
    out = str(tmp_path / "smoke")
    cmd = [sys.executable, "-m", "initmem", "train", "--dataset", "synthetic", "--width", "0.125",
           "--train-subset", "256", "--eval-subset", "128", "--sigma-w", "0.5", "2.0", "--seed", "0",
           "--optimizer", "sgd", "--batch-size", "64", "--epochs", "2", "--experiment", "smoke", "--out", out]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    runs, epochs = load(out)
    assert len(runs) == 2 and set(epochs["epoch"]) == {0, 1, 2}
    html = build_report(runs, epochs, n_boot=50, linear_model=False, source=out)
    assert re.findall(r"<section id='([^']+)'>", html) == ["paper_check", "smoke", "clocks"]
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    info, logs = _open(str(path), str(tmp_path / "smoke.png"))
    assert info["errors"] == [] and logs == [], (info["errors"], logs)
    assert info["plots"] == info["figs"] == info["drawn"] and info["figs"] >= 2


DEGENERATE = {
    "no_run_interpolates": ("main_grid", dict(optimizers=["sgd", "adam"], batch_sizes=[16, 128], sigmas=[0.5, 2.0],
                                              seeds=[0], epochs=2)),
    "one_optimizer_one_batch": ("main_grid", dict(optimizers=["sgd"], batch_sizes=[128], sigmas=[0.5, 2.0],
                                                  seeds=[0, 1], epochs=3)),
    "one_sigma": ("main_grid", dict(optimizers=["sgd", "adam"], batch_sizes=[16, 128], sigmas=[1.0], seeds=[0, 1],
                                    epochs=3)),
    "lr_l2_one_batch": ("lr_l2", dict(batch_sizes=[16], sigmas=[0.5, 2.0], seeds=[0], epochs=2)),
    "depth_early_stop": ("depth", dict(optimizers=["sgd"], batch_sizes=[16], sigmas=[0.5, 2.0], seeds=[0], epochs=40)),
    "best_recipe_one_seed": ("best_recipe", dict(optimizers=["adam"], batch_sizes=[128], seeds=[0], epochs=2)),
    "long_sgd_short": ("long_sgd", dict(batch_sizes=[16], sigmas=[0.5, 2.0], epochs=3)),
}


@pytest.mark.parametrize("name", sorted(DEGENERATE))
@pytest.mark.parametrize("diverged", [0, 2])
def test_degenerate_data_still_builds(name, diverged):
    from analysis.synthetic import synthetic_frames
    exp, kw = DEGENERATE[name]
    runs, epochs, _ = synthetic_frames(exp, Plant(n_diverged=diverged, seed=diverged), **kw)
    if name == "no_run_interpolates":
        runs = runs.assign(tau_interp=pd.array([None] * len(runs), dtype="Int32"), val_acc_interp=float("nan"),
                           repair_gap=float("nan"))
    html = build_report(runs, epochs, n_boot=20, linear_model=False)
    assert re.findall(r"<section id='([^']+)'>", html) == ["paper_check", exp, "clocks"]
    assert html.count("Plotly.newPlot(") == html.count("<div class='fig'>")
