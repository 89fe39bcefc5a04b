"""The exact and classical reference learners of a family, built from params; ``iai tune-lr``.

Which references apply depends on the family: ``bayes`` and ``ols`` need the linear-Gaussian model,
``map`` needs a known predictor with a Gaussian prior (every family here has one), ``sgd``,
``adam`` and ``knn`` apply everywhere.

The SGD and Adam learning rates are chosen per family from ``references.lr_grid`` on tasks from a
separate seed stream (never the evaluation banks), by the geometric mean of the primary metric over
log-spaced steps of one pass over ``banks.n_train`` points, and recorded in the params file.
"""

from __future__ import annotations

import argparse
import math

import yaml

from .learners.base import Learner
from .learners.classical import GradientLearner
from .learners.exact import ConjugateLinearRegression, KNNLearner, MAPLearner
from .params import FamilySpec, Params, load_params, reference_names
from .rollout import rollout
from .tasks import LinearRegressionTasks, TaskFamily, make_family
from .utils import ConfigError, derive_seed

REFERENCE_NAMES = reference_names()


def applies(name: str, family: TaskFamily) -> bool:
    """Whether reference ``name`` is defined for ``family``."""
    if name in ("bayes", "ols"):
        return isinstance(family, LinearRegressionTasks) and (name == "ols" or family.noise_std > 0)
    return name in REFERENCE_NAMES


def reference_learner(name: str, family: TaskFamily, family_name: str, references: dict, seed: int = 0) -> Learner:
    """Build reference learner ``name`` for ``family`` (a split's family: Bayes gets the true prior)."""
    if not applies(name, family):
        raise ConfigError(f"references.learners: {name!r} does not apply to the {family.kind} family {family_name!r}")
    if name == "bayes":
        return ConjugateLinearRegression.bayes(family)
    if name == "ols":
        return ConjugateLinearRegression.least_squares(family)
    if name == "map":
        return MAPLearner(family)
    if name == "knn":
        return KNNLearner(family, k=references.get("knn", {}).get("k", 8))
    opts = references.get(name, {})
    lr = opts.get("lr", {}).get(family_name)
    if lr is None:
        raise ConfigError(f"references.{name}.lr: no learning rate for family {family_name!r}")
    return GradientLearner(family, name, lr=lr, momentum=opts.get("momentum", 0.0), seed=seed)


def score_learning_rate(family: TaskFamily, optimizer: str, lr: float, batch_size: int, n_train: int,
                        n_tasks: int, seed: int) -> float:
    """Geometric mean of the primary metric over log-spaced steps of one pass (lower is better; inf
    if it diverged). Geometric, so that the large errors of the first steps do not outweigh the end
    of the pass: every doubling of the data counts the same."""
    tasks = family.sample(n_tasks, n_train, 64, seed)
    records = rollout(GradientLearner(family, optimizer, lr=lr), family, tasks, batch_size, steps="log", seed=seed)
    values = [r["value"] for r in records if r["metric"] == family.primary_metric]
    if not all(math.isfinite(v) and v > 0 for v in values):
        return math.inf
    return math.exp(sum(math.log(v) for v in values) / len(values))


def tune_learning_rates(params: Params, family_name: str, optimizers=("sgd", "adam"), n_tasks: int = 64) -> dict:
    """``{optimizer: (best lr, {lr: score})}`` for one family."""
    spec: FamilySpec = params.family(family_name)
    family = make_family(spec.kind, **spec.options)
    grid = params.references.get("lr_grid") or [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]
    batch = params.raw["train"]["batch_size"]
    out = {}
    for opt in optimizers:
        seed = derive_seed(params.seed, "tune", family_name, opt)
        scores = {lr: score_learning_rate(family, opt, lr, batch, params.banks["n_train"], n_tasks, seed) for lr in grid}
        out[opt] = (min(scores, key=scores.get), scores)
    return out


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", required=True, help="params YAML file")
    p.add_argument("--family", action="append", help="family name (repeatable; default: all)")
    p.add_argument("--tasks", type=int, default=64, help="tuning tasks per learning rate (default 64)")


def cli_main(args: argparse.Namespace) -> None:
    params = load_params(args.params, learning_rates=False)
    names = args.family or list(params.families)
    chosen: dict[str, dict[str, float]] = {"sgd": {}, "adam": {}}
    for name in names:
        for opt, (best, scores) in tune_learning_rates(params, name, n_tasks=args.tasks).items():
            chosen[opt][name] = best
            table = ", ".join(f"{lr:g}: {s:.4g}" for lr, s in scores.items())
            print(f"# {name} {opt}: best lr {best:g}  ({table})")
    print("# paste under `references:` in the params file")
    print(yaml.safe_dump({k: {"lr": v} for k, v in chosen.items()}, sort_keys=True), end="")
