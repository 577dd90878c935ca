"""One smoke-scale book build per test session, shared by the notebook and book tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from book_copies import LAUNCH_URL, book_copy  # tests/ is on sys.path (this file's folder)

REPO = Path(__file__).resolve().parents[1]


@dataclass
class BuiltBook:
    html: Path
    build_dir: Path
    notebooks_before: dict[Path, bytes]
    seconds: float


def _build(scale: str, tmp: Path, repo_url: str | None = None) -> BuiltBook:
    """The book built at ``scale`` into ``tmp``: the repository's own sources, or with
    ``repo_url`` a copy of them whose setup cells name it (launch links on)."""
    from smallbatch_book.build import build_book

    before = {p: p.read_bytes() for p in sorted((REPO / "notebooks").glob("*.ipynb"))}
    root = book_copy(tmp / "root", repo_url) if repo_url else REPO
    started = time.perf_counter()
    html = build_book(scale, tmp / "html", root=root, build_dir=tmp / "build",
                      repo_url=repo_url)
    return BuiltBook(html=html, build_dir=tmp / "build", notebooks_before=before,
                     seconds=time.perf_counter() - started)


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> BuiltBook:
    """The book built at scale smoke into a temporary folder, with launch links to
    LAUNCH_URL (from a copy of its sources whose setup cells name it)."""
    return _build("smoke", tmp_path_factory.mktemp("book"), LAUNCH_URL)


@pytest.fixture(scope="session")
def built_scaled_book(tmp_path_factory) -> BuiltBook:
    """The published book (scale scaled), built from the stored results in results/ into a
    temporary folder, as `make book` builds it (no launch links). The build reads stored
    results only: a missing one fails it."""
    return _build("scaled", tmp_path_factory.mktemp("scaled-book"))
