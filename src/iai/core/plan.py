"""The jobs a params file asks for: the evaluations (two per family) and the cost measurements
(the families' iterative and one-shot pairs). The workflow plans its jobs from these lists
(``workflow/rules/common.smk``), and the stages run the same lists."""

from __future__ import annotations

from iai.core.learners.references import applies
from iai.core.tasks import TaskFamily, build_family
from iai.params import Params

ALL_REFERENCES = "references"  # the evaluation of every applicable reference of a family, as one job
ALL_RUNS = "runs"  # the evaluation of every learned run of a family, as one job


def family_references(params: Params, family: TaskFamily) -> list[str]:
    """The references of the params (``references.learners``) that apply to a built family, in params order."""
    return [ref for ref in params.references.learners if applies(ref, family)]


def family_runs(params: Params, family_name: str) -> list[str]:
    """The learned runs of a family, in params order."""
    return [run.name for run in params.runs if run.family == family_name]


def evaluation_jobs(params: Params) -> list[tuple[str, str]]:
    """Every (family, learner) evaluation the params ask for, two per family: its references
    (:data:`ALL_REFERENCES`, when any applies), then its runs (:data:`ALL_RUNS`, when it has any)."""
    jobs = []
    for name, spec in params.families.items():
        family, _ = build_family(spec)
        jobs += [(name, ALL_REFERENCES)] if family_references(params, family) else []
        jobs += [(name, ALL_RUNS)] if family_runs(params, name) else []
    return jobs


def cost_pairs(params: Params, family_name: str) -> list[tuple[str, str]]:
    """(iterative run, one-shot run) of the same regime, the first of each in params order."""
    runs = [r for r in params.runs if r.family == family_name]
    pairs = []
    for regime in ("parametric", "implicit", "explicit"):
        it = next((r.name for r in runs if r.regime == regime and r.mode == "iterative"), None)
        one = next((r.name for r in runs if r.regime == regime and r.mode == "one_shot"), None)
        if it and one:
            pairs.append((it, one))
    return pairs


def bench_families(params: Params) -> dict[str, list[str]]:
    """Family -> the runs of its cost pairs, for every family ``iai bench`` measures: those of
    ``bench.families`` (every family when unset) that have an (iterative, one-shot) pair."""
    names = params.bench.families if params.bench.families is not None else tuple(params.families)
    learners = {f: [name for pair in cost_pairs(params, f) for name in pair] for f in names}
    return {f: runs for f, runs in learners.items() if runs}
