"""The claims' rule on hand-made per-task tables: every claim's pre-registered comparisons can reach
each of the three verdicts (18 cases), an unjudged comparison never contradicts, and the gate gates."""

import zlib

import numpy as np
import pandas as pd
import pytest

from iai.analysis import claims
from iai.core import results

T, S = 48, 3  # tasks, training seeds
FAMILY = dict(family="linreg", kind="linear_regression", dim=8)


def who(name, regime="parametric", signal="obs", state="none", history=0, mode="iterative"):
    return dict(learner=name, regime=regime, signal=signal, state=state, history=history, nominal=False,
                gain="none" if regime == "exact" else "inverse_step", mode=mode)


def cell(w: dict, split: str, n: int, step: int, mean: float, metric="excess_risk", seeds=S, spread=0.05,
         family=FAMILY):
    """Per-task rows of one learner at one cell: task difficulty (shared: the pairing) x mean x each seed's
    scale (1 + spread z) x a little noise."""
    diff = np.exp(np.random.default_rng(zlib.crc32(f"{split}{metric}".encode())).normal(0, 0.5, T))
    rng = np.random.default_rng(zlib.crc32(f"{w['learner']}{w['mode']}{split}{n}{step}{metric}".encode()))
    out = []
    for seed in range(seeds):
        s = 1 + spread * rng.standard_normal()
        v = diff * mean * s * (1 + 0.02 * rng.standard_normal(T))
        out.append(pd.DataFrame(dict(**family, split=split, **w, context="all",
                                     batch_size=16 if w["mode"] == "iterative" else n,
                                     n_train=n, step=step, n_seen=n, metric=metric, seed=seed, task=np.arange(T),
                                     value=v)))
    return out


def table(parts) -> pd.DataFrame:
    return results.task_frame(pd.concat([p for part in parts for p in part], ignore_index=True))


A_IT, B_IT = who("a"), who("b")
A_OS = who("a_once", mode="one_shot")
BAYES, PRIOR = who("bayes", "exact", "none"), who("prior", "exact", "none")


def comparison_table(a: dict, b: dict, effect: float, n=128, a_step=8, b_step=8, valid_a=1.5, metric="excess_risk",
                     spread=0.05):
    """A against B at n on split id (A's mean = (1 + effect) x B's), plus the validation tasks the gate reads:
    the reference at 1, the trivial predictor at 10, A at ``valid_a``, B at 1.5."""
    parts = [cell(a, "id", n, a_step, 1 + effect, metric, spread=spread),
             cell(b, "id", n, b_step, 1.0, metric, spread=spread)]
    for w, step, m in ((a, a_step, valid_a), (b, b_step, 1.5)):
        parts.append(cell(w, "valid", n, step, m, metric))
    parts += [cell(BAYES, "valid", n, step, 1.0, metric, seeds=1) for step in sorted({a_step, b_step})]
    parts += [cell(PRIOR, "valid", n, step, 10.0, metric, seeds=1) for step in sorted({a_step, b_step})]
    return table(parts)


def spec(claim, a, b, n=128, test="a_better", metric=None, **sides):
    out = {"claim": claim, "family": "linreg", "split": "id", "n": n, "a": a, "b": b, "test": test}
    return {**out, **({"metric": metric} if metric else {})}


CLAIMS = {  # claim -> (side a, side b, steps, learner a, learner b, n)
    "1": ({"learner": "a"}, {"learner": "a_once", "mode": "one_shot"}, (8, 1), A_IT, A_OS, 128),
    "1b": ({"learner": "a", "step": 64}, {"learner": "a", "step": 8}, (64, 8), A_IT, A_IT, 1024),
    "2": ({"learner": "a"}, {"learner": "b"}, (8, 8), who("a"), who("b", signal="grad"), 128),
    "3": ({"learner": "a"}, {"learner": "b"}, (8, 8), A_IT, who("b", "explicit"), 128),
    "5": ({"learner": "a"}, {"learner": "b"}, (8, 8), who("a", "implicit", "obs", "logits"),
          who("b", "implicit", "obs", "probs"), 128),
}
EFFECT = {"reproduced": -0.4, "contradicted": +0.4, "inconclusive": 0.0}


def verdict(t, claim, specs, **opts):
    out = {c["claim"]: c for c in claims.evaluate_claims(t, {"primary": specs, **opts})}
    return out[claim]


@pytest.mark.parametrize("want", claims.VERDICTS)
@pytest.mark.parametrize("claim", sorted(CLAIMS))
def test_each_directional_claim_reaches_each_verdict(claim, want):
    a, b, (sa, sb), wa, wb, n = CLAIMS[claim]
    metric = "error_rate" if claim == "5" else "excess_risk"
    t = comparison_table(wa, wb, EFFECT[want], n, sa, sb, metric=metric)
    c = verdict(t, claim, [spec(claim, a, b, n, metric=metric)])
    assert c["verdict"] == want, c["explanation"]
    assert c["effect"][0].role == "primary" and c["effect"][0].judged


@pytest.mark.parametrize("effect, want", [(0.0, "reproduced"), (-0.4, "contradicted"), (+0.4, "contradicted"),
                                          (-0.09, "inconclusive")])
def test_the_equivalence_claim_reaches_each_verdict(effect, want):
    h = who("h", signal="both", history=4)
    t = comparison_table(h, who("b", signal="both"), effect)
    c = verdict(t, "4", [spec("4", {"learner": "h"}, {"learner": "b"}, test="equivalence")], history_margin=0.1)
    assert c["verdict"] == want, c["explanation"]


def test_an_unjudged_comparison_never_contradicts():
    # A far worse than B, but A fails the gate (on validation tasks it closes no gap): inconclusive
    t = comparison_table(A_IT, B_IT, +0.8, valid_a=9.5)
    c = verdict(t, "3", [spec("3", {"learner": "a"}, {"learner": "b"})])
    assert c["verdict"] == "inconclusive" and not c["effect"][0].judged
    why = c["effect"][0].why
    assert why.startswith("not competent: a closes") and int(why.split("closes ")[1].split("%")[0]) < 50


def test_too_few_seeds_are_reported_not_judged():
    t = comparison_table(A_IT, B_IT, -0.4)
    t = t[~((t.learner == "a") & (t.seed > 0))]
    c = verdict(results.task_frame(t), "3", [spec("3", {"learner": "a"}, {"learner": "b"})])
    assert c["verdict"] == "inconclusive" and "fewer than 3" in c["effect"][0].why


def test_holm_needs_every_primary_at_the_corrected_level():
    # one strong and one weak effect (A 6% better with seed spread 0.15): one comparison alone is reproduced,
    # both together are not, since the weak one does not survive the correction
    strong = comparison_table(A_IT, B_IT, -0.4)
    weak = comparison_table(who("c"), who("d"), -0.06, spread=0.15)
    t = results.task_frame(pd.concat([strong, weak]).drop_duplicates(results.TASK_KEY))  # one reference
    one = verdict(t, "3", [spec("3", {"learner": "a"}, {"learner": "b"})])
    both = verdict(t, "3", [spec("3", {"learner": "a"}, {"learner": "b"}),
                            spec("3", {"learner": "c"}, {"learner": "d"})])
    assert one["verdict"] == "reproduced" and both["verdict"] == "inconclusive"
    assert both["effect"][0].p_holm <= both["effect"][1].p_holm


def test_a_missing_task_is_an_error():
    t = comparison_table(A_IT, B_IT, -0.4)
    t = t[~((t.learner == "a") & (t.split == "id") & (t.seed == 1) & (t.task == 7))]
    with pytest.raises(ValueError, match="seed 1, task 7"):
        verdict(results.task_frame(t), "3", [spec("3", {"learner": "a"}, {"learner": "b"})])


def test_a_primary_that_was_not_evaluated_is_inconclusive():
    t = comparison_table(A_IT, B_IT, -0.4)
    c = verdict(t, "3", [spec("3", {"learner": "a"}, {"learner": "nobody"})])
    assert c["verdict"] == "inconclusive" and "not evaluated" in c["effect"][0].why


def test_without_primaries_every_claim_is_inconclusive():
    t = comparison_table(A_IT, B_IT, -0.4)
    out = claims.evaluate_claims(t, {})
    assert [c["claim"] for c in out] == list(claims.CLAIMS)
    assert all(c["verdict"] == "inconclusive" for c in out)


def test_sensitivity_rejudges_each_claim_under_each_alternative():
    t = comparison_table(A_IT, B_IT, -0.4)
    rows = claims.sensitivity(t, {"primary": [spec("3", {"learner": "a"}, {"learner": "b"})]})
    row = next(r for r in rows if r["claim"] == "3")
    assert row["rule in force"] == "reproduced"
    assert set(claims.SENSITIVITY) <= set(row)


def test_the_rules_hash_changes_with_the_rules():
    a = claims.Options.from_dict({"primary": [spec("3", {"learner": "a"}, {"learner": "b"})]})
    b = claims.Options.from_dict({"primary": [spec("3", {"learner": "a"}, {"learner": "c"})]})
    assert a.rules_hash() != b.rules_hash() and a.rules_hash() == claims.Options.from_dict(a.rules()).rules_hash()


def test_a_comparison_is_frozen_and_written_with_the_keys_the_report_reads():
    """claims 1-5 hold :class:`Comparison` records; the report writes their dict form, whose keys (and
    order: the columns of the report's tables) are the ones comparisons.json and claims.md were built on."""
    import dataclasses

    t = comparison_table(A_IT, who("b", "explicit"), -0.4)
    c = verdict(t, "3", [spec("3", {"learner": "a"}, {"learner": "b"}), spec("3", {"learner": "a"}, {"learner": "z"})])
    found, absent = c["effect"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.judged = False
    assert list(found.as_dict()) == [
        "family", "split", "n", "metric", "A", "B", "effect", "lo", "hi", "se", "df", "value_a", "value_b", "scale",
        "tasks", "seeds_a", "seeds_b", "paired_seeds", "p", "p_a_better", "p_b_better", "outcome", "judged", "why",
        "role", "claim", "test", "where", "p_holm", "p_holm_opposite", "shows"]
    assert list(absent.as_dict()) == ["family", "split", "n", "metric", "A", "B", "judged", "why", "se", "role",
                                      "claim", "test", "where", "p_holm", "p_holm_opposite", "shows"]
    assert absent.as_dict()["se"] is None and absent.shows == "not judged" and (found.a, found.b) == ("a", "b")
    second = [r for r in c["numbers"] if r.role == "secondary"]
    assert second and list(second[0].as_dict())[-4:] == ["role", "claim", "where", "shows"]


def test_each_claim_is_a_registered_function_whose_docstring_is_its_stated_test():
    o = claims.Options.from_dict({})
    assert list(claims.TABLE_CLAIMS) + [claims.COST_CLAIM] == list(claims.CLAIMS) == ["1", "1b", "2", "3", "4", "5",
                                                                                      "6"]
    for key, c in claims.TABLE_CLAIMS.items():
        words = " ".join(c.secondary.__doc__.split())
        assert claims.stated_test(key, o).startswith(words + " Rule: ")
        assert claims.TITLES[key] == c.title
    # the report prints exactly that test, beside the claim's title
    t = comparison_table(A_IT, B_IT, -0.4)
    out = claims.evaluate_claims(t, {})
    assert [c["test"] for c in out[:-1]] == [claims.stated_test(k, o) for k in claims.TABLE_CLAIMS]


def test_a_claim_without_a_stated_test_or_with_a_taken_key_is_refused():
    def undocumented(cells):
        return []

    def documented(cells):
        """A stated test."""
        return []

    for key, fn in (("7", undocumented), ("2", documented), (claims.COST_CLAIM, documented)):
        with pytest.raises(ValueError, match=f"claim {key}: .*docstring"):
            claims.claim(key, "a title")(fn)
    assert "7" not in claims.TABLE_CLAIMS and claims.TABLE_CLAIMS["2"].secondary is claims.claim_signal
