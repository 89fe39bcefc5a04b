"""Iterative amortized inference: every learner reads a task's data in mini-batches and refines a state.

The data flows one way: params -> tasks -> learners -> rollout -> results -> figures -> report.
"""

__version__ = "0.1.0"
