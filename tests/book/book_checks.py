"""Checks on a built book's HTML: static scans, and a headless Chromium that opens pages.

Used by test_book.py; kept apart so the checks can also be run by hand on any build:

    python tests/book/book_checks.py _build/html [SCREENSHOT_DIR]
"""

from __future__ import annotations

import functools
import http.server
import re
import socketserver
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bs4 import BeautifulSoup

CHROMIUM = Path("/usr/bin/chromium")

# Chromium flags: nothing of its own phones home (updates, sync, safe browsing...).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-quic",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--safebrowsing-disable-auto-update",
]

# (tag, attribute) pairs whose URL the browser fetches by itself. <a href> is a link the
# reader may follow, so it may point anywhere.
LOADED_URL_ATTRS = [
    ("script", "src"), ("link", "href"), ("img", "src"), ("img", "srcset"),
    ("source", "src"), ("source", "srcset"), ("iframe", "src"), ("embed", "src"),
    ("object", "data"), ("video", "src"), ("video", "poster"), ("audio", "src"),
    ("track", "src"), ("input", "src"), ("image", "href"), ("use", "href"),
]
_REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
_CSS_REMOTE_URL = re.compile(
    r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:https?:)?//[^'")\s]+)""", re.IGNORECASE
)


def html_pages(html_dir: Path) -> list[Path]:
    """The book's pages: every .html file except the theme's macro files in _static."""
    return sorted(p for p in html_dir.rglob("*.html") if "_static" not in p.parts)


_TEX_IN_DOLLARS = re.compile(r"\$[^$\n]{1,80}\$")


def raw_dollar_math(page: Path) -> list[str]:
    """``$...$`` TeX left as text on a page (outside code, scripts and math): markdown that
    was not parsed with dollarmath, e.g. a cell's displayed Markdown."""
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    for tag in soup.find_all(["script", "style", "pre", "code"]):
        tag.decompose()
    for tag in soup.find_all(class_="math"):
        tag.decompose()
    text = soup.get_text(" ")
    return [hit for hit in _TEX_IN_DOLLARS.findall(text)
            if any(mark in hit for mark in ("\\", "_", "{", "=", "^"))]


def remote_loads(page: Path) -> list[str]:
    """URLs on another host that the page would load (scripts, styles, fonts, images)."""
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    found = []
    for tag, attr in LOADED_URL_ATTRS:
        for el in soup.find_all(tag):
            value = el.get(attr) or el.get(f"xlink:{attr}") or ""
            for url in value.split(","):  # srcset: "url 1x, url 2x"
                url = url.strip().split(" ")[0]
                if _REMOTE.match(url):
                    found.append(f"<{tag} {attr}={url}>")
    for el in soup.find_all(style=True):
        found += [f"style attribute url {u}" for u in _CSS_REMOTE_URL.findall(el["style"])]
    for el in soup.find_all("style"):
        found += [f"<style> url {u}" for u in _CSS_REMOTE_URL.findall(el.get_text())]
    return found


def script_srcs(page: Path) -> list[str]:
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    return [s["src"] for s in soup.find_all("script", src=True)]


def remote_css_urls(css_file: Path) -> list[str]:
    return _CSS_REMOTE_URL.findall(css_file.read_text(encoding="utf-8", errors="replace"))


# ------------------------------------------------------------------------- the browser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


@contextmanager
def serve(directory: Path):
    """Serve directory on 127.0.0.1 at an ephemeral port; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class PageReport:
    """What a page did in the browser."""

    url: str
    outside_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    plotly_divs: int = 0
    plotly_drawn: int = 0
    math_elements: int = 0
    math_typeset: int = 0
    display_math: int = 0
    raw_tex_left: list[str] = field(default_factory=list)
    dead_controls: int = 0
    sliders_checked: int = 0
    slider_failures: list[str] = field(default_factory=list)
    screenshot: Path | None = None


WAIT_MS = 30_000  # per condition; a healthy page meets each in well under a second
LOAD_MS = 120_000  # a page's load event (playwright's default: 30 s)
CLICK_ATTEMPTS = 5  # clicks on a slider's rail before it counts as not moving ...
CLICK_WAIT_MS = 10_000  # ... each given this long to land, then this long to move the slider

# What a page must reach before it is inspected, in order: (what, a JavaScript predicate).
# Each is waited for on its own, bounded by WAIT_MS, and a timeout is reported with the
# page and the condition's name. Nothing waits for "network idle": a page that holds a
# connection open, or keeps a timer, would never reach it though it works (CI saw a page
# that loaded in 1.4 s and never became idle).
READY_CONDITIONS = (
    ("the figures to draw", """() => Array.from(document.querySelectorAll('.plotly-graph-div'))
        .every(gd => gd.querySelector('svg.main-svg'))"""),
    ("the sliders to be drawn", """() => Array.from(document.querySelectorAll(
        '.plotly-graph-div')).every(gd => {
          const n = ((gd.layout && gd.layout.sliders) || []).length;
          return gd.querySelectorAll('g.slider-container rect.slider-rail-touch-rect')
                   .length >= n; })"""),
    ("MathJax to typeset every equation", """() => {
        const maths = Array.from(document.querySelectorAll('.math'));
        return maths.length === 0 || (window.MathJax && MathJax.startup
            && maths.every(m => m.querySelector('mjx-container'))); }"""),
    ("the fonts to load", "() => document.fonts.status === 'loaded'"),
)


def wait_until_ready(page, report: "PageReport", wait_ms: int = WAIT_MS) -> None:
    """Wait for each of READY_CONDITIONS in turn; a condition not met within ``wait_ms``
    goes to ``report.page_errors`` as "timed out after N s waiting for <condition>"."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for what, predicate in READY_CONDITIONS:
        try:
            page.wait_for_function(predicate, timeout=wait_ms, polling=100)
        except PlaywrightTimeout:
            report.page_errors.append(f"timed out after {wait_ms / 1000:.0f} s waiting for {what}")


_JS_INSPECT = r"""() => {
  const divs = Array.from(document.querySelectorAll('.plotly-graph-div'));
  const maths = Array.from(document.querySelectorAll('.math'));
  const text = document.body.innerText;
  const raw = (text.match(/\\\(|\\\)|\\\[|\\\]|\$\$/g) || []);
  // Form controls in outputs, other than plotly's own (modebar) and copy buttons, and
  // anything an ipywidget would leave: they could only be dead on a static page.
  const controls = Array.from(document.querySelectorAll(
      '.cell_output input, .cell_output select, .cell_output textarea, ' +
      '.cell_output button, .jupyter-widgets, .widget-area, ' +
      'script[type^="application/vnd.jupyter.widget"]'))
    .filter(el => !el.closest('.plotly-graph-div') && !el.classList.contains('copybtn'));
  return {
    plotly_divs: divs.length,
    plotly_drawn: divs.filter(gd => gd.querySelector('svg.main-svg')
                                    && gd.getBoundingClientRect().height > 50).length,
    math_elements: maths.length,
    math_typeset: maths.filter(m => m.querySelector('mjx-container')).length,
    display_math: document.querySelectorAll('mjx-container[display="true"]').length,
    raw_tex_left: raw,
    dead_controls: controls.length,
  };
}"""


def _geometry(page, gd, rail) -> str:
    """Where a slider's rail, its figure and the viewport are (for a failure message)."""
    def fmt(locator):
        box = locator.bounding_box() if locator.count() else None  # no wait for a missing one
        return "none" if box is None else "x {x:.0f} y {y:.0f} w {width:.0f} h {height:.0f}".format(
            **box)
    view = page.evaluate("() => [innerWidth, innerHeight, scrollX, scrollY]")
    return (f"rail {fmt(rail)}, figure {fmt(gd)}, "
            f"viewport {view[0]}x{view[1]} scrolled to ({view[2]:.0f}, {view[3]:.0f})")


def _click_error(exc) -> str:
    """playwright's first line, plus the last thing its call log saw (what covered the
    point, or that the element was not stable)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    seen = [line for line in lines if "intercepts pointer events" in line
            or "not stable" in line or "not visible" in line or "outside of the viewport" in line]
    return "; ".join(lines[:1] + seen[-1:])


def _rail(gd, index: int):
    """The rail of the figure's slider ``index``. Plotly draws no slider of one step, so it
    is the n-th slider drawn, n counting only the visible ones before it."""
    drawn = gd.evaluate(f"gd => gd._fullLayout.sliders.slice(0, {index})"
                        ".filter(s => s.visible).length")
    return gd.locator("g.slider-group").nth(drawn).locator("rect.slider-rail-touch-rect")


def _check_sliders(page) -> tuple[int, list[str]]:
    """Move every plotly slider to its far step with the mouse; the figure must change."""
    from playwright.sync_api import Error as PlaywrightError

    checked, failures = 0, []
    n_divs = page.locator(".plotly-graph-div").count()
    for i in range(n_divs):
        gd = page.locator(".plotly-graph-div").nth(i)
        n_sliders = gd.evaluate("gd => ((gd.layout && gd.layout.sliders) || []).length")
        for s in range(n_sliders):
            steps = gd.evaluate(f"gd => gd.layout.sliders[{s}].steps.length")
            if steps < 2:
                continue
            state = ("gd => JSON.stringify([gd.data.map(t => [t.visible, t.x, t.y, t.z]),"
                     " gd.layout.title, gd.layout.annotations])")
            before = gd.evaluate(state)
            rail = _rail(gd, s)
            start = gd.evaluate(f"gd => gd.layout.sliders[{s}].active || 0")
            target = steps - 1 if start < steps - 1 else 0
            moved, misses = False, []
            # playwright's own click: it scrolls the rail into view, waits until its box is
            # stable over two animation frames and until the rail itself (not something
            # over it) receives events at that point, measuring again right before the
            # click. A hand-aimed page.mouse.click at a box measured one call earlier
            # missed in CI (twice in one run) on pages that work; each miss now records
            # where the rail, its figure and the viewport were.
            for _ in range(CLICK_ATTEMPTS):
                try:
                    box = rail.bounding_box(timeout=CLICK_WAIT_MS)
                    if box is None:  # the rail is in the page but not laid out (hidden)
                        misses.append(f"rail not visible; {_geometry(page, gd, rail)}")
                        continue
                    # the end of the rail away from the current step
                    x = box["width"] - 3 if start < steps - 1 else 3
                    rail.click(position={"x": x, "y": box["height"] / 2},
                               timeout=CLICK_WAIT_MS)
                except PlaywrightError as exc:
                    misses.append(f"click failed: {_click_error(exc)}; "
                                  f"{_geometry(page, gd, rail)}")
                    continue
                moved = gd.evaluate(
                    f"""gd => new Promise(resolve => {{
                        const t0 = Date.now();
                        (function poll() {{
                          if (gd.layout.sliders[{s}].active === {target}) return resolve(true);
                          if (Date.now() - t0 > {CLICK_WAIT_MS}) return resolve(false);
                          setTimeout(poll, 50);
                        }})();
                    }})""")
                if moved:
                    break
                misses.append(f"clicked, slider at step "
                              f"{gd.evaluate(f'gd => gd.layout.sliders[{s}].active')}; "
                              f"{_geometry(page, gd, rail)}")
            if not moved:
                failures.append(f"figure {i} slider {s}: did not reach step {target} after "
                                f"{CLICK_ATTEMPTS} clicks of {CLICK_WAIT_MS / 1000:.0f} s "
                                f"each: " + " | ".join(misses))
            else:
                page.wait_for_timeout(300)  # let an animated transition finish
                if gd.evaluate(state) == before:
                    failures.append(f"figure {i} slider {s}: moved, but the figure is unchanged")
            checked += 1
    return checked, failures


EXPLORER_PAGE = "notebooks/26_explorer.html"

_JS_EXPLORER_STATE = """gd => ({
    set: gd.layout.updatemenus[0].active || 0,
    m: gd.layout.sliders[0].active, lr: gd.layout.sliders[1].active,
    title: gd.layout.title.text,
    traces: gd.data.map(t => ({x: Array.from(t.x || []), y: Array.from(t.y || []),
                               visible: t.visible !== false, name: t.name}))})"""


def explorer_state(gd) -> dict:
    """The explorer's chooser and slider positions, its title and its traces, as shown."""
    return gd.evaluate(_JS_EXPLORER_STATE)


def move_slider(page, gd, index: int, fraction: float) -> None:
    """Click the rail of slider ``index`` at ``fraction`` of its length (0: first step, 1:
    last), as a reader would; playwright's click waits until the rail receives it."""
    rail = _rail(gd, index)
    box = rail.bounding_box(timeout=CLICK_WAIT_MS)
    x = min(max(fraction * box["width"], 3), box["width"] - 3)
    rail.click(position={"x": x, "y": box["height"] / 2}, timeout=CLICK_WAIT_MS)


def choose_menu_item(page, gd, item: int) -> None:
    """Open the figure's dropdown and click its entry ``item``."""
    gd.locator("g.updatemenu-header-group").first.click(timeout=CLICK_WAIT_MS)
    gd.locator("g.updatemenu-dropdown-button").nth(item).click(timeout=CLICK_WAIT_MS)


@contextmanager
def _browser(chromium: Path = CHROMIUM):
    """A fresh headless Chromium profile (a playwright persistent context)."""
    import tempfile

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, service_workers="block",
            reduced_motion="reduce",  # no smooth scrolling or animated transitions
        )
        try:
            yield context
        finally:
            context.close()


def search_hits(html_dir: Path, query: str, chromium: Path = CHROMIUM) -> list[str]:
    """Titles of the pages the book's own search (search.html, offline) finds for query."""
    from urllib.parse import quote

    with serve(html_dir) as base, _browser(chromium) as context:
        page = context.new_page()
        page.goto(f"{base}search.html?q={quote(query)}", wait_until="load")
        page.wait_for_function(
            "() => document.querySelector('#search-results .search-summary') && "
            "!document.querySelector('#search-results .search-summary')"
            ".textContent.includes('Preparing')",
            timeout=WAIT_MS)
        return page.locator("#search-results ul.search li a").all_inner_texts()


def open_pages(html_dir: Path, pages: list[Path], screenshot_dir: Path | None = None,
               chromium: Path = CHROMIUM) -> list[PageReport]:
    """Open each page in headless Chromium over http://127.0.0.1 and report what it did."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    reports = []
    with serve(html_dir) as base, _browser(chromium) as context:
        for path in pages:
            rel = path.relative_to(html_dir).as_posix()
            report = PageReport(url=base + rel)
            page = context.new_page()

            def on_request(request, report=report):
                host = urlsplit(request.url)
                if host.scheme in ("data", "blob", "about"):
                    return
                if host.hostname != "127.0.0.1":
                    report.outside_requests.append(request.url)

            def on_response(response, report=report):
                if response.status >= 400:
                    report.failed_requests.append(f"{response.status} {response.url}")

            page.on("request", on_request)
            page.on("response", on_response)
            page.on("requestfailed", lambda r, report=report: report.failed_requests.append(
                f"failed {r.url} ({r.failure})"))
            page.on("console", lambda m, report=report: report.console_errors.append(
                m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, report=report: report.page_errors.append(str(e)))

            # a generous limit: the pages load only local files, but a machine busy with
            # other work (a CI runner, or sweeps) can take far longer than an idle one
            try:
                page.goto(report.url, wait_until="load", timeout=LOAD_MS)
            except PlaywrightTimeout:
                report.page_errors.append(f"did not load within {LOAD_MS / 1000:.0f} s")
                page.close()
                reports.append(report)
                continue
            wait_until_ready(page, report)
            for key, value in page.evaluate(_JS_INSPECT).items():
                setattr(report, key, value)
            if screenshot_dir is not None:
                screenshot_dir.mkdir(parents=True, exist_ok=True)
                shot = screenshot_dir / (rel.replace("/", "__").removesuffix(".html") + ".png")
                page.screenshot(path=str(shot), full_page=True)
                report.screenshot = shot
            report.sliders_checked, report.slider_failures = _check_sliders(page)
            page.close()
            reports.append(report)
    return reports


if __name__ == "__main__":
    import sys

    html = Path(sys.argv[1])
    shots = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    for r in open_pages(html, html_pages(html), shots):
        print(r)
