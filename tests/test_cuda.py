"""The CUDA path: every learner gives the CPU's numbers on a GPU, training runs under bf16 autocast,
and the cost benchmark reads the CUDA allocator. Skipped where no GPU is present (CI has none);
run on a GPU machine with ``pytest tests/test_cuda.py``."""

import csv
import math

import pytest
import torch

from iai.core.learners import build_learner, load_learner
from iai.core.learners.classical import GradientLearner
from iai.core.learners.exact import ConjugateLinearRegression, KNNLearner, MAPLearner
from iai.core.rollout import rollout
from iai.core.tasks import make_family
from iai.params import RunSpec
from iai.stages.bench import measure
from iai.stages.train import model_paths, train_run

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
CUDA = torch.device("cuda")
MODEL = {"width": 32, "depth": 2, "heads": 4, "ff": 64}
TRAIN = {"batch_size": 16, "max_steps": 4, "tasks_per_batch": 8, "n_valid": 16, "iterations": 30, "lr": 1e-3,
         "warmup": 5, "log_every": 10, "checkpoint_every": 10, "threads": 1}
RUNS = [
    {"regime": "parametric", "signal": "both"},
    {"regime": "parametric", "signal": "grad", "history": 2},
    {"regime": "parametric", "signal": "both", "history": 2, "memory": 2},
    {"regime": "implicit", "signal": "obs"},
    {"regime": "implicit", "signal": "obs", "state": "hidden"},
    {"regime": "explicit", "signal": "both"},
    {"regime": "parametric", "signal": "obs", "mode": "one_shot"},
    {"regime": "parametric", "signal": "both", "history": 2, "tokens": "coordinate"},
    {"regime": "explicit", "signal": "both", "tokens": "coordinate"},
    {"regime": "parametric", "signal": "grad", "update": "sgd"},  # MAML
]
CLASSIFICATION_RUNS = [  # states that are class probabilities: classification families only
    {"regime": "implicit", "signal": "obs", "state": "probs"},
    {"regime": "implicit", "signal": "obs", "state": "probs_residual"},
]
CASES = [(kind, spec) for kind in ("linear_regression", "linear_classification") for spec in RUNS] + [
    ("linear_classification", spec) for spec in CLASSIFICATION_RUNS]


def metrics(learner, family, tasks, device, b=16):
    torch.manual_seed(0)
    return {(r["step"], r["metric"]): r["value"]
            for r in rollout(learner, family, tasks, b, steps="all", device=device)}


def assert_same_numbers(cpu, gpu, rel):
    assert cpu.keys() == gpu.keys()
    for key in cpu:
        assert math.isfinite(gpu[key])
        assert gpu[key] == pytest.approx(cpu[key], rel=rel, abs=1e-6), key


@pytest.mark.parametrize("kind, spec", CASES, ids=["-".join(map(str, [*s.values(), k])) for k, s in CASES])
def test_learned_learners_match_cpu(kind, spec):
    family = make_family(kind, dim=4)
    tasks = family.sample(16, 64, 16, 0)
    run = RunSpec(family="f", name="r", learner=dict(spec), model=MODEL, train=TRAIN)
    learner = build_learner(run, family, seed=1).eval()
    cpu = metrics(learner, family, tasks, "cpu")
    gpu = metrics(learner.to(CUDA), family, tasks, CUDA)
    assert_same_numbers(cpu, gpu, rel=2e-3)


@pytest.mark.parametrize("make", [
    lambda f: ConjugateLinearRegression.bayes(f), lambda f: ConjugateLinearRegression.least_squares(f),
    lambda f: GradientLearner(f, "adam", lr=0.1), lambda f: GradientLearner(f, "sgd", lr=0.1, momentum=0.9),
    lambda f: KNNLearner(f, k=4), lambda f: MAPLearner(f)])
def test_reference_learners_match_cpu(make):
    family = make_family("linear_regression", dim=4)
    tasks = family.sample(16, 64, 16, 0).to("cpu", torch.float64)
    learner = make(family)
    assert_same_numbers(metrics(learner, family, tasks, "cpu"), metrics(learner, family, tasks, CUDA), rel=1e-6)


def test_training_on_cuda_with_bf16_autocast_lowers_the_loss_and_loads_on_cpu(tmp_path):
    family = make_family("linear_regression", dim=4)
    run = RunSpec(family="linreg", name="pb", learner={"regime": "parametric", "signal": "both"},
                  model=MODEL, train={**TRAIN, "iterations": 200, "log_every": 50})
    summary = train_run(run, family, tmp_path, seed=0, device="cuda", progress=False)
    assert summary["device"].startswith("cuda")
    paths = model_paths(tmp_path, "linreg", "pb")
    rows = list(csv.DictReader(open(paths["log"])))
    assert float(rows[-1]["loss"]) < 0.7 * float(rows[0]["loss"])
    learner = load_learner(paths["model"], family, "cpu")
    tasks = family.sample(8, 32, 8, 3)
    assert all(math.isfinite(v) for v in metrics(learner, family, tasks, "cpu").values())


def test_bench_reads_the_cuda_allocator():
    family = make_family("linear_regression", dim=4)
    run = RunSpec(family="f", name="r", learner={"regime": "implicit", "signal": "obs", "mode": "one_shot"},
                  model=MODEL, train=TRAIN)
    learner = build_learner(run, family).to(CUDA).eval()
    peaks = []
    for n in (256, 1024):
        tasks = family.sample(8, n, 16, 0)
        out = measure(learner, family, tasks, n, CUDA, repeats=2)
        assert out["wall_time_s"][0] > 0
        peaks.append(out["peak_memory_mb"][0])
    assert 0 < peaks[0] < peaks[1]
