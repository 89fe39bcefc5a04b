"""The HTML of ``reports/index.html``: one self-contained page (inline CSS, embedded PNGs, no scripts).

Built with f-strings and :func:`html.escape`; every value shown comes from the context that
:func:`iai.analysis.report.build` computes from the results table, the params and the stage summaries.
"""

from __future__ import annotations

import html
import math

import pandas as pd

from iai.analysis.selection import PREDICTION, higher_is_better
from iai.core.vocab import REGIME_ORDER

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #fff; line-height: 1.45; }
main { max-width: 1240px; margin: 0 auto; padding: 1.2rem 1.6rem 4rem; }
h1 { font-size: 1.7rem; margin: 0.6rem 0 0.2rem; } h2 { font-size: 1.3rem; margin-top: 2.4rem;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; } h3 { font-size: 1.05rem; margin: 1.6rem 0 0.4rem; }
.meta { color: #555; font-size: 0.9rem; } code { font-size: 0.88em; background: #f4f4f6; padding: 0 0.25em; }
nav { font-size: 0.92rem; margin: 0.8rem 0; } nav a { margin-right: 1rem; }
table { border-collapse: collapse; font-size: 0.84rem; margin: 0.5rem 0 1rem; }
th, td { border-bottom: 1px solid #e4e4e8; padding: 0.22rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f6f6f8; font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { display: inline-block; padding: 0.05rem 0.5rem; border-radius: 0.7rem; font-size: 0.82rem;
           font-weight: 600; white-space: nowrap; }
.v-reproduced { background: #d9f2de; color: #125c24; } .v-contradicted { background: #fbe0dd; color: #8a1c10; }
.v-inconclusive { background: #ececef; color: #555; }
.outcome-win { color: #125c24; } .outcome-loss { color: #8a1c10; font-weight: 600; } .outcome-tie { color: #666; }
figure { margin: 1.2rem 0 2rem; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9rem; color: #333; margin-top: 0.3rem; max-width: 60rem; }
details { margin: 0.4rem 0 1rem; } summary { cursor: pointer; color: #0b57d0; }
pre { background: #f7f7f9; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
.test { font-size: 0.9rem; color: #333; max-width: 62rem; } .scroll { overflow-x: auto; }
"""

esc = html.escape


def fmt(v) -> str:
    """A cell: numbers to 4 significant digits, NaN as a dash, infinities as signs."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        if math.isinf(v):
            return "+∞" if v > 0 else "−∞"
        return f"{v:.4g}"
    return esc(str(v))


def table(rows: list[dict], columns: list[str] | None = None, raw: set[str] = frozenset()) -> str:
    """An HTML table; columns in ``raw`` hold HTML already."""
    if not rows:
        return "<p><em>none</em></p>"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            if c == "outcome":
                cls = f' class="outcome-{esc(str(v))}"'
            cells.append(f"<td{cls}>{v if c in raw else fmt(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def badge(verdict: str) -> str:
    return f'<span class="verdict v-{verdict.replace(" ", "-")}">{esc(verdict)}</span>'


def _devices(ctx: dict) -> str:
    st = ctx["stages"]
    for col in ("device_name", "device"):
        if not st.empty and col in st and st[col].notna().any():
            return ", ".join(sorted(set(st[col].dropna().astype(str))))
    p = ctx["params"]
    return f"{p.device} (from the params; no stage summaries given)" if p else "unknown (no stage summaries given)"


def _run_link(ctx: dict) -> str:
    """Where this run's commit and durations are: this page, or the run page beside it."""
    if ctx.get("run_page"):
        return f' · this run (commit, durations): <a href="{esc(ctx["run_page"])}">{esc(ctx["run_page"])}</a>'
    return f" · git commit {esc(ctx['commit'])}"


def header(ctx: dict) -> str:
    params = f" · params <code>{esc(ctx['params_path'])}</code>" if ctx["params_path"] else ""
    return f"""<h1>Iterative amortized inference: reproduction report</h1>
<p class="meta">Results <code>{esc(ctx['results_path'])}</code>
 ({ctx['rows']} rows, sha256 {ctx['results_sha']}){params}
 · device: {esc(_devices(ctx))}{_run_link(ctx)}</p>
<p>Every number, table, figure and verdict below is computed from the results table and the stages'
summaries; none is written by hand. Method: Mittal et al. 2025, arXiv 2510.11471.</p>
<nav><a href="#claims">Claims</a><a href="#run">What was run</a><a href="#summary">Final numbers</a>
<a href="#figures">Figures</a><a href="#claim-details">Claim details</a></nav>"""


def _effect_cell(r: dict) -> str:
    if r.get("se") is None or not math.isfinite(r.get("se") or math.nan):
        return "no interval"
    if r.get("scale") == "relative":
        return f"{100 * r['effect']:+.1f}% [{100 * r['lo']:+.1f}%, {100 * r['hi']:+.1f}%]"
    return f"{r['effect']:+.3g} [{r['lo']:+.3g}, {r['hi']:+.3g}]"


def primary_rows(c: dict) -> list[dict]:
    """A claim's pre-registered comparisons, one row each."""
    return [{"family / split / n": f"{r['family']} / {r['split']} / {r['n']}", "A vs B": f"{r['A']} vs {r['B']}",
             "metric": r["metric"], "effect [interval]": _effect_cell(r),
             "seeds A, B": f"{r.get('seeds_a', '—')}, {r.get('seeds_b', '—')}",
             "p (Holm)": r.get("p_holm", math.nan), "shows": r.get("shows", "not judged"), "gate": r.get("why", "")}
            for r in c.get("effect") or [] if isinstance(r, dict) and "A" in r]


def claims_overview(claims: list[dict], ctx: dict | None = None) -> str:
    rows = [{"#": c["claim"], "claim (paper, section 4)": esc(c["title"]), "verdict": badge(c["verdict"]),
             "measured": esc(c["explanation"])} for c in claims]
    out = ['<h2 id="claims">The paper\'s claims</h2>',
           table(rows, raw={"claim (paper, section 4)", "verdict", "measured"}),
           '<p class="test">Each verdict rests on the comparisons named in the params before any result '
           "(<code>report.primary</code>), with Holm's correction over a claim's comparisons; everything else is "
           'secondary and decides nothing. The rule, the gate and every comparison are under <a href="#claim-details">'
           "Claim details</a>.</p>"]
    if ctx and ctx.get("rules_hash"):
        out.append(f'<p class="test">Rules in force: hash <code>{esc(ctx["rules_hash"])}</code> '
                   "(recorded with the rules in <code>reports/comparisons.json</code>).</p>")
    if ctx and ctx.get("sensitivity"):
        out += ["<h3>How fragile each verdict is</h3><p class=\"test\">Each verdict re-judged under alternative "
                "reasonable rules (the competence threshold, the level, and every primary comparison moved to the "
                "largest n evaluated, past the trained horizon).</p>", table(ctx["sensitivity"])]
    if ctx and ctx.get("devices") is not None and not ctx["devices"].empty:
        out += ["<h3>Claim 6 on other devices</h3><p class=\"test\">The committed cost benchmarks of other devices, "
                "judged by claim 6's rule.</p>", table(ctx["devices"].to_dict("records"))]
    return "".join(out)


def what_was_run(ctx: dict) -> str:
    df = ctx["table"]
    q = df[~df.metric.isin(["wall_time_s", "peak_memory_mb"])]
    fams = [{"family": f, "kind": g.kind.iloc[0], "d": int(g.dim.iloc[0]),
             "splits": ", ".join(sorted(g.split.unique())),
             "n": ", ".join(str(n) for n in sorted(g.n_train.unique())), "tasks per estimate": int(g.n_tasks.max()),
             "metrics": ", ".join(sorted(g.metric.unique()))} for f, g in q.groupby("family")]
    lr = df.drop_duplicates(["learner", "mode", "context"]).copy()
    lr["o"] = lr.regime.map(REGIME_ORDER.index)
    learners = [{"learner": r["learner"], "regime": r["regime"], "signal": r["signal"], "state": r["state"],
                 "history": int(r["history"]), "mode": r["mode"], "context": r["context"],
                 "families": ", ".join(sorted(df[df.learner == r["learner"]].family.unique()))}
                for _, r in lr.sort_values(["o", "learner", "mode", "context"]).iterrows()]
    out = ['<h2 id="run">What was run</h2><h3>Families and evaluation</h3>', table(fams),
           "<h3>Learners</h3>", table(learners),
           "<h3>Stages</h3>", stages(ctx["stages"], durations=not ctx.get("run_page"))]
    if ctx["params"] is not None:
        p = ctx["params"]
        key = {"seed": p.seed, "device": p.device, **{f"banks.{k}": v for k, v in p.banks.items()},
               **{f"train.{k}": p.raw["train"].get(k) for k in ("batch_size", "max_steps", "iterations", "lr")},
               **{f"model.{k}": v for k, v in p.raw["model"].items()},
               **{f"{section}.{k}": str(v) for section in ("evaluate", "bench")  # as written in the file
                  for k, v in p.raw.get(section, {}).items()}, "runs": len(p.runs)}
        out += ["<h3>Params</h3>", table([{"key": k, "value": v} for k, v in key.items()]),
                f"<details><summary>The params file <code>{esc(ctx['params_path'])}</code></summary>"
                f"<pre>{esc(ctx['params_text'])}</pre></details>"]
    return "".join(out)


def stages(st: pd.DataFrame, durations: bool = True) -> str:
    """The stages' jobs: per stage, and every job; with their durations or without them (``durations``:
    a page whose bytes must be the same on every run of a commit leaves them to the run page)."""
    if st.empty:
        return "<p><em>No stage summaries were given (<code>--stage-info</code>).</em></p>"
    st = st.copy()
    st["duration_s"] = pd.to_numeric(st.get("duration_s"), errors="coerce")
    st["where"] = st.get("device_name", pd.Series(index=st.index, dtype=object))
    if "device" in st:
        st["where"] = st["where"].fillna(st["device"])
    timed = ("total duration (s)", "longest job (s)", "duration_s")
    rows = [{"stage": s, "jobs": len(g), "total duration (s)": float(g.duration_s.sum(min_count=1)),
             "longest job (s)": float(g.duration_s.max()),
             "device": ", ".join(sorted(set(g["where"].dropna().astype(str)))) or "—"}
            for s, g in st.groupby("stage", sort=False)]
    rows = rows if durations else [{k: v for k, v in r.items() if k not in timed} for r in rows]
    cols = [c for c in ("stage", "family", "learner", "duration_s", "device", "device_name", "rows", "iterations",
                        "final_loss", "threads") if c in st and (durations or c not in timed)]
    jobs = [{c: r[c] for c in cols if not (isinstance(r[c], float) and math.isnan(r[c]))} for _, r in st.iterrows()]
    return table(rows) + f"<details><summary>Every job ({len(jobs)})</summary>{table(jobs, cols)}</details>"


def final_numbers(ctx: dict) -> str:
    t = ctx["final"]
    out = ['<h2 id="summary">Final numbers</h2>'
           '<p class="test">Each learner\'s primary metric at the family\'s largest n, '
           "final step, mean ± standard error over tasks (the best of each split in bold: the lowest, or the "
           "highest for edge accuracy); the last column compares with the family's reference in split id: "
           "divided by it for regression and classification (Bayes, or MAP), minus it for the topological order "
           "(sink search: edge accuracy above it, higher is better) and for generation (the true samples, the MMD "
           "floor: MMD² above it, lower is better).</p>"]
    for fam, g in t.groupby("family", sort=True):
        splits = sorted(g.split.unique(), key=lambda s: (s != "id", s))
        up = higher_is_better(g.metric.iloc[0])
        best = g.groupby("split")["value"].max() if up else g.groupby("split")["value"].min()
        by_ratio = g.metric.iloc[0] in PREDICTION  # else a difference (see iai.analysis.report.final_table)
        col = "÷ reference (id)" if by_ratio else "− reference (id)"
        g = g.assign(o=g.regime.map(REGIME_ORDER.index)).sort_values(["o", "label"])
        rows = []
        for lab, gl in g.groupby("label", sort=False):
            row = {"learner": lab, "regime": gl.regime.iloc[0]}
            for s in splits:
                r = gl[gl.split == s]
                cell = f"{r['value'].iloc[0]:.4g} ± {r['sem'].iloc[0]:.2g}" if len(r) else "—"
                row[s] = f"<b>{cell}</b>" if len(r) and r["value"].iloc[0] == best[s] else cell
            rid = gl[gl.split == "id"]
            row[col] = float((rid.ratio if by_ratio else rid.difference).iloc[0]) if len(rid) else math.nan
            rows.append(row)
        ref = g.reference.iloc[0] if isinstance(g.reference.iloc[0], str) else "none"
        better = "higher is better" if up else "lower is better"
        out.append(f"<h3>{esc(fam)}: {esc(g.metric.iloc[0])} ({better}) at n = {int(g.n_train.iloc[0])} "
                   f"(reference: {esc(ref)})</h3>" + table(rows, raw=set(splits)))
    return "".join(out)


def figures(ctx: dict) -> str:
    out = ['<h2 id="figures">Figures</h2>']
    for i, f in enumerate(ctx["figures"], 1):
        out.append(f'<figure id="fig-{esc(f["name"].removesuffix(".png"))}"><a href="{esc(f["href"])}">'
                   f'<img src="data:image/png;base64,{f["data"]}" alt="{esc(f["name"])}"></a>'
                   f'<figcaption><b>Figure {i}</b> (<code>{esc(f["name"])}</code>). '
                   f'{esc(f["caption"])}</figcaption></figure>')
    return "".join(out)


def numbers_table(rows: list[dict]) -> str:
    """A claim's comparisons; columns with one value in every row are stated once above the table."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    same = [c for c in cols if len(rows) > 1 and all(c in r for r in rows) and len({str(r[c]) for r in rows}) == 1]
    note = "; ".join(f"{esc(c)}: {fmt(rows[0][c])}" for c in same)
    return ((f'<p class="test">In every row: {note}.</p>' if note else "")
            + table(rows, [c for c in cols if c not in same]))


def claim_details(claims: list[dict]) -> str:
    out = ['<h2 id="claim-details">Claim details</h2>']
    for c in claims:
        prim = primary_rows(c)
        second = [{k: v for k, v in r.items() if k not in ("claim", "role", "shows", "test")}
                  for r in c["numbers"] if r.get("role") == "secondary"]
        other = [r for r in c["numbers"] if r.get("role") not in ("primary", "secondary")]
        nums = (("<p><b>Primary comparisons</b></p>" + table(prim)) if prim else "")
        if second:
            nums += (f"<details><summary>{len(second)} secondary comparisons (reported, deciding nothing)</summary>"
                     f"{numbers_table(second)}</details>")
        if other:
            nums += numbers_table(other)
        out.append(f'<h3 id="claim-{c["claim"]}">Claim {c["claim"]}: {esc(c["title"])} {badge(c["verdict"])}</h3>'
                   f'<p class="test"><b>Test.</b> {esc(c["test"])}</p>'
                   f'<p class="test"><b>Precondition.</b> {esc(c.get("precondition", "-"))}</p>'
                   f'<p class="test"><b>Measured</b> (effect: relative change of A against B, negative = A better, '
                   f'[two-sided interval at the stated level, uncorrected]). {esc(c["explanation"])}</p>{nums}')
    return "".join(out)


def _html(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body><main>{body}</main></body></html>\n")


def page(ctx: dict) -> str:
    """The report. With ``ctx["run_page"]`` (the run page's address, relative to the report) it holds
    nothing that differs between two runs of one commit: no commit, no durations (see :func:`run_page`)."""
    return _html("iai reproduction report", "".join([
        header(ctx), claims_overview(ctx["claims"], ctx), what_was_run(ctx), final_numbers(ctx), figures(ctx),
        claim_details(ctx["claims"])]))


def run_page(ctx: dict) -> str:
    """What this run of the report's results was: the commit and every stage job's duration and device."""
    return _html("iai: this run", f"""<h1>This run</h1>
<p class="meta">Results <code>{esc(ctx['results_path'])}</code> ({ctx['rows']} rows, sha256 {ctx['results_sha']})
 · git commit {esc(ctx['commit'])} · device: {esc(_devices(ctx))}</p>
<p>The commit the report was written at, and how long each stage's jobs took (from the stages' summaries and
their <code>*.timing.json</code> files). None of it is hashed by DVC: it differs from run to run.</p>
<h2>Stages</h2>{stages(ctx["stages"])}""")
