"""Greedy meta-training: it learns, it resumes exactly, it writes what it promises, it refuses bad input."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml

from iai.cli import main as iai_main
from iai.core.learners import build_learner, load_learner, read_checkpoint
from iai.core.rollout import rollout
from iai.core.tasks import make_family
from iai.core.training import TaskPool, TrainConfig, lr_factor
from iai.params import RunSpec
from iai.stages.train import model_paths, train_run
from iai.utils import TIMING_KEYS, ConfigError, read_summary, timing_path

FAMILY = make_family("linear_regression", dim=4, noise_std=0.5)
MODEL = {"width": 32, "depth": 1, "heads": 2, "ff": 64}
TRAIN = {"batch_size": 8, "max_steps": 3, "random_steps": True, "tasks_per_batch": 16, "n_valid": 16,
         "iterations": 120, "lr": 3e-3, "weight_decay": 0.0, "warmup": 10, "grad_clip": 1.0,
         "schedule": "epochs", "target": "observed", "threads": 1, "log_every": 20, "checkpoint_every": 50}


def excess_risk(learner, n_steps=3, seed=99) -> float:
    tasks = FAMILY.sample(64, 8 * n_steps, 32, seed)
    if learner.mode == "one_shot":
        rec = rollout(learner, FAMILY, tasks, 8 * n_steps, n_steps=1, steps="last", seed=1)
    else:
        rec = rollout(learner, FAMILY, tasks, 8, n_steps=n_steps, steps="last", seed=1)
    return next(r["value"] for r in rec if r["metric"] == "excess_risk")


@pytest.mark.parametrize("spec, factor", [
    ({"regime": "parametric", "signal": "both"}, 0.2),
    ({"regime": "implicit"}, 0.4),
    ({"regime": "explicit", "signal": "both", "latent_tokens": 1, "latent_dim": 8}, 0.75),
    ({"regime": "parametric", "signal": "obs", "mode": "one_shot"}, 0.4),
], ids=lambda s: f"{s['regime']}-{s.get('mode', 'iterative')}" if isinstance(s, dict) else "")
def test_a_tiny_training_run_lowers_the_valid_loss(tmp_path, spec, factor):
    run = RunSpec("linreg", "tiny", spec, MODEL, {**TRAIN, "iterations": 400})
    before = excess_risk(build_learner(run, FAMILY, seed=0))
    summary = train_run(run, FAMILY, tmp_path, seed=0, device="cpu", progress=False)
    after = excess_risk(load_learner(model_paths(tmp_path, "linreg", "tiny")["model"], FAMILY))
    # an untrained learner predicts 0 (excess risk ~ |w|^2 = 4); Bayes at n = 24 is ~ 0.06.
    # 400 tiny iterations: the parametric learner gets to ~0.1 x, the others learn slower
    assert before > 3.0
    assert after < factor * before, (before, after, summary["final_loss"])


def _weights(path):
    return read_checkpoint(path)[1]


def test_a_killed_run_resumes_to_the_same_weights(tmp_path):
    train = {**TRAIN, "iterations": 14, "checkpoint_every": 4, "log_every": 2}
    run = RunSpec("linreg", "r", {"regime": "parametric", "signal": "both", "history": 1}, MODEL, train)
    straight = train_run(run, FAMILY, tmp_path / "a", seed=3, device="cpu", progress=False)
    paths = model_paths(tmp_path / "b", "linreg", "r")
    assert train_run(run, FAMILY, tmp_path / "b", seed=3, device="cpu", progress=False, stop_after=10) is None
    assert paths["resume"].exists() and not paths["model"].exists()  # killed after 10, last checkpoint at 8
    resumed = train_run(run, FAMILY, tmp_path / "b", seed=3, device="cpu", progress=False)
    assert resumed["resumed_at"] == 8 and straight["resumed_at"] is None
    a, b = _weights(model_paths(tmp_path / "a", "linreg", "r")["model"]), _weights(paths["model"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not paths["resume"].exists()
    rows_a = list(csv.DictReader(open(model_paths(tmp_path / "a", "linreg", "r")["log"])))
    rows_b = list(csv.DictReader(open(paths["log"])))
    assert [(r["step"], r["loss"], r["lr"]) for r in rows_a] == [(r["step"], r["loss"], r["lr"]) for r in rows_b]
    assert [int(r["step"]) for r in rows_b] == list(range(2, 15, 2))
    # what DVC hashes is the same bytes whether or not the run was interrupted (the timings are in the sidecar)
    for kind in ("model", "log", "summary"):
        assert model_paths(tmp_path / "a", "linreg", "r")[kind].read_bytes() == paths[kind].read_bytes(), kind


def test_the_pool_trains_every_depth_equally_often():
    # pool of 6 with K_train = 3: two tasks at each depth every iteration, from the first one
    tc = TrainConfig.from_dict({**TRAIN, "sampler": "pool", "tasks_per_batch": 6})
    learner = build_learner(RunSpec("linreg", "p", {"regime": "parametric", "signal": "both"}, MODEL, TRAIN), FAMILY)
    pool = TaskPool(tc.tasks_per_batch)
    counts = torch.zeros(tc.max_steps + 1, dtype=torch.long)
    for it in range(7):
        loss, depth = pool.advance(learner, FAMILY, tc, 100 + it, torch.device("cpu"))
        assert torch.isfinite(torch.tensor(loss)) and depth == pytest.approx(2.0)
        assert torch.bincount(pool.depth, minlength=tc.max_steps + 1)[1:].tolist() == [2, 2, 2]
        counts += torch.bincount(pool.depth, minlength=tc.max_steps + 1)
        # each state is its task's own: points read = depth * B (retired tasks restart from init)
        assert torch.equal(pool.state["n"], (pool.depth * tc.batch_size).to(pool.state["n"].dtype))
    assert counts[0] == 0 and counts[1:].tolist() == [14, 14, 14]
    # every step's gradient reaches the learned initial state (depth-1 tasks start from init each time)
    assert learner.theta0.grad is not None and learner.theta0.grad.abs().sum() > 0


@pytest.mark.parametrize("spec", [{"regime": "parametric", "signal": "both", "history": 1}, {"regime": "implicit"}],
                         ids=["parametric", "implicit"])
def test_a_killed_pool_run_resumes_to_the_same_weights(tmp_path, spec):
    train = {**TRAIN, "iterations": 14, "checkpoint_every": 4, "log_every": 2, "sampler": "pool", "tasks_per_batch": 6}
    run = RunSpec("linreg", "r", spec, MODEL, train)
    straight = train_run(run, FAMILY, tmp_path / "a", seed=3, device="cpu", progress=False)
    paths = model_paths(tmp_path / "b", "linreg", "r")
    assert train_run(run, FAMILY, tmp_path / "b", seed=3, device="cpu", progress=False, stop_after=10) is None
    assert "pool" in torch.load(paths["resume"], weights_only=True)
    resumed = train_run(run, FAMILY, tmp_path / "b", seed=3, device="cpu", progress=False)
    assert resumed["resumed_at"] == 8 and resumed["config"]["train"]["sampler"] == "pool"
    a, b = _weights(model_paths(tmp_path / "a", "linreg", "r")["model"]), _weights(paths["model"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows_a = list(csv.DictReader(open(model_paths(tmp_path / "a", "linreg", "r")["log"])))
    rows_b = list(csv.DictReader(open(paths["log"])))
    assert [(r["step"], r["loss"], r["rollout_steps"]) for r in rows_a] == \
        [(r["step"], r["loss"], r["rollout_steps"]) for r in rows_b]
    assert {float(r["rollout_steps"]) for r in rows_a} == {2.0}  # mean depth (K_train + 1) / 2
    assert straight["final_loss"] == resumed["final_loss"]


def test_a_one_shot_learner_keeps_the_rollout_path_under_the_pool_sampler(tmp_path):
    run = RunSpec("linreg", "o", {"regime": "parametric", "signal": "obs", "mode": "one_shot"}, MODEL,
                  {**TRAIN, "iterations": 3, "log_every": 1, "sampler": "pool"})
    summary = train_run(run, FAMILY, tmp_path, seed=0, device="cpu", progress=False)
    rows = list(csv.DictReader(open(model_paths(tmp_path, "linreg", "o")["log"])))
    assert summary["iterations"] == 3 and all(float(r["rollout_steps"]).is_integer() for r in rows)


def test_a_bad_sampler_name_is_refused():
    with pytest.raises(ConfigError, match="train.sampler"):
        TrainConfig.from_dict({**TRAIN, "sampler": "pools"})
    with pytest.raises(ConfigError, match="train.sampler"):
        train_run(RunSpec("linreg", "x", {"regime": "implicit"}, MODEL, {**TRAIN, "sampler": "greedy"}), FAMILY,
                  "/nonexistent", device="cpu", progress=False)


def test_bench_train_drives_the_pool():
    from iai.stages.bench import bench_train

    out = bench_train(iterations=1, device="cpu", sampler="pool", progress=lambda *_: None)
    samplers = {r["mode"]: r["sampler"] for r in out["runs"].values()}
    assert samplers == {"iterative": "pool", "one_shot": "rollout"}
    assert all(r["task_steps_per_s"] > 0 for r in out["runs"].values())


def test_a_resume_checkpoint_from_another_config_is_refused(tmp_path):
    train = {**TRAIN, "iterations": 6, "checkpoint_every": 2}
    run = RunSpec("linreg", "r", {"regime": "implicit"}, MODEL, train)
    train_run(run, FAMILY, tmp_path, seed=0, device="cpu", progress=False, stop_after=3)
    changed = RunSpec("linreg", "r", {"regime": "implicit"}, MODEL, {**train, "lr": 1e-4})
    with pytest.raises(ConfigError, match="resume checkpoint from a different config"):
        train_run(changed, FAMILY, tmp_path, seed=0, device="cpu", progress=False)


def test_the_learning_rate_warms_up_then_decays_to_zero():
    values = [lr_factor(i, 10, 100) for i in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[9:], values[10:])) and values[-1] < 0.01


def test_the_cli_trains_a_run_from_params_and_writes_its_outputs(tmp_path, capsys):
    raw = yaml.safe_load(open("params/default.yaml"))
    raw["families"] = {"lin": {"kind": "linear_regression", "dim": 4, "noise_std": 0.5}}
    raw["references"] = {"learners": ["bayes"]}
    raw["model"], raw["train"] = MODEL, {**TRAIN, "iterations": 4}
    raw["runs"] = [{"family": "lin", "name": "pb", "regime": "parametric", "signal": "both"}]
    raw["report"].pop("primary")
    raw.pop("bench")  # its families are the recipe's own
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(raw))
    out = tmp_path / "models"
    argv = ["train", "--params", str(params), "--family", "lin", "--learner", "pb", "--out", str(out),
            "--device", "cpu", "--iterations", "3", "--no-progress"]
    assert iai_main(argv) == 0
    paths = model_paths(out, "lin", "pb")
    summary = json.loads(paths["summary"].read_text())
    assert summary["stage"] == "train" and summary["iterations"] == 3 and summary["device"] == "cpu"
    assert {"family", "learner", "final_loss", "threads"} <= summary.keys()
    # what was measured rather than computed lives beside it, out of DVC's hashes (.dvcignore)
    assert not set(TIMING_KEYS) & summary.keys()
    timing = json.loads(timing_path(paths["summary"]).read_text())
    assert (timing["duration_s"] > 0 and timing["tasks_per_s"] > 0
            and read_summary(paths["summary"]) == {**summary, **timing})
    assert list(csv.DictReader(open(paths["log"])))[-1]["step"] == "3"
    config, _ = read_checkpoint(paths["model"])
    assert config["train"]["iterations"] == 3 and config["learner"]["signal"] == "both"
    assert iai_main(argv[:5] + ["--learner", "nope", "--out", str(out)]) == 2
    assert "no run lin/nope" in capsys.readouterr().err


def test_the_params_schema_matches_the_train_config():
    from dataclasses import fields

    from iai.core.training import TrainConfig
    from iai.params import schema

    train = schema()["$defs"]["train"]
    assert set(train["properties"]) == {f.name for f in fields(TrainConfig)} and train["additionalProperties"] is False
