"""Sphinx extension: the built book works offline and requests nothing outside its folder.

Listed in ``_config.yml`` under ``sphinx.extra_extensions``. It

- copies plotly.min.js from the installed plotly package into the output's ``_static``
  and loads it, synchronously in ``<head>``, on every page that contains a plotly
  figure, so the inline ``Plotly.newPlot`` calls written by ``smallbatch_book.render`` find
  ``window.Plotly`` (pages without a figure do not pay for its 4.8 MB);
- copies MathJax 3 (the es5 ``tex-mml-chtml.js`` component and what it loads lazily:
  TeX/MathML extensions, the CHTML woff-v2 fonts, the menu, a11y and adaptors) from the
  ``mathjax`` package (pip ``django-static-mathjax``) into ``_static/mathjax`` and points
  Sphinx's ``mathjax_path`` at it (3.0 MiB). The speech-rule engine (``sre/``, 3.9 MB)
  is left out: typesetting never asks for it, only the explorer and speech options of
  MathJax's right-click menu do, and those options then do nothing;
- drops sphinx-thebe's scripts and config (jupyter-book always loads it; the book's
  launch links, when the build turns them on, are plain links to Colab and Binder, and
  thebe would fetch itself from unpkg.com and start a Binder kernel on the page);
- writes index.html as a proper redirect page to the root page, with the book's icon;
- warns (an error under ``-W``, as the book is built) if a page would still load a
  script or stylesheet from another host (require.js and the widget manager from a
  CDN, analytics), so the offline property cannot quietly regress.

Nothing is written into the book's source folders: the assets are copied into the
builder's output directory when the builder starts. See ``smallbatch_book.build`` for the
build itself (papermill, then ``jupyter-book build`` with execution off).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

PLOTLY_JS = "plotly.min.js"
MATHJAX_DIR = "mathjax"
MATHJAX_COMPONENT = "tex-mml-chtml.js"
# What tex-mml-chtml.js may load on demand, relative to MathJax's es5/ folder.
MATHJAX_LAZY_DIRS = (
    "input/tex/extensions",  # \require{...} and autoloaded macros (\boldsymbol, \cancel...)
    "input/mml/extensions",
    "output/chtml/fonts/woff-v2",  # the CHTML output's web fonts
    "ui",  # the context menu and lazy typesetting
    "a11y",  # assistive MathML, explorer (the explorer also needs sre/, not copied)
    "adaptors",
)

# A remote URL in a src/href of something that gets loaded (not a plain link).
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)


def plotly_js_source() -> Path:
    """plotly.min.js as shipped inside the installed plotly package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / PLOTLY_JS
    if not path.is_file():
        raise ExtensionError(f"smallbatch_book.sphinxext: {path} is missing; reinstall plotly")
    return path


def mathjax_es5_source() -> Path:
    """The es5 folder of the MathJax 3 copy in the ``mathjax`` package."""
    try:
        import mathjax  # installed by django-static-mathjax
    except ImportError as exc:
        raise ExtensionError(
            "smallbatch_book.sphinxext needs MathJax 3 as local files: "
            "pip install django-static-mathjax (see requirements.txt)"
        ) from exc
    path = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (path / MATHJAX_COMPONENT).is_file():
        raise ExtensionError(f"smallbatch_book.sphinxext: no {MATHJAX_COMPONENT} under {path}")
    return path


def _copy_file(src: Path, dst: Path) -> int:
    """Copy src to dst unless an identical-looking copy is there; return bytes in dst."""
    st = src.stat()
    if not (dst.is_file() and dst.stat().st_size == st.st_size
            and dst.stat().st_mtime >= st.st_mtime):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    return st.st_size


def copy_assets(static_dir: Path) -> dict[str, int]:
    """Copy plotly.js and MathJax into ``static_dir``; return bytes copied per asset."""
    sizes = {PLOTLY_JS: _copy_file(plotly_js_source(), static_dir / PLOTLY_JS)}
    es5 = mathjax_es5_source()
    dest = static_dir / MATHJAX_DIR
    total = _copy_file(es5 / MATHJAX_COMPONENT, dest / MATHJAX_COMPONENT)
    for rel in MATHJAX_LAZY_DIRS:
        for src in sorted((es5 / rel).rglob("*")):
            if src.is_file():
                total += _copy_file(src, dest / src.relative_to(es5))
    sizes[MATHJAX_DIR] = total
    return sizes


def _on_config_inited(app: Sphinx, config: Any) -> None:
    # A relative mathjax_path is taken relative to _static (Sphinx's rule).
    config.mathjax_path = f"{MATHJAX_DIR}/{MATHJAX_COMPONENT}"
    # myst-nb adds require.js and the widget html-manager from CDNs to any page whose
    # notebook carries saved widget state. A static page cannot run a widget anyway, so
    # load neither (smallbatch_book.build also strips the state and the widget outputs).
    config.nb_ipywidgets_js = {}


def _on_builder_inited(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    sizes = copy_assets(Path(app.outdir) / "_static")
    logger.info(
        "smallbatch: local assets in _static: "
        + ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in sizes.items())
    )


def _is_thebe(asset: Any) -> bool:
    filename = getattr(asset, "filename", "") or ""
    body = (getattr(asset, "attributes", None) or {}).get("body", "")
    return "thebe" in filename or "THEBE_JS_URL" in body


def _on_doctree_resolved(app: Sphinx, doctree: Any, docname: str) -> None:
    # sphinx-thebe's per-page <script type="text/x-thebe-config"> (a Binder repository).
    from docutils import nodes

    for node in list(doctree.findall(nodes.raw)):
        if "text/x-thebe-config" in node.astext():
            node.parent.remove(node)


def _page_has_plotly(context: dict) -> bool:
    return "plotly-graph-div" in (context.get("body") or "")


def _on_html_page_context(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    if app.builder.format != "html":
        return
    # sphinx-thebe (always loaded by jupyter-book) adds, to every page, a script that
    # can fetch thebe from unpkg.com and start a Binder kernel. The book's launch links
    # (when on) are plain links, so it is dead weight that points outside; drop it.
    context["script_files"][:] = [
        js for js in context.get("script_files", []) if not _is_thebe(js)
    ]
    context["css_files"][:] = [
        css for css in context.get("css_files", []) if not _is_thebe(css)
    ]
    if _page_has_plotly(context):
        # Added during html-page-context, so only this page gets it. No async/defer: it
        # must have run before the inline Plotly.newPlot scripts in the page body.
        app.add_js_file(PLOTLY_JS, priority=200)
    remote = [
        js.filename
        for js in context.get("script_files", [])
        if _REMOTE.match(getattr(js, "filename", str(js)) or "")
    ]
    remote += [
        css.filename
        for css in context.get("css_files", [])
        if _REMOTE.match(getattr(css, "filename", str(css)) or "")
    ]
    if remote:
        # A warning, so -W fails the build, naming the page and the files.
        logger.warning(
            f"page {pagename} would load from outside the book: {', '.join(remote)}",
            type="smallbatch",
            subtype="remote_asset",
        )


_INDEX_REDIRECT = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
{icon}<meta http-equiv="Refresh" content="0; url={target}">
</head>
<body><p><a href="{target}">{title}</a></p></body>
</html>
"""


def _on_build_finished(app: Sphinx, exception: Exception | None) -> None:
    """Write index.html as a redirect to the root page, with the book's icon.

    sphinx-external-toc writes a bare ``<meta http-equiv="Refresh">`` line when there
    is no index.html; a browser then asks the server for /favicon.ico (a 404 in the
    console). This runs first, so that one finds the file and leaves it.
    """
    if exception is not None or app.builder.format != "html" or app.builder.name != "html":
        return
    if app.config.root_doc == "index":
        return
    from html import escape

    favicon = app.config.html_favicon or ""
    icon = ""
    if favicon and not _REMOTE.match(favicon):
        icon = f'<link rel="icon" href="_static/{escape(Path(favicon).name)}">\n'
    page = _INDEX_REDIRECT.format(
        title=escape(app.config.html_title or app.config.project or ""),
        icon=icon,
        target=escape(app.builder.get_target_uri(app.config.root_doc)),
    )
    (Path(app.outdir) / "index.html").write_text(page, encoding="utf-8")


def setup(app: Sphinx) -> dict[str, Any]:
    # After the built-in mathjax and myst-nb handlers have set their defaults.
    app.connect("config-inited", _on_config_inited, priority=900)
    app.connect("builder-inited", _on_builder_inited)
    app.connect("html-page-context", _on_html_page_context, priority=900)
    app.connect("doctree-resolved", _on_doctree_resolved, priority=900)
    app.connect("build-finished", _on_build_finished, priority=400)  # before etoc's
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
