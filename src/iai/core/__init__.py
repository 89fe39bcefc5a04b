"""The library: task families and their fixed predictors, learners (exact, classical, learned), the
rollout that drives any learner over mini-batches, and the results-table format.

Inside it the data flows one way: ``predictors`` -> ``tasks`` -> ``learners`` -> ``rollout`` ->
``results``; a module imports only from modules to its left (tests/test_layers.py)."""
