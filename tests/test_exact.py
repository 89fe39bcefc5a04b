"""Exact references against closed forms: sequential Bayes, the Bayes risk, OLS, MAP, k-NN."""

import math

import pytest
import torch

from iai.core.learners.exact import ConjugateLinearRegression, KNNLearner, MAPLearner, bayes_posterior
from iai.core.rollout import rollout
from iai.core.tasks import make_family

F64 = torch.float64


def linreg_tasks(n_tasks, n_train, n_valid, dim=20, noise_std=0.5, seed=0):
    fam = make_family("linear_regression", dim=dim, noise_std=noise_std, prior_std=1.0)
    return fam, fam.sample(n_tasks, n_train, n_valid, seed).to("cpu", F64)


@pytest.mark.parametrize("split", [[60], [1, 59], [7, 13, 40], [1] * 60, [25, 0, 35]])
def test_sequential_bayes_equals_batch_posterior_for_any_split(split):
    fam, b = linreg_tasks(16, 60, 1, dim=12)
    learner = ConjugateLinearRegression.bayes(fam)
    state = learner.init(b.x_valid)
    start = 0
    for size in split:
        state = learner.step(state, b.x_train[:, start:start + size], b.y_train[:, start:start + size])
        start += size
    mean, cov = bayes_posterior(b.x_train, b.y_train, fam.noise_var, fam.prior_var)
    assert torch.allclose(learner.mean(state), mean, atol=1e-8, rtol=0)
    torch.testing.assert_close(torch.linalg.inv(state["precision"]), cov, atol=1e-10, rtol=0)


def test_posterior_mean_is_ridge_with_lambda_sigma2_over_tau2():
    fam, b = linreg_tasks(8, 30, 1, dim=10)
    lam = fam.noise_var / fam.prior_var
    x, y = b.x_train, b.y_train
    ridge = torch.linalg.solve(x.mT @ x + lam * torch.eye(10, dtype=F64), x.mT @ y)[..., 0]
    mean, _ = bayes_posterior(x, y, fam.noise_var, fam.prior_var)
    torch.testing.assert_close(mean, ridge, atol=1e-10, rtol=0)


def expected_bayes_excess(n, d=20, noise_var=0.25, prior_var=1.0, draws=40000, seed=1):
    """sigma^2 E tr (X^T X + lambda I)^-1 over x ~ N(0, I), by Monte Carlo over X alone."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(draws, n, d, generator=g, dtype=F64)
    lam = noise_var / prior_var
    inv = torch.linalg.inv(x.mT @ x + lam * torch.eye(d, dtype=F64))
    return noise_var * inv.diagonal(dim1=-2, dim2=-1).sum(-1).mean().item()


@pytest.mark.parametrize("n, paper_value", [(20, 2.30), (40, 0.256)])
def test_monte_carlo_bayes_excess_risk_matches_the_formula(n, paper_value):
    formula = expected_bayes_excess(n)
    assert formula == pytest.approx(paper_value, rel=0.03)  # docs/paper.md's Monte Carlo figures
    fam, b = linreg_tasks(20000, n, 50, seed=n)
    records = rollout(ConjugateLinearRegression.bayes(fam), fam, b, batch_size=n, steps="last")
    measured = next(r["value"] for r in records if r["metric"] == "excess_risk")
    assert measured == pytest.approx(formula, rel=0.05)
    print(f"n={n}: Bayes excess risk measured {measured:.4f}, formula {formula:.4f}")


def test_min_norm_least_squares_matches_pinv_and_diverges_near_d():
    fam, b = linreg_tasks(8, 6, 1, dim=10)  # n < d: underdetermined, min-norm solution
    learner = ConjugateLinearRegression.least_squares(fam)
    state = learner.step(learner.init(b.x_valid), b.x_train, b.y_train)
    expected = (torch.linalg.pinv(b.x_train) @ b.y_train)[..., 0]
    torch.testing.assert_close(learner.mean(state), expected, atol=1e-8, rtol=0)
    # with noise, OLS excess risk peaks at n = d while Bayes stays small
    fam, b = linreg_tasks(500, 20, 50, dim=20)
    risk = {}
    for learner in (ConjugateLinearRegression.least_squares(fam), ConjugateLinearRegression.bayes(fam)):
        recs = rollout(learner, fam, b, batch_size=20, steps="last")
        risk[learner.name] = next(r["value"] for r in recs if r["metric"] == "excess_risk")
    assert risk["ols"] > 10 * risk["bayes"]


def test_map_equals_bayes_for_linear_regression():
    fam, b = linreg_tasks(6, 25, 10, dim=5)
    mapl, bayes = MAPLearner(fam), ConjugateLinearRegression.bayes(fam)
    s_map = mapl.step(mapl.init(b.x_valid), b.x_train, b.y_train)
    s_bayes = bayes.step(bayes.init(b.x_valid), b.x_train, b.y_train)
    torch.testing.assert_close(mapl.predict(s_map, b.x_valid), bayes.predict(s_bayes, b.x_valid), atol=1e-6, rtol=0)


def test_softmax_map_is_a_stationary_point_and_beats_chance():
    fam = make_family("linear_classification", dim=4, n_classes=3)
    b = fam.sample(8, 40, 200, 0)
    learner = MAPLearner(fam)
    state = learner.step(learner.init(b.x_valid), b.x_train, b.y_train)
    theta = learner.fit(state).requires_grad_(True)
    obj = learner.objective(theta, b.x_train.double(), b.y_train.double()).sum()
    (grad,) = torch.autograd.grad(obj, theta)
    assert grad.abs().max().item() < 1e-5
    err = fam.metrics(learner.predict(state, b.x_valid), b.y_valid, b.f_valid)["error_rate"].mean().item()
    assert err < 0.45  # chance is 2/3


def test_softmax_map_warm_started_over_a_rollout_equals_a_fit_from_zero():
    """Each refit starts from the last (convex objective): the predictions are those of a fit from
    zero on the same data, step by step."""
    fam = make_family("linear_classification", dim=4, n_classes=3)
    b = fam.sample(6, 64, 50, 1)
    learner = MAPLearner(fam)
    state = learner.init(b.x_valid)
    for i in range(4):
        state = learner.step(state, b.x_train[:, 16 * i:16 * (i + 1)], b.y_train[:, 16 * i:16 * (i + 1)])
        warm = learner.predict(state, b.x_valid)
        assert state["theta"].abs().sum() > 0  # the fit is kept as the next start
        cold_state = learner.step(learner.init(b.x_valid), b.x_train[:, :16 * (i + 1)], b.y_train[:, :16 * (i + 1)])
        torch.testing.assert_close(warm, learner.predict(cold_state, b.x_valid), atol=1e-5, rtol=0)


def test_knn_with_k1_returns_the_nearest_label():
    fam = make_family("linear_regression", dim=3)
    b = fam.sample(4, 30, 5, 0)
    learner = KNNLearner(fam, k=1)
    state = learner.step(learner.init(b.x_valid), b.x_train, b.y_train)
    nearest = torch.cdist(b.x_valid, b.x_train).argmin(-1)
    expected = torch.gather(b.y_train, 1, nearest.unsqueeze(-1))
    torch.testing.assert_close(learner.predict(state, b.x_valid), expected)
    cls = make_family("linear_classification", dim=3, n_classes=3)
    cb = cls.sample(4, 30, 5, 0)
    ck = KNNLearner(cls, k=5)
    logp = ck.predict(ck.step(ck.init(cb.x_valid), cb.x_train, cb.y_train), cb.x_valid)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(4, 5))
    assert math.isfinite(cls.metrics(logp, cb.y_valid, cb.f_valid)["nll"].mean().item())
