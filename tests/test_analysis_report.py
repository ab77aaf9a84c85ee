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
import time
from pathlib import Path

import pandas as pd
import pytest

from analysis.load import load
from analysis.report import build_report, main
from initmem.study import EXPERIMENTS
from analysis.synthetic import Plant, write_synthetic

TINY = dict(seeds=[0, 1], epochs=12)
REPO_DIR = Path(__file__).resolve().parents[1]


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
    assert ids == ["paper_check"] + list(EXPERIMENTS) + ["clocks", "linear_model"]
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
    """docs/screenshots.py's headless Chromium (the docs' pictures come from the same browser)."""
    pytest.importorskip("selenium.webdriver")
    import importlib.util
    spec = importlib.util.spec_from_file_location("screenshots", REPO_DIR / "docs" / "screenshots.py")
    shots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shots)
    d = shots.browser()
    if d is None:
        pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver)")
    return d


def _open(path, png, shots=None):
    """Open the page, wait for every figure; screenshot the first figure to `png` and each figure
    whose text contains a key of `shots` to its path."""
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
                    errors: window.__errors, text: document.body.innerText};""")
        logs = [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        first = d.find_elements("css selector", "div.fig")[0]
        d.execute_script("arguments[0].scrollIntoView()", first)
        time.sleep(0.3)
        d.save_screenshot(png)
        if shots:
            d.set_window_size(1400, 1700)  # the tallest figure (Figure 6, three rows) fits whole
        for key, out in (shots or {}).items():
            el = d.execute_script("return [...document.querySelectorAll('div.fig')]"
                                  ".find(e => e.textContent.includes(arguments[0]))", key)
            assert el is not None, key
            d.execute_script("arguments[0].scrollIntoView()", el)
            time.sleep(0.3)
            el.screenshot(out)
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
@pytest.mark.no_cluster
def test_report_renders_in_headless_chromium(page, tmp_path):
    # every table and figure of the report built from all six experiments (paper check, Table 1,
    # Table 4 with its bottom rows, Figures 4 and 6 included): no console error, every figure drawn;
    # screenshots of Figures 4 and 6 (copied to $INITMEM_SCREENSHOTS if set)
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    png = str(tmp_path / "report.png")
    shots = {"Figure 4: What helps": str(tmp_path / "fig4.png"), "Figure 6: initialization": str(tmp_path / "fig6.png")}
    info, logs = _open(str(path), png, shots)
    assert info["errors"] == [] and logs == [], (info["errors"], logs)
    assert info["plots"] == info["figs"] == info["drawn"] and info["figs"] >= 24
    for title in ("Table 1: main-grid", "Table 4 (bottom rows)", "Paper check:"):
        assert title in info["text"], title
    _check_png(png)
    for key, shot in shots.items():
        _check_png(shot)
        if os.environ.get("INITMEM_SCREENSHOTS"):
            dest = os.path.join(os.environ["INITMEM_SCREENSHOTS"], "issue8-" + os.path.basename(shot))
            shutil.copy(shot, dest)
            print(f"screenshot copy: {dest}")
        print(f"screenshot: {shot}")
    print(f"screenshot: {png}")


def _has_training_core() -> bool:
    try:
        from initmem.train import train_pack  # noqa: F401
    except Exception:
        return False
    return subprocess.run([sys.executable, "-m", "initmem", "train", "--help"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.no_cluster
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


# ------------------------------------------------------------------ the paper's tables and figures
def _section(page, sid):
    m = re.search(rf"<section id='{sid}'>(.*?)</section>", page, re.S)
    return m.group(1) if m else ""


def test_paper_tables_and_figures_sit_in_their_sections(page):
    mg, lr = _section(page, "main_grid"), _section(page, "lr_l2")
    for text in ("Table 1: main-grid optimizer settings", "Figure 6: initialization sensitivity",
                 "(e) SGD on T_SGD; SGD + L2 on T_L2", "(f) Adam on T_adapt", "the 5-point subset",
                 "Tables 2-3", "Figure 1a", "Figure 2"):
        assert text in mg, text
    for text in ("Table 4:", "Table 4 (bottom rows)", "Adam baseline (main grid)", "SGD long training",
                 "Figure 4: What helps SGD forget initialization?", "(a) b=16", "(b) b=128"):
        assert text in lr, text
    assert "Missing from these results" not in mg + lr  # every experiment is there
    assert "paper_check" in re.findall(r"<section id='([^']+)'>", page)[0]


def test_table1_shows_what_ran_and_says_where_the_paper_differs(all_roots):
    from analysis.paper_figures import table1
    from initmem.study import MAIN_GRID
    paper, _ = table1()                                        # no results: the catalogue's main grid, the paper's
    cat = {r.optimizer: r for r in MAIN_GRID.runs("full")}
    assert paper["optimizer"].tolist() == ["SGD", "SGD+momentum", "Adam", "AdamW", "Muon"]
    p = paper.set_index("optimizer")
    assert (p["lr0"] == 1e-3).all() and (p["epochs"] == 300).all() and (p["seeds"] == 10).all()
    assert p.loc["AdamW", "weight decay"] == cat["adamw"].weight_decay == 1e-4
    assert p.loc["Adam", "weight decay"] == 0.0 and p.loc["SGD+momentum", "momentum"] == "0.9"
    assert p.loc["Adam", "beta1 / beta2"] == "0.9 / 0.999" and p.loc["SGD", "beta1 / beta2"] == "\u2014"
    assert p.loc["SGD", "batch sizes"] == "16, 32, 64, 128, 256" and "the paper's grid" not in p
    runs, _ = load(all_roots[0])
    t = table1(runs)[0].set_index("optimizer")                # the synthetic results: 12 epochs, 2 seeds
    assert (t["epochs"] == 12).all() and (t["seeds"] == 2).all() and (t["lr0"] == 1e-3).all()
    assert t["the paper's grid"].str.startswith("paper: epochs 300").all()
    assert t["the paper's grid"].str.contains("10 seeds").all()


def test_table4_bottom_rows_mark_the_single_seed_long_run(tmp_path):
    base = str(tmp_path / "s")
    write_synthetic(base, ["lr_l2", "long_sgd"], Plant(), sigmas=[0.1, 2.5], epochs=3)  # long_sgd: seed 42 only
    runs, epochs = load([f"{base}/lr_l2", f"{base}/long_sgd"])
    lr = build_report(runs, epochs, n_boot=20, linear_model=False)
    sec = lr[lr.index("<section id='lr_l2'>"):]
    assert "SGD long training (constant lr) \u2020 (single seed)" in sec
    assert "Missing from these results: main_grid" in sec  # no Adam baseline row without the main grid


def test_combined_figures_name_the_missing_experiment(all_roots):
    only_lr = build_report(*load(all_roots[2]), n_boot=20, linear_model=False)
    cap = _section(only_lr, "lr_l2")
    assert "Figure 4: What helps" in cap and "Missing from these results: long_sgd, main_grid" in cap
    only_mg = build_report(*load(all_roots[0]), n_boot=20, linear_model=False)
    assert "Figure 6: initialization" in only_mg and "Missing from these results: lr_l2" in _section(only_mg, "main_grid")
    # long_sgd alone carries Figure 4 (its curve), saying lr_l2 and main_grid are missing
    only_long = build_report(*load(all_roots[1]), n_boot=20, linear_model=False)
    assert "Figure 4: What helps" in _section(only_long, "long_sgd")
    assert "Missing from these results: lr_l2, main_grid" in _section(only_long, "long_sgd")


def test_table1_reads_the_catalogue_without_importing_torch_or_ray():
    code = ("import sys; from analysis.paper_figures import table1; t, _ = table1(); "
            "assert len(t) == 5; print('torch' in sys.modules, 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.split() == ["False", "False"], out


def test_table1_formats_small_settings(all_roots):
    page = build_report(*load(all_roots[0]), n_boot=10, linear_model=False)
    t1 = re.search(r"Table 1: main-grid.*?</table>", page, re.S).group(0)
    assert "<td>0.0001</td>" in t1  # AdamW / Muon decoupled decay, not rounded to 0.0
