"""The learned-learner contract, checked over the registry: every registered learner (and every
config variant of tests/test_learned_learners.py) reads a mini-batch as a set, steps on any batch
size, saves and loads to the same predictions and never passes a gradient from one step to an
earlier one. A learner registered from a module outside the package (tests/helpers/toy_learner.py)
is checked the same way, and trains and evaluates through the library with no other file touched.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import helpers.toy_learner  # noqa: F401  (registers arch: toy_mean, as a user's module would)
from iai.core.learners import LEARNERS, LearnedLearner, LearnerInfo, build_learner, load_learner, save_learner
from iai.core.learners.base import Learner
from iai.core.rollout import rollout
from iai.core.tasks import make_family
from iai.core.training import TrainConfig, train_iteration
from iai.params import EvaluateConfig, RunSpec
from iai.stages.evaluate import evaluate_split
from iai.stages.train import train_run
from iai.utils import ConfigError
from test_learned_learners import MODEL, TRAIN, VARIANTS, data
from test_learned_learners import make as variant

CASES = {f"{arch}:example": (make_family(kind, **options), spec)
         for arch, (kind, options, spec) in ((a, cls.example) for a, cls in sorted(LEARNERS.items()))}
CASES |= {f"variant:{name}": case for name, case in VARIANTS.items()}


def make(case: str, randomize: bool = True):
    return variant(case, randomize, CASES)


def test_every_learner_class_of_the_package_is_registered_with_an_example():
    assert {"parametric", "explicit", "implicit", "maml", "order", "flow", "toy_mean"} <= set(LEARNERS)
    assert all(issubclass(cls, LearnedLearner) and cls.arch == arch for arch, cls in LEARNERS.items())


@pytest.mark.parametrize("case", list(CASES))
def test_a_learner_says_what_it_is_and_reads_a_minibatch_as_a_set(case):
    family, learner = make(case)
    assert isinstance(learner, Learner)
    info = LearnerInfo.of(learner)
    assert (info.regime, info.learner, info.mode) == (learner.regime, learner.name, learner.mode)
    x, y, xq = data(family)
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        s1 = learner.step(learner.step(learner.init(xq), x, y), x, y)  # the second step reads a non-initial state
        s2 = learner.step(learner.step(learner.init(xq), x, y), x[:, perm], y[:, perm])
        s3 = learner.step(learner.step(learner.init(xq), x, y), x.flip(0), y.flip(0))  # other data: a new state
    for key in s1:
        torch.testing.assert_close(s1[key], s2[key], rtol=1e-5, atol=1e-5)
    assert any(not torch.allclose(s1[k], s3[k]) for k in s1 if s1[k].is_floating_point())


@pytest.mark.parametrize("case", list(CASES))
def test_a_learner_steps_on_any_batch_size(case):
    family, learner = make(case)
    learner.eval()  # a training-mode flow learner leaves its generated samples out (NaN)
    _, _, xq = data(family)
    with torch.no_grad():
        state = learner.init(xq)
        for b in (1, 8, 37):
            x, y, _ = data(family, n=b, seed=b)
            state = learner.step(state, x, y)
        pred = learner.predict(state, xq)
    assert torch.isfinite(pred).all() and pred.shape[:2] == xq.shape[:2]
    assert state["n"].tolist() == [46.0] * 3


class _Recorder:
    """Wraps a learner; records whether each step's input state carries a graph, and hooks every tensor
    of every new state to count the gradients that reach it."""

    def __init__(self, learner):
        self.learner, self.inputs_require_grad, self.hits, self.mode = learner, [], [], learner.mode

    def init(self, xq):
        return self.learner.init(xq)

    def predict(self, state, xq):
        return self.learner.predict(state, xq)

    def step(self, state, x, y):
        self.inputs_require_grad.append(any(v.requires_grad for v in state.values()))
        new = self.learner.step(state, x, y)
        count = [0]
        self.hits.append(count)
        for v in new.values():
            if v.requires_grad:
                v.register_hook(lambda g, c=count: c.__setitem__(0, c[0] + 1))
        return new


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][1].get("mode", "iterative") == "iterative"])
def test_no_gradient_reaches_an_earlier_step(case):
    family, learner = make(case, randomize=False)
    rec = _Recorder(learner)
    tc = TrainConfig(batch_size=8, max_steps=3, random_steps=False, tasks_per_batch=4, n_valid=5,
                     steps_at_once=False)
    train_iteration(rec, family, tc, seed=0, device=torch.device("cpu"))
    # only step 1 may read a state with a graph (a learned initial state); later steps read detached ones
    assert len(rec.inputs_require_grad) == 3 and rec.inputs_require_grad[1:] == [False, False]
    # each state gets gradient from its own loss only (a later step's loss would add to an earlier state's)
    n_graph = [h[0] for h in rec.hits]
    assert n_graph[0] == n_graph[1] == n_graph[2]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in learner.parameters())


@pytest.mark.parametrize("case", list(CASES))
def test_save_then_load_reproduces_predictions_exactly(tmp_path, case):
    family, learner = make(case)
    learner.eval()
    tasks = family.sample(4, 24, 6, 5)
    before = rollout(learner, family, tasks, 8, steps="all", seed=3)
    save_learner(tmp_path / "m.pt", learner)
    loaded = load_learner(tmp_path / "m.pt")
    assert type(loaded) is type(learner) and not loaded.training
    assert LearnerInfo.of(loaded) == LearnerInfo.of(learner)
    assert (loaded.batch_size, loaded.context_size) == (8, 24)
    after = rollout(loaded, family, tasks, 8, steps="all", seed=3)
    assert [{k: v for k, v in r.items() if k != "values"} for r in after] == [
        {k: v for k, v in r.items() if k != "values"} for r in before]
    assert all(np.array_equal(a["values"], b["values"]) for a, b in zip(after, before))


def test_a_learner_from_an_outside_module_trains_and_evaluates_through_the_library(tmp_path):
    family = make_family("linear_regression", dim=3, noise_std=0.5)
    run = RunSpec("linreg", "toy", {"regime": "implicit", "arch": "toy_mean"}, MODEL,
                  {**TRAIN, "iterations": 2, "tasks_per_batch": 4, "n_valid": 5, "warmup": 0, "log_every": 1})
    before = build_learner(run, family).state_dict()
    summary = train_run(run, family, tmp_path, seed=0, device="cpu", progress=False)
    assert summary["iterations"] == 2
    trained = load_learner(tmp_path / "linreg" / "toy" / "seed0.pt")
    assert type(trained).__name__ == "ToyMeanLearner"
    assert any(not torch.equal(before[k], v) for k, v in trained.state_dict().items())  # training moved it
    bank = family.sample(6, 32, 8, 11)
    blocks = evaluate_split(trained, family, bank, 8, EvaluateConfig(sizes=(16, 32), steps="last"), seed=0)
    mse = [b for b in blocks if b["metric"] == "mse"]
    assert {b["n_train"] for b in mse} == {16, 32} and all(np.isfinite(b["value"]).all() for b in mse)


def test_an_unknown_arch_names_the_key_and_the_registered_learners():
    family = make_family("linear_regression", dim=3)
    with pytest.raises(ConfigError, match=r"runs\[fam/x\]\.arch: unknown learner 'nope'; expected one of .*toy_mean"):
        build_learner(RunSpec("fam", "x", {"regime": "implicit", "arch": "nope"}, MODEL, TRAIN), family)
