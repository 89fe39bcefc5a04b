"""Learned learners, variant by variant: batched steps, backbone groups, decoders, states, MAML, bad configs.

The contract every learner meets (set invariance, any batch size, save and load, detached steps) is
checked over the registry and over :data:`VARIANTS` by tests/test_learner_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iai.core.learners import build_learner, load_learner, save_learner
from iai.core.rollout import rollout
from iai.core.tasks import make_family
from iai.core.training import TrainConfig, train_iteration
from iai.params import ReferencesConfig, RunSpec
from iai.utils import ConfigError, torch_save

MODEL = {"width": 32, "depth": 2, "heads": 4, "ff": 64}
TRAIN = {"batch_size": 8, "max_steps": 3}
LINREG = make_family("linear_regression", dim=4, noise_std=0.5)
LOGREG = make_family("linear_classification", dim=4, n_classes=3)
MLPREG = make_family("nonlinear_regression", dim=3, hidden=5)

VARIANTS = {
    "parametric_obs": (LINREG, {"regime": "parametric", "signal": "obs"}),
    "parametric_grad": (LINREG, {"regime": "parametric", "signal": "grad", "grad_norm": "none"}),
    "parametric_both_h2_mem2": (LINREG, {"regime": "parametric", "signal": "both", "history": 2, "memory": 2,
                                         "nominal": True}),
    "parametric_logreg": (LOGREG, {"regime": "parametric", "signal": "both", "step_feature": "log_n"}),
    "parametric_mlp": (MLPREG, {"regime": "parametric", "signal": "both"}),
    "parametric_coord_logreg_h1_mem2": (LOGREG, {"regime": "parametric", "signal": "both", "tokens": "coordinate",
                                            "history": 1, "memory": 2}),
    "explicit_both": (LINREG, {"regime": "explicit", "signal": "both", "latent_tokens": 2, "latent_dim": 3,
                               "decoder": "film", "grad_norm": "rms"}),
    "explicit_bilinear_logreg": (LOGREG, {"regime": "explicit", "signal": "both", "decoder": "bilinear",
                                          "latent_dim": 6}),
    "explicit_coord_both": (LINREG, {"regime": "explicit", "signal": "both", "latent_tokens": 2, "latent_dim": 3,
                                     "tokens": "coordinate", "grad_norm": "rms"}),
    "implicit_logits": (LINREG, {"regime": "implicit"}),
    "implicit_hidden_h2": (LOGREG, {"regime": "implicit", "state": "hidden", "history": 2}),
    "implicit_probs": (LOGREG, {"regime": "implicit", "state": "probs", "update_scale": "constant"}),
    "implicit_probs_residual": (LOGREG, {"regime": "implicit", "state": "probs_residual"}),
    "hypernet_oneshot": (LINREG, {"regime": "parametric", "signal": "obs", "mode": "one_shot"}),
    "maml_logreg": (LOGREG, {"regime": "parametric", "signal": "grad", "update": "sgd"}),
    "meta_sgd_logreg": (LOGREG, {"regime": "parametric", "signal": "grad", "update": "meta_sgd"}),
}


def make(name: str, randomize: bool = True, cases: dict = VARIANTS):
    """(family, learner) of ``cases[name]``, seeded; ``name`` may carry a ``kind:`` prefix (the run is its tail)."""
    family, spec = cases[name]
    learner = build_learner(RunSpec("fam", name.split(":")[-1], spec, MODEL, TRAIN), family, seed=1)
    if randomize:  # output layers start at zero (a fresh learner does not move): give them weights
        with torch.no_grad():
            g = torch.Generator().manual_seed(2)
            for p in learner.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return family, learner


def data(family, n=8, m=5, seed=0):
    tasks = family.sample(3, n, m, seed)
    return tasks.x_train, tasks.y_train, tasks.x_valid


@pytest.mark.parametrize("name", ["parametric_both_h2_mem2", "parametric_mlp", "explicit_both", "implicit_hidden_h2",
                                  "implicit_probs", "implicit_probs_residual", "maml_logreg",
                                  "meta_sgd_logreg"])
def test_steps_at_once_gives_the_step_by_step_gradient(name):
    # greedy steps never backpropagate into each other, so one batched call over the k detached
    # states must give the k sequential steps' summed gradient (and the same mean loss)
    family, learner = make(name)
    grads, losses = [], []
    for at_once in (False, True):
        learner.zero_grad(set_to_none=True)
        tc = TrainConfig(batch_size=8, max_steps=4, random_steps=False, tasks_per_batch=3, n_valid=5,
                         steps_at_once=at_once)
        loss, k = train_iteration(learner, family, tc, seed=3, device=torch.device("cpu"))
        assert k == 4
        losses.append(loss)
        grads.append(torch.cat([p.grad.flatten() for p in learner.parameters() if p.grad is not None]))
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert grads[0].shape == grads[1].shape and grads[0].abs().max() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6 * grads[0].abs().max().item())


@pytest.mark.parametrize("outputs", [(0, 1), (1, 2), (0, 2), (1, 3)])
def test_the_backbone_reads_only_the_groups_asked_for_with_the_same_numbers(outputs):
    from iai.core.learners.backbone import ModelConfig, SetTransformer
    torch.manual_seed(0)
    net = SetTransformer(ModelConfig(**MODEL), {"a": 3, "b": 4, "c": 2}).eval()
    inputs = [("a", torch.randn(2, 5, 3), None), ("b", torch.randn(2, 1, 4), torch.randn(1, 32)),
              ("c", torch.randn(2, 7, 2), None)]
    full = net(inputs, n_context_groups=2)
    part = net(inputs, n_context_groups=2, outputs=outputs)
    for g in range(3):
        if outputs[0] <= g < outputs[1]:
            torch.testing.assert_close(part[g], full[g], rtol=1e-5, atol=1e-6)
        else:
            assert part[g] is None


def test_the_bilinear_decoder_is_a_linear_model_whose_weights_z_sets():
    # A(z) = [z; 0] and b(z) = 0 make f(x, z) = x . z exactly: the decoder can be linear regression
    from iai.core.learners.explicit import BilinearDecoder
    d = 4
    dec = BilinearDecoder(d, d, hidden=5, out_dim=1)
    with torch.no_grad():
        dec.weights.weight.zero_()
        dec.weights.bias.zero_()
        dec.weights.weight[:d, :d] = torch.eye(d)  # row f of A's flattened [F + 1, 1] reads z_f
    x, z = torch.randn(3, 7, d), torch.randn(3, 1, d)
    torch.testing.assert_close(dec(x, z), x @ z.transpose(1, 2))


def test_a_checkpoint_loads_on_an_ood_variant_of_its_family_but_not_on_another_shape(tmp_path):
    family, learner = make("explicit_bilinear_logreg")
    save_learner(tmp_path / "m.pt", learner)
    load_learner(tmp_path / "m.pt", family.variant(input_scale=3.0))
    other = make_family(family.kind, **{k: v for k, v in family.params().items() if k != "kind"} | {"dim": 6})
    with pytest.raises(ConfigError, match="different kind or predictor shape"):
        load_learner(tmp_path / "m.pt", other)


def test_a_file_that_is_not_a_checkpoint_fails_clearly(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ConfigError, match="not an iai file"):
        load_learner(path)
    torch_save(path, {"weights": torch.zeros(2)})
    with pytest.raises(ConfigError, match="not an iai learner checkpoint"):
        load_learner(path)


@pytest.mark.parametrize("spec, family, message", [
    ({"regime": "bayesian"}, LINREG, r"run.regime: expected one of \['parametric', 'implicit', 'explicit'\]"),
    ({"regime": "parametric", "signal": "gradient"}, LINREG, r"run.signal: expected one of"),
    ({"regime": "implicit", "signal": "grad"}, LINREG, r"implicit regime reads observations only"),
    ({"regime": "implicit", "state": "probs"}, LINREG, r"'probs' needs a classification family"),
    ({"regime": "implicit", "state": "probs_residual"}, LINREG, r"'probs_residual' needs a classification family"),
    ({"regime": "implicit", "state": "simplex"}, LOGREG,
     r"run.state: expected one of \['logits', 'hidden', 'probs', 'probs_residual'\]"),
    ({"regime": "parametric", "state": "hidden"}, LINREG, r"only the implicit regime has a state choice"),
    ({"regime": "parametric", "mode": "one_shot", "history": 2}, LINREG, r"one-shot learner .* no history"),
    ({"regime": "parametric", "widht": 3}, LINREG, r"unknown key\(s\) \['widht'\]"),
    ({"regime": "explicit", "latent_dim": 0}, LINREG, r"run.latent_dim: expected an integer >= 1"),
    ({"regime": "explicit", "decoder": "mlp"}, LINREG, r"run.decoder: expected one of \['film', 'bilinear'\]"),
    ({"regime": "parametric", "decoder": "film"}, LINREG, r"only the explicit regime has a learned decoder"),
    ({"regime": "implicit", "tokens": "coordinate"}, LINREG, r"run.tokens: only the parametric and explicit"),
    ({"regime": "parametric", "tokens": "scalar"}, LINREG, r"run.tokens: expected one of \['unit', 'coordinate'\]"),
    ({"regime": "parametric", "update": "adam"}, LINREG,
     r"run.update: expected one of \['network', 'sgd', 'meta_sgd'\]"),
    ({"regime": "parametric", "signal": "obs", "update": "sgd"}, LINREG, r"run.update: 'sgd' \(MAML.*signal 'obs'"),
    ({"regime": "explicit", "signal": "grad", "update": "sgd"}, LINREG, r"run.update: 'sgd' .*regime 'explicit'"),
    ({"regime": "parametric", "signal": "grad", "update": "sgd", "history": 2}, LINREG,
     r"run.update: 'sgd' .*'history': 2"),
    ({"regime": "parametric", "signal": "grad", "update": "sgd", "tokens": "coordinate"}, LINREG,
     r"run.update: 'sgd' .*tokens 'coordinate'"),
])
def test_bad_configs_fail_with_one_clear_message(spec, family, message):
    with pytest.raises(ConfigError, match=message):
        build_learner(RunSpec("fam", "bad", spec, MODEL, TRAIN), family)


def test_bad_model_sizes_fail_clearly():
    with pytest.raises(ConfigError, match="model.width: expected a multiple of model.heads"):
        build_learner(RunSpec("fam", "bad", {"regime": "parametric"}, {**MODEL, "width": 30}, TRAIN), LINREG)


def test_the_params_schema_matches_the_config_dataclasses():
    from dataclasses import fields

    from iai.core.learners.backbone import LearnerConfig, ModelConfig
    from iai.params import schema

    defs = schema()["$defs"]
    assert set(defs["model"]["properties"]) == {f.name for f in fields(ModelConfig)}
    run_keys = set(defs["run"]["properties"]) - {"family", "name", "model", "train", "seeds"}
    assert run_keys == {f.name for f in fields(LearnerConfig)}
    assert defs["run"]["additionalProperties"] is False and defs["model"]["additionalProperties"] is False


def test_the_nominal_gradient_term_needs_a_gradient():
    with pytest.raises(ConfigError, match="nominal gradient term needs signal 'grad' or 'both'"):
        build_learner(RunSpec("fam", "bad", {"regime": "parametric", "signal": "obs", "nominal": True}, MODEL, TRAIN),
                      LINREG)


def test_the_probs_state_is_a_convex_mixture_on_the_simplex_not_a_logit_step():
    family, spec = LOGREG, {"regime": "implicit", "state": "probs"}  # gain b/(n+b)
    learner = build_learner(RunSpec("fam", "p", spec, MODEL, TRAIN), family, seed=1)
    with torch.no_grad():
        for p in learner.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
        x, y, xq = data(family)
        s = learner.step(learner.init(xq), x, y)  # n = 0: gain 1, the first mini-batch's distribution
        s2 = learner.step(s, x, y)                # n = 8, b = 8: gain 1/2
    for state in (s, s2):
        assert torch.allclose(state["s"].sum(-1), torch.ones(3, 5)) and (state["s"] >= 0).all()
    new_part = s2["s"] - 0.5 * s["s"]  # = 0.5 * softmax(delta): a point of the simplex, scaled by the gain
    assert (new_part >= -1e-7).all() and torch.allclose(new_part.sum(-1), torch.full((3, 5), 0.5))


def _probs_residual(perturb_head: bool, scale: float = 0.3):
    family, spec = LOGREG, {"regime": "implicit", "state": "probs_residual"}  # gain b/(n+b)
    learner = build_learner(RunSpec("fam", "pr", spec, MODEL, TRAIN), family, seed=1)
    with torch.no_grad():
        g = torch.Generator().manual_seed(2)
        for name, p in learner.named_parameters():
            if perturb_head or not name.startswith("head."):
                p.add_(scale * torch.randn(p.shape, generator=g))
    return family, learner


def test_the_probs_residual_state_stays_on_the_simplex_under_random_weights():
    family, learner = _probs_residual(perturb_head=True, scale=1.0)
    x, y, xq = data(family, n=48)
    clamped = False
    with torch.no_grad():
        s = learner.init(xq)
        for i in range(6):
            s = learner.step(s, x[:, 8 * i:8 * (i + 1)], y[:, 8 * i:8 * (i + 1)])
            p = s["s"]
            assert (p > 0).all() and torch.allclose(p.sum(-1), torch.ones(3, 5), atol=1e-6)
            clamped |= bool((p < 1e-3).any())  # some class pushed to the boundary: the clamp was exercised
        pred = learner.predict(s, xq)
    assert clamped
    assert torch.isfinite(pred).all() and torch.allclose(pred.exp().sum(-1), torch.ones(3, 5), atol=1e-5)


def test_the_probs_residual_state_is_the_logits_step_added_to_p_then_clamped_and_renormalized():
    """A head with zero weights and bias beta outputs delta = beta at every query, so two steps
    (gain 1, then 1/2) have a closed form; neither the convex mixture nor softmax(log p + delta) gives it."""
    family, learner = _probs_residual(perturb_head=False)
    beta = torch.tensor([0.5, -1.0, 0.2])
    with torch.no_grad():
        learner.head.bias.copy_(beta)
        x, y, xq = data(family)
        s0 = learner.init(xq)
        s1 = learner.step(s0, x, y)   # n = 0: gain 1
        s2 = learner.step(s1, x, y)   # n = 8, b = 8: gain 1/2
    p0 = learner.pred0.detach().softmax(-1).expand(3, 5, -1)
    torch.testing.assert_close(s0["s"], p0)

    def rule(p, g):
        c = (p + g * beta).clamp_min(1e-6)
        return c / c.sum(-1, keepdim=True)

    torch.testing.assert_close(s1["s"], rule(p0, 1.0))
    torch.testing.assert_close(s2["s"], rule(rule(p0, 1.0), 0.5))
    assert (s1["s"][..., 1] < 1e-5).all()  # class 1 went below zero and was clamped
    assert not torch.allclose(s1["s"], beta.softmax(-1).expand(3, 5, -1))  # not the mixture's first step
    torch.testing.assert_close(learner.predict(s2, xq), s2["s"].clamp_min(1e-6).log())


def test_an_untrained_probs_residual_learner_stays_at_its_initial_distribution():
    family, learner = _probs_residual(perturb_head=False)  # zero head, non-trivial pred0 and backbone
    x, y, xq = data(family, n=32)
    with torch.no_grad():
        s = s0 = learner.init(xq)
        assert not torch.allclose(s0["s"], torch.full_like(s0["s"], 1 / 3))
        for i in range(4):
            s = learner.step(s, x[:, 8 * i:8 * (i + 1)], y[:, 8 * i:8 * (i + 1)])
        torch.testing.assert_close(s["s"], s0["s"], rtol=0, atol=1e-6)
        torch.testing.assert_close(learner.predict(s, xq), learner.pred0.log_softmax(-1).expand(3, 5, -1),
                                   rtol=0, atol=1e-5)


@pytest.mark.parametrize("steps_at_once", [False, True])
def test_greedy_training_of_probs_residual_stays_finite_and_moves_the_head(steps_at_once):
    family, learner = _probs_residual(perturb_head=False, scale=0.0)  # as built: the head starts at zero
    opt = torch.optim.Adam(learner.parameters(), lr=3e-3)
    tc = TrainConfig(batch_size=8, max_steps=4, random_steps=True, tasks_per_batch=8, n_valid=8,
                     steps_at_once=steps_at_once)
    losses = []
    for it in range(6):
        opt.zero_grad(set_to_none=True)
        loss, _ = train_iteration(learner, family, tc, seed=it, device=torch.device("cpu"))
        grads = [p.grad for p in learner.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        if it == 0:  # the zero head is not a fixed point: the loss reaches it through the renormalization
            assert learner.head.weight.grad.abs().max() > 0
        opt.step()
        losses.append(loss)
    assert all(np.isfinite(losses))
    assert all(torch.isfinite(p).all() for p in learner.parameters())
    assert learner.head.weight.abs().max() > 0


def test_a_one_shot_learner_is_told_the_dataset_size():
    """A one-shot learner gets log(1 + n) / 8 for the n points it reads at once, its iterative twin only
    the gain b / (n + b) (from which it learns n as it goes)."""
    from iai.core.learners.backbone import LearnerConfig, n_step_features, step_features

    seen = torch.tensor([0.0, 0.0])
    one = LearnerConfig.from_dict({"regime": "parametric", "signal": "obs", "mode": "one_shot"})
    it = LearnerConfig.from_dict({"regime": "parametric", "signal": "obs"})
    f128, f1024 = step_features(seen, 128, one), step_features(seen, 1024, one)
    assert f128.shape == (2, n_step_features(one)) == (2, 2)
    assert torch.allclose(f128[:, 0], f1024[:, 0])  # the gain is 1 for any n at once
    assert torch.allclose(f1024[:, 1], torch.full((2,), np.log1p(1024) / 8)) and (f1024[:, 1] > f128[:, 1]).all()
    assert step_features(torch.tensor([16.0]), 16, it).shape == (1, n_step_features(it)) == (1, 1)


@pytest.mark.parametrize("family", [LINREG, LOGREG], ids=["linreg", "logreg"])
def test_coordinate_tokens_are_the_unit_layout_reshaped(family):
    """``tokens: coordinate`` holds theta as one scalar per token: the same predictor and the same
    gradient feature (closed form, checked against autograd's) as the unit layout, reshaped."""
    spec = {"regime": "parametric", "signal": "grad"}
    unit = build_learner(RunSpec("fam", "unit", spec, MODEL, TRAIN), family, seed=1)
    coord = build_learner(RunSpec("fam", "coord", {**spec, "tokens": "coordinate"}, MODEL, TRAIN), family, seed=1)
    p = family.predictor
    assert (coord.n_units, coord.unit_dim) == (p.n_tokens * p.token_dim, 1)
    x, y, xq = data(family)
    theta = torch.randn(x.shape[0], p.n_tokens, p.token_dim, generator=torch.Generator().manual_seed(3))
    flat = theta.reshape(x.shape[0], -1, 1)
    assert torch.equal(coord.f(xq, flat), unit.f(xq, theta))
    closed = coord.gradient(flat, x, y)
    assert closed.shape == flat.shape
    torch.testing.assert_close(closed, unit.gradient(theta, x, y).reshape(flat.shape))
    th = flat.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(family.loss(coord.f(x, th), y).sum(), th)
    torch.testing.assert_close(closed, auto)


@pytest.mark.parametrize("update", ["sgd", "meta_sgd"])
@pytest.mark.parametrize("family", [LINREG, LOGREG], ids=["linreg", "logreg"])
def test_maml_untrained_is_the_nominal_rule_and_training_moves_its_two_numbers(family, update):
    """MAML (``update: sgd``) and Meta-SGD (``meta_sgd``: a step size per parameter) start as the
    ``nominal_rule`` reference (theta^(0) = 0, lr 0.5, gain b/(n+b)): the same predictions on the same
    mini-batches. Greedy training then reaches the step sizes from every step and theta^(0) from the
    first step only (later states are detached)."""
    from iai.core.learners.classical import NOMINAL_LR
    from iai.core.learners.references import reference_learner

    maml = build_learner(RunSpec("fam", "maml", {"regime": "parametric", "signal": "grad", "update": update},
                                 MODEL, TRAIN), family, seed=1)
    assert maml.log_lr.shape == (maml.theta0.shape if update == "meta_sgd" else ())
    assert maml.nominal and not hasattr(maml, "backbone") and {n for n, _ in maml.named_parameters()} == {
        "theta0", "log_lr"}
    refs = ReferencesConfig.from_dict({"learners": ["nominal_rule"], "nominal_rule": {"lr": NOMINAL_LR}})
    rule = reference_learner("nominal_rule", family, "fam", refs)  # exp(-0.6931)
    tasks = family.sample(4, 40, 6, 7)
    with torch.no_grad():
        ours = rollout(maml, family, tasks, 8, steps="all", seed=3)
    theirs = rollout(rule, family, tasks, 8, steps="all", seed=3)
    assert len(ours) == len(theirs) > 5
    for a, b in zip(ours, theirs):
        assert (a["step"], a["metric"]) == (b["step"], b["metric"])
        np.testing.assert_allclose(a["values"], b["values"], rtol=1e-5, atol=1e-6)
    x, y, xq = data(family)
    state = maml.init(xq)
    first = maml.step(state, x, y)
    family.loss(maml.predict(first, xq), family.sample(3, 8, 5, 0).y_valid).mean().backward()
    assert maml.theta0.grad.abs().sum() > 0 and maml.log_lr.grad.abs().sum() > 0
    if update == "meta_sgd":  # each step size has its own gradient
        assert maml.log_lr.grad.unique().numel() > 1
    maml.zero_grad(set_to_none=True)
    later = maml.step({k: v.detach() for k, v in first.items()}, x, y)
    family.loss(maml.predict(later, xq), family.sample(3, 8, 5, 0).y_valid).mean().backward()
    assert maml.theta0.grad is None and maml.log_lr.grad.abs().sum() > 0


@pytest.mark.parametrize("update", ["sgd", "meta_sgd"])
@pytest.mark.parametrize("family", [LINREG, LOGREG], ids=["linreg", "logreg"])
def test_maml_differentiates_through_its_inner_gradient(family, update):
    """The first step's gradient reaches theta^(0) through the inner gradient step, as in MAML:
    d theta^(1) / d theta^(0) = I - lr * H. Checked against the same objective written per task with
    plain autograd, and against first-order MAML, which it must not be; Meta-SGD's step sizes (here
    all different) get the gradient of that objective too."""
    maml = build_learner(RunSpec("fam", "maml", {"regime": "parametric", "signal": "grad", "update": update},
                                 MODEL, TRAIN), family, seed=1)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        maml.theta0.copy_(torch.randn(maml.theta0.shape, generator=gen))
        maml.log_lr.copy_(-0.7 + 0.3 * torch.randn(maml.log_lr.shape, generator=gen))
    x, y, xq = data(family)
    target = family.sample(3, 8, 5, 0).y_valid
    family.loss(maml.predict(maml.step(maml.init(xq), x, y), xq), target).mean().backward()
    p = family.predictor  # gain 1 at the first step

    def gradients(second_order: bool) -> tuple[torch.Tensor, torch.Tensor]:
        th0 = maml.theta0.detach().clone().requires_grad_(True)
        log_lr = maml.log_lr.detach().clone().requires_grad_(True)
        total = 0.0
        for t in range(x.shape[0]):  # one task at a time
            inner = family.loss(p(x[t:t + 1], th0[None]), y[t:t + 1]).sum()
            (g,) = torch.autograd.grad(inner, th0, create_graph=second_order)
            th1 = th0 - log_lr.exp() * g
            total = total + family.loss(p(xq[t:t + 1], th1[None]), target[t:t + 1]).sum()
        return torch.autograd.grad(total / x.shape[0], (th0, log_lr))

    theta0_grad, lr_grad = gradients(second_order=True)
    torch.testing.assert_close(maml.theta0.grad, theta0_grad)
    torch.testing.assert_close(maml.log_lr.grad, lr_grad)
    assert not torch.allclose(maml.theta0.grad, gradients(second_order=False)[0], rtol=1e-2, atol=1e-4)
