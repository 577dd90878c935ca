"""Launch links (Colab, Binder) and the notebooks' Colab setup cell.

    python -m smallbatch_book.launch --show          the repository the notebooks name
    python -m smallbatch_book.launch URL             name URL in every chapter's setup cell
    make launch REPO_URL=URL                         the same

The book build takes the repository's public URL as a setting (``make book REPO_URL=...``,
``python -m smallbatch_book --repo-url ...``). With it, every chapter page carries Colab and
Binder launch links to that chapter's notebook in the repository, and a link to the
repository; without it the book has none. A launch link is a plain link: nothing is
requested until a reader clicks it (the browser check proves it on a build with a URL).

Binder builds the repository from ``requirements.txt``, so a notebook there has everything.
Colab opens the notebook file alone, so every chapter's first cell (hidden in the book,
inert outside Colab: :data:`SETUP_CELL`) clones the repository into ``~/smallbatch``,
changes into it, and puts its ``lib/`` first on ``sys.path``. The notebook then reads the
stored results of the clone, exactly as the book does, and runs at its smoke scale on the
synthetic data: no data set is needed either way. Colab's own torch, numpy, pandas and
plotly are used (installing this project's pins there would download gigabytes).

A notebook cannot know which repository Colab opened it from, so the setup cell names it,
and one command writes the name into every chapter (:func:`set_repository`). The build
refuses a URL that the notebooks do not name: its Colab links would open notebooks that
set themselves up from somewhere else, or from nowhere.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

__all__ = ["LaunchError", "SETUP_TAG", "SETUP_CELL", "setup_cell_source", "check_url",
           "notebook_repository", "notebooks_repository", "set_repository",
           "require_repository", "launch_config", "main"]

# The tag of the setup cell; with remove-cell, the book hides it (input and output).
SETUP_TAG = "colab-setup"

# Every chapter's first cell. {repository} is a Python string literal. Plain Python (no
# %pip magics), so that it can be run and tested outside IPython.
SETUP_CELL = '''\
# Google Colab only (hidden in the book; does nothing anywhere else): fetch this book's
# code and stored results, and use them. Set with `make launch REPO_URL=...`.
REPOSITORY = {repository}
import os, subprocess, sys
if "google.colab" in sys.modules:
    if not REPOSITORY:
        raise RuntimeError("This notebook names no public repository to fetch the smallbatch "
                           "package from. Open it from the book's Colab link, or clone the "
                           "repository and run it in Jupyter (make lab).")
    checkout = os.path.join(os.path.expanduser("~"), "smallbatch")
    if not os.path.isdir(checkout):
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", REPOSITORY, checkout],
                       check=True)
    os.chdir(checkout)
    sys.path.insert(0, os.path.join(checkout, "lib"))'''

_GITHUB = re.compile(r"^https://github\.com/[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
_REPOSITORY_LINE = re.compile(r"^REPOSITORY = (.*)$", re.M)


class LaunchError(ValueError):
    """A repository URL the launch links cannot use, or notebooks that name another."""


def check_url(url: str) -> str:
    """``url`` without a trailing slash or ``.git``, if it is a GitHub repository's address.

    Colab opens notebooks from GitHub only (``colab.research.google.com/github/...``)."""
    cleaned = url.strip().rstrip("/")
    cleaned = cleaned[:-4] if cleaned.endswith(".git") else cleaned
    if not _GITHUB.match(cleaned):
        raise LaunchError(
            f"repository URL {url!r}: launch links need a public GitHub repository's "
            "address, https://github.com/OWNER/NAME (Colab opens notebooks from GitHub only)")
    return cleaned


def setup_cell_source(repository: str = "") -> str:
    """The setup cell, naming ``repository`` ("" names none)."""
    return SETUP_CELL.format(repository=json.dumps(repository))


def _setup_cell_index(nb) -> int | None:
    cells = nb.cells
    if cells and SETUP_TAG in cells[0].get("metadata", {}).get("tags", []):
        return 0
    return None


def notebook_repository(nb) -> str | None:
    """The repository a notebook's setup cell names ("" for none); None if it has no setup
    cell, or one that differs from :data:`SETUP_CELL` in anything but the name."""
    import ast

    index = _setup_cell_index(nb)
    if index is None:
        return None
    source = nb.cells[index].source
    found = _REPOSITORY_LINE.search(source)
    if not found:
        return None
    try:
        repository = ast.literal_eval(found.group(1))
    except (ValueError, SyntaxError):
        return None
    if not isinstance(repository, str) or source != setup_cell_source(repository):
        return None
    return repository


def _chapters(root: Path) -> list[Path]:
    from .toc import toc_notebooks

    return [root / rel for rel in toc_notebooks(root)]


def notebooks_repository(root: Path) -> str:
    """The repository every chapter's setup cell names; LaunchError if one has no setup cell
    (or an edited one), or if they disagree."""
    import nbformat

    named = {}
    for path in _chapters(Path(root)):
        repository = notebook_repository(nbformat.read(path, as_version=4))
        if repository is None:
            raise LaunchError(
                f"{path.relative_to(root)}: its first cell is not the Colab setup cell "
                "(smallbatch_book.launch.SETUP_CELL); write it with `make launch REPO_URL=URL` "
                "(or `make launch REPO_URL=` for none)")
        named.setdefault(repository, []).append(path.name)
    if len(named) > 1:
        raise LaunchError("the chapters' setup cells name different repositories: "
                          + "; ".join(f"{r or '(none)'}: {', '.join(n)}" for r, n in named.items())
                          + ". Make them agree with `make launch REPO_URL=URL`.")
    return next(iter(named), "")


def set_repository(root: Path, url: str) -> list[Path]:
    """Write the setup cell naming ``url`` ("" for none) first in every chapter notebook;
    return the notebooks changed. A notebook's other cells are left as they are."""
    import nbformat

    repository = check_url(url) if url else ""
    changed = []
    for path in _chapters(Path(root)):
        nb = nbformat.read(path, as_version=4)
        source = setup_cell_source(repository)
        index = _setup_cell_index(nb)
        if index is not None and nb.cells[index].source == source:
            continue
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["remove-cell", SETUP_TAG]})
        cell["id"] = SETUP_TAG  # a fixed id: setting the cell twice writes the same file
        if index is None:
            nb.cells.insert(0, cell)
        else:
            nb.cells[index] = cell
        nbformat.write(nb, path)
        changed.append(path)
    return changed


def require_repository(root: Path, url: str) -> str:
    """``url``, checked, if every chapter's setup cell names it; LaunchError otherwise."""
    url = check_url(url)
    named = notebooks_repository(root)
    if named != url:
        raise LaunchError(
            f"launch links to {url} would open notebooks whose Colab setup cell fetches "
            f"{named or 'nothing'}. Name it in the notebooks first: "
            f"`make launch REPO_URL={url}`, and commit them (Colab opens the committed files).")
    return url


def launch_config(url: str, branch: str = "main") -> dict:
    """The ``_config.yml`` entries that turn on the launch links and the repository link."""
    return {
        "repository": {"url": url, "path_to_book": "", "branch": branch},
        "launch_buttons": {"notebook_interface": "jupyterlab",
                           "binderhub_url": "https://mybinder.org",
                           "colab_url": "https://colab.research.google.com",
                           "jupyterhub_url": "", "thebe": False, "deepnote_url": ""},
        "html": {"use_repository_button": True},
    }


def main(argv: list[str] | None = None) -> int:
    from .toc import REPO_ROOT

    parser = argparse.ArgumentParser(
        prog="python -m smallbatch_book.launch",
        description="Show, or set, the repository that the chapters' Colab setup cells fetch.")
    parser.add_argument("url", nargs="?", help="https://github.com/OWNER/NAME; '' for none")
    parser.add_argument("--show", action="store_true", help="print the repository named")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.show or args.url is None:
            print(notebooks_repository(args.root))
            return 0
        changed = set_repository(args.root, args.url)
    except LaunchError as exc:
        print(f"launch: {exc}", file=sys.stderr)
        return 1
    print(f"launch: {len(changed)} notebook(s) now fetch {args.url or 'nothing'} in Colab")
    return 0


if __name__ == "__main__":
    sys.exit(main())
