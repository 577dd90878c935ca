"""The README's third command, `make lab`: JupyterLab on the notebooks, with the live
widgets working. JupyterLab is started as `make lab` starts it (the same command line,
from the Makefile), headless on 127.0.0.1, on a copy of the notebooks (nothing it saves
reaches the repository); Chromium opens the explorer notebook, runs it, and moves its
ipywidgets sliders."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import book_checks

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "26_explorer.ipynb"
START_S = 120  # JupyterLab's server, and a kernel, on a busy 2-core machine


def _lab_command(port: int, token: str, notebooks: Path) -> list[str]:
    """`make lab`'s command line (printed by make -n, so the test runs what make runs),
    with this test's port, token and notebook folder."""
    printed = subprocess.run(["make", "-s", "-n", "lab", f"NOTEBOOKS={notebooks}"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    line = [ln for ln in printed.splitlines() if "jupyter" in ln and " lab" in ln][-1]
    return shlex.split(line) + ["--no-browser", f"--port={port}",
                                f"--IdentityProvider.token={token}"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_runs_the_explorer_and_its_widgets_move(tmp_path):
    if not book_checks.CHROMIUM.exists():
        pytest.skip(f"no Chromium at {book_checks.CHROMIUM} (Debian: apt-get install chromium)")
    pytest.importorskip("jupyterlab", reason="make lab installs JupyterLab from requirements.txt")
    committed = {p.name: p.read_bytes() for p in (REPO / "notebooks").glob("*.ipynb")}
    notebooks = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", notebooks)
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, HOME=str(tmp_path / "home"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               SMALLBATCH_MY_RESULTS=str(tmp_path / "mine"))
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(_lab_command(port, token, notebooks), cwd=REPO, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_S
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}",
                                       timeout=2)
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "JupyterLab did not answer within 120 s"
                time.sleep(0.5)
        with book_checks._browser() as context:
            page = context.new_page()
            page.set_viewport_size({"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}",
                      wait_until="load", timeout=START_S * 1000)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=START_S * 1000)
            page.locator("#jp-MainMenu").get_by_text("Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            page.locator(".jp-OutputArea .widget-slider").first.wait_for(
                timeout=START_S * 1000)
            figure = page.locator(".jp-OutputArea .widget-output").last
            figure.locator(".js-plotly-plot").wait_for(timeout=START_S * 1000)

            def title() -> str:
                return figure.locator(".gtitle").first.text_content()

            def readout(k: int) -> str:
                return page.locator(".jp-OutputArea .widget-slider").nth(k).locator(
                    ".widget-readout").text_content().strip()

            first = title()
            assert f"m = {readout(0)}, η̃ = 2^{readout(1)}" in first
            # each slider one step, from the keyboard, as a reader can: the figure follows
            for k, key in ((0, "ArrowRight"), (1, "ArrowLeft")):
                before = title()
                page.locator(".jp-OutputArea .widget-slider").nth(k).locator(
                    ".noUi-handle").focus()
                page.keyboard.press(key)
                page.wait_for_function(
                    """([old]) => { const t = document.querySelectorAll(
                          '.jp-OutputArea .widget-output .gtitle');
                        return t.length && t[t.length - 1].textContent !== old; }""",
                    arg=[before], timeout=30_000)
                assert f"m = {readout(0)}, η̃ = 2^{readout(1)}" in title()
            assert title() != first
            assert not page.locator(".jp-OutputArea-output[data-mime-type="
                                    "'application/vnd.jupyter.stderr']").filter(
                has_text="Traceback").count()
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    # the server worked on the copy: the repository's notebooks are as committed
    assert {p.name: p.read_bytes() for p in (REPO / "notebooks").glob("*.ipynb")} == committed
