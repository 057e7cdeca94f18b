"""Make docs/mlflow-compare.png: MLflow's compare view of a real sweep's trial runs, for the README.

    python docs/mlflow_compare_screenshot.py sweeps/<name> [docs/mlflow-compare.png]

Starts `mlflow ui` on 127.0.0.1 (one worker, no job execution), opens the compare page of the sweep's
trial runs in Debian's headless chromium through Playwright, screenshots it and stops the server.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from lsdseg.sweep.results import SweepResults

PORT = 5055
SHOWN = ("loss.g_rec", "optim.f_lr", "optim.f_lr_decay_every")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _wait_for(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def main(sweep: str, out: str = "docs/mlflow-compare.png") -> None:
    results = SweepResults(sweep)
    runs = [t.run_id for t in results.trials]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", results.state["tracking_uri"],
                               "--host", "127.0.0.1", "--port", str(PORT), "-w", "1"], env=env, start_new_session=True)
    try:
        _wait_for(f"http://127.0.0.1:{PORT}/health")
        ids = json.dumps(runs, separators=(",", ":"))
        page_url = f"http://127.0.0.1:{PORT}/#/compare-runs?runs={ids}&experiments={json.dumps([results.state['experiment_id']])}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(page_url, wait_until="load")
            page.wait_for_selector(".js-plotly-plot", timeout=60_000)
            params = page.get_by_text("Parameters:").locator("xpath=following::input[1]")
            for name in SHOWN:  # MLflow preselects the first three params; add the ones that matter here
                params.click()
                params.fill(name)
                page.keyboard.press("Enter")
            page.keyboard.press("Escape")
            close = page.get_by_text("MLflow Assistant").locator("xpath=ancestor::div[.//button][1]//button").last
            if close.count():  # MLflow 3's assistant panel takes a third of the page
                close.click()
                page.wait_for_timeout(1000)
            page.wait_for_timeout(2000)  # plotly animates its first draw
            page.screenshot(path=out, full_page=False)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server's own process group: it and its workers only
        server.wait(timeout=30)
    print(f"wrote {Path(out).resolve()}")


if __name__ == "__main__":
    main(*sys.argv[1:])
