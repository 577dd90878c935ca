"""The explorer in Jupyter (smallbatch.live): its controls redraw the chosen cell, and its
button trains that cell at the smoke scale into the reader's folder, never into results/."""

import pytest

from smallbatch import analysis, presets
from smallbatch.live import LiveExplorer, cell_config, reader_results_dir, reader_runs


@pytest.fixture(scope="module")
def smoke_sets():
    # resnet-bn's smoke grid, trained here into a temporary folder (seconds)
    return analysis.explorer_sets([analysis.load_or_run("resnet-bn", "smoke")])


def test_the_readers_folder_is_never_the_published_results(monkeypatch, tmp_path):
    monkeypatch.setenv("SMALLBATCH_MY_RESULTS", str(tmp_path))
    assert reader_results_dir("resnet-bn", "smoke") == (tmp_path / "resnet-bn" / "smoke").resolve()
    monkeypatch.setenv("SMALLBATCH_MY_RESULTS", str(presets.repo_root() / "results"))
    with pytest.raises(ValueError, match="inside the published results/"):
        reader_results_dir("resnet-bn", "scaled")
    monkeypatch.delenv("SMALLBATCH_MY_RESULTS")
    assert reader_results_dir("x", "smoke").parts[-4:] == ("smallbatch", "my-results", "x",
                                                           "smoke")


def test_a_cell_the_grid_did_not_train_gets_its_sets_config(smoke_sets):
    (data,) = smoke_sets.values()
    config = cell_config(data, 4, -3, 7)
    stored = next(r.config for r in data.results if r.config.batch_size == 4)
    assert (config.batch_size, config.base_lr, config.seed) == (4, 2.0 ** -3, 7)
    assert config.replace(base_lr=stored.base_lr, seed=stored.seed) == stored
    with pytest.raises(ValueError, match="no stored run of this set at m = 8"):
        cell_config(data, 8, -7, 0)


def test_the_button_trains_the_chosen_cell_into_the_readers_folder(smoke_sets, monkeypatch,
                                                                     tmp_path):
    monkeypatch.setenv("SMALLBATCH_MY_RESULTS", str(tmp_path))
    published = sorted(p.name for p in (presets.repo_root() / "results").rglob("*.json"))
    live = LiveExplorer(smoke_sets, "smoke")
    label = live.chooser.value
    live.m.value, live.lr.value, live.seed.value = 4, -7, 5
    entry = next(e for e in live.data["sets"] if e["label"] == label)
    before = analysis.cell_text(entry, 4, -7)
    assert "yours" not in before
    live.button.click()
    folder = tmp_path / "resnet-bn" / "smoke"
    (record,) = folder.glob("*.json")
    entry = next(e for e in live.data["sets"] if e["label"] == label)
    text = analysis.cell_text(entry, 4, -7)
    assert "seed 5" in text and "(yours)" in text and "(2 stored, 1 yours)" in text
    assert "trained m = 4" in live.status.value and str(folder) in live.status.value
    # the published records are untouched, and a second explorer finds the reader's run
    assert sorted(p.name for p in (presets.repo_root() / "results").rglob("*.json")) == published
    again = reader_runs(smoke_sets, {"resnet-bn": folder})
    assert [r.config.seed for r in again[label]] == [5]
    # the curves and bests stay the published runs'
    assert entry["curve"] == analysis.explorer_data(smoke_sets)["sets"][0]["curve"]


def test_the_controls_redraw_the_chosen_cell(smoke_sets, monkeypatch, tmp_path):
    monkeypatch.setenv("SMALLBATCH_MY_RESULTS", str(tmp_path))
    live = LiveExplorer(smoke_sets, "smoke")
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda fig: shown.append(fig))
    live.m.value = 16 if live.m.value == 4 else 4
    live.lr.value = live.lr.options[0]
    assert shown, "moving a slider redraws the figure"
    title = shown[-1].layout.title.text
    assert f"m = {live.m.value}, η̃ = 2^{live.lr.value}" in title
    assert not shown[-1].layout.sliders  # Jupyter's controls drive it, not plotly's
