# Figures from the results table, then the report and its metrics.


rule figures:
    """The fixed list of figures of iai.figures.FIGURES, drawn from the results table."""
    input:
        results="data/results/results.csv",
        code=code("figures"),
    output:
        [
            report(path, caption=f"../report/figures/{name.rsplit('.', 1)[0]}.rst", category="Figures")
            for name, path in zip(PLAN.figures, P.figures(PLAN.figures))
        ],
    params:
        file=PARAMS,
        settings=P.settings(RAW, "figures"),
        captions=PLAN.captions,
    conda:
        ENV
    log:
        "logs/figures.log",
    shell:
        "iai figures --results {input.results} --params {params.file} --out reports/figures > {log} 2>&1"


rule report:
    """reports/index.html (figures, tables, claims, provenance) and reports/metrics.json."""
    input:
        results="data/results/results.csv",
        figures=P.figures(PLAN.figures),
        stage_info=PLAN.stage_info(),
        code=code("report"),
    output:
        html="reports/index.html",
        metrics="reports/metrics.json",
    params:
        file=PARAMS,
        settings=P.settings(RAW, "report"),
    conda:
        ENV
    log:
        "logs/report.log",
    shell:
        "iai report --results {input.results} --figures reports/figures --params {params.file}"
        " --stage-info {input.stage_info} --out {output.html} --metrics {output.metrics} > {log} 2>&1"
