"""Task families: shapes, seeding, out-of-distribution variants, label semantics, bad params."""

import pytest
import torch

from iai.core.tasks import FAMILIES, family_splits, make_family
from iai.utils import ConfigError

FAMILY_OPTS = {
    "linear_regression": {"dim": 5},
    "nonlinear_regression": {"dim": 5, "hidden": 7},
    "linear_classification": {"dim": 5, "n_classes": 3},
    "nonlinear_classification": {"dim": 5, "hidden": 7, "n_classes": 3},
}


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_shapes_and_predictor_tokens(kind):
    fam = make_family(kind, **FAMILY_OPTS[kind])
    b = fam.sample(n_tasks=6, n_train=11, n_valid=4, seed=0)
    out = fam.out_dim
    assert b.x_train.shape == (6, 11, 5) and b.y_train.shape == (6, 11, out)
    assert b.x_valid.shape == (6, 4, 5) and b.y_valid.shape == (6, 4, out) and b.f_valid.shape == (6, 4, out)
    p = fam.predictor
    assert b.theta.shape == (6, p.n_tokens, p.token_dim)
    # the teacher's noiseless output at the valid points is the predictor applied to its theta
    f = p(b.x_valid, b.theta)
    truth = f.softmax(-1) if fam.task_type == "classification" else f
    torch.testing.assert_close(truth, b.f_valid)
    assert set(fam.metrics(f, b.y_valid, b.f_valid)) == set(fam.metric_names)


def test_tokenization_by_structure():
    assert make_family("linear_regression", dim=8).predictor.n_tokens == 1  # one token: w
    lc = make_family("linear_classification", dim=8, n_classes=4).predictor
    assert (lc.n_tokens, lc.token_dim) == (4, 9)  # a token per class: weight row + bias
    mlp = make_family("nonlinear_regression", dim=8, hidden=16).predictor
    assert (mlp.n_tokens, mlp.token_dim) == (16, 10)  # a token per hidden unit: w_in, b, w_out


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_same_seed_same_tasks_different_seed_different(kind):
    fam = make_family(kind, **FAMILY_OPTS[kind])
    a, b, c = (fam.sample(4, 9, 3, s) for s in (7, 7, 8))
    for name, t in a.state_dict().items():
        assert torch.equal(t, b.state_dict()[name]), name
    assert not torch.equal(a.x_train, c.x_train) and not torch.equal(a.theta, c.theta)


def test_linear_regression_noise_level():
    fam = make_family("linear_regression", dim=4, noise_std=0.5)
    b = fam.sample(200, 50, 50, 0)
    resid = b.y_valid - b.f_valid
    assert abs(resid.var().item() - 0.25) < 0.01
    y_hat = (b.x_valid @ b.theta.mT)  # y = w^T x exactly, up to noise
    torch.testing.assert_close(y_hat, b.f_valid)


def test_classification_labels_follow_teacher_probabilities():
    fam = make_family("linear_classification", dim=3, n_classes=3)
    b = fam.sample(1, 1, 20000, 0)
    # the fraction of labels that equal each class matches the mean teacher probability
    torch.testing.assert_close(b.y_valid.mean(1), b.f_valid.mean(1), atol=0.015, rtol=0)
    assert torch.all(b.y_valid.sum(-1) == 1)


def test_out_of_distribution_variants():
    fam = make_family("linear_regression", dim=6, noise_std=0.5)
    splits = family_splits(fam)
    assert {"id", "ood_input_scale", "ood_prior", "ood_noise"} <= set(splits)
    assert splits["id"] == fam
    x_id = splits["id"].sample(100, 100, 1, 0).x_train
    x_ood = splits["ood_input_scale"].sample(100, 100, 1, 0).x_train
    assert abs(x_ood.std().item() / x_id.std().item() - 3.0) < 0.05
    w_ood = splits["ood_prior"].sample(2000, 1, 1, 0).theta
    assert abs(w_ood.std().item() - 2.0) < 0.05
    custom = family_splits(fam, {"id": {}, "far": {"input_scale": 5.0}})
    assert set(custom) == {"id", "far"} and custom["far"].input_scale == 5.0
    cls = family_splits(make_family("linear_classification"))
    assert {"id", "ood_input_scale", "ood_prior"} <= set(cls)


@pytest.mark.parametrize("kind, opts, message", [
    ("linear_regression", {"noise_std": -1.0}, "noise_std: expected a number >= 0"),
    ("linear_regression", {"dim": 0}, "dim: expected an integer >= 1"),
    ("linear_classification", {"n_classes": 1}, "n_classes: expected an integer >= 2"),
    ("nonlinear_regression", {"input_dist": "cauchy"}, "input_dist: expected one of"),
    ("no_such_family", {}, "family kind: unknown 'no_such_family'"),
    ("linear_regression", {"dimension": 3}, "unknown parameter(s) ['dimension']"),
])
def test_bad_params_are_named(kind, opts, message):
    with pytest.raises(ConfigError, match=None) as err:
        make_family(kind, **opts)
    assert message in str(err.value)


def test_bad_split_override_and_missing_id():
    fam = make_family("linear_regression")
    with pytest.raises(ConfigError, match="noise_std"):
        family_splits(fam, {"id": {}, "bad": {"noise_std": -2.0}})
    with pytest.raises(ConfigError, match="'id' is required"):
        family_splits(fam, {"ood": {}})


def test_bank_head_and_task_subsets():
    b = make_family("linear_regression", dim=3).sample(5, 20, 4, 0)
    h = b.head(7)
    assert h.x_train.shape == (5, 7, 3) and torch.equal(h.x_train, b.x_train[:, :7])
    assert torch.equal(h.x_valid, b.x_valid)
    assert b.tasks(slice(1, 3)).n_tasks == 2
    with pytest.raises(ConfigError, match="n_train"):
        b.head(21)
