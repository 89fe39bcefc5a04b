"""The one loop: mini-batch schedules, chunking, step selection, and identical streams across learners."""

import pytest
import torch

from iai.core.learners.classical import GradientLearner
from iai.core.learners.exact import ConjugateLinearRegression, bayes_posterior
from iai.core.rollout import eval_steps, gather_points, minibatch_indices, rollout, steps_for
from iai.core.tasks import make_family
from iai.utils import ConfigError


def test_epochs_schedule_covers_every_point_once_per_pass():
    batches = list(minibatch_indices(3, 50, 16, steps_for(50, 16, 2), "epochs", torch.Generator().manual_seed(0)))
    assert len(batches) == 8 and [b.shape[1] for b in batches] == [16, 16, 16, 2] * 2
    for epoch in (batches[:4], batches[4:]):
        seen = torch.cat(epoch, 1)
        assert torch.equal(seen.sort(-1).values, torch.arange(50).expand(3, 50))
    assert not torch.equal(batches[0], batches[4])  # reshuffled per epoch
    assert not torch.equal(batches[0][0], batches[0][1])  # and per task


def test_random_schedule_draws_subsets_without_replacement():
    batches = list(minibatch_indices(2, 20, 8, 5, "random", torch.Generator().manual_seed(0)))
    assert len(batches) == 5
    for b in batches:
        assert b.shape == (2, 8) and all(len(set(row.tolist())) == 8 for row in b)


def test_batch_larger_than_data_and_bad_schedule():
    (b,) = minibatch_indices(1, 5, 16, 1)
    assert b.shape == (1, 5)
    with pytest.raises(ConfigError, match="schedule: unknown 'cyclic'"):
        next(minibatch_indices(1, 5, 2, 1, "cyclic"))


def test_eval_steps():
    assert eval_steps(10, "log") == [1, 2, 4, 8, 10]
    assert eval_steps(3, "all") == [1, 2, 3]
    assert eval_steps(64, [5, 100]) == [5, 64]
    with pytest.raises(ConfigError):
        eval_steps(4, "sometimes")


def test_gather_points():
    x = torch.arange(24.0).reshape(2, 4, 3)
    idx = torch.tensor([[3, 0], [1, 1]])
    assert torch.equal(gather_points(x, idx), torch.stack([x[0, [3, 0]], x[1, [1, 1]]]))


def test_rollout_of_sequential_bayes_matches_the_closed_form_at_every_step():
    fam = make_family("linear_regression", dim=4)
    tasks = fam.sample(32, 40, 20, 0).to("cpu", torch.float64)
    records = rollout(ConjugateLinearRegression.bayes(fam), fam, tasks, batch_size=8, steps="all")
    last = [r for r in records if r["step"] == 5 and r["metric"] == "excess_risk"][0]
    assert last["n_seen"] == 40 and last["n_tasks"] == 32
    mean, _ = bayes_posterior(tasks.x_train, tasks.y_train, fam.noise_var, fam.prior_var)
    pred = tasks.x_valid @ mean.unsqueeze(-1)
    expected = fam.metrics(pred, tasks.y_valid, tasks.f_valid)["excess_risk"]
    assert last["value"] == pytest.approx(expected.mean().item(), rel=1e-9)
    assert last["sem"] == pytest.approx(expected.std().item() / 32**0.5, rel=1e-9)
    values = [r["value"] for r in records if r["metric"] == "excess_risk"]
    assert values[-1] < values[0]  # more data, lower risk


def test_task_chunking_does_not_change_the_numbers():
    fam = make_family("linear_classification", dim=3)
    tasks = fam.sample(10, 30, 8, 0)
    learner = GradientLearner(fam, "adam", lr=0.1)
    whole = rollout(learner, fam, tasks, 8, steps="all", seed=3)
    chunked = rollout(learner, fam, tasks, 8, steps="all", seed=3, task_chunk=3)
    for a, b in zip(whole, chunked):
        assert a["step"] == b["step"] and a["metric"] == b["metric"]
        assert a["value"] == pytest.approx(b["value"], rel=1e-6)


def test_same_seed_same_minibatches_for_every_learner():
    """Two learners rolled out with one seed read identical mini-batches: recorded by a spy learner."""

    class Spy:
        name, regime, signal = "spy", "exact", "none"

        def __init__(self):
            self.seen = []

        def init(self, x_query):
            return {"n": torch.zeros(x_query.shape[0])}

        def step(self, state, x, y):
            self.seen.append(x.clone())
            return state

        def predict(self, state, x_query):
            return torch.zeros(*x_query.shape[:2], 1)

    fam = make_family("linear_regression", dim=2)
    tasks = fam.sample(4, 20, 3, 0)
    a, b, c = Spy(), Spy(), Spy()
    rollout(a, fam, tasks, 6, seed=11)
    rollout(b, fam, tasks, 6, seed=11)
    rollout(c, fam, tasks, 6, seed=12)
    assert all(torch.equal(p, q) for p, q in zip(a.seen, b.seen))
    assert not torch.equal(a.seen[0], c.seen[0])
