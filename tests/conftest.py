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


def _build(scale: str, tmp: Path) -> BuiltBook:
    """The real repository's book, built at ``scale`` into ``tmp``."""
    from smallbatch_book.build import build_book

    before = {p: p.read_bytes() for p in sorted((REPO / "notebooks").glob("*.ipynb"))}
    started = time.perf_counter()
    html = build_book(scale, tmp / "html", root=REPO, build_dir=tmp / "build")
    return BuiltBook(html=html, build_dir=tmp / "build", notebooks_before=before,
                     seconds=time.perf_counter() - started)


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> BuiltBook:
    """The book built at scale smoke into a temporary folder."""
    return _build("smoke", tmp_path_factory.mktemp("book"))


@pytest.fixture(scope="session")
def built_scaled_book(tmp_path_factory) -> BuiltBook:
    """The published book (scale scaled), built from the stored results in results/ into a
    temporary folder. The build reads stored results only: a missing one fails it."""
    return _build("scaled", tmp_path_factory.mktemp("scaled-book"))
