"""One smoke-scale book build per test session, shared by the notebook and book tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass
class BuiltBook:
    html: Path
    build_dir: Path
    notebooks_before: dict[Path, bytes]
    seconds: float


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> BuiltBook:
    """The real repository's book, built at scale smoke into a temporary folder."""
    from smallbatch.book import build_book

    before = {p: p.read_bytes() for p in sorted((REPO / "notebooks").glob("*.ipynb"))}
    tmp = tmp_path_factory.mktemp("book")
    started = time.perf_counter()
    html = build_book("smoke", tmp / "html", root=REPO, build_dir=tmp / "build")
    return BuiltBook(html=html, build_dir=tmp / "build", notebooks_before=before,
                     seconds=time.perf_counter() - started)


@pytest.fixture(scope="session")
def built_scaled_book(tmp_path_factory) -> BuiltBook:
    """The published book (scale scaled), built from the stored results in results/ into a
    temporary folder. The build reads stored results only: a missing one fails it."""
    from smallbatch.book import build_book

    before = {p: p.read_bytes() for p in sorted((REPO / "notebooks").glob("*.ipynb"))}
    tmp = tmp_path_factory.mktemp("scaled-book")
    started = time.perf_counter()
    html = build_book("scaled", tmp / "html", root=REPO, build_dir=tmp / "build")
    return BuiltBook(html=html, build_dir=tmp / "build", notebooks_before=before,
                     seconds=time.perf_counter() - started)
