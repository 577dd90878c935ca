"""The theory chapters (book part "Theory"): closed forms, and measurements on real networks.

- :mod:`.scaling`: learning-rate scaling rules in closed form ("Learning-rate scaling");
- :mod:`.nqm`: the noisy quadratic model, exact ("The noisy quadratic model");
- :mod:`.checkpoints`: the weights a measurement starts from (``theory_checkpoints``), the
  model at them, and the protocol and records tables of the measured chapters;
- :mod:`.gradnoise`: the variance of a mini-batch gradient, measured ("The variance
  derivation, measured");
- :mod:`.staleness`: n small steps against one large step, measured ("Stale gradients");
- :mod:`.noisescale`: the gradient noise scale B_simple along a run, with and without batch
  norm ("The noise scale along a run").

The closed forms are the package's face (``theory.scaling_table``, ``theory.nqm_*``); the
measurements are imported by module (``from smallbatch.theory import gradnoise``).
"""

from .checkpoints import theory_checkpoints
from .nqm import (UnstableLearningRate, critical_batch_size, nqm_best_steps_to_target,
                  nqm_critical_batch_sizes, nqm_curvatures, nqm_expected_loss, nqm_is_stable,
                  nqm_loss_table, nqm_noise_scale_table, nqm_noise_scales, nqm_protocol,
                  nqm_scaling_table, nqm_second_moments, nqm_steps_to_target,
                  nqm_summary_table)
from .scaling import SCALING_RULES, scaling_at, scaling_protocol, scaling_rows, scaling_table

__all__ = ["UnstableLearningRate", "nqm_curvatures", "nqm_is_stable", "nqm_second_moments",
           "nqm_expected_loss", "nqm_steps_to_target", "nqm_best_steps_to_target",
           "nqm_loss_table", "nqm_scaling_table", "critical_batch_size", "nqm_noise_scales",
           "nqm_protocol", "nqm_critical_batch_sizes", "nqm_summary_table",
           "nqm_noise_scale_table", "SCALING_RULES", "scaling_table", "scaling_at",
           "scaling_protocol", "scaling_rows", "theory_checkpoints"]
