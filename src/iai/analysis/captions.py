"""The fixed list of figures (PNG names) and their captions: what :mod:`iai.analysis.figures` draws
and the report shows. Kept apart from the drawing code so the report needs no matplotlib."""

FIGURES = {
    "error_vs_n.png": "Error against dataset size n (split id, each learner at its final step), per family, with "
                      "the reference (black dashed: Bayes or MAP; sink search for the topological order, whose "
                      "edge accuracy is higher-is-better; the true samples, the MMD floor, for generation, whose "
                      "MMD² axis is linear since it can be below 0) and the one-shot learners' training context "
                      "(grey dotted line). Shaded bands (+-1 standard error over tasks) in panels with few lines.",
    "error_vs_steps.png": "Error against refinement steps at the largest n, per family and regime (split id): "
                          "learned iterative learners, the reference fed the same mini-batches, the one-shot "
                          "learners (horizontal lines) and the number of steps trained (grey dotted line).",
    "id_vs_ood.png": "In- against out-of-distribution: every learner's primary metric at the largest n (final step) "
                     "in each split, +-1 standard error (edge accuracy: higher is better; the others lower); an "
                     "arrow marks a value beyond the axis.",
    "signal_vs_dim.png": "Input signal of the parametric learner (observations vs gradients vs both) across input "
                         "dimensions d, split id, final step; regression as a ratio to the Bayes excess risk "
                         "or classification as the error rate above MAP's (no error bands on these: learner and "
                         "reference share tasks).",
    "regimes.png": "Parametric vs explicit vs implicit: the learned iterative (Markovian) learners of each regime, "
                   "without a hand-written gradient term, against n (split id, final step); regression as a "
                   "ratio to the Bayes excess risk, classification as the error rate above MAP's.",
    "training.png": "Meta-training loss (mean over the logged iterations, on the valid points of fresh tasks) "
                    "against training iterations, per family and learned run: a curve still falling at its end "
                    "means the run stopped before converging, so its numbers are a budget's, not the method's.",
    "cost.png": "Measured wall time and peak memory of the iterative learner and its one-shot counterpart "
                "(context all) against n, log-log, with fitted slopes; grey guides show wall time growing as n and n².",
}
