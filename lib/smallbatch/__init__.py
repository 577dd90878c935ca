"""smallbatch: an interactive, reproducible study of batch size and learning rate in SGD.

Tests and extends Masters and Luschi (2018), "Revisiting Small Batch Training for Deep
Neural Networks". The map, from the research core to what the book shows. Imports go one
way, down these layers, with no cycle and no side effect at import:

    core (models, train, ensemble, data, provenance, store, presets, atomic)
      < theory < studies < analysis < figures < live, cli

theory imports only the core (which run the noise scale measures, a study's best, is
chosen in analysis.budget); presets imports nothing above the core. figures draw
DataFrames; they import the core's labels, theory (the theory chapters' live figures
recompute what a slider sets) and a few helpers of analysis (the budget's formatters, the
explorer's line on a cell, best_first, the engine's target ratio). One lazy import reaches
across: analysis.load_or_run trains a smoke study (studies). tests/unit/test_layers.py
checks theory's imports.

The research core
    models       the paper's networks (ResNet-8/20/32/50, the reduced AlexNet, ghost BN)
    train        one run: TrainConfig, the paper's rules (schedule, divergence, the
                 headline metric), the readable training loop
    ensemble/    many runs in lock-step on the same batches; tested against train
    data/        the data sets: a registry, the on-device core, the file readers, ImageNet
    provenance   where a result came from (commit, device, machine)
    store        the record store: runs and measurements as JSON, keyed by config hash;
                 reads and writes, trains nothing
    presets      the named scales (smoke, scaled, full) and every size derived from them
    atomic       the one atomic file writer (records, tables, the data cache); imports
                 nothing of the package

By book part
    theory/      "The argument": closed forms (scaling, the noisy quadratic model) and the
                 measurements on real networks (gradient noise, stale gradients)
    studies/     "How the grids are trained": a study's spec (YAML grid to configs) apart
                 from its execution (executors, run_study, dry run); the study YAML files
    analysis/    "The experiments": cell statistics, one object per set of runs (RunSet),
                 the paper's claims and their rules, each chapter's sections, the report
                 tables
    figures/     shared style, then one module per book part
    cli          the ``smallbatch`` command line
    live         the explorer in a live Jupyter kernel (ipywidgets), with a button that
                 trains the chosen cell into the reader's own results folder

The web-book toolchain (build, static plotly renderer, Sphinx extension) is a separate
package, ``smallbatch_book``; nothing here imports it.
"""

__version__ = "0.1.0"
