"""Claim 6's judge (iai.analysis.cost): the three verdicts on hand-made benchmark JSONs, the slope
interval's coverage on simulated timings, the committed GPU JSONs (old format) and a real tiny run."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from iai.analysis import cost

ROOT = Path(__file__).resolve().parents[1]
GPU_JSONS = sorted((ROOT / "docs" / "gpu").glob("cost_*.json"))
NS = [2**i for i in range(8, 17)]  # 256 .. 65,536
B = 16


def scaling(slope: float = 1.0, noise: float = 0.0, flop_over_k: float = 0.84, repeats=3, one_shot_compiled=False,
            iterative_compiled=False, seed: int = 0, ns=NS, share_from: int = 4096, old_format: bool = False) -> dict:
    """A hand-made `iai bench cost` result, one regime: R(n) = t_one_shot / t_iterating grows like
    n^slope (times with log-normal noise of sd ``noise`` on every repeat); the counted attention
    FLOPs one shot / iterating are ``flop_over_k`` K; one shot's attention share is 0.95 from
    ``share_from`` on (the fit range), 0.5 below."""
    rng = random.Random(seed)
    reps = repeats if isinstance(repeats, list) else [repeats] * len(ns)
    rec = {k: [] for k in ("iterative_s", "one_shot_s", "iterative_times_s", "one_shot_times_s", "iterative_flops",
                           "one_shot_flops", "iterative_attention_flops", "one_shot_attention_flops",
                           "iterative_peak_mb", "one_shot_peak_mb")}
    for n, r in zip(ns, reps):
        k = n / B
        it = [1e-4 * n * math.exp(rng.gauss(0, noise)) for _ in range(r)]
        os_ = [1e-4 * n * (n / 256) ** slope * math.exp(rng.gauss(0, noise)) for _ in range(r)]
        rec["iterative_times_s"].append(it)
        rec["one_shot_times_s"].append(os_)
        rec["iterative_s"].append(sorted(it)[len(it) // 2])
        rec["one_shot_s"].append(sorted(os_)[len(os_) // 2])
        att_it = 1000.0 * k
        att_os = flop_over_k * k * att_it
        rec["iterative_attention_flops"].append(att_it)
        rec["iterative_flops"].append(20 * att_it)
        rec["one_shot_attention_flops"].append(att_os)
        rec["one_shot_flops"].append(att_os / (0.95 if n >= share_from else 0.5))
        rec["iterative_peak_mb"].append(1.0)
        rec["one_shot_peak_mb"].append(n / 100)
    rec.update(iterative_compiled=iterative_compiled, one_shot_compiled=one_shot_compiled)
    if old_format:
        for key in ("iterative_times_s", "one_shot_times_s", "one_shot_compiled"):
            del rec[key]
    return {"n": list(ns), "batch_size": B, "n_tasks": 32, "device_name": "test device", "threads_iterative": 2,
            "threads_one_shot": 2, "regimes": {"parametric": rec}}


def verdict_of(s: dict, **options) -> str:
    return cost.judge_cost(s, options)["verdict"]


# ---------------------------------------------------------------------------- the three verdicts


def test_reproduced_when_the_flops_are_about_k_and_r_grows_like_k():
    res = cost.judge_cost(scaling(slope=1.0, noise=0.02), {})
    assert res["verdict"] == "reproduced", res["explanation"]
    row = res["numbers"][0]
    assert row["fit range"] == "4096..65536 (5 sizes)" and row["interval"] == "repeats"
    assert row["slope low"] <= 1.0 <= row["slope high"] and row["FLOPs within band"]
    assert set(res) == {"claim", "title", "test", "precondition", "verdict", "effect", "numbers", "explanation"}
    assert res["claim"] == "6" and "test device" in res["test"]


@pytest.mark.parametrize("slope", [0.3, 1.7])  # R grows clearly slower, or faster, than K
def test_contradicted_when_the_slope_interval_lies_wholly_outside(slope):
    res = cost.judge_cost(scaling(slope=slope, noise=0.02), {})
    assert res["verdict"] == "contradicted", res["explanation"]
    assert "wholly outside" in res["numbers"][0]["why"]


def test_contradicted_when_the_counted_flops_are_far_from_k():
    # the implicit learner's case: each step reads its queries again (K B / (B + 2q) = K/3 at q = B)
    assert verdict_of(scaling(slope=1.0, noise=0.02, flop_over_k=1 / 3)) == "contradicted"
    assert verdict_of(scaling(slope=1.0, noise=0.02, flop_over_k=2.0)) == "contradicted"
    # the band is the option's: K/4 .. 4K admits K/3
    assert verdict_of(scaling(slope=1.0, noise=0.02, flop_over_k=1 / 3), cost_flop_factor=4) == "reproduced"


def test_inconclusive_when_the_interval_straddles_a_bound():
    # the true slope sits on the bound 0.7, with enough noise that the interval reaches both sides
    res = cost.judge_cost(scaling(slope=0.7, noise=0.2, seed=1), {})
    row = res["numbers"][0]
    assert row["slope low"] < 0.7 < row["slope high"], row
    assert res["verdict"] == "inconclusive" and "straddles" in row["why"]


def test_inconclusive_when_the_sides_ran_differently_however_good_the_slope():
    s = scaling(slope=1.0, noise=0.02, iterative_compiled=True, one_shot_compiled=False)
    res = cost.judge_cost(s, {})
    assert res["verdict"] == "inconclusive" and "not timed the same way" in res["numbers"][0]["why"]
    assert verdict_of(scaling(slope=1.0, noise=0.02, iterative_compiled=True, one_shot_compiled=True)) == "reproduced"
    s["threads_one_shot"] = 1  # other threads: not the same way either
    s["regimes"]["parametric"]["one_shot_compiled"] = True
    assert verdict_of(s) == "inconclusive"


def test_inconclusive_with_too_few_sizes_where_attention_dominates():
    res = cost.judge_cost(scaling(slope=1.0, noise=0.02, share_from=32768), {})
    assert res["verdict"] == "inconclusive" and "2 size(s)" in res["numbers"][0]["why"]
    assert cost.judge_cost(None, {})["verdict"] == "inconclusive"


def test_one_contradicted_regime_contradicts_the_claim_and_all_must_reproduce():
    good, bad = scaling(slope=1.0, noise=0.02), scaling(slope=0.3, noise=0.02)
    mixed = {**good, "regimes": {"parametric": good["regimes"]["parametric"], "implicit": bad["regimes"]["parametric"]}}
    assert verdict_of(mixed) == "contradicted"
    unsure = scaling(slope=1.0, noise=0.02, iterative_compiled=True)
    mixed["regimes"]["implicit"] = unsure["regimes"]["parametric"]
    assert verdict_of(mixed) == "inconclusive"


def test_the_tolerance_is_the_options():
    s = scaling(slope=0.8, noise=0.01)
    assert verdict_of(s) == "reproduced"
    assert verdict_of(s, cost_slope_tolerance=0.1) == "contradicted"


def test_old_format_medians_take_the_interval_from_the_residuals():
    res = cost.judge_cost(scaling(slope=1.0, noise=0.02, old_format=True), {})
    row = res["numbers"][0]
    assert row["interval"] == "residuals" and row["timed"] == "both eager"
    assert res["verdict"] == "reproduced", res["explanation"]


# ---------------------------------------------------------------------------- the interval's coverage


def simulated(true_slope: float, sigma: float, rng: random.Random, one_shot_repeats=(3, 3, 3, 1, 1)):
    ns = [4096, 8192, 16384, 32768, 65536]
    it = [[2e-5 * n * math.exp(rng.gauss(0, sigma)) for _ in range(3)] for n in ns]
    os_ = [[3e-9 * n ** (1 + true_slope) * math.exp(rng.gauss(0, sigma)) for _ in range(r)]
           for n, r in zip(ns, one_shot_repeats)]
    return ns, it, os_


@pytest.mark.parametrize("true_slope", [1.0, 0.8])
def test_the_slope_interval_covers_the_true_slope(true_slope):
    rng = random.Random(2026)
    draws, covered, covered_resid = 200, 0, 0
    for _ in range(draws):
        ns, it, os_ = simulated(true_slope, 0.1, rng)
        s = cost.slope_interval(ns, it, os_, 0.95)
        assert s["method"] == "repeats"
        covered += s["lo"] <= true_slope <= s["hi"]
        medians = cost.slope_interval(ns, [[sorted(t)[len(t) // 2]] for t in it],
                                      [[sorted(t)[len(t) // 2]] for t in os_])
        assert medians["method"] == "residuals"
        covered_resid += medians["lo"] <= true_slope <= medians["hi"]
    assert 0.9 <= covered / draws <= 0.99, covered / draws  # nominal 0.95; not trivially wide
    assert 0.9 <= covered_resid / draws <= 0.99, covered_resid / draws


def test_the_slope_interval_narrows_with_less_noise():
    rng = random.Random(1)
    wide = cost.slope_interval(*simulated(1.0, 0.2, rng))
    narrow = cost.slope_interval(*simulated(1.0, 0.02, rng))
    assert narrow["hi"] - narrow["lo"] < (wide["hi"] - wide["lo"]) / 3


def test_t_quantiles():
    assert cost.t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-3)
    assert cost.t_quantile(0.975, 3) == pytest.approx(3.1824, abs=1e-3)
    assert cost.t_quantile(0.975, math.inf) == pytest.approx(1.95996, abs=1e-4)
    assert cost.t_quantile(0.025, 10) == pytest.approx(-2.2281, abs=1e-3)


# ---------------------------------------------------------------------------- real JSONs


def test_the_committed_gpu_jsons_are_judged():
    assert GPU_JSONS, "docs/gpu/cost_*.json"
    table = cost.device_table([str(p) for p in GPU_JSONS])
    assert len(table) == 3 * len(GPU_JSONS)
    assert set(table.verdict) <= set(cost.VERDICTS)
    assert table.device.str.contains("H200").all()
    assert (table["interval"] == "residuals").all()  # the old format holds medians only
    # they compiled the iterative step only: their time evidence is not judged ...
    assert table.timed.eq("iterative compiled, one shot eager").all()
    assert (table.loc[table.regime != "implicit", "verdict"] == "inconclusive").all()
    # ... and the implicit regime's counted attention is K/3 (queries re-read every step): contradicted
    imp = table[table.regime == "implicit"]
    assert (imp.verdict == "contradicted").all()
    assert imp["FLOP ratio / K"].between(1 / 3, 0.34).all()
    for path in GPU_JSONS:
        assert cost.judge_cost(json.loads(path.read_text()), {})["verdict"] == "contradicted"


def test_a_real_tiny_bench_run_is_judged(monkeypatch):
    import torch

    from iai.stages import bench
    from test_bench import FAM, learner

    torch.set_num_threads(1)
    pairs = {"parametric": (learner(regime="parametric", signal="obs"),
                            learner(regime="parametric", signal="obs", mode="one_shot"))}
    monkeypatch.setattr(bench.cost, "cost_setup", lambda params_file, family_name: (FAM, pairs, 8, "test"))
    sizes = [64, 128, 256, 512, 1024, 2048]
    result = json.loads(json.dumps(bench.bench_cost(sizes=sizes, n_tasks=2, n_query=4, repeats=2, device="cpu",
                                                    budget_s=30, progress=lambda *_: None)))
    res = cost.judge_cost(result, {"cost_attention_share": 0.8})
    row = res["numbers"][0]
    assert res["verdict"] in cost.VERDICTS and row["verdict"] == res["verdict"]
    assert row["timed"] == "both eager" and row["interval"] == "repeats", row
    assert int(row["fit range"].split("(")[1].split()[0]) >= 3, row
    assert math.isfinite(row["slope of R"]) and row["slope low"] <= row["slope of R"] <= row["slope high"]
    assert row["K = n/B"] == 2048 / 8 and 0.5 < row["FLOP ratio / K"] < 1.0
