"""The one log-log slope (iai.core.fit), read by `iai bench cost` and the cost figure."""

import math

import numpy as np
import pandas as pd
import pytest

from iai.analysis import figures
from iai.core.fit import loglog_slope
from iai.stages.bench import cost


def test_both_call_sites_use_the_one_slope():
    assert cost.loglog_slope is loglog_slope and figures.loglog_slope is loglog_slope


def test_the_slope_of_a_power_law_and_of_noisy_points():
    n = [64, 128, 256, 512, 1024]
    assert loglog_slope(n, [3.0 * x ** 1.5 for x in n]) == pytest.approx(1.5, abs=1e-12)
    y = np.exp(np.random.default_rng(0).normal(0, 0.1, len(n))) * np.asarray(n, float) ** 0.8
    want = np.polyfit(np.log(n), np.log(y), 1)[0]
    assert loglog_slope(pd.Series(n), pd.Series(y)) == pytest.approx(want, rel=1e-12)  # Series as the figure passes


def test_points_that_cannot_be_logged_are_left_out():
    n, y = [1, 2, 4, 8], [None, 2.0, 4.0, 8.0]
    for bad in (None, math.nan, 0.0, -1.0):
        assert loglog_slope(n, [bad, 2.0, 4.0, 8.0]) == pytest.approx(1.0)
        assert loglog_slope([bad, 2, 4, 8], [1.0, 2.0, 4.0, 8.0]) == pytest.approx(1.0)
    assert loglog_slope(n, y) == loglog_slope(n[1:], y[1:])


def test_no_slope_without_two_distinct_sizes():
    assert math.isnan(loglog_slope([], []))
    assert math.isnan(loglog_slope([4], [1.0]))
    assert math.isnan(loglog_slope([4, 8], [1.0, None]))
    assert math.isnan(loglog_slope([4, 4], [1.0, 2.0]))
