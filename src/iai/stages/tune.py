"""``iai tune-lr``: choose the learning rates of the gradient references of each family from a grid.

The tuned references are :data:`iai.params.TUNED_REFERENCES`: constant-step SGD and Adam and their
averaged, decaying-step variants ``sgd_avg`` and ``adam_avg`` (lr / sqrt(t), Polyak-Ruppert
averaging). ``nominal_rule`` is not tuned: it is the learned learners' hand-written rule as written.

The rates are chosen per family from ``references.lr_grid`` on tasks from a separate seed stream
(never the evaluation banks), by the geometric mean of the primary metric over log-spaced steps of
one pass over ``banks.n_train`` points, and printed to paste into the params file. Families of
an implicit-only kind (:data:`iai.params.IMPLICIT_ONLY_KINDS`: topological order, generation) have
no known predictor, hence no gradient reference: they are skipped with a note. Each reference
draws its tuning tasks from its own seed stream (``derive_seed(seed, "tune", family, reference)``).
"""

from __future__ import annotations

import argparse
import math

import yaml

from iai.core.learners.classical import GradientLearner
from iai.core.rollout import rollout
from iai.core.tasks import TaskFamily, make_family
from iai.params import IMPLICIT_ONLY_KINDS, TUNED_REFERENCES, FamilySpec, Params, load_params
from iai.utils import ConfigError, derive_seed


def score_learning_rate(family: TaskFamily, reference: str, lr: float, batch_size: int, n_train: int,
                        n_tasks: int, seed: int) -> float:
    """Geometric mean of the primary metric over log-spaced steps of one pass (lower is better; inf
    if it diverged). Geometric, so that the large errors of the first steps do not outweigh the end
    of the pass: every doubling of the data counts the same."""
    tasks = family.sample(n_tasks, n_train, 64, seed)
    learner = GradientLearner.named(family, reference, lr=lr)
    records = rollout(learner, family, tasks, batch_size, steps="log", seed=seed)
    values = [r["value"] for r in records if r["metric"] == family.primary_metric]
    if not all(math.isfinite(v) and v > 0 for v in values):
        return math.inf
    return math.exp(sum(math.log(v) for v in values) / len(values))


def tune_learning_rates(params: Params, family_name: str, optimizers=TUNED_REFERENCES, n_tasks: int = 64) -> dict:
    """``{reference: (best lr, {lr: score})}`` for one family (``optimizers``: reference names)."""
    spec: FamilySpec = params.family(family_name)
    if spec.kind in IMPLICIT_ONLY_KINDS:
        raise ConfigError(f"tune-lr: family {family_name!r} is of kind {spec.kind!r}, which has no gradient reference")
    family = make_family(spec.kind, **spec.options)
    grid = params.references.lr_grid
    batch = params.raw["train"]["batch_size"]
    out = {}
    for opt in optimizers:
        seed = derive_seed(params.seed, "tune", family_name, opt)
        scores = {lr: score_learning_rate(family, opt, lr, batch, params.banks["n_train"], n_tasks, seed)
                  for lr in grid}
        out[opt] = (min(scores, key=scores.get), scores)
    return out


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", required=True, help="params YAML file")
    p.add_argument("--family", action="append", help="family name (repeatable; default: all)")
    p.add_argument("--tasks", type=int, default=64, help="tuning tasks per learning rate (default 64)")
    p.add_argument("--reference", action="append", choices=TUNED_REFERENCES,
                   help=f"reference to tune (repeatable; default: all of {', '.join(TUNED_REFERENCES)})")


def cli_main(args: argparse.Namespace) -> None:
    params = load_params(args.params, learning_rates=False)
    names = args.family or list(params.families)
    refs = tuple(args.reference or TUNED_REFERENCES)
    chosen: dict[str, dict[str, float]] = {r: {} for r in refs}
    for name in names:
        kind = params.family(name).kind
        if kind in IMPLICIT_ONLY_KINDS:
            print(f"# {name}: skipped ({kind} has no known predictor, so no gradient reference and no learning rate)")
            continue
        for opt, (best, scores) in tune_learning_rates(params, name, refs, n_tasks=args.tasks).items():
            chosen[opt][name] = best
            table = ", ".join(f"{lr:g}: {s:.4g}" for lr, s in scores.items())
            print(f"# {name} {opt}: best lr {best:g}  ({table})")
    print("# paste under `references:` in the params file")
    print(yaml.safe_dump({k: {"lr": v} for k, v in chosen.items()}, sort_keys=True), end="")
