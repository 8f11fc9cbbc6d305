"""Open a worldsim notebook in JupyterLab in a real (headless) Chromium, run all its cells, and save a screenshot.

    .venv/bin/python scripts/jupyterlab_screenshot.py notebooks/04_physics_classroom.ipynb --out shot.png --small

Why: the notebook tests run the kernel side only; this shows that JupyterLab's front end renders worldsim's
ipywidgets (players, sliders, the explorer) in a browser. It is a manual check, not a test: it needs Debian's
`chromium` (`apt-get install -y chromium`) and node with `playwright-core` (installed on first use into
`~/.cache/worldsim/playwright` with npm), which CI does not have.

What it does: copies the notebook into a temporary folder (JupyterLab autosaves outputs; the committed notebook
must stay stripped), serves JupyterLab there on 127.0.0.1 only with a random token, opens the notebook with
playwright-core driving /usr/bin/chromium (headless, no sandbox, no GPU, no background networking, no component
updates, no sync), clicks Run > Run All Cells, waits until every cell has run and the kernel is idle, scrolls to
`--scroll-to` (default: the first widget), and writes the screenshot plus a JSON summary (cells run, widgets
rendered, error outputs) beside it. The server is stopped on exit."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
PLAYWRIGHT_DIR = Path.home() / ".cache" / "worldsim" / "playwright"

DRIVER = r"""
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
(async () => {
  const [url, out, timeoutS, flags, scrollTo] = [process.argv[2], process.argv[3], +process.argv[4],
                                                 JSON.parse(process.argv[5]), process.argv[6]];
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, headless: true, args: flags });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1800 } });
  const deadline = Date.now() + timeoutS * 1000;
  await page.goto(url);
  await page.waitForSelector('.jp-Notebook .jp-Cell', { timeout: 120000 });
  // a fresh JupyterLab may ask which kernel to start, and whether to fetch news: answer both
  const select = page.locator('.jp-Dialog').getByRole('button', { name: 'Select' });
  try { await select.waitFor({ timeout: 8000 }); await select.click(); } catch (e) { /* no dialog */ }
  const news = page.getByRole('button', { name: 'No', exact: true });
  if (await news.count()) await news.first().click();
  const idle = '.jp-Notebook-ExecutionIndicator[data-status="idle"]';
  await page.waitForSelector(idle, { timeout: 120000 });
  await page.getByRole('menuitem', { name: 'Run', exact: true }).click();
  await page.getByRole('menuitem', { name: /^Run All Cells/ }).click();
  // done: every code cell's prompt shows a number (not "*" or empty) and the kernel is idle
  const state = () => page.evaluate(() => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
    const status = document.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status');
    return { prompts, status };
  });
  let s;
  while (Date.now() < deadline) {
    s = await state();
    console.error(JSON.stringify(s));
    if (s.status === 'idle' && s.prompts.length && s.prompts.every(p => /^\[\d+\]:$/.test(p))) break;
    await page.waitForTimeout(1000);
  }
  await page.waitForTimeout(2000);  // let widget views finish rendering
  const target = page.locator(scrollTo).first();
  if (await target.count()) await target.scrollIntoViewIfNeeded();
  await page.waitForTimeout(500);
  await page.screenshot({ path: out });
  const summary = await page.evaluate(() => ({
    code_cells: document.querySelectorAll('.jp-CodeCell').length,
    prompts: [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim()),
    widgets_rendered: document.querySelectorAll('.jp-OutputArea-output .widget-box, .jp-OutputArea-output .lm-Widget.jupyter-widgets').length,
    widget_images: document.querySelectorAll('.jp-OutputArea-output .widget-image').length,
    sliders: document.querySelectorAll('.jp-OutputArea-output .widget-slider').length,
    error_outputs: [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
      .map(e => e.textContent).filter(t => /Traceback|Error/.test(t)).length,
    kernel_status: document.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status'),
  }));
  console.log(JSON.stringify(summary));
  await browser.close();
})().catch(e => { console.error(e); process.exit(1); });
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def playwright_core() -> Path:
    """The playwright-core package folder, installed with npm into the cache on first use."""
    pkg = PLAYWRIGHT_DIR / "node_modules" / "playwright-core"
    if not pkg.is_dir():
        PLAYWRIGHT_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PLAYWRIGHT_DIR),
                        "playwright-core@1"], check=True)
    return pkg


def wait_for_server(port: int, token: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer on 127.0.0.1:{port} in {timeout} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebook", type=Path)
    p.add_argument("--out", type=Path, default=Path("jupyterlab.png"))
    p.add_argument("--small", action="store_true", help="run with WORLDSIM_NOTEBOOK_SMALL=1")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for all cells")
    p.add_argument("--scroll-to", default=".jp-OutputArea-output .widget-image",
                   help="CSS selector scrolled into view before the screenshot")
    p.add_argument("--verbose", action="store_true", help="print the driver's progress")
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="worldsim-lab-"))
    shutil.copy(args.notebook, work / args.notebook.name)
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "JUPYTER_CONFIG_DIR": str(work / ".jupyter")}
    if args.small:
        env["WORLDSIM_NOTEBOOK_SMALL"] = "1"
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                               f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
                               f"--ServerApp.root_dir={work}", "--ServerApp.port_retries=0",
                               *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(work.with_name(work.name + ".log"), "w"))
    try:
        wait_for_server(port, token, server)
        driver = Path(tempfile.mkdtemp(prefix="worldsim-lab-driver-")) / "driver.js"  # not in the served folder
        driver.write_text(DRIVER)
        url = f"http://127.0.0.1:{port}/lab/tree/{args.notebook.name}?token={token}"
        node_env = {**os.environ, "PLAYWRIGHT_CORE": str(playwright_core()), "CHROMIUM": args.chromium}
        r = subprocess.run(["node", str(driver), url, str(args.out.resolve()), str(args.timeout),
                            json.dumps(CHROMIUM_FLAGS), args.scroll_to], env=node_env, capture_output=True,
                           text=True, timeout=args.timeout + 300)
        if r.returncode != 0 or args.verbose:
            print(r.stderr[-5000:], file=sys.stderr)
        if r.returncode != 0:
            return 1
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary))
        print(f"screenshot: {args.out}")
        return 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
