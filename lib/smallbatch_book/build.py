"""Build the book: execute the notebooks with papermill, then render them with Jupyter Book.

    python -m smallbatch_book [--scale smoke|scaled|full] [--out DIR] [--notebooks PATTERN ...]

1. Every notebook listed in ``_toc.yml`` is executed with papermill, with the parameter
   ``scale`` injected, in a kernel running this interpreter (see ``kernel_manager``),
   from the repository root, with plotly's renderer switched to static HTML at kernel
   start (``smallbatch_book.render``; no notebook asks for it). The executed copies go to
   ``_build/executed/``; ``notebooks/`` is never written, it stays without outputs.
2. A book source tree is staged in ``_build/source/``: ``_config.yml``, ``_toc.yml``,
   ``book/`` and the executed notebooks, cleaned for a static page (saved widget state
   and widget outputs removed: a static page could only show a slider that does nothing).
3. ``jupyter-book build`` renders it with execution off and warnings as errors. The
   HTML goes to ``_build/html/`` (or ``--out``). ``smallbatch_book.sphinxext`` puts plotly.js
   and MathJax into its ``_static``: the book works offline, from its own folder.
4. Each published study's stored records are written as CSV tables into the HTML's
   ``data/`` folder, which the experiments chapters link (``smallbatch.analysis.tables``).

With a repository URL (``--repo-url``), every chapter page also carries Colab and Binder
launch links (``smallbatch_book.launch``).

The book's pages and the build are described in book/intro.md and README.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .render import BUILD_ENV_VAR
from .toc import REPO_ROOT, BookBuildError, toc_documents as _toc_documents, toc_notebooks

__all__ = [
    "BookBuildError", "build_book", "kernel_manager", "kernel_manager_class", "main",
    "merge_parameters", "toc_notebooks",
]


# Mimetypes a static page cannot show. Widgets need a live kernel; the saved state would
# make myst-nb load require.js and the widget manager from CDNs.
WIDGET_VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"


# Run by every kernel of the book build before the notebook's first cell.
KERNEL_STARTUP = "import smallbatch_book.render; smallbatch_book.render.activate_if_building()"

# A cell of the book build runs for at most this long: the build reads stored results
# (smoke-scale runs are seconds), so a cell still running after it is stuck, and the
# build stops with an error naming the notebook instead of waiting for CI's time limit.
CELL_TIMEOUT_S = 1200

# How often the build's kernel client re-checks its sockets while it waits for the kernel
# (see _patient_client_class).
REPOLL_S = 1.0


def _say(message: str) -> None:
    print(f"[book] {message}", flush=True)


# --------------------------------------------------------------------------- notebooks


def _patient_client_class():
    """An asynchronous kernel client that never waits on a socket for more than REPOLL_S.

    nbclient waits for the kernel's replies with no time limit. pyzmq's asyncio poller is
    woken by the socket's file descriptor, and that wake-up can be missed: the book build
    then hung, at random, in a cell that displays a figure in an ipywidgets Output (nbclient
    issue #312), the kernel idle with its reply sent. A poll that times out checks the
    socket itself, so waiting in steps of REPOLL_S finds such a message within a second.
    """
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.channels import AsyncZMQSocketChannel
    from traitlets import Type

    class PatientChannel(AsyncZMQSocketChannel):
        async def get_msg(self, timeout: float | None = None):
            if timeout is not None and timeout <= REPOLL_S:
                return await super().get_msg(timeout)
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                step = REPOLL_S if deadline is None else min(
                    REPOLL_S, max(0.0, deadline - time.monotonic()))
                try:
                    return await super().get_msg(step)
                except Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise

    class PatientKernelClient(AsyncKernelClient):
        shell_channel_class = Type(PatientChannel)
        iopub_channel_class = Type(PatientChannel)
        control_channel_class = Type(PatientChannel)

    return PatientKernelClient


def kernel_manager_class(log_file: Path | None = None, *, stored_only: bool = False,
                         no_data: bool = False):
    """A kernel manager class whose ``python3`` kernel is this interpreter (sys.executable).

    The notebooks' kernelspec says ``python3``, which Jupyter resolves through a search
    path (a user's ~/.local/share/jupyter/kernels may point at another Python). The book
    build looks only at a spec made here from ipykernel's own for ``sys.executable``, so
    a fresh virtualenv from requirements.txt needs no ``ipykernel install`` step. The spec
    also sets SMALLBATCH_BOOK_BUILD=1 in the kernel's environment, and the kernel runs
    :data:`KERNEL_STARTUP` before the first cell: plotly's default renderer becomes the
    book's static one (``smallbatch_book.render``), so no notebook and no library module
    switches it. papermill hands the
    class to nbclient, which then owns (starts and shuts down) each kernel. Its clients
    re-check their sockets every REPOLL_S while they wait (:func:`_patient_client_class`).

    Args:
        log_file: where the kernel process's own stdout/stderr go (its log lines, and
            output written straight to the file descriptors); None: this terminal.
        stored_only: set SMALLBATCH_STORED_ONLY=1 in the kernel too, so that a result
            missing from results/ is an error rather than a run made during the build.
        no_data: set SMALLBATCH_NO_DATA=1 in the kernel too (``smallbatch.data``): no
            data set on disk loads, whatever this machine has installed, so a notebook
            that reaches the data loader fails the build.
    """
    from smallbatch.data import NO_DATA_ENV
    from smallbatch.store import STORED_ONLY_ENV

    import zmq
    from ipykernel.kernelspec import get_kernel_dict
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from traitlets import default

    spec = get_kernel_dict()
    spec["argv"][0] = sys.executable
    spec["argv"].append(f"--IPKernelApp.exec_lines={json.dumps([KERNEL_STARTUP])}")
    spec["env"] = {BUILD_ENV_VAR: "1", STORED_ONLY_ENV: "1" if stored_only else "0",
                   NO_DATA_ENV: "1" if no_data else "0"}
    spec["display_name"] = "Python 3 (smallbatch book)"
    spec = {k: v for k, v in spec.items() if KernelSpec.class_traits().get(k) is not None}

    class BookKernelSpecManager(KernelSpecManager):
        def get_kernel_spec(self, kernel_name, *args, **kwargs):
            return KernelSpec(resource_dir="", name=kernel_name, **spec)

    patient_client = _patient_client_class()

    class BookKernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _book_kernel_spec_manager(self):
            return BookKernelSpecManager()

        @default("client_factory")
        def _book_client_factory(self):
            return patient_client

        @default("transport_encryption")
        def _book_transport_encryption(self):
            # The kernel listens on loopback TCP; with CurveZMQ (which ipykernel supports)
            # the traffic is encrypted and ipykernel does not warn about plain text.
            return "auto" if zmq.has("curve") else "disabled"

        async def start_kernel(self, **kw):
            if log_file is None:
                return await super().start_kernel(**kw)
            log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(log_file, "ab") as log:  # the child keeps its own descriptor
                kw.setdefault("stdout", log)
                kw.setdefault("stderr", log)
                return await super().start_kernel(**kw)

    return BookKernelManager


def kernel_manager(log_file: Path | None = None, *, stored_only: bool = False,
                   no_data: bool = False):
    """An (unstarted) kernel manager for the book's ``python3`` kernel."""
    return kernel_manager_class(log_file, stored_only=stored_only,
                                no_data=no_data)(kernel_name="python3")


def _execute_one(src: Path, dst: Path, scale: str, cwd: Path, stored_only: bool,
                 no_data: bool) -> float:
    """Run one notebook with papermill into dst; return seconds taken."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    dst.parent.mkdir(parents=True, exist_ok=True)
    log_file = dst.with_suffix(".kernel.log")
    log_file.unlink(missing_ok=True)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(src),
            str(dst),
            parameters={"scale": scale},
            kernel_name="python3",
            language="python",
            kernel_manager_class=kernel_manager_class(log_file, stored_only=stored_only,
                                                      no_data=no_data),
            cwd=str(cwd),
            progress_bar=False,
            log_output=False,
            start_timeout=120,
            execution_timeout=CELL_TIMEOUT_S,
        )
    except PapermillExecutionError as exc:
        raise BookBuildError(
            f"notebook {src.relative_to(cwd)} failed in cell [{exc.exec_count}] "
            f"(cell index {exc.cell_index}): {exc.ename}: {exc.evalue}\n"
            f"  cell source:\n    " + "\n    ".join(exc.source.splitlines()[:12]) + "\n"
            f"  executed copy with the full traceback: {dst}\n"
            f"  kernel log: {log_file}"
        ) from exc
    except Exception as exc:  # the kernel died, could not start, timed out ...
        raise BookBuildError(
            f"notebook {src.relative_to(cwd)} could not be executed: "
            f"{type(exc).__name__}: {exc}\n  kernel log: {log_file}"
        ) from exc
    return time.perf_counter() - started


def _executed_scale(path: Path) -> str | None:
    """The scale an executed copy was run at (papermill records the parameters)."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))["metadata"]
        return meta["papermill"]["parameters"]["scale"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ----------------------------------------------------------------------------- staging


@dataclass
class _CleanReport:
    widget_outputs: int = 0
    hidden_cells: int = 0
    parameters_merged: bool = False


def merge_parameters(nb) -> bool:
    """One parameters cell, with the values the notebook ran with (changed in place).

    papermill leaves the notebook's own cell (tag ``parameters``, e.g. ``scale = "smoke"
    # smoke | scaled | full``) and adds its own after it (tag ``injected-parameters``) with
    the values it ran: a page would show both. Each assignment in the notebook's cell takes
    its injected value, keeping its comment; the injected cell goes. Returns whether there
    was an injected cell.
    """
    import ast

    cells = nb.cells
    tagged = [i for i, c in enumerate(cells)
              if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        return False
    injected = cells[tagged[0]]
    values = {node.targets[0].id: ast.get_source_segment(injected.source, node.value)
              for node in ast.parse(injected.source).body
              if isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], ast.Name)}
    own = [i for i, c in enumerate(cells)
           if "parameters" in c.get("metadata", {}).get("tags", [])]
    if own:
        cell = cells[own[0]]
        lines = cell.source.splitlines()
        seen = set()
        for node in ast.parse(cell.source).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id in values and node.lineno == node.end_lineno):
                row = node.lineno - 1
                line = lines[row]
                lines[row] = (line[:node.value.col_offset] + values[node.targets[0].id]
                              + line[node.value.end_col_offset:])
                seen.add(node.targets[0].id)
        lines += [f"{name} = {value}" for name, value in values.items() if name not in seen]
        cell.source = "\n".join(lines)
        del cells[tagged[0]]
    return True


def clean_for_static_page(nb, name: str) -> _CleanReport:
    """Make an executed notebook (nbformat node, changed in place) fit a static page.

    - one parameters cell, with the values it ran with (:func:`merge_parameters`);
    - the saved widget state (``metadata.widgets``) goes: myst-nb would load require.js
      and the widget manager from CDNs to replay it, and the page cannot run it anyway;
    - widget outputs go; a code cell left with no output at all is an ipywidgets cell,
      for Jupyter only, and is hidden from the page (tag ``remove-cell``);
    - a plotly figure that reached the page without HTML (its renderer was not active)
      is an error: it would be invisible in the book.
    """
    report = _CleanReport()
    report.parameters_merged = merge_parameters(nb)
    nb.metadata.pop("widgets", None)
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        outputs = cell.get("outputs", [])
        kept = [o for o in outputs if WIDGET_VIEW_MIMETYPE not in o.get("data", {})]
        if len(kept) != len(outputs):
            report.widget_outputs += len(outputs) - len(kept)
            cell["outputs"] = kept
            if not any(_visible(o) for o in kept):
                tags = cell.setdefault("metadata", {}).setdefault("tags", [])
                if "remove-cell" not in tags:
                    tags.append("remove-cell")
                report.hidden_cells += 1
        for output in kept:
            data = output.get("data", {})
            if PLOTLY_MIMETYPE in data and "text/html" not in data:
                raise BookBuildError(
                    f"{name}, cell index {index}: a plotly figure without HTML; it would "
                    "be invisible in the book. The build's kernels switch plotly to the book's "
                    "renderer at start (KERNEL_STARTUP); was the notebook run outside "
                    "the build?"
                )
    return report


def _visible(output) -> bool:
    if output.get("output_type") == "stream":
        return bool(str(output.get("text", "")).strip())
    return True


def _copy_tree(src: Path, dst: Path, skip_suffixes: tuple[str, ...] = ()) -> None:
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", ".DS_Store",
                                    *(f"*{s}" for s in skip_suffixes))
    shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True, copy_function=shutil.copy2)


def _merge(base: dict, extra: dict) -> dict:
    """``base`` with ``extra``'s entries put in, nested dictionaries merged key by key."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _stage(root: Path, stage_dir: Path, executed: dict[Path, Path],
           repo_url: str | None = None) -> None:
    """Stage the book source tree: config, toc, book/, and the executed notebooks. With
    ``repo_url``, the staged ``_config.yml`` turns on the launch links
    (:func:`smallbatch_book.launch.launch_config`)."""
    import nbformat
    import yaml

    from .citation import CITATION_FILE, CitationError, stage_citation
    from .launch import launch_config

    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, stage_dir / name)
    if repo_url:
        config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
        config = _merge(config, launch_config(repo_url))
        (stage_dir / "_config.yml").write_text(
            "# staged by smallbatch_book.build: _config.yml with the launch links on\n"
            + yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    if (root / "book").is_dir():
        _copy_tree(root / "book", stage_dir / "book")
    if (root / "notebooks").is_dir():  # images and data next to the notebooks
        _copy_tree(root / "notebooks", stage_dir / "notebooks", skip_suffixes=(".ipynb",))
    for rel in _toc_documents(root):
        target = stage_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.suffix != ".ipynb":
            shutil.copy2(root / rel, target)
            continue
        nb = nbformat.read(executed.get(rel, root / rel), as_version=4)
        report = clean_for_static_page(nb, str(rel))
        if report.widget_outputs:
            _say(f"{rel}: removed {report.widget_outputs} widget output(s), hid "
                 f"{report.hidden_cells} Jupyter-only cell(s)")
        nbformat.write(nb, target)
    # the citation page's includes: CITATION.cff (validated) and its BibTeX
    if (root / CITATION_FILE).is_file():
        try:
            stage_citation(root, stage_dir)
        except CitationError as exc:
            raise BookBuildError(str(exc)) from exc


# ------------------------------------------------------------------------ jupyter-book


def _jupyter_book_command() -> list[str]:
    """jupyter-book from this interpreter's environment, not whatever is on PATH."""
    script = Path(sys.executable).parent / ("jupyter-book" + (".exe" if os.name == "nt" else ""))
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; "
            "sys.argv[0] = 'jupyter-book'; sys.exit(main())"]


def _run_jupyter_book(stage_dir: Path, path_output: Path, verbose: bool) -> None:
    cmd = _jupyter_book_command() + [
        "build", str(stage_dir),
        "--path-output", str(path_output),
        "--builder", "html",
        "-W",  # warnings are errors ...
        "-n",  # ... including broken cross-references
        "--keep-going",  # but report all of them before failing
    ]
    if not verbose:
        cmd.append("-q")  # Sphinx's warnings still show; its progress chatter does not
    env = {k: v for k, v in os.environ.items() if k != BUILD_ENV_VAR}
    proc = subprocess.run(cmd, cwd=stage_dir, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if verbose or proc.returncode != 0:
        print(proc.stdout, end="", flush=True)
    if proc.returncode != 0:
        raise BookBuildError(
            f"jupyter-book build failed (exit {proc.returncode}); its output is above. "
            f"Staged source: {stage_dir}"
        )


# ---------------------------------------------------------------------------- data tables

# The built book's folder of CSV tables; chapter pages (notebooks/<chapter>.html) link them
# as ../data/<file> (smallbatch.analysis.downloads_html).
DATA_DIR = "data"


def _write_data_tables(scale: str, out_dir: Path) -> list[Path]:
    """Each published study's stored trials and epochs as CSV tables in ``out_dir/data``
    (:func:`smallbatch.analysis.write_tables`); none at the smoke scale (nothing stored)."""
    from smallbatch.analysis import PUBLISHED_STUDIES, write_tables

    folder = out_dir / DATA_DIR
    if folder.exists():
        shutil.rmtree(folder)
    return write_tables(PUBLISHED_STUDIES, scale, folder)


# ------------------------------------------------------------------------------- build


def build_book(
    scale: str = "scaled",
    out_dir: Path | None = None,
    *,
    root: Path | None = None,
    build_dir: Path | None = None,
    notebooks: list[str] | None = None,
    verbose: bool = False,
    compute_missing: bool = False,
    repo_url: str | None = None,
) -> Path:
    """Execute the book's notebooks at ``scale`` and build the HTML; return the html dir.

    Args:
        scale: the preset passed to every notebook's ``parameters`` cell.
        out_dir: where the HTML goes (default ``<root>/_build/html``); replaced whole.
        root: the book root, i.e. the repository (default: this package's repository).
        build_dir: executed notebooks, staged source and Sphinx caches
            (default ``<root>/_build``).
        notebooks: glob patterns (``00_*``, ``notebooks/00_quickstart.ipynb``); only the
            matching notebooks are executed. The others reuse their executed copy from an
            earlier build at the same scale, or appear without outputs (with a warning).
        verbose: show jupyter-book's full output.
        compute_missing: at scales other than smoke the notebooks read stored results
            only, and a missing one fails the build (naming it); True lets them compute
            and store what is missing instead (minutes to hours). Smoke always computes,
            on synthetic data. Without it, no data set on disk loads in the build
            (``$SMALLBATCH_NO_DATA=1`` in the kernels): a notebook that reaches the data
            loader fails the build, on any machine.
        repo_url: the repository's public GitHub URL: every chapter page then carries
            Colab and Binder launch links to its notebook there (plain links: nothing is
            requested until one is clicked). The chapters' Colab setup cells must name
            the same repository (``smallbatch_book.launch``), else the build stops before
            executing anything. None or "": no launch links.
    """
    from smallbatch.presets import SCALES  # the one list of scale names (imports torch: not at import)

    if scale not in SCALES:
        raise BookBuildError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    started = time.perf_counter()
    root = Path(root or REPO_ROOT).resolve()
    build_dir = Path(build_dir or root / "_build").resolve()
    out_dir = Path(out_dir or build_dir / "html").resolve()
    for required in ("_config.yml", "_toc.yml"):
        if not (root / required).is_file():
            raise BookBuildError(f"{root / required} not found: is {root} the book root?")
    for folder in (build_dir, out_dir):  # notebooks/ holds sources only, never outputs
        if folder.is_relative_to(root / "notebooks"):
            raise BookBuildError(f"{folder} is inside notebooks/; build somewhere else")

    if repo_url:
        from .launch import LaunchError, require_repository

        try:
            repo_url = require_repository(root, repo_url)
        except LaunchError as exc:
            raise BookBuildError(str(exc)) from exc

    listed = toc_notebooks(root)
    selected = listed
    if notebooks:
        selected = [
            rel for rel in listed
            if any(fnmatch.fnmatch(rel.as_posix(), pat) or fnmatch.fnmatch(rel.name, pat)
                   or fnmatch.fnmatch(rel.stem, pat) for pat in notebooks)
        ]
        if not selected:
            raise BookBuildError(
                f"no notebook in _toc.yml matches {' '.join(notebooks)}; listed: "
                + ", ".join(p.as_posix() for p in listed)
            )

    # 1. execute
    executed_root = build_dir / "executed"
    executed: dict[Path, Path] = {}
    _say(f"scale={scale}: executing {len(selected)} of {len(listed)} notebook(s) "
         f"with {sys.executable}")
    for rel in listed:
        dst = executed_root / rel
        if rel in selected:
            _say(f"executing {rel.as_posix()} ...")
            seconds = _execute_one(root / rel, dst, scale, cwd=root,
                                   stored_only=scale != "smoke" and not compute_missing,
                                   no_data=not compute_missing)
            _say(f"executed {rel.as_posix()} in {seconds:.1f} s -> {dst}")
            executed[rel] = dst
        elif dst.is_file() and _executed_scale(dst) == scale:
            _say(f"reusing {dst} (executed earlier at scale={scale})")
            executed[rel] = dst
        else:
            _say(f"WARNING: {rel.as_posix()} is not executed (not selected by "
                 f"--notebooks); its page will have no outputs")

    # 2. stage
    stage_dir = build_dir / "source"
    _say(f"staging the book source in {stage_dir}")
    _stage(root, stage_dir, executed, repo_url)

    # 3. render. jupyter-book writes <path-output>/_build/html; when the html dir is
    # named like that, build in place (and keep Sphinx's caches next to it).
    if out_dir.name == "html" and out_dir.parent.name == "_build":
        path_output = out_dir.parent.parent
    else:
        path_output = build_dir / "jupyter-book"
    _say("running jupyter-book build (execution off, warnings are errors)")
    t0 = time.perf_counter()
    _run_jupyter_book(stage_dir, path_output, verbose)
    built = path_output / "_build" / "html"
    if built != out_dir:
        if out_dir.exists():
            shutil.rmtree(out_dir)
        shutil.copytree(built, out_dir)
    tables = _write_data_tables(scale, out_dir)
    if tables:
        _say(f"wrote {len(tables)} CSV tables of the stored trials to {out_dir / DATA_DIR}")
    pages = sum(1 for _ in out_dir.rglob("*.html"))
    _say(f"jupyter-book build took {time.perf_counter() - t0:.1f} s")
    _say(f"done in {time.perf_counter() - started:.1f} s: {pages} html files in {out_dir}")
    _say(f"open {out_dir / 'index.html'}")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    from smallbatch.presets import SCALES

    parser = argparse.ArgumentParser(
        prog="python -m smallbatch_book",
        description="Execute the notebooks with papermill and build the book's HTML.",
    )
    parser.add_argument("--scale", choices=SCALES, default="scaled",
                        help="the preset every notebook runs at (default: scaled)")
    parser.add_argument("--out", type=Path, default=None,
                        help="html output folder (default: _build/html)")
    parser.add_argument("--build-dir", type=Path, default=None,
                        help="executed notebooks, staged source, caches (default: _build)")
    parser.add_argument("--notebooks", nargs="+", metavar="PATTERN", default=None,
                        help="execute only the notebooks matching these glob patterns")
    parser.add_argument("--verbose", action="store_true",
                        help="show jupyter-book's full output")
    parser.add_argument("--repo-url", default=os.environ.get("SMALLBATCH_REPO_URL") or None,
                        help="the repository's public GitHub URL: Colab and Binder launch "
                             "links on every chapter (default: $SMALLBATCH_REPO_URL; none)")
    parser.add_argument("--compute-missing", action="store_true",
                        help="let the notebooks compute and store results missing from "
                             "results/ (default at scaled and full: a missing result fails "
                             "the build)")
    args = parser.parse_args(argv)
    try:
        build_book(args.scale, args.out, build_dir=args.build_dir,
                   notebooks=args.notebooks, verbose=args.verbose,
                   compute_missing=args.compute_missing, repo_url=args.repo_url)
    except BookBuildError as exc:
        print(f"[book] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
