"""In-context generation by flow matching: task layout, exact fields, metrics, references, the flow learner."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from iai.core.learners import build_learner, load_learner
from iai.core.learners.flow import TrueSamplesLearner
from iai.core.learners.references import applies, reference_learner
from iai.core.rollout import rollout
from iai.core.tasks import MixtureGenerationTasks, make_family
from iai.core.tasks.generation import empirical_velocity, euler_generate, mixture_log_prob, mixture_velocity, mmd2
from iai.core.tasks.images import build_pool
from iai.params import ReferencesConfig, RunSpec
from iai.stages.train import train_run
from iai.utils import ConfigError, generator

torch.set_num_threads(1)
MODEL = {"width": 16, "depth": 1, "heads": 2, "ff": 32}
TRAIN = {"batch_size": 8, "max_steps": 2, "tasks_per_batch": 8, "n_valid": 8, "iterations": 3, "lr": 1e-3,
         "warmup": 1, "threads": 1, "log_every": 1, "checkpoint_every": 100}
FLOW = {"regime": "implicit", "state": "hidden", "latent_tokens": 2}


def test_queries_are_the_linear_path_and_the_truth_is_the_exact_field():
    fam = make_family("mixture_generation", n_components=3)
    b = fam.sample(n_tasks=5, n_train=7, n_valid=11, seed=0)
    assert b.x_train.shape == (5, 7, 2) and b.y_train.shape == (5, 7, 0)
    assert b.x_valid.shape == (5, 11, 5) and b.y_valid.shape == (5, 11, 4) and b.theta.shape == (5, 3, 4)
    xt, t, x0 = fam.split_query(b.x_valid)
    x1 = b.y_valid[..., 2:]
    torch.testing.assert_close(xt, (1 - t) * x0 + t * x1)
    torch.testing.assert_close(b.y_valid[..., :2], x1 - x0)
    assert ((t >= 0) & (t < 1)).all()
    torch.testing.assert_close(b.f_valid[..., :2], mixture_velocity(xt, t, b.theta))
    torch.testing.assert_close(b.f_valid[:, 3, 2:], b.theta.flatten(1))  # the mixture, on every row
    w = b.theta[..., 0]
    torch.testing.assert_close(w.sum(-1), torch.ones(5))
    assert ((b.theta[..., 3] >= 0.2) & (b.theta[..., 3] <= 0.6)).all()


def test_cfm_loss_is_zero_for_the_exact_field_of_a_point_mass():
    # the target: a point mass at a (one component with std 0); its marginal field is
    # u(x, t) = (a - x) / (1 - t), which equals x_1 - x_0 on the whole path, so the CFM loss is 0
    fam = make_family("mixture_generation", n_components=1)
    gen = generator(0)
    t_, m = 6, 50
    a = 3 * torch.randn(t_, 1, 2, generator=gen)
    theta = torch.cat([torch.ones(t_, 1, 1), a, torch.zeros(t_, 1, 1)], -1)
    x0, t = torch.randn(t_, m, 2, generator=gen), torch.rand(t_, m, 1, generator=gen) * 0.99
    x1 = a.expand(t_, m, 2)
    xt = (1 - t) * x0 + t * x1
    v = mixture_velocity(xt, t, theta)
    y = torch.cat([x1 - x0, x1], -1)
    loss = fam.loss(torch.cat([v, x1], -1), y)
    assert loss.max() < 1e-8
    # for a non-degenerate mixture the exact field is the minimizer, not 0: any perturbation does worse
    fam3 = make_family("mixture_generation", n_components=3)
    b = fam3.sample(8, 1, 2000, 1)
    exact = fam3.loss(b.f_valid[..., :2], b.y_valid)
    assert (exact > 0.01).all()
    assert (fam3.loss(b.f_valid[..., :2] + 0.3, b.y_valid) > exact).all()
    assert (fam3.loss(1.2 * b.f_valid[..., :2], b.y_valid) > exact).all()


def test_generation_from_the_exact_field_reproduces_the_mixture():
    # 8 tasks of the default 2-D mixture, 400 samples each; Euler with 100 steps of the exact marginal field
    fam = make_family("mixture_generation", n_components=3)
    gen = generator(2)
    theta = fam.sample_theta(8, gen)
    x0 = torch.randn(8, 400, 2, generator=gen, dtype=torch.float64)
    generated = euler_generate(lambda x, t: mixture_velocity(x, t, theta), x0, 100)
    truth = MixtureGenerationTasks.sample_mixture(theta, 400, gen).double()
    truth2 = MixtureGenerationTasks.sample_mixture(theta, 400, gen).double()
    mmd, floor = mmd2(generated, truth, 1.0), mmd2(truth2, truth, 1.0)
    # stated: the mean unbiased MMD^2 (Gaussian kernel, h = 1) over the 8 tasks is within 0.002 of 0,
    # like that of two true samples (the floor); its noise here is ~0.001
    assert abs(mmd.mean()) < 0.002 and abs(floor.mean()) < 0.002, (mmd, floor)
    # and the generated samples' true NLL matches that of true samples (the mixture's entropy) to 0.1 nat
    nll_gen = -mixture_log_prob(generated, theta).mean()
    nll_true = -mixture_log_prob(truth, theta).mean()
    assert abs(nll_gen - nll_true) < 0.1
    # a few Euler steps, or the wrong field (pure noise), are visibly worse
    assert mmd2(x0, truth, 1.0).mean() > 0.05


def test_empirical_field_reproduces_its_points():
    gen = generator(3)
    pts = torch.randn(2, 5, 2, generator=gen, dtype=torch.float64)
    x0 = torch.randn(2, 40, 2, generator=gen, dtype=torch.float64)
    out = euler_generate(lambda x, t: empirical_velocity(x, t, pts), x0, 200)
    dist = torch.cdist(out, pts).amin(-1)
    assert dist.max() < 0.05


def test_metrics_and_the_true_samples_floor_through_the_rollout():
    fam = make_family("mixture_generation")
    tasks = fam.sample(32, 128, 64, 4)
    assert applies("true_samples", fam)
    for name in ("sgd", "map", "knn", "random_order", "var_sort"):
        assert not applies(name, fam)
    ref = reference_learner("true_samples", fam, "mog", ReferencesConfig(learners=("true_samples",)), seed=0)
    rec = rollout(ref, fam, tasks, batch_size=16, steps="all")
    by = {(r["step"], r["metric"]): r["value"] for r in rec}
    assert set(m for _, m in by) == {"mmd", "sample_nll", "cfm_loss"}
    # 64 true samples against 64 others: the floor; with only 16 points read (resampled) it is higher
    assert abs(by[(8, "mmd")]) < 0.005 and by[(1, "mmd")] > by[(8, "mmd")] + 0.01
    entropy = -mixture_log_prob(tasks.y_valid[..., 2:], tasks.theta).mean().item()
    assert abs(by[(8, "sample_nll")] - entropy) < 0.25
    # a learner that generates the noise itself is far from the floor
    noise = torch.cat([tasks.f_valid[..., :2], fam.split_query(tasks.x_valid)[2]], -1)
    assert fam.metrics(noise, tasks.y_valid, tasks.f_valid)["mmd"].mean() > 0.05


@pytest.mark.parametrize("mode", ["iterative", "one_shot"])
def test_flow_learner_trains_generates_and_reloads(tmp_path, mode):
    fam = make_family("mixture_generation", euler_steps=4)
    run = RunSpec("mog", "flow", {**FLOW, "mode": mode}, MODEL, TRAIN)
    summary = train_run(run, fam, tmp_path, seed=0, device="cpu", progress=False)
    assert math.isfinite(summary["final_loss"]) and summary["regime"] == "implicit"
    learner = load_learner(tmp_path / "mog" / "flow" / "seed0.pt", fam.variant(n_components=6))
    tasks = fam.sample(4, 16, 8, 1)
    rec = rollout(learner, fam, tasks, batch_size=8 if mode == "iterative" else 16)
    assert {r["metric"] for r in rec} == {"mmd", "sample_nll", "cfm_loss"}
    assert all(math.isfinite(r["value"]) for r in rec)
    state = learner.init(tasks.x_valid)
    state = learner.step(state, tasks.x_train, tasks.y_train)
    assert learner.predict(state, tasks.x_valid).isfinite().all()
    learner.train()  # in training mode the generated half is skipped (NaN), the velocity is not
    pred = learner.predict(state, tasks.x_valid)
    assert pred[..., :2].isfinite().all() and pred[..., 2:].isnan().all()
    with pytest.raises(ConfigError, match="different kind or predictor shape"):
        load_learner(tmp_path / "mog" / "flow" / "seed0.pt", fam.variant(dim=3))


def test_image_generation_tasks_are_one_class_each():
    fam = make_family("image_generation", dim=4, held_out_classes=[8, 9])
    assert fam.mmd_bandwidth == 2.0 and set(fam.default_splits()) == {"id", "ood_classes", "ood_shift"}
    b = fam.sample(6, 150, 40, 0)
    assert b.x_train.shape == (6, 150, 4) and b.x_valid.shape == (6, 40, 9) and b.theta.shape == (6, 0, 6)
    pool = build_pool("digits", "", 1, 0.0, 0.0, 4, 0)
    row = {tuple(np.round(v, 5)): int(c) for v, c in zip(pool.x.numpy(), pool.y.numpy())}

    def classes(x):
        return {row[tuple(np.round(v, 5))] for v in x.numpy()}

    for t in range(6):
        x1 = b.y_valid[t, :, 4:]
        cls = classes(x1)
        assert len(cls) == 1 and cls <= set(range(8))
        assert classes(b.x_train[t]) == cls
        assert len({tuple(v) for v in x1.tolist()}) == 40  # valid points are distinct images
        assert not {tuple(v) for v in x1.tolist()} & {tuple(v) for v in b.x_train[t].tolist()}
    novel = fam.variant(novel_classes=True).sample(4, 10, 10, 0)
    for t in range(4):
        assert classes(novel.x_train[t]) <= {8, 9}
    assert make_family("image_generation", dim=0).dim == 64


@pytest.mark.parametrize("kind, opts, name", [
    ("mixture_generation", {"n_components": 0}, "n_components"),
    ("mixture_generation", {"scale_min": 0.5, "scale_max": 0.4}, "scale_max"),
    ("mixture_generation", {"euler_steps": 0}, "euler_steps"),
    ("mixture_generation", {"mmd_bandwidth": 0}, "mmd_bandwidth"),
    ("mixture_generation", {"dim": 0}, "dim"),
    ("mixture_generation", {"mean_std": -1}, "mean_std"),
    ("image_generation", {"held_out_classes": [11]}, "held_out_classes"),
    ("image_generation", {"novel_classes": True}, "novel_classes"),
    ("image_generation", {"downscale": 3}, "downscale"),
    ("image_generation", {"source": "cifar"}, "source"),
    ("image_generation", {"source": "mnist"}, "path"),
])
def test_bad_options_name_the_option(kind, opts, name):
    with pytest.raises(ConfigError, match=f"{kind}.{name}"):
        make_family(kind, **opts)


def test_bad_sizes_and_runs_give_clear_errors():
    fam = make_family("mixture_generation")
    for n_valid in (0, 1):
        with pytest.raises(ConfigError, match="n_valid"):
            fam.sample(2, 3, n_valid, 0)
    with pytest.raises(ConfigError, match="n_train"):
        fam.sample(2, 0, 3, 0)
    with pytest.raises(ConfigError, match="run.state"):
        build_learner(RunSpec("mog", "f", {"regime": "implicit"}, MODEL, TRAIN), fam)
    with pytest.raises(ConfigError, match="only the implicit regime"):
        build_learner(RunSpec("mog", "f", {"regime": "explicit", "signal": "obs"}, MODEL, TRAIN), fam)
    with pytest.raises(ConfigError, match="queries of width"):
        fam.split_query(torch.zeros(1, 2, 3))
    with pytest.raises(ConfigError, match="no samples read"):
        ref = TrueSamplesLearner(fam)
        q = fam.sample(1, 1, 2, 0).x_valid
        ref.predict(ref.init(q), q)
