"""Copies of the book's sources for builds with launch links (tests/conftest.py, test_launch.py)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The repository URL of the smoke build's launch links (a name only: nothing is fetched).
LAUNCH_URL = "https://github.com/smallbatch-tests/smallbatch"
# What a book root holds (copied for a build from a copy of the book's sources).
BOOK_SOURCES = ("_config.yml", "_toc.yml", "CITATION.cff", "book", "notebooks")


def book_copy(destination: Path, repository: str | None = "") -> Path:
    """A copy of the book's sources (not results/ or lib/: the notebooks read those from
    the repository, through the installed package) whose chapters' Colab setup cells name
    ``repository``."""
    import shutil

    from smallbatch_book.launch import set_repository

    destination.mkdir(parents=True, exist_ok=True)
    for name in BOOK_SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "_generated"))
        elif source.is_file():
            shutil.copy2(source, destination / name)
    set_repository(destination, repository or "")
    return destination
