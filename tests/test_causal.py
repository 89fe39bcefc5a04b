"""Topological order of causal models: DAGs, metrics, references, the order learner, bad options."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from iai.core.learners import build_learner, load_learner, save_learner
from iai.core.learners.order import RandomOrderLearner, SinkSearchLearner, VarSortLearner
from iai.core.learners.references import applies, reference_learner
from iai.core.rollout import rollout
from iai.core.tasks import IMPLICIT_FAMILIES, family_splits, make_family
from iai.core.tasks.causal import order_metrics, order_ranks
from iai.params import IMPLICIT_ONLY_KINDS, ReferencesConfig, RunSpec
from iai.stages.train import train_run
from iai.utils import ConfigError

torch.set_num_threads(1)
MODEL = {"width": 16, "depth": 1, "heads": 2, "ff": 32}
TRAIN = {"batch_size": 8, "max_steps": 2, "tasks_per_batch": 8, "n_valid": 4, "iterations": 3, "lr": 1e-3,
         "warmup": 1, "threads": 1, "log_every": 1, "checkpoint_every": 100}


def true_scores(parents: torch.Tensor) -> torch.Tensor:
    """A valid topological order's scores: the length of the longest path into each variable."""
    t, p, _ = parents.shape
    depth = torch.zeros(t, p)
    for _ in range(p):
        depth = torch.maximum(depth, ((depth.unsqueeze(1) + 1) * parents).amax(-1))
    return depth


@pytest.mark.parametrize("opts", [{"mechanism": "linear"}, {"mechanism": "nonlinear", "noise_dist": "laplace"},
                                  {"dim": 9, "edges_per_node": 3.0, "noise_dist": "uniform", "standardize": True}])
def test_dags_are_acyclic_and_the_true_order_agrees_with_every_edge(opts):
    fam = make_family("causal_order", **opts)
    b = fam.sample(n_tasks=50, n_train=20, n_valid=3, seed=0)
    p = fam.dim
    assert b.x_train.shape == (50, 20, p) and b.y_train.shape == (50, 20, 0)
    assert b.x_valid.shape == (50, p, 1) and b.y_valid.shape == (50, p, p) and torch.equal(b.y_valid, b.f_valid)
    adj = b.y_valid.transpose(1, 2)  # [t, i, j] = 1 for i -> j
    assert torch.equal(adj, (b.theta != 0).float())
    assert (adj.sum((-1, -2)) >= 1).all()  # never an empty graph
    # acyclic: the p-th power of the adjacency matrix is zero (no path of length p)
    assert torch.linalg.matrix_power(adj, p).abs().sum() == 0
    assert adj.diagonal(dim1=-2, dim2=-1).sum() == 0
    # the true order puts every cause before its effect, and scores 1 on both metrics
    scores = true_scores(b.y_valid)
    rank = order_ranks(scores)
    i, j = torch.nonzero(adj[0], as_tuple=True)
    assert (rank[0, i] < rank[0, j]).all()
    m = fam.metrics(scores.unsqueeze(-1), b.y_valid, b.f_valid)
    assert torch.equal(m["edge_accuracy"], torch.ones(50)) and torch.equal(m["valid_order"], torch.ones(50))
    if opts.get("standardize"):
        torch.testing.assert_close(b.x_train.std(1), torch.ones(50, p))


def test_the_variables_are_shuffled_and_the_density_is_as_configured():
    fam = make_family("causal_order", dim=8, edges_per_node=1.5)
    b = fam.sample(400, 4, 1, 1)
    # expected edges: p * edges_per_node (plus a few from empty graphs that get one edge)
    assert abs(b.y_valid.sum((-1, -2)).mean().item() - 12.0) < 0.6
    # the canonical order is hidden: variable 0 is a source in only about the share of sources
    n_parents = b.y_valid.sum(-1)  # [t, j]
    assert 0.2 < (n_parents[:, 0] == 0).float().mean() < 0.8


def _linear_extensions(parents: torch.Tensor) -> int:
    p = parents.shape[0]
    return sum(all(pos[i] < pos[j] for j in range(p) for i in range(p) if parents[j, i])
               for pos in ({v: k for k, v in enumerate(perm)} for perm in itertools.permutations(range(p))))


def test_random_order_metrics_have_their_expected_values():
    fam = make_family("causal_order", dim=4, edges_per_node=1.0)
    b = fam.sample(3000, 2, 1, 2)
    scores = torch.rand(3000, 4, generator=torch.Generator().manual_seed(0))
    m = order_metrics(scores, b.y_valid)
    # each edge is oriented correctly with probability 1/2: mean over 3000 tasks, sd <= 0.5/sqrt(3000) ~ 0.009
    assert abs(m["edge_accuracy"].mean().item() - 0.5) < 0.03
    # a random order is valid with probability (number of topological orders) / p!
    expected = sum(_linear_extensions(b.y_valid[t]) for t in range(300)) / (300 * math.factorial(4))
    assert abs(m["valid_order"][:300].mean().item() - expected) < 0.08
    assert abs(m["valid_order"].mean().item() - expected) < 0.05
    # ties are broken by variable index: a constant score is the identity order
    assert torch.equal(order_ranks(torch.zeros(2, 4)), torch.arange(4).expand(2, 4))


def test_loss_prefers_the_true_order():
    fam = make_family("causal_order", dim=6)
    b = fam.sample(20, 2, 1, 3)
    good = true_scores(b.y_valid).unsqueeze(-1)
    assert (fam.loss(3 * good, b.y_valid) < fam.loss(-3 * good, b.y_valid)).all()
    assert (fam.loss(10 * good, b.y_valid) < 1e-3).all()


def test_references_run_through_the_rollout_and_sink_search_is_exact_iteratively():
    fam = make_family("causal_order", dim=5, noise_std=1.0)
    tasks = fam.sample(64, 200, 1, 4)
    out = {}
    for name in ("random_order", "var_sort", "sink_search"):
        assert applies(name, fam)
        learner = reference_learner(name, fam, "scm", ReferencesConfig(learners=(name,)), seed=0)
        rec = rollout(learner, fam, tasks, batch_size=50, steps="last")
        out[name] = {r["metric"]: r["value"] for r in rec}
    assert out["sink_search"]["edge_accuracy"] > 0.9 and out["var_sort"]["edge_accuracy"] > 0.8
    assert out["random_order"]["edge_accuracy"] < 0.75
    # the running covariance makes the sink search independent of how the data are split
    one = rollout(SinkSearchLearner(), fam, tasks, batch_size=200, steps="last")
    assert [r["value"] for r in one] == pytest.approx([out["sink_search"][r["metric"]] for r in one])
    for name in ("sgd", "adam", "map", "knn", "bayes", "true_samples"):
        assert not applies(name, fam)
    assert not applies("var_sort", make_family("linear_regression", dim=2))


def test_var_sort_fails_on_standardized_data():
    fam = make_family("causal_order", dim=5, standardize=True)
    tasks = fam.sample(64, 200, 1, 5)
    rec = rollout(VarSortLearner(), fam, tasks, batch_size=200, steps="last")
    acc = next(r["value"] for r in rec if r["metric"] == "edge_accuracy")
    assert abs(acc - 0.5) < 0.15
    assert RandomOrderLearner(0).init(tasks.x_valid)["s"].shape == (64, 5, 1)


@pytest.mark.parametrize("mode, state", [("iterative", "logits"), ("one_shot", "hidden")])
def test_order_learner_trains_saves_and_runs_on_larger_graphs(tmp_path, mode, state):
    fam = make_family("causal_order", dim=4)
    run = RunSpec("scm", "ord", {"regime": "implicit", "mode": mode, "state": state}, MODEL, TRAIN)
    summary = train_run(run, fam, tmp_path, seed=0, device="cpu", progress=False)
    assert math.isfinite(summary["final_loss"])
    learner = load_learner(tmp_path / "scm" / "ord" / "seed0.pt")
    big = fam.variant(dim=9)
    learner = load_learner(tmp_path / "scm" / "ord" / "seed0.pt", big)  # graph size is not part of the structure
    tasks = big.sample(4, 16, 1, 0)
    rec = rollout(learner, big, tasks, batch_size=8 if mode == "iterative" else 16)
    assert {r["metric"] for r in rec} == {"edge_accuracy", "valid_order"}
    assert learner.predict(learner.init(tasks.x_valid), tasks.x_valid).shape == (4, 9, 1)
    save_learner(tmp_path / "again.pt", learner)


def test_order_learner_is_equivariant_to_the_order_of_the_variables():
    fam = make_family("causal_order", dim=5)
    learner = build_learner(RunSpec("scm", "o", {"regime": "implicit"}, MODEL, TRAIN), fam, seed=1).eval()
    torch.nn.init.normal_(learner.head.weight, std=0.3)  # a fresh head is zero: make the update non-trivial
    b = fam.sample(3, 16, 1, 0)
    perm = torch.tensor([3, 0, 4, 1, 2])
    s = learner.step(learner.init(b.x_valid), b.x_train, b.y_train)["s"]
    sp = learner.step(learner.init(b.x_valid), b.x_train[:, :, perm], b.y_train)["s"]
    torch.testing.assert_close(sp, s[:, perm], atol=1e-5, rtol=1e-4)
    assert s.std() > 0


@pytest.mark.parametrize("opts, name", [
    ({"dim": 1}, "causal_order.dim"), ({"edges_per_node": 0}, "causal_order.edges_per_node"),
    ({"mechanism": "cubic"}, "causal_order.mechanism"), ({"noise_std": 0}, "causal_order.noise_std"),
    ({"noise_dist": "cauchy"}, "causal_order.noise_dist"), ({"weight_low": 3.0}, "causal_order.weight_high"),
    ({"hidden": 0}, "causal_order.hidden"), ({"standardize": "yes"}, "causal_order.standardize"),
    ({"sparsity": 1}, "sparsity"),
])
def test_bad_options_name_the_option(opts, name):
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        make_family("causal_order", **opts)


def test_bad_sizes_and_regimes_give_clear_errors():
    fam = make_family("causal_order")
    for bad in ({"n_tasks": 0}, {"n_train": 0}, {"n_valid": -1}):
        args = {"n_tasks": 2, "n_train": 3, "n_valid": 1, **bad}
        with pytest.raises(ConfigError, match=next(iter(bad))):
            fam.sample(seed=0, **args)
    with pytest.raises(ConfigError, match="only the implicit regime"):
        build_learner(RunSpec("scm", "p", {"regime": "parametric", "signal": "obs"}, MODEL, TRAIN), fam)
    with pytest.raises(ConfigError, match="run.state"):
        build_learner(RunSpec("scm", "p", {"regime": "implicit", "state": "probs"}, MODEL, TRAIN), fam)
    with pytest.raises(ConfigError, match="run.history"):
        build_learner(RunSpec("scm", "p", {"regime": "implicit", "history": 2}, MODEL, TRAIN), fam)
    with pytest.raises(ConfigError, match="dim"):
        family_splits(fam, {"id": {}, "big": {"dim": 1}})
    with pytest.raises(ConfigError, match="known predictor"):
        fam.predictor


def test_params_know_the_implicit_only_kinds():
    assert set(IMPLICIT_FAMILIES) == set(IMPLICIT_ONLY_KINDS)
