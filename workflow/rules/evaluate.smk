# Evaluation at growing n (data/results/eval: computed, the same on every run), the cost benchmark
# (`make bench` only: timings, which differ from run to run, written to the committed BENCH_DIR), and
# the merged results table.


rule evaluate:
    """Every reference of a family (learner `references`) or every learned run of it, each with every
    training seed (learner `runs`), one process each, on every split of the family's bank, at every n:
    per-task rows. `snakemake data/results/eval/F/RUN.parquet` evaluates one run alone."""
    input:
        unpack(evaluation_inputs),
        code=CODE["evaluate"],
    output:
        table="data/results/eval/{family}/{learner}.parquet",
        summary="data/results/eval/{family}/{learner}.json",
    params:
        file=PARAMS_FILE,
        settings=lambda w: evaluation_settings(w.family, w.learner),
    threads: 1
    log:
        "logs/evaluate/{family}/{learner}.log",
    shell:
        "iai evaluate --params {params.file} --family {wildcards.family} --learner {wildcards.learner}"
        " --banks data/banks --models data/models --out {output.table} > {log} 2>&1"


rule bench:
    """Wall time and peak memory of a family's iterative learners against their one-shot counterparts.

    It takes every core so that no other job runs beside it and disturbs the timings.
    """
    input:
        models=lambda w: [f"data/models/{w.family}/{name}/seed0.pt" for name in BENCH[w.family]],
        code=CODE["bench"],
    output:
        table=f"{BENCH_DIR}/{{family}}.csv",
        summary=f"{BENCH_DIR}/{{family}}.json",
    params:
        file=PARAMS_FILE,
        settings=lambda w: bench_settings(w.family),
        recipe=lambda w: recipe(bench_settings(w.family)),
    wildcard_constraints:
        family=r"(?!scaling$)[A-Za-z0-9][A-Za-z0-9_.-]*",  # BENCH_DIR/scaling.* is the cost_scaling rule's
    threads: every_core()
    resources:
        gpu=1,
    log:
        "logs/bench/{family}.log",
    shell:
        "iai bench --params {params.file} --family {wildcards.family} --models data/models --threads {threads}"
        " --recipe {params.recipe} --out {output.table} > {log} 2>&1"


rule cost_scaling:
    """Claim 6 where attention dominates: `iai bench cost`, each regime's iterative learner against its
    one-shot twin (untrained: cost depends on the architecture), n doubling to bench.max_n.

    It takes every core so that no other job runs beside it and disturbs the timings.
    """
    input:
        code=CODE["bench"],
    output:
        json=COST_SCALING,
        figure=f"{BENCH_DIR}/scaling.png",
    params:
        file=PARAMS_FILE,
        family=COST_SCALING_FAMILY,
        max_n=PARAMS.bench.max_n,
        repeats=PARAMS.bench.repeats,
        tasks=PARAMS.bench.scaling_tasks,
        settings=COST_SCALING_SETTINGS,
        recipe=recipe(COST_SCALING_SETTINGS),
    threads: every_core()
    resources:
        gpu=1,
    log:
        "logs/bench/cost_scaling.log",
    shell:
        "iai bench cost --params {params.file} --family {params.family} --max-n {params.max_n} --threads {threads}"
        " --repeats {params.repeats} --tasks {params.tasks} --recipe {params.recipe}"
        " --out {output.json} --figure {output.figure} > {log} 2>&1"


rule evaluations:
    """Every per-task evaluation table (the dvc.yaml stage `evaluate`)."""
    input:
        evaluation_tables(),


rule benchmarks:
    """The cost benchmark of the params (`make bench`, which forces rules bench and cost_scaling to run):
    every cost table and the cost scaling, into BENCH_DIR, to be committed."""
    input:
        benchmark_files(),


rule merge:
    """Every evaluation table and the committed cost tables -> the per-task table and its summary
    (checked and sorted)."""
    input:
        tables=evaluation_tables(),
        code=CODE["merge"],
    output:
        summary="data/results/results.csv",
        tasks="data/results/per_task.parquet",
    params:
        costs=COST_ROWS,  # read, never made here (committed_benchmark)
        benchmark=file_digest(COST_ROWS),
    log:
        "logs/merge.log",
    shell:
        "iai merge {input.tables} {params.costs} --out {output.summary} --tasks {output.tasks} > {log} 2>&1"
