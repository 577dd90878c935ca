"""The book: it builds at smoke scale, works offline, and every page works in a browser.

The build (one per session, see conftest.py) executes the notebooks with papermill into a
temporary folder and runs jupyter-book with warnings as errors. The browser test serves
the HTML on 127.0.0.1 and opens every page in headless Chromium; its screenshots go to
_build/screenshots/ (build artifacts, not committed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

import book_checks
from smallbatch_book import render
from smallbatch_book.build import BookBuildError, build_book, clean_for_static_page, kernel_manager

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "_build" / "screenshots"
PAGES = ["book/intro.html", "notebooks/00_quickstart.html"]


# ------------------------------------------------------------------ without a build


def test_kernel_is_this_interpreter():
    from smallbatch.data import NO_DATA_ENV
    from smallbatch.store import STORED_ONLY_ENV

    spec = kernel_manager().kernel_spec
    assert spec.argv[0] == sys.executable
    assert spec.argv[1:3] == ["-m", "ipykernel_launcher"]
    assert spec.env[render.BUILD_ENV_VAR] == "1"
    assert spec.env[NO_DATA_ENV] == spec.env[STORED_ONLY_ENV] == "0"
    spec = kernel_manager(stored_only=True, no_data=True).kernel_spec
    assert spec.env[NO_DATA_ENV] == spec.env[STORED_ONLY_ENV] == "1"


def test_the_kernel_client_waits_in_short_polls(monkeypatch):
    """A missed socket wake-up must not hang the build: the client's channels wait in steps
    of at most REPOLL_S (each ends with a real check of the socket), and a finite timeout
    still ends in Empty."""
    import asyncio
    from queue import Empty

    from jupyter_client.channels import AsyncZMQSocketChannel

    from smallbatch_book import build as book

    client_class = kernel_manager().client_factory
    channel_class = client_class.shell_channel_class.default_value
    assert client_class.iopub_channel_class.default_value is channel_class
    steps = []

    async def fake_get_msg(self, timeout=None):
        steps.append(timeout)
        if len(steps) < 4 or timeout is None:
            raise Empty
        return {"msg": "reply"}

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", fake_get_msg)
    monkeypatch.setattr(book, "REPOLL_S", 0.01)
    channel = object.__new__(channel_class)
    assert asyncio.run(channel.get_msg()) == {"msg": "reply"}  # no time limit: it waits
    assert len(steps) == 4 and all(0 < step <= 0.01 for step in steps)

    async def never(self, timeout=None):
        await asyncio.sleep(timeout)
        raise Empty

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", never)
    with pytest.raises(Empty):
        asyncio.run(channel.get_msg(timeout=0.05))


def test_renderer_is_activated_only_in_the_book_build(monkeypatch):
    import plotly.io as pio

    default = pio.renderers.default
    try:
        monkeypatch.delenv(render.BUILD_ENV_VAR, raising=False)
        assert render.activate_if_building() is False
        assert pio.renderers.default == default
        monkeypatch.setenv(render.BUILD_ENV_VAR, "1")
        assert render.activate_if_building() is True
        render.register()  # idempotent
        assert pio.renderers.default == render.RENDERER_NAME
    finally:
        pio.renderers.default = default


def test_the_research_package_leaves_plotly_and_the_book_toolchain_alone():
    """Importing every smallbatch module changes no plotly state and imports no part of the
    book toolchain (smallbatch_book, Sphinx, papermill): the build's kernels switch the
    renderer themselves (KERNEL_STARTUP)."""
    import subprocess

    code = (
        "import pkgutil, importlib, sys, plotly.io as pio\n"
        "before = pio.renderers.default\n"
        "import smallbatch\n"
        "names = [m.name for m in pkgutil.walk_packages(smallbatch.__path__, 'smallbatch.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "assert len(names) > 10, names\n"
        "assert pio.renderers.default == before, pio.renderers.default\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('smallbatch_book', 'sphinx', 'papermill', 'myst_nb', 'jupyter_book'))\n"
        "assert not bad, bad\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != render.BUILD_ENV_VAR}
    env[render.BUILD_ENV_VAR] = "1"  # even inside the build, importing changes nothing
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_build_kernels_switch_plotly_to_the_book_renderer_at_start():
    from smallbatch_book.build import KERNEL_STARTUP

    argv = kernel_manager().kernel_spec.argv
    assert any(arg.startswith("--IPKernelApp.exec_lines=") and KERNEL_STARTUP in arg
               for arg in argv)


def test_renderer_emits_html_that_needs_only_local_plotly():
    import plotly.graph_objects as go
    import plotly.io as pio

    render.register()
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2]))
    bundle = pio.renderers[render.RENDERER_NAME].to_mimebundle(fig.to_dict())
    assert set(bundle) == {"text/html"}
    html = bundle["text/html"]
    assert 'class="plotly-graph-div"' in html and "Plotly.newPlot" in html
    soup = BeautifulSoup(html, "html.parser")
    assert [s for s in soup.find_all("script") if s.get("src")] == []  # no plotly.js, no CDN
    assert "cdn" not in html.lower()
    assert '"displaylogo": false' in html
    assert "height:480px" in html.replace(" ", "")


def test_static_page_cleaning_hides_widget_cells_and_rejects_invisible_figures():
    widget_output = nbformat.v4.new_output(
        "display_data", data={"text/plain": "IntSlider(value=3)",
                              "application/vnd.jupyter.widget-view+json": {"model_id": "x"}})
    figure_output = nbformat.v4.new_output("display_data", data={"text/html": "<div></div>"})
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("w.IntSlider(3)", outputs=[widget_output]),
        nbformat.v4.new_code_cell("fig.show(); slider", outputs=[figure_output, widget_output]),
    ])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    report = clean_for_static_page(nb, "nb.ipynb")
    assert "widgets" not in nb.metadata
    assert report.widget_outputs == 2 and report.hidden_cells == 1
    assert nb.cells[0].metadata["tags"] == ["remove-cell"] and nb.cells[0].outputs == []
    assert "tags" not in nb.cells[1].metadata and nb.cells[1].outputs == [figure_output]

    invisible = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "fig.show()", outputs=[nbformat.v4.new_output(
            "display_data", data={"application/vnd.plotly.v1+json": {"data": []}})])])
    with pytest.raises(BookBuildError, match="plotly figure without HTML"):
        clean_for_static_page(invisible, "nb.ipynb")


def _one_notebook_book(root: Path, *cells, name: str = "chapter") -> Path:
    """A book root holding one notebook, notebooks/<name>.ipynb: a parameters cell, then
    ``cells``."""
    (root / "_config.yml").write_text("title: t\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\n"
                                   f"chapters:\n  - file: notebooks/{name}\n")
    (root / "intro.md").write_text("# t\n")
    (root / "notebooks").mkdir()
    source = root / "notebooks" / f"{name}.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('scale = "smoke"  # smoke | scaled | full',
                                  metadata={"tags": ["parameters"]}), *cells]), source)
    return source


def test_a_failing_notebook_fails_the_build_naming_notebook_and_error(tmp_path):
    source = _one_notebook_book(
        tmp_path, nbformat.v4.new_code_cell("raise ValueError(f'boom at {scale}')"),
        name="broken")
    before = source.read_bytes()
    with pytest.raises(BookBuildError) as failure:
        build_book("smoke", root=tmp_path, build_dir=tmp_path / "_build")
    message = str(failure.value)
    assert "notebooks/broken.ipynb" in message
    assert "ValueError: boom at smoke" in message
    assert source.read_bytes() == before
    assert not (tmp_path / "_build" / "html").exists()


def test_a_notebook_that_reaches_the_data_loader_fails_the_build(tmp_path, monkeypatch):
    """The book is built from results/ alone: in its kernels no data set loads, even one
    that this machine has (here a data root holding Fashion-MNIST files), so a notebook
    that reaches the loader fails the build, naming itself and the switch."""
    from smallbatch import data
    from smallbatch.data import readers

    holder = tmp_path / "data" / "fashion-mnist"
    holder.mkdir(parents=True)
    for file_name in readers._FASHION_MNIST_FILES.values():
        (holder / file_name).write_bytes(b"")
    monkeypatch.setenv("SMALLBATCH_DATA", str(tmp_path / "data"))
    book_root = tmp_path / "book"
    book_root.mkdir()
    _one_notebook_book(book_root, nbformat.v4.new_code_cell(
        "from smallbatch.data import load_data\nload_data('fashion-mnist')"))
    with pytest.raises(BookBuildError) as failure:
        build_book("scaled", root=book_root, build_dir=book_root / "_build")
    message = str(failure.value)
    assert "notebooks/chapter.ipynb" in message and "DataError" in message
    assert f"{data.NO_DATA_ENV}=1" in message


def test_an_executed_notebook_keeps_one_parameters_cell_with_its_values():
    from smallbatch_book.build import merge_parameters

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# t"),
        nbformat.v4.new_code_cell('scale = "smoke"  # smoke | scaled | full\nseed = 0',
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('# Parameters\nscale = "scaled"\nextra = [1, 2]\n',
                                  metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("print(scale)"),
    ])
    assert merge_parameters(nb) is True
    assert [c.source for c in nb.cells[1:]] == [
        'scale = "scaled"  # smoke | scaled | full\nseed = 0\nextra = [1, 2]', "print(scale)"]
    assert merge_parameters(nb) is False  # nothing injected: unchanged
    assert len(nb.cells) == 3


def test_the_extension_fails_a_build_that_would_load_from_a_cdn(tmp_path):
    """smallbatch_book.sphinxext, in a plain Sphinx project: local MathJax, and -W catches a CDN."""
    from sphinx.cmd.build import build_main

    src = tmp_path / "src"
    src.mkdir()
    (src / "index.rst").write_text("Title\n=====\n\n.. math:: \\eta = m \\tilde\\eta\n")
    conf = 'extensions = ["smallbatch_book.sphinxext"]\nhtml_theme = "basic"\n'
    (src / "conf.py").write_text(conf)
    assert build_main(["-b", "html", "-W", "-q", str(src), str(tmp_path / "ok")]) == 0
    html = (tmp_path / "ok" / "index.html").read_text()
    assert '_static/mathjax/tex-mml-chtml.js' in html and "cdn" not in html
    assert (tmp_path / "ok" / "_static" / "plotly.min.js").is_file()

    (src / "conf.py").write_text(conf + 'html_js_files = ["https://cdn.example.org/x.js"]\n')
    assert build_main(["-b", "html", "-W", "-q", str(src), str(tmp_path / "bad")]) != 0


# ---------------------------------------------------------------------- the build


def test_pages_are_built(built_book):
    for page in PAGES:
        assert (built_book.html / page).is_file(), page
    executed = built_book.build_dir / "executed" / "notebooks" / "00_quickstart.ipynb"
    meta = json.loads(executed.read_text())["metadata"]["papermill"]
    assert meta["parameters"]["scale"] == "smoke"


def test_notebooks_in_the_repository_are_untouched_and_without_outputs(built_book):
    assert built_book.notebooks_before, "no notebooks/*.ipynb in the repository"
    after = {p: p.read_bytes() for p in sorted((REPO / "notebooks").glob("*.ipynb"))}
    assert after == built_book.notebooks_before
    for path in after:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (
                    f"{path.name}: committed with outputs")


def test_no_page_shows_tex_as_raw_dollars(built_book):
    """A cell's displayed Markdown is parsed like the pages (nb_render_markdown_format:
    myst), so its $...$ is rendered as math rather than shown as TeX."""
    shown = {page.name: book_checks.raw_dollar_math(page)
             for page in book_checks.html_pages(built_book.html)}
    assert not {name: hits for name, hits in shown.items() if hits}


def test_no_page_loads_anything_from_outside(built_book):
    pages = book_checks.html_pages(built_book.html)
    assert len(pages) >= len(PAGES)
    problems = {}
    for page in pages:
        rel = page.relative_to(built_book.html).as_posix()
        found = book_checks.remote_loads(page)
        found += [f"script {s}" for s in book_checks.script_srcs(page) if "cdn" in s.lower()]
        text = page.read_text(encoding="utf-8")
        found += [word for word in ("require.js", "require.min.js", "embed-amd.js",
                                    "application/vnd.jupyter.widget") if word in text]
        if found:
            problems[rel] = found
    for css in (built_book.html / "_static").rglob("*.css"):
        if urls := book_checks.remote_css_urls(css):
            problems[css.relative_to(built_book.html).as_posix()] = urls
    assert problems == {}


def test_plotly_and_mathjax_are_served_from_static(built_book):
    import plotly

    static = built_book.html / "_static"
    shipped = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert (static / "plotly.min.js").read_bytes() == shipped.read_bytes()
    assert (static / "mathjax" / "tex-mml-chtml.js").is_file()
    assert list((static / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))

    with_figures = 0
    for page in book_checks.html_pages(built_book.html):
        html = page.read_text(encoding="utf-8")
        soup = BeautifulSoup(html, "html.parser")
        if "mjx" in html or soup.select(".math"):
            srcs = book_checks.script_srcs(page)
            assert any("_static/mathjax/tex-mml-chtml.js" in s for s in srcs), page
        if not soup.select(".plotly-graph-div"):
            continue
        with_figures += 1
        # plotly.js in <head>, loaded synchronously: the inline Plotly.newPlot needs it.
        tags = [s for s in soup.head.find_all("script", src=True)
                if "_static/plotly.min.js" in s["src"]]
        assert len(tags) == 1, page
        assert not tags[0].has_attr("async") and not tags[0].has_attr("defer")
    assert with_figures >= 1


def _need_browser():
    if not book_checks.CHROMIUM.exists():
        pytest.skip(f"no Chromium at {book_checks.CHROMIUM} (Debian: apt-get install chromium)")
    pytest.importorskip("playwright", reason="the browser test drives Chromium with playwright")


def _slider_page(directory: Path, *, extra_html: str = "", step_changes: bool = True) -> Path:
    """One page with one renderer figure whose slider shows one of four curves."""
    import plotly
    import plotly.graph_objects as go

    batch_sizes = [2, 8, 32, 128]
    fig = go.Figure([go.Scatter(x=[0, 1, 2], y=[1, 1 / m, 1 / m**2], name=f"m={m}",
                                visible=(i == 0)) for i, m in enumerate(batch_sizes)])
    steps = [dict(method="update", label=str(m),
                  args=([{"visible": [j == i for j in range(len(batch_sizes))]},
                         {"title.text": f"m = {m}"}]  # "title.text": "title" would drop it
                        if step_changes else [{}, {}]))
             for i, m in enumerate(batch_sizes)]
    fig.update_layout(title_text="m = 2", sliders=[dict(active=0, steps=steps)])
    (directory / "_static").mkdir(exist_ok=True)
    (directory / "_static" / "plotly.min.js").write_bytes(
        (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes())
    page = directory / "figure.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        '<script src="_static/plotly.min.js"></script></head><body><div class="cell_output">'
        + render.figure_html(fig) + "</div>" + extra_html + "</body></html>", encoding="utf-8")
    return page


def test_a_slider_figure_from_the_renderer_works_offline_in_a_browser(tmp_path):
    """The renderer's HTML plus the local plotly.js: the slider redraws, no kernel, no CDN."""
    _need_browser()
    [report] = book_checks.open_pages(tmp_path, [_slider_page(tmp_path)])
    assert report.plotly_divs == report.plotly_drawn == 1
    assert report.sliders_checked == 1 and report.slider_failures == []
    assert report.outside_requests == [] and report.console_errors == []
    assert report.page_errors == [] and report.dead_controls == 0


def test_the_browser_check_fails_a_slider_that_cannot_be_moved_or_moves_nothing(
        tmp_path, monkeypatch):
    """The slider check can fail: a slider under a covering element is reported with what
    covered it and where everything was; a slider whose steps change nothing is reported."""
    _need_browser()
    monkeypatch.setattr(book_checks, "CLICK_ATTEMPTS", 2)
    monkeypatch.setattr(book_checks, "CLICK_WAIT_MS", 1_000)
    covered = tmp_path / "covered"
    covered.mkdir()
    cover = '<div id="cover" style="position:fixed; inset:0; z-index:10"></div>'
    [report] = book_checks.open_pages(covered, [_slider_page(covered, extra_html=cover)])
    [failure] = report.slider_failures
    assert "did not reach step 3 after 2 clicks" in failure
    assert 'id="cover"' in failure and "intercepts pointer events" in failure
    assert "rail x" in failure and "viewport 1280x900" in failure

    inert = tmp_path / "inert"
    inert.mkdir()
    [report] = book_checks.open_pages(inert, [_slider_page(inert, step_changes=False)])
    assert report.slider_failures == ["figure 0 slider 0: moved, but the figure is unchanged"]


def _results_listing() -> dict[str, int]:
    return {str(p.relative_to(REPO)): p.stat().st_mtime_ns
            for p in sorted((REPO / "results").rglob("*")) if p.is_file()}


RESULTS_BEFORE = _results_listing()  # at collection, before any book is built


def test_the_published_book_is_built_from_stored_results_only(built_scaled_book):
    from smallbatch import analysis

    # the build ran stored-only (a missing result would have failed it) and wrote nothing
    assert _results_listing() == RESULTS_BEFORE
    pages = {p.stem: p.read_text() for p in (built_scaled_book.html / "notebooks").glob("*.html")}
    for stem in ("00_quickstart", "02_variance_measured", "03_stale_gradients",
                 "20_batch_size_lr", "21_ghost_batch_norm", "22_warmup", "23_training_curves",
                 "24_full_protocol", "25_step_budget", "26_explorer"):
        assert stem in pages and "Traceback" not in pages[stem], stem
    # every published study with stored trials shows them with their provenance
    shown = "".join(pages[s] for s in ("20_batch_size_lr", "21_ghost_batch_norm",
                                       "22_warmup", "23_training_curves", "25_step_budget"))
    for name in analysis.PUBLISHED_STUDIES:
        data = analysis.study_data(name, "scaled")
        if data.total > data.missing:
            assert f"study {name} (scaled" in shown, name
            assert all(commit[:10] in shown for commit in data.commits), name
            # the explorer offers every published study's runs, and says where they came from
            assert f"study {name} (scaled" in pages["26_explorer"], name


def test_the_published_book_links_each_study_tables(built_scaled_book):
    """Each published study with stored trials has its two CSV tables in the built book's
    data/ folder, linked from a chapter; every CSV link on a page resolves, and the trials
    table has one row per trial of the study's grid."""
    import pandas as pd

    from smallbatch import analysis

    html = built_scaled_book.html
    linked = {}
    for page in (html / "notebooks").glob("*.html"):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for a in soup.select('a[href$=".csv"]'):
            target = (page.parent / a["href"]).resolve()
            assert target.is_file(), (page.name, a["href"])
            linked.setdefault(target.name, set()).add(page.stem)
    for name in analysis.PUBLISHED_STUDIES:
        data = analysis.study_data(name, "scaled")
        if data.total == data.missing:
            continue
        for kind in analysis.TABLE_KINDS:
            file_name = analysis.table_file_name(name, "scaled", kind)
            assert (html / "data" / file_name).is_file(), file_name
            assert file_name in linked, f"{file_name} is linked from no chapter"
        trials = pd.read_csv(html / "data" / analysis.table_file_name(name, "scaled", "trials"),
                             dtype={"config_hash": str})
        assert len(trials) == data.total, name
        assert (trials["status"] != analysis.MISSING).sum() >= data.total - data.missing, name


def test_the_smoke_book_has_no_tables_and_says_why(built_book):
    assert not (built_book.html / "data").exists()
    page = (built_book.html / "notebooks" / "21_ghost_batch_norm.html").read_text()
    assert "Nothing is stored at the smoke scale" in page and ".csv" not in page


@pytest.mark.parametrize("scale", ["smoke", "scaled"])
def test_every_notebook_page_shows_one_parameters_cell_with_its_scale(scale, request):
    import re

    built = request.getfixturevalue("built_book" if scale == "smoke" else "built_scaled_book")
    pages = sorted((built.html / "notebooks").glob("*.html"))
    assert pages
    for page in pages:
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        inputs = [div.get_text() for div in soup.select("div.cell_input")]
        assigning = [text for text in inputs if re.search(r"^\s*scale\s*=", text, re.M)]
        assert len(assigning) == 1, (page.name, assigning)
        assert re.search(rf'^\s*scale\s*=\s*"{scale}"', assigning[0], re.M), page.name
        assert "injected-parameters" not in page.read_text(encoding="utf-8"), page.name


@pytest.mark.parametrize("scale", ["smoke", "scaled"])
def test_every_page_works_offline_in_a_browser(scale, request):
    """Every page of the smoke build and of the published (scaled) build, in Chromium:
    figures drawn, equations typeset, sliders that move their figure, nothing loaded from
    outside. Each wait is for a named condition and bounded (book_checks.READY_CONDITIONS);
    a timeout names its page and condition."""
    _need_browser()

    built = request.getfixturevalue("built_book" if scale == "smoke" else "built_scaled_book")
    pages = book_checks.html_pages(built.html)
    reports = book_checks.open_pages(built.html, pages, SCREENSHOTS / scale)
    problems = []
    for r in reports:
        for label, items in [("request outside 127.0.0.1", r.outside_requests),
                             ("failed request", r.failed_requests),
                             ("console error", r.console_errors),
                             ("page error", r.page_errors),
                             ("raw TeX left", r.raw_tex_left),
                             ("slider", r.slider_failures)]:
            problems += [f"{r.url}: {label}: {item}" for item in items]
        if r.plotly_drawn != r.plotly_divs:
            problems.append(f"{r.url}: {r.plotly_divs - r.plotly_drawn} figure(s) not drawn")
        if r.math_typeset != r.math_elements:
            problems.append(f"{r.url}: {r.math_elements - r.math_typeset} math not typeset")
        if r.dead_controls:
            problems.append(f"{r.url}: {r.dead_controls} control(s) that need a kernel")
    assert problems == [], "\n".join(problems)

    by_page = {r.url.split("/", 3)[3]: r for r in reports}
    assert by_page["book/intro.html"].display_math >= 1
    assert by_page["notebooks/00_quickstart.html"].plotly_drawn >= 1
    assert all(r.screenshot and r.screenshot.stat().st_size > 10_000 for r in reports)


def _explorer_expected(state: dict, data: dict, slots: int) -> tuple[str, list[dict]]:
    """What the explorer must show for the positions in ``state``, computed in Python from
    the data the page carries (the same functions that drew its first state)."""
    from smallbatch.analysis import cell_text
    from smallbatch.figures.explorer import cell_traces

    entry = data["sets"][state["set"]]
    m, lr = entry["m"][state["m"]], entry["lr"][state["lr"]]
    title = f"{entry['label']}<br><sup>{cell_text(entry, m, lr)}</sup>"
    return title, cell_traces(entry, m, lr, slots)


@pytest.mark.parametrize("scale", ["smoke", "scaled"])
def test_the_explorer_shows_the_cell_its_chooser_and_both_sliders_pick(scale, request):
    """The explorer's two sliders and its chooser act together (book/_static/explorer.js):
    after each move, the title names the chosen set and cell as
    smallbatch.analysis.cell_text does, and every trace holds that cell's runs as
    smallbatch.figures.explorer.cell_traces gives them."""
    _need_browser()
    built = request.getfixturevalue("built_book" if scale == "smoke" else "built_scaled_book")
    with book_checks.serve(built.html) as base, book_checks._browser() as context:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(base + book_checks.EXPLORER_PAGE, wait_until="load",
                  timeout=book_checks.LOAD_MS)
        report = book_checks.PageReport(url=book_checks.EXPLORER_PAGE)
        book_checks.wait_until_ready(page, report)
        assert report.page_errors == []
        gd = page.locator(".plotly-graph-div").first
        data = gd.evaluate("gd => gd.layout.meta.smallbatchExplorer")
        slots = gd.evaluate("gd => gd.layout.meta.slots")
        assert len(data["sets"]) >= 2

        def shows_its_cell(what: str) -> dict:
            state = {}
            for _ in range(100):  # the redraw follows the click: up to 10 s
                state = book_checks.explorer_state(gd)
                title, traces = _explorer_expected(state, data, slots)
                shown = [{k: t[k] for k in ("x", "y", "visible", "name")}
                         for t in state["traces"]]
                if state["title"] == title and shown == traces:
                    return state
                page.wait_for_timeout(100)
            raise AssertionError(f"after {what} the explorer shows {state['title']!r}, not "
                                 f"{title!r} (or its traces differ from that cell's runs)")

        first = shows_its_cell("loading")
        entry = data["sets"][first["set"]]
        # each slider to the end away from where it stands: first m, then eta_tilde
        far_m = 0 if first["m"] == len(entry["m"]) - 1 else len(entry["m"]) - 1
        book_checks.move_slider(page, gd, 0, 1.0 if far_m else 0.0)
        moved_m = shows_its_cell("moving the m slider")
        assert moved_m["m"] == far_m and moved_m["lr"] == first["lr"]
        far_lr = 0 if first["lr"] == len(entry["lr"]) - 1 else len(entry["lr"]) - 1
        book_checks.move_slider(page, gd, 1, 1.0 if far_lr else 0.0)
        moved_lr = shows_its_cell("moving the η̃ slider")
        assert moved_lr["lr"] == far_lr and moved_lr["m"] == far_m
        last = len(data["sets"]) - 1
        book_checks.choose_menu_item(page, gd, last)
        chosen = shows_its_cell("choosing another set of runs")
        assert chosen["set"] == last
        assert gd.evaluate("gd => gd.layout.sliders[0].steps.map(s => s.label)") == [
            str(m) for m in data["sets"][last]["m"]]
        book_checks.move_slider(page, gd, 1, 0.5)
        shows_its_cell("moving the η̃ slider in the new set")
        assert errors == []


def test_the_book_search_works_offline(built_book):
    _need_browser()
    hits = book_checks.search_hits(built_book.html, "learning rate")
    assert any("Small batches" in hit for hit in hits), hits
