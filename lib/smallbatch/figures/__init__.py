"""Figures (plotly), one module per book part, from tidy DataFrames (one row per run, cell
or epoch). Each function returns a ``plotly.graph_objects.Figure``; how it is shown is the
caller's (in the book build, the kernel's renderer: ``smallbatch_book.render``).

- :mod:`.style`: what every figure shares (title and provenance note, log2 axes, slider
  steps, colours);
- :mod:`.quickstart`, :mod:`.theory`, :mod:`.experiments`, :mod:`.engine`: the figures of
  "Getting started", "The argument", "The experiments" and "How the grids are trained";
  :mod:`.budget`: those of the experiments chapter "Budget against batch size";
  :mod:`.explorer`: the explorer of every stored run (its sliders act together through
  the book's script ``book/_static/explorer.js``).
"""

from .budget import (accuracy_at_steps, equal_steps, fit_and_gap, steps_to_target)
from .engine import (throughput)
from .explorer import (explorer)
from .experiments import (accuracy_heatmap, accuracy_vs_lr, best_and_range, ghost_batch_norm,
                          training_curves_by_batch, warmup_comparison)
from .quickstart import (training_curves)
from .theory import (gradient_noise, lr_scaling, nqm_loss_curves, nqm_steps_to_target,
                     stale_gradient_losses, stale_gradients)

__all__ = ["training_curves", "throughput", "nqm_loss_curves", "nqm_steps_to_target",
           "lr_scaling", "gradient_noise", "stale_gradients", "stale_gradient_losses",
           "accuracy_vs_lr", "accuracy_heatmap", "best_and_range", "training_curves_by_batch",
           "ghost_batch_norm", "warmup_comparison", "steps_to_target", "equal_steps",
           "accuracy_at_steps", "fit_and_gap", "explorer"]

# --- thin-engine ---
from .quickstart import run_summary, run_title

__all__ += ["run_summary", "run_title"]

# --- thin-theory ---
from .theory import (batch_noise_histogram, gradient_noise_live, lr_scaling_live, nqm_live,
                     nqm_loss_curve, stale_gradients_live, stale_paths)
from .widgets import live_figure

__all__ += ["live_figure", "lr_scaling_live", "batch_noise_histogram", "gradient_noise_live",
            "stale_paths", "stale_gradients_live", "nqm_loss_curve", "nqm_live"]

# --- thin-experiments ---
from .experiments import accuracy_vs_lr_of, best_and_range_by_data

__all__ += ["accuracy_vs_lr_of", "best_and_range_by_data"]
