"""The six claims on hand-made per-task tables: each rule returns each of its three verdicts on a
table built for that outcome; the statistics are paired over tasks and bootstrap tasks and seeds."""

import json
import zlib

import numpy as np
import pandas as pd
import pytest

from iai.analysis import claims
from iai.core import results
from fake_results import cached_tasks, expand_tasks, implicit_only_table

B, K = 16, 8
N_CTX = B * K  # 128
SIZES = (128, 256, 1024)
T = 48  # tasks


def learner(name, regime, signal="none", state="none", history=0, nominal=False, mode="iterative"):
    return dict(learner=name, regime=regime, signal=signal, state=state, history=history, nominal=nominal, mode=mode)


BAYES = learner("bayes", "exact")
PAR = learner("p_obs", "parametric", "obs")
IMP = learner("imp", "implicit", "obs", "logits")
EXP = learner("e_obs", "explicit", "obs")
TWINS = {"p_obs": learner("p_once", "parametric", "obs", mode="one_shot"),
         "imp": learner("i_once", "implicit", "obs", "logits", mode="one_shot"),
         "e_obs": learner("e_once", "explicit", "obs", mode="one_shot")}


def task_difficulty(family: str) -> np.ndarray:
    """Each task's own scale (shared by every learner on it: the pairing)."""
    return np.exp(np.random.default_rng(zlib.crc32(family.encode())).normal(0, 0.5, T))


def rows(who: dict, curve, family="linreg", kind="linear_regression", dim=8, splits=("id",), sizes=SIZES,
         metric="excess_risk", seeds=None, noise=0.02, context=None):
    """Per-task rows of one learner: value = difficulty_t * curve(n, step) * (1 + noise), ``seeds``
    training seeds (learned: 3; references: 1). One-shot learners: one step, context all (and capped at n_ctx)."""
    seeds = seeds or (3 if who["regime"] in claims.LEARNED else 1)
    diff = task_difficulty(family)
    out = []
    rng = np.random.default_rng(zlib.crc32(f"{family}/{who['learner']}/{metric}".encode()))
    for split in splits:
        for n in sizes:
            if who["mode"] == "one_shot":
                cells = [("all", n, 1, curve(n, 1)), ("capped", N_CTX, 1, curve(min(n, N_CTX), 1))]
            else:
                last = n // B
                cells = [("all", B, s, curve(n, s)) for s in sorted({2**i for i in range(last.bit_length()) if 2**i <= last} | {last})]
            for ctx, bs, step, mean in cells:
                for seed in range(seeds):
                    v = diff * mean * (1 + noise * rng.standard_normal(T)) * (1 + 0.01 * (seed - (seeds - 1) / 2))
                    out.append(pd.DataFrame(dict(family=family, kind=kind, dim=dim, split=split, **who, context=ctx,
                                                 batch_size=bs, n_train=n, step=step,
                                                 n_seen=bs * step if ctx == "all" and who["mode"] == "iterative" else n,
                                                 metric=metric, seed=seed, task=np.arange(T), value=v)))
    return out


def table(*parts):
    return results.task_frame(pd.concat([p for part in parts for p in part], ignore_index=True))


def bayes(n, step):
    return 1.0 / (step * B)  # excess risk ~ 1/points read


def times(f, later=1.0):
    """A learner at f x Bayes at the training context, drifting by ``later`` per doubling past it."""
    return lambda n, step: f * bayes(n, step) * later ** max(0.0, np.log2(step / K))


def one_shot(f, beyond=1.5):
    """A one-shot twin at f x Bayes at n_ctx, losing ``beyond`` per doubling past its training context."""
    return lambda n, step: f * (1.0 / n) * beyond ** max(0.0, np.log2(n / N_CTX))


def c1(t, **opts):
    return claims.evaluate_claims(t, opts)[0]


# ---------------------------------------------------------------------------- statistics


def test_paired_finds_a_small_effect_the_unpaired_test_misses():
    rng = np.random.default_rng(0)
    task = np.exp(rng.normal(0, 1.0, 64))  # tasks differ a lot; A is 3% better on every one
    a = pd.DataFrame(dict(seed=0, task=np.arange(64), value=0.97 * task * (1 + 0.01 * rng.standard_normal(64))))
    b = pd.DataFrame(dict(seed=0, task=np.arange(64), value=task))
    paired = claims.paired_effect(a, b, "excess_risk")
    unpaired = claims.paired_effect(a, b, "excess_risk", paired=False)
    assert paired["outcome"] == "A better" and paired["hi"] < 0
    assert unpaired["outcome"] == "no clear difference" and unpaired["lo"] < 0 < unpaired["hi"]
    assert paired["effect"] == pytest.approx(unpaired["effect"]) == pytest.approx(-0.03, abs=0.005)


def test_the_interval_covers_seed_variation():
    task = np.ones(32)
    a = pd.concat([pd.DataFrame(dict(seed=s, task=np.arange(32), value=task * v)) for s, v in enumerate((0.7, 1.0, 1.3))])
    b = pd.DataFrame(dict(seed=0, task=np.arange(32), value=task * 1.1))
    r = claims.paired_effect(a, b, "excess_risk")
    assert r["effect"] == pytest.approx(-1 / 11) and r["outcome"] == "no clear difference"  # seeds disagree
    assert r["lo"] < -0.2 and r["hi"] > 0.05


def test_higher_is_better_metrics_flip_the_sign_and_differences_are_absolute():
    a = pd.DataFrame(dict(seed=0, task=np.arange(8), value=0.9))
    b = pd.DataFrame(dict(seed=0, task=np.arange(8), value=0.6))
    r = claims.paired_effect(a, b, "edge_accuracy")
    assert r["effect"] == pytest.approx(-0.3) and r["scale"] == "difference" and r["outcome"] == "A better"
    assert claims.paired_effect(a, b, "mmd")["outcome"] == "B better"


# ---------------------------------------------------------------------------- claim 1


def claim1_table(par=times(2.0), imp=times(2.5), exp=times(3.0), twin=one_shot(2.0), regimes=("p_obs", "imp", "e_obs")):
    learners = {"p_obs": (PAR, par), "imp": (IMP, imp), "e_obs": (EXP, exp)}
    parts = [rows(BAYES, bayes, splits=("id", "ood"))]
    for name in regimes:
        who, curve = learners[name]
        parts += [rows(who, curve, splits=("id", "ood")), rows(TWINS[name], twin, splits=("id", "ood"))]
    return table(*parts)


def test_claim1_reproduced_when_every_regime_keeps_improving_and_beats_its_twin():
    c = c1(claim1_table())
    assert c["verdict"] == "reproduced", c["explanation"]
    assert "crossover n = 256" in c["explanation"]  # the twins tie at n_ctx, lose from 2x on
    twins = [r for r in c["numbers"] if "twin" in r["where"]]
    assert {r["n"] for r in twins} == set(SIZES) and all(r["judged"] for r in twins)


def test_claim1_contradicted_when_a_regime_gets_worse_with_more_steps():
    c = c1(claim1_table(exp=times(3.0, later=1.4)))  # explicit error grows by 40% per doubling past K
    assert c["verdict"] == "contradicted" and "explicit: contradicted" in c["explanation"]


def test_claim1_inconclusive_without_a_regime_or_with_an_incompetent_learner():
    c = c1(claim1_table(regimes=("p_obs", "imp")))
    assert c["verdict"] == "inconclusive" and "explicit" in c["explanation"]
    c = c1(claim1_table(exp=times(9.0)))  # 9x Bayes at n_ctx: above the competence factor 5
    assert c["verdict"] == "inconclusive" and any("e_obs: 9" in r.get("precondition failed", "") and "x bayes at n_ctx = 128"
                                                  in r["precondition failed"] for r in c["numbers"])
    # judged after all (factor 10), the 9x explicit learner loses to its 2x one-shot twin
    assert c1(claim1_table(exp=times(9.0)), competence_factor=10)["verdict"] == "contradicted"


def test_claim1_leaves_out_runs_with_too_few_seeds_and_nominal_learners():
    t = claim1_table()
    c = c1(t, min_seeds=4)
    assert c["verdict"] == "inconclusive" and "not judged (< 4 seeds)" in c["explanation"]
    nominal = t.assign(nominal=t.learner.isin(["e_obs"]))
    assert c1(nominal)["verdict"] == "inconclusive"


def test_claim1_counts_higher_edge_accuracy_with_more_steps_as_improving():
    kw = dict(family="scm", kind="causal_order", dim=5, metric="edge_accuracy", sizes=(64,))
    up = table(rows(IMP, lambda n, s: 0.5 + 0.1 * np.log2(s) / 2 + 0.001, **kw))
    down = table(rows(IMP, lambda n, s: 0.9 - 0.1 * np.log2(s), **kw))
    assert {r["outcome"] for r in c1(up)["numbers"]} == {"A better"}
    assert c1(down)["verdict"] == "contradicted"


# ---------------------------------------------------------------------------- claim 2


def claim2_table(low=(1.0, 1.5), high=(2.0, 1.3)):
    """(obs, grad) factors over Bayes at d = 2 and at d = 32."""
    parts = []
    for fam, dim, (obs, grad) in (("d2", 2, low), ("d32", 32, high)):
        kw = dict(family=fam, dim=dim, sizes=(16, 128, 1024))
        parts += [rows(BAYES, bayes, **kw), rows(learner("po", "parametric", "obs"), times(obs), **kw),
                  rows(learner("pg", "parametric", "grad"), times(grad), **kw),
                  rows(learner("pb", "parametric", "both"), times(min(obs, grad) * 0.95), **kw)]
    return table(*parts)


@pytest.mark.parametrize("low, high, verdict", [
    ((1.0, 1.5), (2.0, 1.3), "reproduced"),     # obs wins at d = 2, grad at d = 32
    ((1.5, 1.0), (2.0, 1.3), "contradicted"),   # grad wins at d = 2
    ((1.0, 1.5), (1.3, 1.3), "inconclusive"),   # a tie at d = 32
])
def test_claim2_three_outcomes(low, high, verdict):
    c = claims.evaluate_claims(claim2_table(low, high))[1]
    assert c["verdict"] == verdict, c["explanation"]
    assert "d = 32: grad vs obs (fewest points) at n = 16" in c["explanation"]
    b = c["effect"][1]  # grad against obs, relative to obs: (grad - obs) / obs
    assert b["A"] == "pg" and b["B"] == "po"
    assert b["effect"] == pytest.approx((b["value A"] - b["value B"]) / b["value B"])
    assert b["effect"] == pytest.approx(high[1] / high[0] - 1, abs=0.03)


def test_claim2_ignores_learners_with_the_hand_written_term():
    t = claim2_table()
    t = t.assign(nominal=t.learner == "pg")
    assert claims.evaluate_claims(t)[1]["verdict"] == "inconclusive"


# ---------------------------------------------------------------------------- claim 3


def claim3_table(par=2.0, exp=3.0, twin=2.5):
    return table(rows(BAYES, bayes, splits=("id", "ood")), rows(PAR, times(par), splits=("id", "ood")),
                 rows(EXP, times(exp), splits=("id", "ood")),
                 rows(TWINS["e_obs"], one_shot(twin), splits=("id", "ood")))


@pytest.mark.parametrize("par, exp, twin, verdict", [
    (2.0, 3.0, 3.0, "reproduced"),
    (3.0, 2.0, 2.0, "contradicted"),
    (2.0, 3.0, 2.0, "inconclusive"),  # the explicit learner is beaten by its own one-shot twin: broken
])
def test_claim3_three_outcomes(par, exp, twin, verdict):
    c = claims.evaluate_claims(claim3_table(par, exp, twin))[2]
    assert c["verdict"] == verdict, c["explanation"]
    if verdict == "inconclusive":
        assert "explicit learner broken" in c["explanation"]


# ---------------------------------------------------------------------------- claim 4


@pytest.mark.parametrize("factor, verdict, word", [
    (0.98, "reproduced", "within margin"),
    (0.70, "contradicted", "helps beyond margin"),
    (1.40, "inconclusive", "hurts beyond margin"),   # a window that hurts is no reproduction
    (0.91, "inconclusive", "undecided"),             # the interval crosses the margin
])
def test_claim4_is_an_equivalence_test(factor, verdict, word):
    hist = learner("p_h4", "parametric", "obs", history=4)
    t = table(rows(BAYES, bayes), rows(PAR, times(2.0)), rows(hist, times(2.0 * factor), noise=0.05 if word == "undecided" else 0.02))
    c = claims.evaluate_claims(t, {"history_margin": 0.10})[3]
    assert c["verdict"] == verdict and word in c["explanation"], c["explanation"]


# ---------------------------------------------------------------------------- claim 5


def claim5_table(probs=(1.1, 1.3), families=("logreg", "digits")):
    """Implicit logits vs probs in classification families: probs' (error, nll) factors over logits."""
    parts = []
    for fam in families:
        kw = dict(family=fam, kind="linear_classification", sizes=(128, 1024))
        for metric in ("error_rate", "nll"):
            f = dict(zip(("error_rate", "nll"), probs))[metric]
            base = lambda n, s: 0.2 + 0.1 / s  # noqa: E731
            parts += [rows(learner("map", "exact"), base, metric=metric, **kw),
                      rows(learner("imp", "implicit", "obs", "logits"), lambda n, s, b=base: 1.05 * b(n, s), metric=metric, **kw),
                      rows(learner("imp_probs", "implicit", "obs", "probs"), lambda n, s, b=base, f=f: 1.05 * f * b(n, s),
                           metric=metric, **kw)]
    return table(*parts)


@pytest.mark.parametrize("probs, families, verdict", [
    ((1.1, 1.3), ("logreg", "digits"), "reproduced"),
    ((0.9, 1.0), ("logreg", "digits"), "contradicted"),
    ((1.1, 1.3), ("logreg",), "inconclusive"),       # one classification family is not enough
    ((1.0, 1.0), ("logreg", "digits"), "inconclusive"),
])
def test_claim5_three_outcomes(probs, families, verdict):
    c = claims.evaluate_claims(claim5_table(probs, families))[4]
    assert c["verdict"] == verdict, c["explanation"]


# ---------------------------------------------------------------------------- claim 6


def scaling(slope_it: float, slope_os: float, ratio: float, k: float = 1024.0) -> dict:
    """A hand-made `iai bench cost` result: one regime's claim-6 numbers."""
    regime = {"K_at_largest": k, "time_ratio_at_largest": ratio, "slope_iterative": slope_it,
              "slope_one_shot": slope_os, "largest_n_both": int(16 * k), "flop_ratio_at_largest": 50.0,
              "memory_ratio_at_largest": 120.0}
    return {"claim6": {"regimes": {"parametric": regime}, "fit_range": [1024, 16384]}, "batch_size": 16,
            "n": [256, 16384], "device_name": "test CPU"}


@pytest.mark.parametrize("slope_it, slope_os, ratio, verdict", [
    (0.95, 1.85, 11.0, "reproduced"),        # linear against quadratic, although R is far below K
    (1.0, 1.0, 900.0, "reproduced"),         # R of order K
    (1.0, 1.05, 1.2, "contradicted"),        # both linear, no gain: the small-n regime
    (1.6, 1.9, 3.0, "contradicted"),         # iterating grows faster than linearly
])
def test_cost_claim_on_the_scaling_measurement(slope_it, slope_os, ratio, verdict):
    got = claims.evaluate_claims(pd.DataFrame(columns=results.TASK_COLUMNS),
                                 cost_scaling=scaling(slope_it, slope_os, ratio))[5]
    assert got["verdict"] == verdict, got
    assert "test CPU" in got["test"]


def test_cost_claim_without_a_measurement_is_inconclusive():
    assert claims.evaluate_claims(cached_tasks())[5]["verdict"] == "inconclusive"


# ---------------------------------------------------------------------------- the realistic table


def test_all_claims_on_the_fake_table_are_json_ready():
    out = claims.evaluate_claims(cached_tasks(), {}, scaling(1.0, 2.0, 500.0))
    assert [c["claim"] for c in out] == ["1", "2", "3", "4", "5", "6"]
    for c in out:
        assert c["verdict"] in claims.VERDICTS and c["test"] and c["explanation"] and c["precondition"]
        json.dumps(c, allow_nan=True)
    assert out[1]["verdict"] == "reproduced"  # the fake signal factors: obs wins at d = 2, grad at d = 32
    assert out[5]["verdict"] == "reproduced"


def test_the_implicit_only_families_count_in_claim_1_only():
    plain = cached_tasks()
    mixed = pd.concat([plain, expand_tasks(implicit_only_table(cost=False))], ignore_index=True)
    before, after = claims.evaluate_claims(plain), claims.evaluate_claims(results.task_frame(mixed))
    assert [c["verdict"] for c in before[1:]] == [c["verdict"] for c in after[1:]]
    assert {"scm", "mog"} <= {r["family"] for r in after[0]["numbers"]}
    assert not {"scm", "mog"} & {r.get("family") for c in after[1:5] for r in c["numbers"]}


def test_competence_is_read_in_distribution_and_out_of_distribution_rows_are_judged():
    far = 30.0  # out of distribution every learned learner is 30x further from Bayes than in it
    parts = [rows(BAYES, bayes, splits=("id", "ood"))]
    for who, f in ((PAR, 2.0), (IMP, 2.5), (EXP, 3.0)):
        parts += [rows(who, times(f), splits=("id",)), rows(who, times(far * f), splits=("ood",)),
                  rows(TWINS[who["learner"]], one_shot(2.0), splits=("id",)),
                  rows(TWINS[who["learner"]], one_shot(far * 2.0), splits=("ood",))]
    c = c1(table(*parts))
    ood = [r for r in c["numbers"] if r["split"] == "ood"]
    assert ood and all(r["judged"] for r in ood)
    assert c["verdict"] == "reproduced", c["explanation"]
