"""The pictures in the docs, taken from real reports in headless Chromium.

    python docs/screenshots.py --smoke --data ../shared/data/cifar10-jpeg75.npz     # README: docs/report.png
    python docs/screenshots.py results/report_mini.html --top docs/mini_report.png \\
        --figure "Figure 1a" docs/mini_fig1a.png --figure "Figure 4:" docs/mini_fig4.png

--smoke runs the README's main job (the main grid's smoke) into a temporary storage first and takes
the top of its report (1400 x 1000 px: the header and the findings) as docs/report.png. --figure KEY
PNG saves the first figure whose caption or title holds KEY. Needs Debian's chromium and
chromium-driver and the dev extra (selenium). tests/test_analysis_report.py opens reports with
`browser()` too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def browser(width: int = 1400, height: int = 1100):
    """Headless Chromium through selenium, recording page errors in window.__errors; None without it."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        return None
    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", f"--window-size={width},{height}",
              f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
        opts.add_argument(a)
    opts.binary_location = binary
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
        window.__errors = [];
        window.addEventListener('error', e => window.__errors.push(String(e.message)));
        const ce = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); ce(...a); };"""})
    return d


def open_report(d, path: str, timeout_s: float = 15.0) -> None:
    """Load a report and wait until every figure has drawn."""
    d.get("file://" + os.path.abspath(path))
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        n = d.execute_script("return [document.querySelectorAll('div.fig .js-plotly-plot').length,"
                             " document.querySelectorAll('div.fig').length]")
        if n[0] == n[1]:
            break
        time.sleep(0.25)
    time.sleep(0.3)


def figure(d, key: str, png: str) -> None:
    """Save the first figure whose text holds `key`."""
    el = d.execute_script("return [...document.querySelectorAll('div.fig')].find(e => e.textContent.includes(arguments[0]))",
                          key)
    if el is None:
        raise SystemExit(f"no figure holds {key!r}")
    d.execute_script("arguments[0].scrollIntoView()", el)
    time.sleep(0.3)
    el.screenshot(png)


def smoke_report(data: str, storage: str) -> str:
    """Run the README's main job into `storage`; the path of its report."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}
    subprocess.run([sys.executable, "-m", "tune_jobs.main_grid", "--preset", "smoke", "--data", data,
                    "--storage", storage], cwd=REPO, env=env, check=True)
    return os.path.join(storage, "main_grid_smoke", "report.html")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", nargs="?", help="a report.html (or --smoke)")
    ap.add_argument("--smoke", action="store_true", help="run the README's smoke first and use its report")
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "cifar10-jpeg75.npz"))
    ap.add_argument("--top", default=None, metavar="PNG", help="the first screen (default with --smoke: docs/report.png)")
    ap.add_argument("--figure", nargs=2, action="append", default=[], metavar=("KEY", "PNG"))
    args = ap.parse_args(argv)
    report = smoke_report(args.data, tempfile.mkdtemp(prefix="initmem-smoke-")) if args.smoke else args.report
    if not report:
        ap.error("give a report.html or --smoke")
    top = args.top or (os.path.join(REPO, "docs", "report.png") if args.smoke else None)
    d = browser(1400, 1000)
    if d is None:
        print("error: needs chromium, chromium-driver and selenium", file=sys.stderr)
        return 2
    try:
        open_report(d, report)
        if top:
            d.save_screenshot(top)
            print(f"wrote {top}")
        d.set_window_size(1400, 1700)   # the tallest figure (Figure 6, three rows) fits whole
        for key, png in args.figure:
            figure(d, key, png)
            print(f"wrote {png}")
    finally:
        d.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
