"""Analysis of the results table: selection helpers, the six claims, figures, the HTML report.

It reads the table that :mod:`iai.stages` writes (format in :mod:`iai.core.results`) and never
imports a stage (tests/test_layers.py)."""
