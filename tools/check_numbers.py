"""Speed work must not change the numbers: save rollout metrics of every learner kind, then compare.

    python tools/check_numbers.py save numbers.json      # before a change
    python tools/check_numbers.py compare numbers.json   # after it: max relative difference per learner

Covers the exact and classical references and every learned variant (parametric obs / grad / both
with history and memory, MLP predictor, explicit, implicit logits / probs / hidden with history,
the one-shot twins), untrained but seeded with randomized weights, on regression and
classification, with several task chunks and ragged last mini-batches. Also records a few greedy
training iterations' losses and the gradient norm (the training path, deterministic on CPU).
Not a pytest test (it needs a before and an after); run it by hand around a speed change.
"""

from __future__ import annotations

import json
import math
import sys

import torch

from iai.core.learners import build_learner
from iai.core.learners.classical import GradientLearner
from iai.core.learners.exact import ConjugateLinearRegression, KNNLearner, MAPLearner
from iai.core.rollout import rollout
from iai.core.tasks import make_family
from iai.params import RunSpec

# small families and sizes: seconds on a CPU (the sizes of tests/test_learned_learners.py)
MODEL = {"width": 32, "depth": 2, "heads": 4, "ff": 64}
TRAIN = {"batch_size": 8, "max_steps": 3}
LINREG = make_family("linear_regression", dim=4, noise_std=0.5)
LOGREG = make_family("linear_classification", dim=4, n_classes=3)
MLPREG = make_family("nonlinear_regression", dim=3, hidden=5)

LEARNED = {
    "parametric_obs": (LINREG, {"regime": "parametric", "signal": "obs"}),
    "parametric_grad": (LINREG, {"regime": "parametric", "signal": "grad", "grad_norm": "none", "nominal": True}),
    "parametric_grad_rms": (LINREG, {"regime": "parametric", "signal": "grad", "grad_norm": "rms"}),
    "parametric_both_h2_mem2": (LINREG, {"regime": "parametric", "signal": "both", "history": 2, "memory": 2,
                                         "nominal": True}),
    "parametric_logreg": (LOGREG, {"regime": "parametric", "signal": "both", "step_feature": "log_n"}),
    "parametric_mlp": (MLPREG, {"regime": "parametric", "signal": "both"}),
    "explicit_both": (LINREG, {"regime": "explicit", "signal": "both", "latent_tokens": 2, "latent_dim": 3,
                               "grad_norm": "rms"}),
    "explicit_obs_oneshot": (LINREG, {"regime": "explicit", "signal": "obs", "mode": "one_shot"}),
    "implicit_logits": (LINREG, {"regime": "implicit"}),
    "implicit_logits_h2": (LINREG, {"regime": "implicit", "history": 2}),
    "implicit_hidden_h2": (LOGREG, {"regime": "implicit", "state": "hidden", "history": 2}),
    "implicit_probs": (LOGREG, {"regime": "implicit", "state": "probs", "update_scale": "constant"}),
    "implicit_oneshot": (LOGREG, {"regime": "implicit", "mode": "one_shot"}),
    "hypernet_oneshot": (LINREG, {"regime": "parametric", "signal": "obs", "mode": "one_shot"}),
}


def learned(name: str):
    family, spec = LEARNED[name]
    learner = build_learner(RunSpec("fam", name, spec, MODEL, TRAIN), family, seed=1)
    with torch.no_grad():  # output layers start at zero: give every weight a random push
        g = torch.Generator().manual_seed(2)
        for p in learner.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return family, learner.eval()


def references():
    out = {"bayes": (LINREG, ConjugateLinearRegression.bayes(LINREG)),
           "ols": (LINREG, ConjugateLinearRegression.least_squares(LINREG)),
           "map_linreg": (LINREG, MAPLearner(LINREG)), "map_logreg": (LOGREG, MAPLearner(LOGREG)),
           "knn_logreg": (LOGREG, KNNLearner(LOGREG, k=4))}
    for fam_name, fam in (("linreg", LINREG), ("logreg", LOGREG), ("mlpreg", MLPREG)):
        out[f"sgd_{fam_name}"] = (fam, GradientLearner(fam, "sgd", lr=0.1, momentum=0.5))
        out[f"adam_{fam_name}"] = (fam, GradientLearner(fam, "adam", lr=0.05))
    return out


def collect() -> dict[str, list]:
    torch.set_num_threads(1)
    results = {}
    cases = {**references(), **{n: learned(n) for n in LEARNED}}
    for name, (family, learner) in cases.items():
        mode = getattr(learner, "mode", "iterative")
        for n_train, b, chunk, schedule in ((45, 8, None, "epochs"), (64, 16, 5, "random"), (30, 8, 3, "epochs")):
            tasks = family.sample(12, n_train, 10, 7)
            bs = n_train if mode == "one_shot" else b
            recs = rollout(learner, family, tasks, bs, epochs=2 if mode == "iterative" else 1, schedule=schedule,
                           steps="all", seed=11, task_chunk=chunk)
            results[f"{name}/n{n_train}/b{b}/c{chunk}/{schedule}"] = sorted(
                [r["step"], r["n_seen"], r["metric"], r["value"], r["sem"], r["n_tasks"]] for r in recs)
    results.update(training())
    return results


def training() -> dict[str, list]:
    from iai.core.training import TrainConfig, train_iteration

    out = {}
    tc = TrainConfig(batch_size=8, max_steps=3, tasks_per_batch=6, n_valid=5)
    for name in ("parametric_both_h2_mem2", "implicit_hidden_h2", "explicit_both", "hypernet_oneshot",
                 "implicit_probs", "parametric_mlp"):
        family, learner = learned(name)
        learner.train()
        vals = []
        for it in range(3):
            learner.zero_grad(set_to_none=True)
            loss, k = train_iteration(learner, family, tc, 100 + it, torch.device("cpu"))
            gn = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in learner.parameters() if p.grad is not None))
            vals += [loss, k, gn]
        out[f"train/{name}"] = vals
    return out


def _rel(a: float, b: float) -> float:
    if isinstance(a, str) or isinstance(b, str):
        return 0.0 if a == b else math.inf
    if math.isnan(a) and math.isnan(b):
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def compare(saved: dict, now: dict) -> float:
    worst = 0.0
    for key in sorted(saved):
        if key not in now:
            print(f"MISSING {key}")
            worst = math.inf
            continue
        a, b = saved[key], now[key]
        flat_a = [v for row in a for v in (row if isinstance(row, list) else [row])]
        flat_b = [v for row in b for v in (row if isinstance(row, list) else [row])]
        d = math.inf if len(flat_a) != len(flat_b) else max((_rel(x, y) for x, y in zip(flat_a, flat_b)), default=0.0)
        worst = max(worst, d)
        print(f"{d:10.3g}  {key}")
    print(f"max relative difference: {worst:.3g} over {len(saved)} cases")
    return worst


if __name__ == "__main__":
    action, path = sys.argv[1], sys.argv[2]
    if action == "save":
        json.dump(collect(), open(path, "w"))
        print(f"saved {path}")
    else:
        worst = compare(json.load(open(path)), collect())
        sys.exit(0 if worst <= 1e-6 else 1)
