"""The explorer in a live Jupyter kernel (book: "Explore the stored runs", run in Jupyter):
the same figure as the static page, driven by ipywidgets, with a button that trains the
chosen cell now.

What a reader trains goes to the reader's own results folder (:func:`reader_results_dir`:
``$SMALLBATCH_MY_RESULTS``, else ``~/.cache/smallbatch/my-results``), never into the
published ``results/``, and appears in the figure beside the stored seeds, marked as the
reader's. Building the controls reads stored records only; nothing trains and no data set is
loaded until the button is pressed, so the book build, which runs the cell, does neither.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from . import presets
from .analysis import StudyData, explorer_data
from .analysis.explorer import best_cell
from .store import load_records
from .train import TrainConfig, TrainResult, config_hash

__all__ = ["READER_RESULTS_ENV", "reader_results_dir", "cell_config", "train_cell",
           "reader_runs", "LiveExplorer"]


READER_RESULTS_ENV = "SMALLBATCH_MY_RESULTS"


def reader_results_dir(study: str, scale: str) -> Path:
    """Where the reader's own runs of ``study`` at ``scale`` go: ``$SMALLBATCH_MY_RESULTS``,
    else ``~/.cache/smallbatch/my-results``, then ``<study>/<scale>``. A folder inside the
    published ``results/`` is refused: those records are the book's, trained from a clean
    checkout by ``make studies``."""
    base = Path(os.environ.get(READER_RESULTS_ENV)
                or Path.home() / ".cache" / "smallbatch" / "my-results")
    path = (base / study / presets.check_scale(scale)).resolve()
    published = (presets.repo_root() / "results").resolve()
    if path == published or published in path.parents:
        raise ValueError(
            f"{path} is inside the published results/ ({published}): a reader's runs must "
            f"not mix with the book's. Set {READER_RESULTS_ENV} to a folder outside it.")
    return path


def _cell_key(config: TrainConfig) -> str:
    """What a run shares with every run of its set: its config but eta_tilde and the seed."""
    return config_hash(dataclasses.replace(config, base_lr=1.0, seed=0))


def cell_config(data: StudyData, m: int, log2_lr: int, seed: int) -> TrainConfig:
    """The config of cell (m, 2^log2_lr) of a set of runs, at ``seed``: a stored run of the
    set at that m with its eta_tilde and seed replaced, so a cell the grid did not train
    can be trained too. An m the set has no run at is an error."""
    at_m = [r.config for r in data.results if r.config.batch_size == m]
    if not at_m:
        sizes = sorted({r.config.batch_size for r in data.results})
        raise ValueError(f"no stored run of this set at m = {m} to take the rest of the "
                         f"config from; its batch sizes: {sizes}")
    return dataclasses.replace(at_m[0], base_lr=2.0 ** int(log2_lr), seed=int(seed))


def train_cell(data: StudyData, m: int, log2_lr: int, seed: int, results_dir,
               **train_kwargs) -> TrainResult:
    """Train cell (m, 2^log2_lr) of a set at ``seed`` into ``results_dir`` (the reader's
    folder) and return its result; a run already there is returned as it is."""
    from .studies import train_or_load

    return train_or_load(cell_config(data, m, log2_lr, seed), results_dir, **train_kwargs)


def reader_runs(sets: Mapping[str, StudyData], folders: Mapping[str, Path]
                ) -> dict[str, list[TrainResult]]:
    """The reader's runs (complete or diverged) in ``folders`` (study name -> folder), by
    the label of the set each belongs to (a run of a cell no set has is left out)."""
    keys = {label: {_cell_key(r.config) for r in data.results} for label, data in sets.items()}
    out: dict[str, list[TrainResult]] = {label: [] for label in sets}
    for study, folder in folders.items():
        if not Path(folder).is_dir():
            continue
        for result in load_records(folder, warn=False).results.values():
            if result.status == "failed":
                continue
            key = _cell_key(result.config)
            for label, data in sets.items():
                if data.study.name == study and key in keys[label]:
                    out[label].append(result)
                    break
    return out


class LiveExplorer:
    """The explorer's controls as ipywidgets: a dropdown of sets of runs, sliders for m and
    log2 eta_tilde, a seed and a button that trains the chosen cell (with train()'s progress
    bar), and the figure, redrawn on every change. ``widget`` is what to display."""

    def __init__(self, sets: Mapping[str, StudyData], scale: str):
        import ipywidgets as widgets

        self.sets, self.scale = dict(sets), scale
        self.folders = {d.study.name: reader_results_dir(d.study.name, scale)
                        for d in self.sets.values()}
        self.mine = reader_runs(self.sets, self.folders)
        self.data = explorer_data(self.sets, mine=self.mine)
        labels = [entry["label"] for entry in self.data["sets"]]
        self.chooser = widgets.Dropdown(options=labels, description="runs",
                                        layout=widgets.Layout(width="95%"))
        self.m = widgets.SelectionSlider(options=[0], description="m")
        self.lr = widgets.SelectionSlider(options=[0], description="log2 η̃")
        self.seed = widgets.BoundedIntText(value=100, min=0, max=2**31 - 1,
                                           description="seed")
        self.button = widgets.Button(description="train this cell now",
                                     tooltip="trains into your own results folder")
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self._quiet = False  # while _set_grid moves both sliders: one redraw, at the end
        self._set_grid(labels[0])
        self.chooser.observe(lambda change: self._set_grid(change["new"]), names="value")
        self.m.observe(lambda change: self._quiet or self.draw(), names="value")
        self.lr.observe(lambda change: self._quiet or self.draw(), names="value")
        self.button.on_click(lambda button: self.train())
        self.widget = widgets.VBox([
            self.chooser, widgets.HBox([self.m, self.lr]),
            widgets.HBox([self.seed, self.button]), self.status, self.output])
        self.draw()

    def _set_grid(self, label: str) -> None:
        entry = next(e for e in self.data["sets"] if e["label"] == label)
        m, log2_lr = best_cell(entry)
        self._quiet = True
        try:
            self.m.options, self.lr.options = entry["m"], entry["lr"]
            self.m.value, self.lr.value = m, log2_lr
        finally:
            self._quiet = False
        self.draw()

    def draw(self) -> None:
        """Redraw the figure for the chosen set and cell."""
        from IPython.display import display

        from .figures import explorer

        fig = explorer(self.data, first=self.chooser.value, m=self.m.value,
                       log2_lr=self.lr.value, controls=False)
        with self.output:
            self.output.clear_output(wait=True)
            display(fig)

    def train(self) -> TrainResult:
        """Train the chosen cell at the chosen seed into the reader's folder, then show it."""
        label = self.chooser.value
        data = self.sets[label]
        folder = self.folders[data.study.name]
        self.status.value = (f"training m = {self.m.value}, η̃ = 2^{self.lr.value}, seed "
                             f"{self.seed.value} into {folder} ...")
        with self.output:
            result = train_cell(data, self.m.value, self.lr.value, self.seed.value, folder,
                                progress=True)
        self.mine.setdefault(label, [])
        if result.config_hash not in {r.config_hash for r in self.mine[label]}:
            self.mine[label].append(result)
        self.data = explorer_data(self.sets, mine=self.mine)
        score = (f"{result.test_accuracy:.4f}" if result.status == "complete"
                 else f"diverged in epoch {result.diverged_epoch}")
        self.status.value = (f"trained m = {self.m.value}, η̃ = 2^{self.lr.value}, seed "
                             f"{result.config.seed}: {score}; stored in {folder}")
        self.draw()
        return result
