"""Analysis (book part "The experiments"): from stored trials to cells, verdicts and report
tables. Every number the experiments chapters print goes through here, computed from the
records in ``results/<study>/<scale>``: nothing is typed in by hand.

- :mod:`.cells`: the records as one frame; statistics per (m, eta_tilde) cell over seeds;
  the noise margin; each m's best, good range and window edges;
- :mod:`.claims`: the paper's claims, the rule behind each verdict, and their caveats;
- :mod:`.selection`: each verdict's checks against the winner's curse: bests chosen on some
  seeds and scored on another, and a bootstrap over seeds; the readers that turn each
  claim's rule into a verdict from trials frames (:func:`assess`, :func:`assess_together`);
- :mod:`.report`: the published studies, protocol and cost tables, what is missing, and
  the claims table with its rules and discussion;
- :mod:`.costs`: the full protocol's cost, from the benchmark records;
- :mod:`.explorer`: every stored run, by set of runs and cell, for the explorer;
- :mod:`.budget`: steps and examples to a target against m, McCandlish's trade-off and
  critical batch, and the two-batch-size noise-scale estimate (imported by module:
  ``from smallbatch.analysis import budget``).
"""

from .cells import (MARGIN_FLOOR, NEAR_BEST, StudyData, best_first, best_per_batch, cell_columns,
                    cell_summary, compared_runs, count_curves, curve_columns, curves_by_batch,
                    curves_from_epochs,
                    edges_overview, edges_reached, fall_with_m, ghost_cells, ghost_table,
                    good_range, short_windows,
                    load_or_run, noise_margin, seed_gap_grid, seed_gaps, seed_spread,
                    spread_by_point,
                    study_data, study_label, variants, with_bn_batch)
from .claims import (AGREES, CANNOT_DECIDE, CAVEATS, CLAIM_BN_BATCH_INDEPENDENT, CLAIM_BN_GAP,
                     CLAIM_CURVES, CLAIM_EQUAL_STEPS, CLAIM_RANGE_SHRINKS, CLAIM_SMALL_BEST,
                     CLAIM_SMALL_BN_BATCH, CLAIM_SMALLEST_BEST, CLAIM_WARMUP_GAP,
                     CLAIM_WARMUP_HELPS, DISAGREES, EQUAL_STEPS_SEEDS, EQUIVALENT,
                     LARGE_BATCHES, MIN_SEEDS, OUTCOMES, SMALL_BATCHES, SMALL_BN_BATCH,
                     SMALLEST_BATCHES, Verdict, verdict_bn_batch_independent,
                     verdict_bn_widens_gap, verdict_curves_small_ahead, verdict_equal_steps,
                     verdict_range_shrinks, verdict_small_batches_best, verdict_small_bn_batch,
                     verdict_smallest_best, verdict_warmup)
from .selection import (RESAMPLES, Assessed, assess, assess_together, bests, curves_reader,
                        equal_steps_reader, held_out_best, held_out_overview, on_bests,
                        range_reader, resample_seeds, warmup_reader)
from .explorer import best_cell, cell_text, explorer_data, explorer_sets
from .costs import (BenchmarkRecords, cost_check_table, ensemble_cap_summary, gpu_against_cpu,
                    hours_by_study, load_benchmarks, machine, machine_lines)
from .tables import (MISSING, TABLE_KINDS, downloads_html, epochs_table, table_file_name,
                     trials_table, write_tables)
from .report import (BATCH_LR_STUDIES, FULL_ONLY_STUDIES, PUBLISHED_STUDIES, SCALED_ONLY_STUDIES,
                     SCALED_TARGET_CPU_HOURS, TRAINING_STUDIES,
                     claims_style, cost_summary, discussion, full_protocol_table,
                     missing_note, process_hours, scaled_costs, seeds_overview, study_protocol,
                     margins_overview, ONE_POINT_SHARE,
                     verdict_table)

__all__ = ["StudyData", "study_data", "variants", "compared_runs", "load_or_run",
           "study_label", "cell_summary", "seed_spread", "noise_margin", "NEAR_BEST",
           "best_per_batch", "good_range", "edges_reached", "edges_overview", "MARGIN_FLOOR",
           "curves_by_batch", "ghost_cells", "ghost_table", "CLAIM_SMALL_BEST",
           "CLAIM_RANGE_SHRINKS", "CLAIM_BN_GAP", "CLAIM_SMALL_BN_BATCH",
           "CLAIM_BN_BATCH_INDEPENDENT", "CLAIM_WARMUP_HELPS", "CLAIM_WARMUP_GAP",
           "CLAIM_CURVES", "SMALL_BATCHES", "LARGE_BATCHES", "SMALL_BN_BATCH", "Verdict",
           "verdict_small_batches_best", "verdict_range_shrinks", "verdict_bn_widens_gap",
           "verdict_small_bn_batch", "verdict_bn_batch_independent", "verdict_warmup",
           "CAVEATS", "verdict_curves_small_ahead", "CLAIM_EQUAL_STEPS", "EQUAL_STEPS_SEEDS",
           "verdict_equal_steps", "AGREES", "DISAGREES", "EQUIVALENT", "CANNOT_DECIDE",
           "OUTCOMES", "MIN_SEEDS", "CLAIM_SMALLEST_BEST", "SMALLEST_BATCHES",
           "verdict_smallest_best", "BenchmarkRecords", "load_benchmarks",
           "machine", "machine_lines", "hours_by_study", "gpu_against_cpu", "cost_check_table",
           "ensemble_cap_summary", "missing_note", "study_protocol", "process_hours",
           "cost_summary", "PUBLISHED_STUDIES", "FULL_ONLY_STUDIES",
           "SCALED_ONLY_STUDIES", "TRAINING_STUDIES", "BATCH_LR_STUDIES", "verdict_table",
           "claims_style", "SCALED_TARGET_CPU_HOURS", "discussion", "full_protocol_table",
           "scaled_costs", "explorer_sets", "explorer_data", "cell_text", "best_cell", "with_bn_batch",
           "cell_columns", "best_first", "curve_columns", "count_curves", "spread_by_point",
           "short_windows", "fall_with_m", "margins_overview", "ONE_POINT_SHARE",
           "RESAMPLES", "Assessed", "assess", "assess_together", "held_out_overview", "bests", "held_out_best", "resample_seeds",
           "on_bests", "range_reader", "warmup_reader", "equal_steps_reader",
           "curves_reader", "curves_from_epochs",
           "TABLE_KINDS", "MISSING", "table_file_name", "trials_table", "epochs_table",
           "write_tables", "downloads_html"]

# --- thin-engine ---
from .costs import (PAPER_GRID_BATCH_SIZES, TARGET_GRID_SPEEDUP, TARGET_RATE_RATIO,
                    EngineRecords, captured_step, cost_check_text, engine_targets,
                    ensemble_cap_text, full_cost_shown, full_scale_status,
                    gpu_against_cpu_text, hours_notes, load_engine_benchmarks,
                    paper_grid_examples, paper_grid_hours, reference_ceiling, seed_packing,
                    throughput_machine, throughput_table, vmap_against_grouped)

__all__ += ["PAPER_GRID_BATCH_SIZES", "TARGET_GRID_SPEEDUP", "TARGET_RATE_RATIO",
            "EngineRecords", "captured_step", "cost_check_text", "engine_targets",
            "ensemble_cap_text", "full_cost_shown", "full_scale_status",
            "gpu_against_cpu_text", "hours_notes", "load_engine_benchmarks",
            "paper_grid_examples", "paper_grid_hours", "reference_ceiling", "seed_packing",
            "throughput_machine", "throughput_table", "vmap_against_grouped"]

# --- thin-experiments ---
from .cells import subset
from .runset import (CURVE, GHOST_CURVE, RunSet, bn_pairs, frames, margins, run_sets,
                     under_one_margin)
from .experiments import (batch_lr_studies, batch_lr_verdicts, best_lr_table, curves_at_best,
                          curves_verdicts, fall_with_m_text, ghost_edges_text, ghost_verdicts,
                          last_epoch_table, lowest_loss_text, lowest_training_loss,
                          margins_style, protocol_tables, resting_margins, stored_trials,
                          study_notes, verdict_counts, warmup_edges, warmup_sets,
                          warmup_side_by_side, warmup_steps_text, warmup_verdicts,
                          weight_decay_table, window_edges)

__all__ += ["subset", "CURVE", "GHOST_CURVE", "RunSet", "bn_pairs", "frames", "margins",
            "run_sets", "under_one_margin", "batch_lr_studies", "batch_lr_verdicts",
            "best_lr_table", "curves_at_best", "curves_verdicts", "fall_with_m_text",
            "ghost_edges_text", "ghost_verdicts", "last_epoch_table", "lowest_loss_text",
            "lowest_training_loss", "margins_style", "protocol_tables", "resting_margins",
            "stored_trials", "study_notes", "verdict_counts", "warmup_edges", "warmup_sets",
            "warmup_side_by_side", "warmup_steps_text", "warmup_verdicts",
            "weight_decay_table", "window_edges"]
