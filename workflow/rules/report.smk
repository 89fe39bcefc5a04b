# Figures from the results table, then the report and its metrics.


rule figures:
    """The fixed list of figures of iai.analysis.captions.FIGURES, drawn from the results table."""
    input:
        results="data/results/results.csv",
        histories=[path for f, l in RUNS for path in run_files(f, l, "csv")],
        code=CODE["figures"],
    output:
        [
            report(path, caption=f"../report/figures/{Path(path).stem}.rst", category="Figures")
            for path in FIGURE_FILES
        ],
    params:
        file=PARAMS_FILE,
        settings=settings(references=RAW["references"]["learners"], train=RAW["train"], runs=RAW["runs"],
                          train_context=RAW.get("report", {}).get("train_context")),
        captions=FIGURES,
    log:
        "logs/figures.log",
    shell:
        "iai figures --results {input.results} --params {params.file} --models data/models --out reports/figures"
        " > {log} 2>&1"


rule report:
    """reports/index.html (figures, tables, claims, provenance), reports/metrics.json and docs/results.md."""
    input:
        results="data/results/results.csv",
        tasks="data/results/per_task.parquet",
        figures=FIGURE_FILES,
        stage_info=stage_summaries(),
        device_costs=DEVICE_COSTS,
        code=CODE["report"],
    output:
        html="reports/index.html",
        metrics="reports/metrics.json",
        claims="reports/claims.md",  # written beside the metrics
        comparisons="reports/comparisons.json",
        results_doc="docs/results.md",  # the repository's results page, rendered from the metrics
        # this run's commit and the jobs' durations: they differ from run to run, so DVC does not hash them
        run_page="reports/run.html",
    params:
        file=PARAMS_FILE,
        settings=settings(params=RAW),  # the report shows the whole recipe
        # the committed benchmark (committed_benchmark: read, never made here): claim 6 and its summaries
        benchmark=file_digest(BENCHMARK),
        bench_info=[p for p in BENCHMARK if p.endswith(".json") and p != COST_SCALING],
        cost_scaling=f"--cost-scaling {COST_SCALING}" if COST_SCALING in BENCHMARK else "",
    log:
        "logs/report.log",
    shell:
        "iai report --results {input.results} --tasks {input.tasks} --figures reports/figures --params {params.file}"
        " --stage-info {input.stage_info} {params.bench_info} {params.cost_scaling}"
        " --device-costs {input.device_costs} --out {output.html} --run-page {output.run_page}"
        " --metrics {output.metrics} --results-doc {output.results_doc} > {log} 2>&1"
