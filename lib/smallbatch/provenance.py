"""Where a result came from, in one place: the code's git commit (with a "-dirty" mark for
local edits), the device and the machine. Every stored run (:func:`run_provenance`) and
every benchmark record (:func:`measurement_header`) takes its provenance from here."""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout this package runs from, "<sha>-dirty" when tracked files
    differ from it, or None outside a git checkout."""
    source = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=source, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo on Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_id() -> str:
    """What decides a CPU's float32 rounding in torch's kernels, as one string: the vendor,
    family, model and stepping from /proc/cpuinfo and the instruction set torch dispatches to
    (e.g. "AuthenticAMD 25/17/1 AVX512"). The model name alone is not enough: a virtual
    machine may report only "AMD EPYC" on hosts whose kernels round differently."""
    import torch

    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("vendor_id", "cpu family", "model", "stepping") and key not in fields:
                fields[key] = value.strip()
    except OSError:
        pass
    chip = (f"{fields.get('vendor_id', platform.machine())} "
            f"{fields.get('cpu family', '?')}/{fields.get('model', '?')}/{fields.get('stepping', '?')}")
    return f"{chip} {torch.backends.cpu.get_cpu_capability()}"


def device_name(device) -> str:
    """The GPU's name for a CUDA device, else the CPU model (:func:`cpu_name`)."""
    import torch

    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


COMMIT_ENV = "SMALLBATCH_COMMIT"


def code_commit() -> str | None:
    """The commit a result's code came from: ``$SMALLBATCH_COMMIT`` if set (a sweep pins it
    when it starts, for every worker: :func:`smallbatch.studies.run_study`; or a copy of the
    checkout whose git history is not its own), else :func:`git_commit`."""
    return os.environ.get(COMMIT_ENV) or git_commit()


def run_provenance(device) -> dict:
    """Where a run or measurement was computed: package, commit, torch, device, threads, host
    and, on a CPU, :func:`cpu_id` (the ``provenance`` of every stored record)."""
    import torch

    from . import __version__

    device = torch.device(device)
    found = {
        "smallbatch_version": __version__,
        "git_commit": code_commit(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "hostname": platform.node(),
    }
    if device.type == "cpu":
        found["cpu_id"] = cpu_id()
    return found


def measurement_header(device) -> dict:
    """Where and when a benchmark measured: UTC time, device and its name, torch threads,
    torch and Python versions, and the commit (``$SMALLBATCH_COMMIT`` if set, for a copy of
    the checkout whose git history is not its own, such as a working tree sent to a GPU
    machine; else :func:`git_commit`)."""
    import torch

    device = torch.device(device)
    return {
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": code_commit()}


def write_measurement(folder, stem: str, record: dict, lines: list[str]) -> Path:
    """Write a benchmark's ``record`` as ``folder/stem.json`` and its table ``lines`` as
    ``folder/stem.md`` (the folder is created); returns the JSON's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    (folder / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return folder / f"{stem}.json"
