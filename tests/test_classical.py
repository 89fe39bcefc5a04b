"""SGD and Adam learners give the same parameters as torch.optim on the same mini-batches."""

import pytest
import torch

from iai.core.learners.classical import GradientLearner
from iai.core.rollout import gather_points, minibatch_indices
from iai.core.tasks import make_family
from iai.utils import ConfigError


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
