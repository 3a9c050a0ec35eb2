"""The studio page's figures, measured through a real browser on loopback (docs/studio.md, "Figures").

    python scripts/bench_studio.py [--model DIR] [--loads 5] [--lines 6] [--json out.json]

Starts `npc-sdk serve --studio` on free loopback ports with a copy of samples/personas, opens the page in Debian's
headless Chromium (Selenium and chromium-driver: the test extra and scripts/install_engine_tools.sh), and reports:
  * page load: navigation start to the load event, and to the page being ready (socket open, persona folder
    listed, first file open), median of --loads fresh loads (the page is served with Cache-Control: no-store);
  * send to first text: from pressing Send to the first streamed text shown, measured by the page itself
    (performance.now()), median and worst of --lines lines in one session, beside the server's own ttft_ms;
  * page size: the bytes of the page and every file it loads (the sample scenes only when picked: not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINES = [
    "Hello there!",
    "What is that over there?",
    "Can you sharpen my sword?",
    "What do you know about the old mine?",
    "Is it safe to travel at night?",
    "Thank you, I'll be going.",
]


def start_server(model: str | None, personas: Path, data: Path) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "npc_sdk.cli", "serve", "--port", "0", "--studio", "--studio-port", "0"]
    cmd += ["--personas", str(personas), "--data-dir", str(data)] + (["--model", model] if model else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith('{"ready"'):
            return proc, json.loads(line)["studio_port"]
    raise SystemExit("the server did not start")


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,900"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)


def wait_for(driver, script: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for: {script}")


def page_loads(driver, url: str, loads: int) -> dict:
    load_ms, ready_ms, sizes = [], [], []
    for _ in range(loads):
        driver.get("about:blank")
        driver.get(url)
        wait_for(driver, "return document.body.dataset.ready === '1' && window.studio.editor.file")
        nav = driver.execute_script("return performance.getEntriesByType('navigation')[0].toJSON()")
        load_ms.append(nav["loadEventEnd"] - nav["startTime"])
        ready_ms.append(driver.execute_script("return window.studio.readyAt"))
        sizes.append(
            driver.execute_script(
                "return [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]"
                ".filter((e) => !e.name.includes('/scenes/'))"
                ".reduce((n, e) => n + e.encodedBodySize, 0)"
            )
        )
    return {
        "page_load_ms_median": round(statistics.median(load_ms), 1),
        "page_ready_ms_median": round(statistics.median(ready_ms), 1),
        "page_bytes": max(sizes),
    }


def first_text(driver, lines: int) -> dict:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, '#tabs [data-tab="chat"]').click()
    driver.find_element(By.ID, "new-session").click()
    wait_for(driver, "return window.studio.chat.sessionId")
    page, server = [], []
    for line in (LINES * (lines // len(LINES) + 1))[:lines]:
        count = driver.execute_script("return window.studio.chat.timings.length")
        driver.find_element(By.ID, "line").send_keys(line)
        driver.find_element(By.ID, "send").click()
        wait_for(
            driver, f"const t = window.studio.chat.timings; return t.length > {count} && t.at(-1).doneAt"
        )
        timing = driver.execute_script("return window.studio.chat.timings.at(-1)")
        page.append(timing["firstTextAt"] - timing["sentAt"])
        server.append(driver.execute_script("return window.studio.chat.turns.at(-1).done.timings.ttftMs"))
    return {
        "send_to_first_text_ms_median": round(statistics.median(page), 1),
        "send_to_first_text_ms_max": round(max(page), 1),
        "send_to_first_text_ms_each": [round(v) for v in page],
        "server_ttft_ms_each": [round(v) for v in server],
        "server_ttft_ms_median": round(statistics.median(server), 1),
        "lines": lines,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model folder (default: the cached int4 export)")
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--lines", type=int, default=6)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="npc-studio-bench-"))
    personas = work / "personas"
    personas.mkdir()
    for name in ("brakka.toml", "villager.toml"):
        shutil.copy(ROOT / "samples" / "personas" / name, personas / name)
    proc, port = start_server(args.model, personas, work / "data")
    driver = browser()
    try:
        url = f"http://127.0.0.1:{port}/"
        figures = {**page_loads(driver, url, args.loads), **first_text(driver, args.lines)}
        static = ROOT / "npc_sdk" / "studio" / "static"
        figures["static_files_bytes"] = sum(p.stat().st_size for p in static.iterdir() if p.is_file())
        figures["cpus"] = os.cpu_count()
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key:32s} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
