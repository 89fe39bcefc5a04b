"""`iai bench cost` / `train`: JSON keys and shapes on tiny sizes, FLOP counts against a closed form,
one shot skipped past a cap, claim 6's numbers. Behaviour only: no timed assertions."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from iai.core.learners import build_learner
from iai.core.tasks import make_family
from iai.params import RunSpec
from iai.stages import bench

MODEL = {"width": 16, "depth": 2, "heads": 2, "ff": 24}
TRAIN = {"batch_size": 8, "max_steps": 2, "tasks_per_batch": 2, "n_valid": 4}
FAM = make_family("linear_regression", dim=3)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def learner(**spec):
    return build_learner(RunSpec("f", "r", spec, MODEL, TRAIN), FAM).eval()


@pytest.mark.parametrize("spec", [{"regime": "parametric", "signal": "obs"},
                                  {"regime": "parametric", "signal": "both", "history": 2, "memory": 1},
                                  {"regime": "parametric", "signal": "both", "history": 2, "memory": 1,
                                   "tokens": "coordinate"},
                                  {"regime": "implicit"}, {"regime": "explicit", "signal": "obs"}])
def test_attention_flops_match_the_flop_counter_with_math_attention(spec):
    lrn = learner(**spec)
    tasks = FAM.sample(3, 8, 5, 0)
    flops = bench.step_flops(lrn, 8, 5)
    with torch.no_grad():
        state = lrn.init(tasks.x_valid)
        with FlopCounterMode(display=False) as flash:  # on CPU: the attention is not counted
            lrn.step(state, tasks.x_train, tasks.y_train)
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as math_backend:
            lrn.step(state, tasks.x_train, tasks.y_train)
    assert math_backend.get_total_flops() - flash.get_total_flops() == 3 * flops["attention"]
    if spec == {"regime": "implicit"}:  # closed form: S = 8 + 5 tokens, C = 8 context, width 16, ff 24, depth 2
        w, f = 16, 24  # the last block updates the 5 query tokens only (the head reads nothing else)
        assert flops["attention"] == 4 * 13 * 8 * w + 4 * 5 * 8 * w
        q_dim = FAM.dim + 1 + 1  # x, state, gain
        assert flops["dense"] == (2 * 8 * (FAM.dim + 1) * w + 2 * 5 * q_dim * w
                                  + (4 * 13 * w * w + 4 * 8 * w * w + 4 * 13 * w * f)
                                  + (4 * 5 * w * w + 4 * 8 * w * w + 4 * 5 * w * f) + 2 * 5 * w * 1)
        assert flash.get_total_flops() == 3 * flops["dense"]


def test_dense_flops_match_the_flop_counter_for_the_backbone():
    lrn = learner(regime="parametric", signal="obs")
    tasks = FAM.sample(1, 8, 5, 0)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        lrn.step(lrn.init(tasks.x_valid), tasks.x_train, tasks.y_train)
    # one task; everything the flop counter sees here is the step network's dense layers (the CPU
    # flash attention kernel is not in its registry: a fact this benchmark measures around)
    assert fc.get_total_flops() == bench.step_flops(lrn, 8, 5)["dense"]


def test_rollout_flops_sum_the_steps():
    lrn = learner(regime="implicit")
    one = bench.step_flops(lrn, 8, 4)
    last = bench.step_flops(lrn, 3, 4)
    assert bench.rollout_flops(lrn, 19, 4) == {k: 2 * one[k] + last[k] for k in one}


def test_bench_cost_json_keys_shapes_and_the_one_shot_cap(tmp_path, monkeypatch):
    pairs = {"implicit": (learner(regime="implicit"), learner(regime="implicit", mode="one_shot"))}
    monkeypatch.setattr(bench.cost, "cost_setup", lambda params_file, family_name: (FAM, pairs, 8, "test"))
    result = bench.bench_cost(sizes=[16, 32, 64, 128], n_tasks=2, n_query=4, repeats=1, device="cpu",
                              time_cap_s=1e9, memory_cap_mb=1e-9, progress=lambda *_: None)
    for key in ("n", "iterative_s", "one_shot_s", "iterative_peak_mb", "one_shot_peak_mb"):
        assert len(result[key]) == 4
    r = result["regimes"]["implicit"]
    # the memory cap: the first one shot is measured, every larger n is predicted past it: null
    assert r["one_shot_s"][0] is not None and r["one_shot_s"][1:] == [None, None, None]
    assert r["one_shot_peak_mb"][1:] == [None, None, None]
    assert all(t > 0 for t in r["iterative_s"])
    # one shot: S = n + 4 tokens over C = n context, 2 tasks, width 16; block 1 updates every
    # token, block 2 (the last) the 4 queries only
    assert r["one_shot_attention_flops"] == [2 * 4 * ((n + 4) + 4) * n * 16 for n in (16, 32, 64, 128)]
    json.dumps(result)  # plain JSON types
    assert set(result["claim6"]["regimes"]["implicit"]) >= {"slope_iterative", "slope_one_shot",
                                                            "time_ratio_at_largest", "K_at_largest",
                                                            "attention_flop_ratio_at_largest"}
    # every repeat is recorded beside the median, and which way each side ran (both eager by default)
    assert result["compiled"] is False and r["iterative_compiled"] is False and r["one_shot_compiled"] is False
    assert [len(ts) for ts in r["iterative_times_s"]] == [1, 1, 1, 1]
    assert r["one_shot_times_s"][0] == [r["one_shot_s"][0]] and r["one_shot_times_s"][1:] == [None, None, None]
    # warm-up: the iterative step's shape once, one shot's at every n it ran
    assert r["iterative_warmup_s"][0] > 0 and r["iterative_warmup_s"][1:] == [None, None, None]
    assert r["one_shot_warmup_s"][0] > 0 and r["one_shot_warmup_s"][1:] == [None, None, None]
    assert len(r["iterative_flops"]) == len(r["one_shot_flops"]) == len(r["iterative_attention_flops"]) == 4
    bench.plot_cost(result, tmp_path / "cost.png")
    assert (tmp_path / "cost.png").stat().st_size > 1000


def test_bench_cost_records_every_repeat_and_takes_their_median(monkeypatch):
    pairs = {"parametric": (learner(regime="parametric", signal="obs"),
                            learner(regime="parametric", signal="obs", mode="one_shot"))}
    monkeypatch.setattr(bench.cost, "cost_setup", lambda params_file, family_name: (FAM, pairs, 8, "test"))
    result = bench.bench_cost(sizes=[16, 32], n_tasks=2, n_query=4, repeats=3, device="cpu", budget_s=60,
                              progress=lambda *_: None)
    r = result["regimes"]["parametric"]
    for kind in ("iterative", "one_shot"):
        assert [len(ts) for ts in r[f"{kind}_times_s"]] == [3, 3]
        assert r[f"{kind}_s"] == [sorted(ts)[1] for ts in r[f"{kind}_times_s"]]
    assert r["one_shot_warmup_s"][1] > 0  # a new one-shot shape: warmed up again
    assert r["iterative_warmup_s"][1] is None  # the same iterative step shape


class FakeCompile:
    """Stands in for bench.compiled_step: records whose step it wraps, and fails when told to."""

    def __init__(self, fail_for=None):
        self.wrapped, self.fail_for = [], fail_for

    def __call__(self, lrn):
        self.wrapped.append(lrn.mode)

        def step(state, x, y):
            if lrn.mode == self.fail_for:
                raise RuntimeError("no compiler")
            return lrn.step(state, x, y)

        return step


@pytest.mark.parametrize("fail_for", [None, "iterative", "one_shot"])
def test_compile_compiles_both_sides_or_neither(monkeypatch, fail_for):
    pairs = {"implicit": (learner(regime="implicit"), learner(regime="implicit", mode="one_shot"))}
    fake = FakeCompile(fail_for)
    monkeypatch.setattr(bench.cost, "cost_setup", lambda params_file, family_name: (FAM, pairs, 8, "test"))
    monkeypatch.setattr(bench.cost, "compiled_step", fake)
    result = bench.bench_cost(sizes=[16, 32], n_tasks=2, n_query=4, repeats=1, device="cpu", compiled=True,
                              progress=lambda *_: None)
    r = result["regimes"]["implicit"]
    assert sorted(fake.wrapped) == ["iterative", "one_shot"]
    # a compile failure during the first n leaves both sides eager: they stay timed the same way
    assert r["iterative_compiled"] is r["one_shot_compiled"] is (fail_for is None)
    assert (r["compile_error"] is None) is (fail_for is None)
    assert all(t is not None for t in r["one_shot_s"] + r["iterative_s"])


def test_bench_train_warm_up_sees_every_rollout_depth_before_timing(monkeypatch):
    # each depth is a new shape whose first call is slow: the warm-up must cover them all, or the
    # path timed first pays for them (what biased the first GPU comparison)
    from iai.core.training import TrainConfig

    depths = []
    real = bench.train.train_iteration

    def recording(*args, **kwargs):
        loss, k = real(*args, **kwargs)
        depths.append(k)
        return loss, k

    monkeypatch.setattr(bench.train, "train_iteration", recording)
    tc = TrainConfig.from_dict({**TRAIN, "max_steps": 4})
    model = build_learner(RunSpec("f", "r", {"regime": "parametric", "signal": "obs"}, MODEL,
                                  {**TRAIN, "max_steps": 4}),
                          FAM).train()
    r = bench.train._train_throughput(model, FAM, tc, torch.device("cpu"), iterations=2, fused=False)
    warm_up = depths[:-2]
    assert len(warm_up) >= 3 and set(warm_up) == {1, 2, 3, 4}
    assert r["task_steps_per_s"] > 0 and r["sampler"] == "rollout"


def test_bench_train_compares_both_paths_from_the_same_weights(monkeypatch):
    def named(name, **spec):
        return build_learner(RunSpec("f", name, spec, MODEL, TRAIN), FAM).eval()

    pairs = {"parametric": (named("it", regime="parametric", signal="obs"),
                            named("once", regime="parametric", signal="obs", mode="one_shot"))}
    initial = {k: v.clone() for k, v in pairs["parametric"][0].state_dict().items()}
    monkeypatch.setattr(bench.cost, "cost_setup", lambda params_file, family_name: (FAM, pairs, 8, "test"))
    result = bench.bench_train(iterations=2, compare=True, progress=lambda *_: None)
    assert set(result["runs"]) == {"it", "once"}
    for run in result["runs"].values():
        assert run["speedup"] == pytest.approx(run["task_steps_per_s"] / run["step_by_step"]["task_steps_per_s"])
        assert run["mfu"] is None  # no GPU peak on a CPU
    assert result["speedup_geomean"] > 0
    json.dumps(result)
    # the learners are trained in place, not copies
    trained = pairs["parametric"][0].state_dict()
    assert any(not torch.equal(initial[k], trained[k]) for k in initial)


def test_claim_on_a_synthetic_result():
    ns = [1024, 2048, 4096, 8192, 16384]
    reg = {"iterative_s": [n * 1e-4 for n in ns], "one_shot_s": [n * 1e-5 + n * n * 1e-8 for n in ns],
           "iterative_peak_mb": [1.0] * 5, "one_shot_peak_mb": [n / 100 for n in ns],
           "iterative_flops": [n * 1e6 for n in ns], "one_shot_flops": [n * n * 1e3 for n in ns],
           "iterative_attention_flops": [n for n in ns], "one_shot_attention_flops": [n * n * 999 for n in ns]}
    out = bench.claim_cost_scaling({"n": ns, "batch_size": 16, "regimes": {"x": reg}})["regimes"]["x"]
    assert out["slope_iterative"] == pytest.approx(1.0)
    assert 1.5 < out["slope_one_shot"] < 2.0
    assert out["time_ratio_at_16384"] == pytest.approx((16384e-5 + 16384**2 * 1e-8) / 1.6384)
    assert out["K_at_largest"] == 1024
    assert out["one_shot_quadratic_crossover_n_time"] == pytest.approx(1000, rel=1e-6)
    assert math.isclose(out["memory_ratio_at_16384"], 163.84)


def test_the_table_mode_still_needs_its_arguments_and_cost_parses():
    import argparse

    p = argparse.ArgumentParser()
    bench.cli_arguments(p)
    a = p.parse_args(["--params", "x.yaml", "--family", "f", "--models", "m", "--threads", "1", "--out", "t.csv"])
    assert a.what == "table" and a.params == "x.yaml"
    b = p.parse_args(["cost", "--max-n", "1024", "--out", "c.json"])
    assert b.what == "cost" and b.max_n == 1024
    from iai.utils import ConfigError
    with pytest.raises(ConfigError, match="--params, --family and --out"):
        bench.cli_main(p.parse_args(["--family", "f"]))
