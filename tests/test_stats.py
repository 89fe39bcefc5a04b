"""The paired comparison's interval keeps its coverage over training seeds; the former one did not."""

import numpy as np
import pytest

from iai.analysis import stats

TASKS, SEEDS = 48, 3  # the default recipe's banks.n_tasks and seeds


@pytest.mark.parametrize("spread", [0.05, 0.15, 0.3])
def test_null_rejection_rate_is_at_most_007_at_nominal_005(spread):
    assert stats.rejection_rate("t", TASKS, SEEDS, spread, cells=400) <= 0.07


def test_the_former_seed_bootstrap_fails_the_same_check():
    # the same simulation, the estimator the claims used before: too narrow with 3 seeds
    assert stats.rejection_rate("bootstrap", TASKS, SEEDS, 0.3, cells=400) > 0.07


def test_a_real_effect_is_found_when_seeds_agree():
    assert stats.rejection_rate("t", TASKS, SEEDS, 0.05, cells=100, effect=-0.3, seed=1) > 0.9


def test_a_closed_form_case():
    # two seeds per side, every task equal: the seed part is all the variance, with 1 + 1 degrees of freedom
    A = np.array([[1.0] * 4, [3.0] * 4])
    B = np.array([[2.0] * 4, [2.0] * 4])
    r = stats.compare(A, B, relative=False, paired_seeds=False)
    assert r.effect == 0.0 and r.se == pytest.approx(1.0)  # var of A's seed means 2 / 2 seeds
    assert r.df == pytest.approx(1.0)
    assert r.hi == pytest.approx(12.706, rel=1e-3)  # t_{0.975, 1}


def test_the_same_model_pairs_its_seeds():
    rng = np.random.default_rng(0)
    seed = 1 + 0.3 * rng.standard_normal((3, 1))  # each seed scales both steps alike
    A, B = 0.9 * seed * np.ones((3, 16)), seed * np.ones((3, 16))
    paired = stats.compare(A, B, relative=True, paired_seeds=True)
    unpaired = stats.compare(A, B, relative=True, paired_seeds=False)
    assert paired.effect == pytest.approx(-0.1)
    assert paired.hi < 0 < unpaired.hi  # pairing removes the shared seed variation


def test_missing_values_are_an_error_not_no_difference():
    A = np.ones((3, 8))
    A[1, 5] = np.nan
    with pytest.raises(ValueError, match="seed index 1, task 5"):
        stats.compare(A, np.ones((3, 8)), relative=True)


def test_holm_matches_its_definition():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, float("nan")]) == pytest.approx([1.0, 1.0])


def test_the_command_prints_the_rejection_rate(capsys):
    stats.main(["--cells", "400", "--spreads", "0.15"])
    out = capsys.readouterr().out
    assert "null rejection rate:" in out and "at nominal 0.05" in out and "power at a relative effect" in out
