"""SGD and Adam learners give the same parameters as torch.optim on the same mini-batches; the
averaged, decaying-step variants match torch.optim with a LambdaLR schedule and a running mean; the
nominal rule is the untrained nominal parametric learner."""

import copy
import math
from pathlib import Path

import pytest
import torch
import yaml

from iai.core.learners import build_learner
from iai.core.learners.classical import NOMINAL_LR, GradientLearner
from iai.core.learners.references import applies, reference_learner
from iai.core.rollout import gather_points, minibatch_indices, rollout
from iai.core.tasks import make_family
from iai.params import ReferencesConfig, RunSpec, from_dict
from iai.utils import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind", ["linear_regression", "linear_classification", "nonlinear_regression"])
@pytest.mark.parametrize("optimizer, kwargs", [("sgd", {"lr": 0.1}), ("sgd", {"lr": 0.05, "momentum": 0.9}),
                                               ("adam", {"lr": 0.03})])
def test_matches_torch_optim(kind, optimizer, kwargs):
    fam = make_family(kind, dim=5)
    # float64: Adam divides by sqrt(v), so float32 rounding of a near-zero gradient would show
    tasks = fam.sample(4, 48, 8, 0).to("cpu", torch.float64)
    learner = GradientLearner(fam, optimizer, **kwargs)
    state = learner.init(tasks.x_valid)
    theta = torch.nn.Parameter(state["theta"].clone())
    if optimizer == "sgd":
        opt = torch.optim.SGD([theta], lr=kwargs["lr"], momentum=kwargs.get("momentum", 0.0))
    else:
        opt = torch.optim.Adam([theta], lr=kwargs["lr"])
    for idx in minibatch_indices(4, 48, 16, 9, "epochs", torch.Generator().manual_seed(1)):
        x, y = gather_points(tasks.x_train, idx), gather_points(tasks.y_train, idx)
        state = learner.step(state, x, y)
        opt.zero_grad()
        # per-task mean mini-batch loss, summed over tasks: each task gets its own gradient
        fam.loss(fam.predictor(x, theta), y).sum().backward()
        opt.step()
    torch.testing.assert_close(state["theta"], theta.detach(), atol=1e-12, rtol=1e-10)


def test_tasks_do_not_interact():
    fam = make_family("linear_regression", dim=3)
    tasks = fam.sample(5, 16, 4, 0)
    learner = GradientLearner(fam, "adam", lr=0.1)
    full = learner.step(learner.init(tasks.x_valid), tasks.x_train, tasks.y_train)["theta"]
    one = learner.step(learner.init(tasks.x_valid[2:3]), tasks.x_train[2:3], tasks.y_train[2:3])["theta"]
    torch.testing.assert_close(full[2:3], one)


def test_bad_optimizer_and_lr():
    fam = make_family("linear_regression")
    with pytest.raises(ConfigError, match="optimizer: unknown 'rmsprop'"):
        GradientLearner(fam, "rmsprop")
    with pytest.raises(ConfigError, match="adam.lr: expected a number > 0"):
        GradientLearner(fam, "adam", lr=0.0)


@pytest.mark.parametrize("kind", ["linear_regression", "linear_classification", "nonlinear_regression"])
@pytest.mark.parametrize("name, lr", [("sgd_avg", 0.2), ("adam_avg", 0.05)])
def test_averaged_matches_torch_optim_with_lambda_lr(kind, name, lr):
    """lr_t = lr / sqrt(t) and the running mean of theta_1 .. theta_t, against torch.optim with a
    LambdaLR schedule and a mean kept by hand; 44 points in mini-batches of 16: the last is uneven."""
    fam = make_family(kind, dim=5)
    tasks = fam.sample(4, 44, 8, 0).to("cpu", torch.float64)
    learner = GradientLearner.named(fam, name, lr=lr)
    state = learner.init(tasks.x_valid)
    theta = torch.nn.Parameter(state["theta"].clone())
    opt = (torch.optim.SGD if name == "sgd_avg" else torch.optim.Adam)([theta], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / math.sqrt(k + 1))  # k = t - 1
    avg = theta.detach().clone()
    for t, idx in enumerate(minibatch_indices(4, 44, 16, 7, "epochs", torch.Generator().manual_seed(1)), 1):
        x, y = gather_points(tasks.x_train, idx), gather_points(tasks.y_train, idx)
        state = learner.step(state, x, y)
        opt.zero_grad()
        fam.loss(fam.predictor(x, theta), y).sum().backward()
        opt.step()
        sched.step()
        avg = avg + (theta.detach() - avg) / t
        torch.testing.assert_close(state["theta"], theta.detach(), atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(state["avg"], avg, atol=1e-12, rtol=1e-10)
    assert opt.param_groups[0]["lr"] == pytest.approx(lr / math.sqrt(8))
    torch.testing.assert_close(learner.predict(state, tasks.x_valid), fam.predictor(tasks.x_valid, avg))
    assert not torch.allclose(avg, theta.detach())  # the prediction is the average, not the last iterate


def test_averaging_beats_a_constant_step_on_linear_regression():
    """One pass over 1024 points, B = 16, the same lr: the constant step stalls at an excess risk of
    order lr * noise, the decaying, averaged step does not."""
    torch.manual_seed(0)
    fam = make_family("linear_regression", dim=8, noise_std=0.5)
    tasks = fam.sample(32, 1024, 64, 5)

    def excess_risk(name):
        records = rollout(GradientLearner.named(fam, name, lr=0.5), fam, tasks, 16, steps="last", seed=0)
        return next(r["value"] for r in records if r["metric"] == "excess_risk")

    sgd, avg = excess_risk("sgd"), excess_risk("sgd_avg")
    assert avg < sgd / 5 and avg < 0.02, (avg, sgd)


def _nominal_parametric(family):
    spec = {"regime": "parametric", "signal": "grad", "nominal": True}
    return build_learner(RunSpec("fam", "nominal", spec, {"width": 16, "depth": 1, "heads": 2, "ff": 32},
                                 {"batch_size": 8, "max_steps": 3}), family, seed=1)


@pytest.mark.parametrize("kind, options", [("linear_regression", {"dim": 4, "noise_std": 0.5}),
                                           ("linear_classification", {"dim": 4, "n_classes": 3})])
def test_nominal_rule_is_the_untrained_nominal_parametric_learner(kind, options):
    """The learned part of a fresh learner is exactly zero (zero-initialised head): what remains,
    theta <- theta - b / (n + b) * exp(log_lr) * grad, is the nominal_rule reference."""
    fam = make_family(kind, **options)
    learned = _nominal_parametric(fam)
    assert not learned.head.weight.any() and not learned.head.bias.any()
    rule = reference_learner("nominal_rule", fam, "fam", ReferencesConfig(learners=("nominal_rule",)))
    assert rule.lr == NOMINAL_LR == pytest.approx(0.5, abs=1e-4)  # the params' default is the rule as written
    tasks = fam.sample(3, 30, 6, 0)  # 30 points in mini-batches of 8: the last has 6
    with torch.no_grad():
        s_learned, s_rule = learned.init(tasks.x_valid), rule.init(tasks.x_valid)
        steps = list(minibatch_indices(3, 30, 8, 4, "epochs", torch.Generator().manual_seed(1)))
        assert [i.shape[1] for i in steps] == [8, 8, 8, 6]
        for idx in steps:
            x, y = gather_points(tasks.x_train, idx), gather_points(tasks.y_train, idx)
            s_learned, s_rule = learned.step(s_learned, x, y), rule.step(s_rule, x, y)
            pred = rule.predict(s_rule, tasks.x_valid)
            torch.testing.assert_close(learned.predict(s_learned, tasks.x_valid), pred, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(pred, torch.zeros_like(pred))  # it moved


def test_new_references_apply_where_sgd_does_and_build():
    families = {"linreg": make_family("linear_regression", dim=3),
                "logreg": make_family("linear_classification", dim=3),
                "mlp": make_family("nonlinear_regression", dim=3, hidden=4), "scm": make_family("causal_order", dim=4)}
    rates = {name: {"lr": {f: 0.1 for f in families}} for name in ("sgd_avg", "adam_avg")}
    refs = ReferencesConfig.from_dict({"learners": ["sgd_avg", "adam_avg", "nominal_rule"], **rates})
    for fname, fam in families.items():
        for name in ("sgd_avg", "adam_avg", "nominal_rule"):
            assert applies(name, fam) == applies("sgd", fam)
            if applies(name, fam):
                learner = reference_learner(name, fam, fname, refs)
                assert learner.name == name and learner.regime == "classical"
                tasks = fam.sample(2, 20, 4, 0)
                records = rollout(learner, fam, tasks, 8, steps="last")
                assert all(math.isfinite(r["value"]) for r in records)
    refs = ReferencesConfig.from_dict({"learners": ["nominal_rule"], "nominal_rule": {"lr": 0.25}})
    assert reference_learner("nominal_rule", families["linreg"], "linreg", refs).lr == 0.25


def test_a_missing_learning_rate_names_the_param_path():
    fam = make_family("linear_regression", dim=3)
    for name in ("sgd_avg", "adam_avg"):
        with pytest.raises(ConfigError, match=rf"references\.{name}\.lr: no learning rate for family 'linreg'"):
            reference_learner(name, fam, "linreg", ReferencesConfig.from_dict({"learners": [name],
                                                                               name: {"lr": {"other": 0.1}}}))
    raw = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())
    for name in ("sgd_avg", "adam_avg"):
        edited = copy.deepcopy(raw)
        assert name in edited["references"]["learners"]  # the default recipe runs it
        edited["references"][name] = {"lr": {"linreg": 0.1}}
        with pytest.raises(ConfigError, match=rf"p\.yaml: references\.{name}\.lr: no learning rate for families \["):
            from_dict(edited, "p.yaml")
    edited = copy.deepcopy(raw)
    edited["references"].pop("nominal_rule", None)  # not tuned: needs no rate (0.5 by default)
    from_dict(edited, "p.yaml")
    edited["references"]["nominal_rule"] = {"lr": 0}
    with pytest.raises(ConfigError, match="references.nominal_rule.lr: expected a number > 0"):
        from_dict(edited, "p.yaml")
    with pytest.raises(ConfigError, match="decay: unknown 'cosine'"):
        GradientLearner(fam, "sgd", decay="cosine")
    with pytest.raises(ConfigError, match="sgd_avg.lr: expected a number > 0"):
        GradientLearner.named(fam, "sgd_avg", lr=-1.0)

