"""Launch links and the Colab setup cell (smallbatch_book.launch).

The smoke build of the session (tests/conftest.py) is made with a repository URL; the
published (scaled) build without one. The browser check of both (test_book.py) proves that
the links request nothing. Here: the links themselves, the setup cell in every chapter,
what it does in Colab (simulated: a ``google.colab`` module, a local clone as the
repository) and that it does nothing anywhere else, and the build's refusals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from book_copies import LAUNCH_URL, book_copy
from smallbatch_book import launch
from smallbatch_book.build import BookBuildError, build_book, kernel_manager_class, toc_notebooks

REPO = Path(__file__).resolve().parents[2]


def _chapter_pages(html: Path) -> dict[str, BeautifulSoup]:
    return {rel.stem: BeautifulSoup((html / rel.with_suffix(".html")).read_text(encoding="utf-8"),
                                    "html.parser")
            for rel in toc_notebooks(REPO)}


# ----------------------------------------------------------------------- the URL


@pytest.mark.parametrize("url", ["https://github.com/owner/name", "https://github.com/owner/name/",
                                 "https://github.com/owner/name.git"])
def test_a_github_url_is_accepted_and_cleaned(url):
    assert launch.check_url(url) == "https://github.com/owner/name"


@pytest.mark.parametrize("url", ["https://gitlab.com/owner/name", "github.com/owner/name",
                                 "https://github.com/owner", "https://github.com/o/n/tree/main",
                                 "http://github.com/owner/name", ""])
def test_an_url_colab_cannot_open_is_refused_naming_the_form_it_needs(url):
    with pytest.raises(launch.LaunchError, match="https://github.com/OWNER/NAME"):
        launch.check_url(url)


# ---------------------------------------------------------------- the setup cells


def test_every_chapter_starts_with_the_same_hidden_setup_cell():
    named = launch.notebooks_repository(REPO)  # raises if one is missing, edited or differs
    assert named == "" or named == launch.check_url(named)
    for rel in toc_notebooks(REPO):
        first = nbformat.read(REPO / rel, as_version=4).cells[0]
        assert first.cell_type == "code" and first.source == launch.setup_cell_source(named)
        assert {"remove-cell", launch.SETUP_TAG} <= set(first.metadata["tags"]), rel


def test_set_repository_names_the_url_in_every_chapter_and_is_checked(tmp_path):
    root = book_copy(tmp_path / "book")
    assert launch.notebooks_repository(root) == ""
    url = "https://github.com/someone/fork"
    changed = launch.set_repository(root, url + ".git")
    assert len(changed) == len(toc_notebooks(root))
    assert launch.notebooks_repository(root) == url
    assert launch.require_repository(root, url + "/") == url
    assert launch.set_repository(root, url) == []  # already named: nothing rewritten
    with pytest.raises(launch.LaunchError, match="make launch REPO_URL=https://github.com/x/y"):
        launch.require_repository(root, "https://github.com/x/y")

    # one chapter names another repository, one has an edited cell, one has none
    first, second, third = (root / rel for rel in toc_notebooks(root)[:3])
    nb = nbformat.read(first, as_version=4)
    nb.cells[0].source = launch.setup_cell_source("https://github.com/other/repo")
    nbformat.write(nb, first)
    with pytest.raises(launch.LaunchError, match="name different repositories"):
        launch.notebooks_repository(root)
    nb = nbformat.read(second, as_version=4)
    nb.cells[0].source += "\nprint('edited')"
    nbformat.write(nb, second)
    with pytest.raises(launch.LaunchError, match=f"{second.name}: its first cell is not"):
        launch.notebooks_repository(root)
    nb = nbformat.read(third, as_version=4)
    del nb.cells[0]
    nbformat.write(nb, third)
    launch.set_repository(root, url)  # puts all three right again
    assert launch.notebooks_repository(root) == url
    assert nbformat.read(third, as_version=4).cells[1].cell_type == "markdown"


def test_make_launch_shows_and_sets(tmp_path):
    root = book_copy(tmp_path / "book")
    run = [sys.executable, "-m", "smallbatch_book.launch", "--root", str(root)]
    shown = subprocess.run(run + ["--show"], capture_output=True, text=True, check=True)
    assert shown.stdout == "\n"
    subprocess.run(run + ["https://github.com/a/b"], capture_output=True, check=True)
    shown = subprocess.run(run + ["--show"], capture_output=True, text=True, check=True)
    assert shown.stdout == "https://github.com/a/b\n"
    bad = subprocess.run(run + ["https://example.org/a/b"], capture_output=True, text=True)
    assert bad.returncode == 1 and "launch: repository URL" in bad.stderr


def test_the_setup_cell_does_nothing_outside_colab(tmp_path):
    code = (f"import os, sys\nbefore = (os.getcwd(), list(sys.path))\n"
            f"exec({launch.setup_cell_source('https://github.com/a/b')!r})\n"
            "assert (os.getcwd(), sys.path) == before\n"
            "assert 'smallbatch' not in sys.modules\n")
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing cloned


def _fake_colab(folder: Path) -> Path:
    """A folder for PYTHONPATH that makes a Python process look like Colab's: a
    ``google.colab`` package, imported at start-up (sitecustomize), as Colab's kernels do."""
    package = folder / "google" / "colab"
    package.mkdir(parents=True)
    (folder / "google" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("# stands in for Colab's module in the tests\n")
    (folder / "sitecustomize.py").write_text("import google.colab\n")
    return folder


def test_in_colab_a_setup_cell_naming_no_repository_says_so(tmp_path):
    code = f"exec({launch.setup_cell_source('')!r})\n"
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(_fake_colab(tmp_path / "py"))}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "names no public repository" in proc.stderr


def test_in_colab_a_chapter_fetches_the_repository_and_runs_at_smoke_without_data(tmp_path):
    """Colab simulated: ``google.colab`` importable, HOME and the working folder empty, the
    repository a local clone (file://). The quickstart's setup cell clones it, switches to
    it, and the chapter then runs at smoke with the clone's package, no data set loadable."""
    import papermill

    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                      capture_output=True).returncode != 0:
        pytest.skip("the repository is not a git checkout: nothing to clone")
    home, work = tmp_path / "home", tmp_path / "content"
    home.mkdir()
    work.mkdir()
    nb = nbformat.read(REPO / "notebooks" / "00_quickstart.ipynb", as_version=4)
    nb.cells[0].source = launch.setup_cell_source(REPO.as_uri())  # file:// (a local clone)
    checkout = home / "smallbatch"
    nb.cells.append(nbformat.v4.new_code_cell(
        "import os, smallbatch\n"
        f"assert os.getcwd() == {str(checkout)!r}, os.getcwd()\n"
        f"assert smallbatch.__file__.startswith({str(checkout / 'lib')!r}), smallbatch.__file__\n"
        "print('ran from', smallbatch.__file__)"))
    source = work / "00_quickstart.ipynb"
    nbformat.write(nb, source)
    env = {"HOME": str(home), "PYTHONPATH": str(_fake_colab(tmp_path / "py"))}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        papermill.execute_notebook(
            str(source), str(work / "executed.ipynb"), parameters={"scale": "smoke"},
            kernel_name="python3", language="python", cwd=str(work), progress_bar=False,
            kernel_manager_class=kernel_manager_class(tmp_path / "kernel.log", no_data=True),
            start_timeout=120, execution_timeout=600)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert (checkout / ".git").is_dir() and (checkout / "results").is_dir()
    executed = nbformat.read(work / "executed.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for o in executed.cells[-1].outputs)
    assert f"ran from {checkout / 'lib'}" in printed


# ------------------------------------------------------------------------ the build


def test_the_build_refuses_a_url_the_chapters_do_not_name_before_executing(tmp_path):
    root = book_copy(tmp_path / "book", "https://github.com/someone/fork")
    with pytest.raises(BookBuildError, match="make launch REPO_URL=https://github.com/x/y"):
        build_book("smoke", root=root, build_dir=tmp_path / "build",
                   repo_url="https://github.com/x/y")
    assert not (tmp_path / "build" / "executed").exists()
    with pytest.raises(BookBuildError, match="OWNER/NAME"):
        build_book("smoke", root=root, build_dir=tmp_path / "build",
                   repo_url="https://gitlab.com/someone/fork")


def test_every_chapter_page_links_to_its_notebook_on_colab_and_binder(built_book):
    owner_name = LAUNCH_URL.removeprefix("https://github.com/")
    for stem, soup in _chapter_pages(built_book.html).items():
        hrefs = [a.get("href", "") for a in soup.find_all("a")]
        colab = f"https://colab.research.google.com/github/{owner_name}/blob/main/notebooks/{stem}.ipynb"
        binder = (f"https://mybinder.org/v2/gh/{owner_name}/main"
                  f"?urlpath=lab/tree/notebooks/{stem}.ipynb")
        assert colab in hrefs, stem
        assert binder in hrefs, stem
        assert LAUNCH_URL in hrefs, stem  # the repository button
        # plain links: nothing on the page loads from those hosts
        loaded = [t.get("src") or t.get("href") for t in soup.find_all(["script", "img", "link"])]
        assert not [u for u in loaded if u and ("colab" in u and "://" in u or "mybinder" in u)]
        # the setup cell is hidden from the page
        assert "REPOSITORY =" not in soup.get_text(), stem


def test_without_a_url_the_book_has_no_launch_links(built_scaled_book):
    for stem, soup in _chapter_pages(built_scaled_book.html).items():
        text = str(soup)
        assert "colab.research.google.com" not in text and "mybinder.org" not in text, stem
        assert "REPOSITORY =" not in soup.get_text(), stem


def test_the_staged_config_turns_the_links_on(built_book):
    import yaml

    staged = yaml.safe_load((built_book.build_dir / "source" / "_config.yml").read_text())
    assert staged["repository"]["url"] == LAUNCH_URL
    assert staged["launch_buttons"]["colab_url"] and staged["launch_buttons"]["binderhub_url"]
    assert staged["launch_buttons"]["thebe"] is False
    own = yaml.safe_load((REPO / "_config.yml").read_text())
    assert own["repository"]["url"] == ""  # the repository's config stays without
    assert {k: v for k, v in staged.items() if k not in ("repository", "launch_buttons", "html")} \
        == {k: v for k, v in own.items() if k not in ("repository", "launch_buttons", "html")}
    json.dumps(staged)  # plain data
