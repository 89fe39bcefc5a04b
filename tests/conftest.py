"""Shared fixtures: the fake results table (tests/helpers/fake_results.py), its per-task table and
every figure drawn from it, each built once per test session (per xdist worker), in pytest's temp dir."""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def pytest_configure(config):
    import torch

    # one intra-op thread in every test process: reductions then sum in one order, so the tests that
    # compare two computations of the same gradient at tight tolerance get the same numbers on any machine
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def _results_table():
    from helpers.fake_results import fake_table

    return fake_table()


@pytest.fixture
def results_table(_results_table):
    """The fake results table (a copy: a test may change it)."""
    return _results_table.copy()


@pytest.fixture(scope="session")
def _per_task_table(_results_table):
    from helpers.fake_results import expand_tasks
    from iai.core import vocab

    return expand_tasks(_results_table[~_results_table.metric.isin(vocab.COST_METRICS)])


@pytest.fixture
def per_task_table(_per_task_table):
    """The per-task table of the fake results table (a copy)."""
    return _per_task_table.copy()


@pytest.fixture(scope="session")
def fake_figures(tmp_path_factory, _results_table) -> str:
    """Every figure drawn from the fake table, once: the folder."""
    from helpers.fake_results import fake_histories
    from iai.analysis.figures import draw_all

    out = tmp_path_factory.mktemp("figures")
    draw_all(_results_table.copy(), out, histories=fake_histories())
    return str(out)
