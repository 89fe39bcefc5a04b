"""Issue 10 study: does a richer state keep an observation-only learner improving past its trained steps?

    python docs/studies/regime_variants.py [--iterations 450] [--seeds 3] [--tasks-per-batch 16] [--max-steps 8] [--lr 0.003]
        [--device cpu] [--out FILE]

Linear regression d = 8 of the default recipe. Each variant is trained with the default recipe's
train settings (K_train = 8 steps of B = 16, `iai train`'s own loop: `train_run`), for `--seeds`
training seeds, then rolled over 64 validation tasks drawn from their own seed stream (never the
evaluation bank) with the same mini-batches for every learner. Printed and written: excess risk
divided by the Bayes posterior mean's at n = 128 (the trained depth), 512 and 1024, mean over seeds
with the seed spread, and training seconds. The variants (config keys of `runs:` entries):

- parametric_grad: the learned optimizer (gradient signal, no hand-written term);
- parametric_obs: the default obs-only parametric learner;
- parametric_{grad,both,obs}_coord: the same learners with one token per scalar parameter of theta
  (`tokens: coordinate`, the layout of coordinate-wise learned optimizers) instead of one per unit;
- parametric_obs_mem4: the same with 4 memory tokens (state the step network writes and reads,
  never read by the predictor): room for running statistics of the data seen;
- implicit: the running prediction at each query (`state: logits`);
- implicit_hidden: a width-sized pre-head vector per query (`state: hidden`) read by a learned head;
- explicit_obs: a learned latent z read by a learned decoder (the FiLM MLP), refined from observations;
- explicit_both_rms: the same refined from observations and the normalized gradient with respect
  to z through the decoder (direction and log magnitude, as learned optimizers feed it);
- explicit_*_bilinear: the same with the bilinear decoder, phi(x)^T A(z) with phi(x) = [x, mlp(x)]
  (`decoder: bilinear`) in place of the FiLM MLP;
- maml: plain gradient steps lr * b/(n+b) * grad from a learned theta^(0) with a learned lr
  (`update: sgd`): the nominal rule with its two numbers learned;
- explicit_{both,grad}_coord: the bilinear explicit learner with one token per number of z, each
  carrying its own gradient (`tokens: coordinate`); `_raw`: the raw gradient (`grad_norm: none`, as
  the parametric learners read it); `_z9`: the same with a 9-number z (d + 1, the size of theta).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time

import torch

from iai.core.learners import load_learner
from iai.core.learners.references import reference_learner
from iai.core.rollout import rollout
from iai.core.tasks import make_family
from iai.params import load_params
from iai.stages.train import train_run, training_seed
from iai.utils import derive_seed

VARIANTS = {
    "parametric_grad": {"regime": "parametric", "signal": "grad"},
    "parametric_obs": {"regime": "parametric", "signal": "obs"},
    "parametric_grad_coord": {"regime": "parametric", "signal": "grad", "tokens": "coordinate"},
    "parametric_both_coord": {"regime": "parametric", "signal": "both", "tokens": "coordinate"},
    "parametric_obs_coord": {"regime": "parametric", "signal": "obs", "tokens": "coordinate"},
    "parametric_both": {"regime": "parametric", "signal": "both"},
    "parametric_obs_mem4": {"regime": "parametric", "signal": "obs", "memory": 4},
    "implicit": {"regime": "implicit", "state": "logits"},
    "implicit_hidden": {"regime": "implicit", "state": "hidden"},
    "explicit_obs": {"regime": "explicit", "signal": "obs", "decoder": "film"},
    "explicit_both_rms": {"regime": "explicit", "signal": "both", "grad_norm": "rms", "decoder": "film"},
    "explicit_obs_bilinear": {"regime": "explicit", "signal": "obs", "decoder": "bilinear"},
    "explicit_both_bilinear": {"regime": "explicit", "signal": "both", "grad_norm": "rms", "decoder": "bilinear"},
    "explicit_both_coord": {"regime": "explicit", "signal": "both", "grad_norm": "rms", "decoder": "bilinear",
                            "tokens": "coordinate"},
    "explicit_grad_coord": {"regime": "explicit", "signal": "grad", "grad_norm": "rms", "decoder": "bilinear",
                            "tokens": "coordinate"},
    "explicit_both_coord_raw": {"regime": "explicit", "signal": "both", "grad_norm": "none", "decoder": "bilinear",
                                "tokens": "coordinate"},
    "explicit_both_coord_z9": {"regime": "explicit", "signal": "both", "grad_norm": "none", "decoder": "bilinear",
                               "tokens": "coordinate", "latent_dim": 9},
    "maml": {"regime": "parametric", "signal": "grad", "update": "sgd"},
    "implicit_probs": {"regime": "implicit", "state": "probs"},  # classification families only
}
# the variants of the first study (regime_variants.json): the default of --variants
FIRST_STUDY = ("parametric_obs", "parametric_obs_mem4", "implicit", "implicit_hidden", "explicit_obs",
               "explicit_both_rms", "explicit_obs_bilinear", "explicit_both_bilinear")
# what each kind of family is scored by, and the reference the learners are divided by
SCORES = {"regression": ("excess_risk", "bayes"), "classification": ("error_rate", "map")}
SIZES = (128, 512, 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params/default.yaml")
    ap.add_argument("--family", default="linreg", help="a family of the params (default linreg); its first run "
                    "gives the model and train settings")
    ap.add_argument("--rule", action="store_true", help="also print the nominal_rule reference (the hand-written "
                    "gradient term alone) divided by the same reference")
    ap.add_argument("--iterations", type=int, default=None, help="train.iterations (default: the recipe's)")
    ap.add_argument("--tasks-per-batch", type=int, default=None, help="train.tasks_per_batch (default: the recipe's)")
    ap.add_argument("--max-steps", type=int, default=None, help="train.max_steps, K_train (default: the recipe's)")
    ap.add_argument("--lr", type=float, default=None, help="train.lr, the peak learning rate (default: the recipe's)")
    ap.add_argument("--device", default="cpu", help="where to train (cpu or cuda; the evaluation runs on the CPU)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--variants", nargs="+", default=list(FIRST_STUDY), choices=list(VARIANTS),
                    help="default: the linreg variants of regime_variants.json (parametric_grad was added to it with "
                    "--append; implicit_probs is for classification only)")
    ap.add_argument("--out", default="docs/studies/regime_variants.json")
    ap.add_argument("--append", action="store_true", help="add the variants to --out's (same iterations and seeds)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    params = load_params(args.params)
    spec = params.family(args.family)
    family = make_family(spec.kind, **spec.options)
    base = next(r for r in params.runs if r.family == args.family)
    train = {**base.train, **({"iterations": args.iterations} if args.iterations else {}),
             **({"tasks_per_batch": args.tasks_per_batch} if args.tasks_per_batch else {}),
             **({"max_steps": args.max_steps} if args.max_steps else {}),
             **({"lr": args.lr} if args.lr else {})}
    metric, ref_name = SCORES[family.task_type]
    seed_name = "validation" if args.family == "linreg" else f"validation-{args.family}"  # linreg: the first files
    tasks = family.sample(64, max(SIZES), 64, derive_seed(params.seed, "study", "regime-variants", seed_name))
    steps = [n // 16 for n in SIZES]

    def scores(learner) -> dict[int, float]:
        return {r["step"] * 16: float(r["values"].mean()) for r in rollout(learner, family, tasks, 16, steps=steps, seed=1)
                if r["metric"] == metric}

    reference = scores(reference_learner(ref_name, family, args.family, params.references))
    if args.rule:
        rule = scores(reference_learner("nominal_rule", family, args.family, params.references))
        print(f"{'nominal_rule':22s} " + "  ".join(f"n={n}: {rule[n] / reference[n]:7.3g}" for n in SIZES))
    out = {"family": args.family, "metric": metric, "reference": ref_name, "iterations": train["iterations"],
           "tasks_per_batch": train["tasks_per_batch"], "max_steps": train["max_steps"], "lr": train["lr"],
           "device": args.device,
           "seeds": args.seeds, "sizes": list(SIZES), "variants": {}}
    if args.append:
        with open(args.out) as fh:
            old = json.load(fh)
        if (old["iterations"], old["seeds"], old.get("tasks_per_batch", train["tasks_per_batch"]),
                old.get("max_steps", train["max_steps"]), old.get("lr", train["lr"])) != (
                out["iterations"], out["seeds"], out["tasks_per_batch"], out["max_steps"], out["lr"]):
            raise SystemExit(f"--append: {args.out} was run with other iterations, seeds, tasks per batch, K_train or lr")
        out = old
    with tempfile.TemporaryDirectory() as models:
        for name in args.variants:
            run = dataclasses.replace(base, name=name, learner=VARIANTS[name], train=train, model=base.model)
            ratios, secs = {n: [] for n in SIZES}, []
            for s in range(args.seeds):
                t0 = time.perf_counter()
                train_run(run, family, models, seed=training_seed(params.seed, s), seed_index=s, device=args.device,
                          progress=False)
                secs.append(time.perf_counter() - t0)
                learner = load_learner(f"{models}/{args.family}/{name}/seed{s}.pt", family)
                for n, value in scores(learner).items():
                    ratios[n].append(value / reference[n])
            row = {n: {"mean": statistics.fmean(v), "seed_sd": statistics.stdev(v) if len(v) > 1 else 0.0}
                   for n, v in ratios.items()}
            out["variants"][name] = {"excess_over_bayes" if ref_name == "bayes" else f"{metric}_over_{ref_name}": row,
                                     "train_s": statistics.fmean(secs)}
            print(f"{name:22s} " + "  ".join(f"n={n}: {row[n]['mean']:7.2f} (sd {row[n]['seed_sd']:.2f})" for n in SIZES)
                  + f"  train {statistics.fmean(secs):.1f} s", flush=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
