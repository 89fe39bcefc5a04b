"""Write ``reports/index.html``, ``reports/metrics.json`` (with ``comparisons.json`` and ``claims.md``
beside it) and ``docs/results.md`` from the results table and the figures.

    iai report --results data/results/results.csv --figures reports/figures \\
               --params params/default.yaml --stage-info data/**/*.json \\
               --out reports/index.html --metrics reports/metrics.json --results-doc docs/results.md

The HTML is one self-contained file (CSS inline, figures embedded as PNG data and linked to the
files beside it): it opens from disk with no server. It shows what was run (params, devices, the
stages' jobs from their summary JSON files; the git commit and each job's duration too, unless
``--run-page`` names a page for them, which the workflow does so that the report's bytes are the same on
every run of a commit), the six claims with their
measured numbers and computed verdicts (:mod:`iai.analysis.claims`), a summary table of final numbers and
every figure of :data:`iai.analysis.captions.FIGURES` with its caption. ``metrics.json`` holds the headline
numbers for ``dvc metrics`` and ``dvc exp show``, with short keys: each claim's verdict (``verdicts``), its
pre-registered comparisons' effect, interval and Holm p-value (claim 6: each regime's verdict,
counted FLOP ratio and time slope); per family, split id, largest n, each learner's primary metric
(and its ratio to Bayes for regression; its difference to the reference for the order and generation
families: edge accuracy - sink search's, MMD² - the true samples'), whether higher or lower is
better; and the hash of the rules in force. ``comparisons.json`` beside it holds everything behind the
verdicts: each claim's explanation, every comparison computed (primary and secondary, judged or not,
with its seeds and why), the rules in force and each verdict under alternative rules; ``claims.md``
the same as a page. Sorted keys, 6 significant digits. ``docs/results.md`` (:mod:`iai.analysis.results_doc`)
is the results page of the repository, rendered from the metrics and the rules alone.

A stage summary (``--stage-info``) is a JSON object as the stages write it beside their outputs:
``stage`` (else the file name), ``duration_s``, ``device``/``device_name`` and any other scalar
fields (family, learner, ...); a list of such objects is accepted too.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import subprocess
from pathlib import Path

import pandas as pd

from iai.analysis.captions import FIGURES
from iai.analysis.claims import Options, evaluate_claims, sensitivity
from iai.analysis.cost import device_table
from iai.analysis.report_html import page
from iai.analysis.report_html import run_page as run_page_html
from iai.analysis.results_doc import render as results_page
from iai.analysis.selection import PREDICTION, final_step, higher_is_better, known_learners, labels, quality, reference
from iai.core import results
from iai.utils import ConfigError, file_sha256, read_summary, write_json, write_text


def git_commit(cwd: str | Path = ".") -> str:
    """``<sha> (clean)`` / ``<sha> (with uncommitted changes)``, or ``unknown`` outside a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if sha.returncode != 0:
        return "unknown (not a git checkout)"
    return f"{sha.stdout.strip()[:12]} ({'with uncommitted changes' if dirty.stdout.strip() else 'clean'})"


def read_stage_info(paths: list[str | Path]) -> pd.DataFrame:
    """One row per stage job: stage, duration_s, device and the other scalar fields."""
    rows = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--stage-info: {path}: file not found")
        try:
            data = read_summary(path)  # with its timings (<name>.timing.json) where they are there
        except json.JSONDecodeError as err:
            raise ConfigError(f"--stage-info: {path}: not valid JSON ({err})") from err
        for item in data if isinstance(data, list) else [data]:
            if not isinstance(item, dict):
                raise ConfigError(f"--stage-info: {path}: expected a JSON object per stage, got {type(item).__name__}")
            row = {k: v for k, v in item.items() if isinstance(v, (str, int, float, bool)) or v is None}
            row.setdefault("stage", path.stem)
            row["file"] = str(path)
            rows.append(row)
    return pd.DataFrame(rows)


def _num(v, digits: int = 6):
    """JSON-safe rounded number (NaN and inf become null)."""
    if v is None or not math.isfinite(float(v)):
        return None
    return float(f"{float(v):.{digits}g}")


RATIO_METRICS = PREDICTION  # compared with the reference as value / reference; the others as value - reference


def final_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each learner's primary metric at its family's largest n, final step, every split; with the
    family's reference in the same split: ``ratio`` (value / reference) for the prediction metrics,
    ``difference`` (value - reference) for the others (edge accuracy; MMD², whose floor is about 0
    and may be negative, so a ratio means nothing), NaN where it does not apply; ``vs_reference``
    is the one that applies."""
    q = final_step(quality(df))
    if q.empty:
        return q.assign(label=[], ratio=[], difference=[], vs_reference=[], reference=[])
    q = q[q.n_train == q.groupby("family").n_train.transform("max")].copy()
    q["label"] = labels(q)
    ref = pd.concat([reference(q, f) for f in q.family.unique()])
    base = ref.set_index(["family", "split"])["value"]
    base = base.reindex(pd.MultiIndex.from_frame(q[["family", "split"]])).to_numpy()
    by_ratio = q.metric.isin(RATIO_METRICS).to_numpy()
    q["ratio"] = pd.Series(q["value"].to_numpy() / base, index=q.index).where(by_ratio)
    q["difference"] = pd.Series(q["value"].to_numpy() - base, index=q.index).where(~by_ratio)
    q["vs_reference"] = q["ratio"].where(by_ratio, q["difference"])
    q["reference"] = q.family.map(ref.groupby("family").learner.first())
    return q


EFFECT_KEYS = ("effect", "lo", "hi", "se", "df", "p", "p_holm", "value_a", "value_b")


def written(c: dict) -> dict:
    """A claim's result as the report, ``comparisons.json`` and ``claims.md`` write it: its ``effect`` and
    ``numbers`` in dict form (:class:`iai.analysis.cells.Comparison`; claim 6's rows, from the cost rule,
    are dicts already). :func:`build` converts once."""
    def as_dicts(rows):
        return None if rows is None else [r if isinstance(r, dict) else r.as_dict() for r in rows]
    return {**c, "effect": as_dicts(c.get("effect")), "numbers": as_dicts(c["numbers"])}


def _claim_metrics(c: dict) -> dict:
    """A claim's verdict and every comparison it computed, primary or secondary, judged or not: the
    effect, its interval, its p-values, the seeds and why it was or was not judged."""
    out = {"verdict": c["verdict"], "explanation": c["explanation"]}
    for role in ("primary", "secondary"):
        effects = {}
        for r in c["numbers"]:
            if r.get("role") != role:
                continue
            key = f"{r['family']}/{r['split']}/n{r['n']}: {r['A']} vs {r['B']} ({r['metric']})"
            entry = {k: _num(r[k]) for k in EFFECT_KEYS if r.get(k) is not None}
            entry.update({k: r[k] for k in ("seeds_a", "seeds_b", "judged", "why", "shows") if k in r})
            effects[key] = entry
        if effects:
            out[role] = effects
    if c["claim"] == "6":  # the cost benchmark's numbers, per regime
        out["regimes"] = [{k: (_num(v) if isinstance(v, float) else v) for k, v in r.items()
                           if isinstance(v, (str, int, float, bool)) or v is None} for r in c["numbers"]]
    return out


HEADLINE_KEYS = ("effect", "lo", "hi", "p_holm")
COST_HEADLINE = {"FLOP ratio / K": "flop_ratio_per_K", "time ratio R": "time_ratio_R", "slope of R": "slope",
                 "slope low": "slope_lo", "slope high": "slope_hi"}


def _headline(c: dict) -> dict:
    """A claim's primary comparisons' effect, interval and Holm p-value, under short keys
    (``family/split/nN/A vs B/metric``: what ``dvc metrics diff`` prints); claim 6 per regime."""
    out = {}
    if c["claim"] == "6":
        out["regimes"] = {r["regime"]: {"verdict": r["verdict"],
                                        **{short: _num(r[k]) for k, short in COST_HEADLINE.items()
                                           if r.get(k) is not None}}
                          for r in c["numbers"] if "regime" in r}
        return out
    primary = {}
    for r in (r for r in c["numbers"] if r.get("role") == "primary"):
        cell = f"{r['family']}/{r['split']}/n{r['n']}"
        # each side without its qualifier (" [one-shot, all]"), unless two comparisons differ only in it
        key = f"{cell}/{r['A'].split(' [')[0]} vs {r['B'].split(' [')[0]}/{r['metric']}"
        if key in primary:
            key = f"{cell}/{r['A']} vs {r['B']}/{r['metric']}"
        if key in primary:
            raise ValueError(f"claim {c['claim']}: two primary comparisons {key}")
        entry = {k: _num(r[k]) for k in HEADLINE_KEYS if r.get(k) is not None}
        primary[key] = {**entry, "shows": r["shows"]} if "shows" in r else entry
    if primary:
        out["primary"] = primary
    return out


def comparisons(claims: list[dict], rules: dict | None = None, sensitivity: list | None = None) -> dict:
    """Everything behind the verdicts (``comparisons.json``): every claim's explanation and every
    comparison it computed, the rules in force (with their hash) and each verdict under alternative rules."""
    out = {"claims": {f"claim_{c['claim']}": _claim_metrics(c) for c in claims}}
    if rules is not None:
        out["rules"] = rules
    if sensitivity is not None:
        out["sensitivity"] = sensitivity
    return out


def metrics(df: pd.DataFrame, claims: list[dict], rules_hash: str | None = None) -> dict:
    """The headline numbers for ``dvc metrics`` (short keys): each claim's verdict and primary
    comparisons, each family's final numbers, and the hash of the rules in force."""
    out = {"verdicts": {c["claim"]: c["verdict"] for c in claims},  # short columns for `dvc exp show`
           "claims": {f"claim_{c['claim']}": _headline(c) for c in claims}, "families": {}}
    if rules_hash is not None:
        out["rules_hash"] = rules_hash
    t = final_table(df)
    for fam, g in t[t.split == "id"].groupby("family", sort=True):
        learners = {}
        for _, r in g.iterrows():
            entry = {"value": _num(r["value"]), "sem": _num(r["sem"])}
            if r["metric"] == "excess_risk" and r["reference"] == "bayes":
                entry["ratio_to_bayes"] = _num(r["ratio"])
            elif r["metric"] not in RATIO_METRICS and isinstance(r["reference"], str):
                entry[f"minus_{r['reference']}"] = _num(r["difference"])
            learners[r["label"]] = entry
        out["families"][fam] = {"metric": g.metric.iloc[0], "n": int(g.n_train.iloc[0]), "split": "id",
                                "better": "higher" if higher_is_better(g.metric.iloc[0]) else "lower",
                                "learners": learners}
    return out


def _md_effect(r: dict) -> str:
    se = r.get("se")
    if se is None or not math.isfinite(se):
        return "no interval"
    if r.get("scale") == "relative":
        return f"{100 * r['effect']:+.1f}% [{100 * r['lo']:+.1f}%, {100 * r['hi']:+.1f}%]"
    return f"{r['effect']:+.3g} [{r['lo']:+.3g}, {r['hi']:+.3g}]"


def claims_markdown(claims: list[dict], sensitivity: list[dict], rules_hash: str) -> str:
    """The verdicts, each primary comparison with its effect, interval, seeds and Holm p-value, and the
    sensitivity table, as Markdown (``reports/claims.md``, generated: the README links to it)."""
    out = ["# The paper's claims, judged", "",
           "Generated by `iai report` from the per-task results (do not edit). Each verdict rests on the comparisons "
           "pre-registered in the params (`report.primary`); effects are relative changes of A against B (negative: A "
           "better) with two-sided intervals at the stated level (uncorrected); p is Holm-corrected over the claim's "
           f"comparisons. Rules hash `{rules_hash}`.", "",
           "| claim | verdict | why |", "|---|---|---|"]
    for c in claims:
        why = c["explanation"].split(". Primary:")[0].replace("|", "/")
        out.append(f"| {c['claim']}: {c['title']} | **{c['verdict']}** | {why} |")
    out += ["", "## Primary comparisons", "",
            "| claim | family / split / n | A vs B | metric | effect [interval] | seeds A, B | p (Holm) | shows "
            "| gate |",
            "|---|---|---|---|---|---|---|---|---|"]
    for c in claims:
        for r in c.get("effect") or []:
            if not isinstance(r, dict) or "A" not in r:
                continue
            p = r.get("p_holm")
            p = f"{p:.3g}" if isinstance(p, float) and math.isfinite(p) else "-"
            out.append(f"| {c['claim']} | {r['family']} / {r['split']} / {r['n']} | {r['A']} vs {r['B']} "
                       f"| {r['metric']} | "
                       f"{_md_effect(r)} | {r.get('seeds_a', '-')}, {r.get('seeds_b', '-')} | {p} | "
                       f"{r.get('shows', 'not judged')} | {str(r.get('why', '')).replace('|', '/')} |")
    six = next((c for c in claims if c["claim"] == "6"), None)
    if six:
        out += ["", "## Claim 6", "", six["explanation"].replace("|", "/")]
    if sensitivity:
        cols = list(sensitivity[0])
        out += ["", "## How fragile each verdict is", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        out += ["| " + " | ".join(str(r[k]) for k in cols) + " |" for r in sensitivity]
    return "\n".join(out) + "\n"


def figure_entries(figures_dir: str | Path, out: str | Path) -> list[dict]:
    """Every figure of FIGURES: its data (base64), its path relative to the report, its caption."""
    entries = []
    for name, caption in FIGURES.items():
        path = Path(figures_dir) / name
        if not path.is_file():
            raise ConfigError(f"--figures: {path}: figure not found (run `iai figures` first)")
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        rel = Path(os.path.relpath(path.resolve(), Path(out).resolve().parent)).as_posix()
        entries.append({"name": name, "data": data, "href": rel, "caption": caption})
    return entries


def load_table(path: str | Path, params=None) -> pd.DataFrame:
    """The results table, checked against the schema and (with params) the params' learners and families."""
    df = results.read(path, known_learners(params) if params is not None else None)
    if params is not None:
        unknown = sorted(set(map(str, df.family.unique())) - set(params.families))
        if unknown:
            raise ConfigError(f"{path}: unknown family(ies) {unknown}; the params define {sorted(params.families)}")
    if df.empty:
        raise ConfigError(f"{path}: the results table has no rows")
    return df


def build(results_path: str | Path, figures_dir: str | Path, out: str | Path, metrics_path: str | Path | None,
          params_path: str | Path | None = None, stage_info: list | None = None,
          cost_scaling: str | Path | None = None, tasks_path: str | Path | None = None,
          device_costs: list | None = None, results_doc: str | Path | None = None,
          run_page: str | Path | None = None) -> dict:
    """Write the report (and metrics); returns the claims. ``tasks_path``: the per-task table the claims
    are judged on (default: per_task.parquet beside the results); ``cost_scaling``: the JSON of
    ``iai bench cost``, on which claim 6 is judged; ``device_costs``: more such JSONs (other devices,
    e.g. the committed GPU runs under docs/gpu), each judged by claim 6's rule in the report's device table;
    ``results_doc``: where to write the results page rendered from the metrics (:mod:`iai.analysis.results_doc`);
    ``run_page``: where to write this run's commit and durations, then left out of the report, so that two
    runs of one commit write the same report (without it the report shows them)."""
    params = None
    if params_path:
        from iai.params import load_params

        params = load_params(params_path)
    df = load_table(results_path, params)
    tasks = results.read_tasks(tasks_path or Path(results_path).with_name("per_task.parquet"),
                               known_learners(params) if params is not None else None)
    figs, stages = figure_entries(figures_dir, out), read_stage_info(stage_info or [])  # fail before the work
    scaling = None
    if cost_scaling:
        try:
            scaling = json.loads(Path(cost_scaling).read_text())
            scaling["claim6"]["regimes"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"--cost-scaling: {cost_scaling}: expected the JSON of `iai bench cost` ({err})") from err
    options = {k: v for k, v in vars(params.report).items() if v is not None} if params else {}
    if params:  # n_ctx = B x K_train of the recipe (a family's one-shot rows override it)
        options.setdefault("train_context", params.raw["train"]["batch_size"] * params.raw["train"]["max_steps"])
    claims = [written(c) for c in evaluate_claims(tasks, options, scaling)]  # in the form every writer reads
    rules = Options.from_dict(options)
    fragile = sensitivity(tasks, options, scaling)
    context = {
        "results_path": str(results_path), "results_sha": file_sha256(results_path)[:12], "rows": len(df),
        "params_path": str(params_path) if params_path else None,
        "params_text": Path(params_path).read_text() if params_path else None, "params": params,
        "commit": git_commit(Path(results_path).resolve().parent), "stages": stages,
        "final": final_table(df), "claims": claims, "figures": figs, "table": df,
        "sensitivity": fragile,
        "rules_hash": rules.rules_hash(),
        "devices": device_table([str(x) for x in device_costs], options) if device_costs else None,
        "run_page": os.path.relpath(run_page, Path(out).parent) if run_page else None,
    }
    write_text(out, page(context))
    if run_page:
        write_text(run_page, run_page_html(context))
    headline = metrics(df, claims, rules.rules_hash())
    if metrics_path:
        write_json(metrics_path, headline)
        write_json(Path(metrics_path).with_name("comparisons.json"),
                   comparisons(claims, {"hash": rules.rules_hash(), **rules.rules()}, fragile))
        write_text(Path(metrics_path).with_name("claims.md"), claims_markdown(claims, fragile, rules.rules_hash()))
    if results_doc:
        write_text(results_doc, results_page(headline, rules.rules()))
    return {"claims": claims}


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="data/results/results.csv", help="results table (CSV)")
    p.add_argument("--tasks", default=None, help="per-task table the claims are judged on (default: per_task.parquet "
                   "beside --results)")
    p.add_argument("--figures", default="reports/figures", help="folder of the figures (`iai figures --out`)")
    p.add_argument("--params", help="params YAML (shown in the report; checks learner and family names)")
    p.add_argument("--stage-info", nargs="*", default=[], metavar="JSON",
                   help="stage summary JSON files (durations, devices) written beside the stages' outputs")
    p.add_argument("--cost-scaling", metavar="JSON", help="`iai bench cost` output: claim 6 is judged on it")
    p.add_argument("--device-costs", nargs="*", default=[], metavar="JSON",
                   help="`iai bench cost` outputs of other devices (docs/gpu/cost_*.json), judged by claim 6's rule")
    p.add_argument("--out", default="reports/index.html", help="report HTML (default: reports/index.html)")
    p.add_argument("--run-page", metavar="HTML", help="write this run's commit and stage durations here, and "
                   "leave them out of --out (which is then the same on every run of a commit)")
    p.add_argument("--metrics", default="reports/metrics.json", help="headline numbers for `dvc metrics`")
    p.add_argument("--results-doc", metavar="MD", help="also write the repository's results page (docs/results.md) "
                   "from the metrics; `iai report-doc` renders it again from a metrics.json")


def cli_main(args: argparse.Namespace) -> None:
    out = build(args.results, args.figures, args.out, args.metrics, args.params, args.stage_info, args.cost_scaling,
                args.tasks, args.device_costs, args.results_doc, args.run_page)
    verdicts = ", ".join(f"{c['claim']}: {c['verdict']}" for c in out["claims"])
    print(f"wrote {args.out} and {args.metrics} (claims {verdicts})")
