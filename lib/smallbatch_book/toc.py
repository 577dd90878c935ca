"""The book's table of contents: which files ``_toc.yml`` lists (read by the build and by
``smallbatch_book.launch``, which writes the chapters' setup cells)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["REPO_ROOT", "BookBuildError", "toc_notebooks", "toc_documents"]

REPO_ROOT = Path(__file__).resolve().parents[2]  # lib/smallbatch_book/toc.py -> repository


class BookBuildError(RuntimeError):
    """The book could not be built; the message says which notebook or step failed."""


def toc_notebooks(root: Path) -> list[Path]:
    """The notebooks (``.ipynb``) listed in ``root/_toc.yml``, relative to root, in order."""
    from sphinx_external_toc.parsing import parse_toc_yaml

    site_map = parse_toc_yaml(root / "_toc.yml")
    found = []
    for docname in site_map:  # the root document first, then the toc's order
        path = Path(f"{docname}.ipynb")
        if (root / path).is_file():
            found.append(path)
    return found


def toc_documents(root: Path) -> list[Path]:
    """Every source file (any suffix) listed in ``_toc.yml``, relative to root."""
    from sphinx_external_toc.parsing import parse_toc_yaml

    docs = []
    for docname in parse_toc_yaml(root / "_toc.yml"):
        matches = [
            p for p in (root / docname).parent.glob(Path(docname).name + ".*")
            if p.suffix in (".md", ".ipynb", ".rst")
        ]
        if not matches:
            raise BookBuildError(f"_toc.yml lists {docname}, but there is no such file")
        docs.extend(p.relative_to(root) for p in matches)
    return docs
