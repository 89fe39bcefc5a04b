# Evaluation at growing n, cost measurements, and the merged results table.


rule evaluate:
    """One learner (a reference or a trained run) on every split of a family's bank, at every n."""
    input:
        unpack(evaluation_inputs),
        code=code("evaluate"),
    output:
        table="data/results/eval/{family}/{learner}.csv",
        summary="data/results/eval/{family}/{learner}.json",
    params:
        file=PARAMS,
        settings=lambda w: P.settings(RAW, "evaluate", w.family, w.learner),
    wildcard_constraints:
        learner=r"(?!cost\.(?:csv|json)$)[A-Za-z0-9][A-Za-z0-9_.-]*",
    threads: 1
    conda:
        ENV
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
        models=lambda w: [f"data/models/{w.family}/{name}.pt" for name in PLAN.bench[w.family]],
        code=code("bench"),
    output:
        table="data/results/eval/{family}/cost.csv",
        summary="data/results/eval/{family}/cost.json",
    params:
        file=PARAMS,
        settings=lambda w: P.settings(RAW, "bench", w.family),
    threads: workflow.cores
    resources:
        gpu=1,
    conda:
        ENV
    log:
        "logs/bench/{family}.log",
    shell:
        "iai bench --params {params.file} --family {wildcards.family} --models data/models --threads {threads}"
        " --out {output.table} > {log} 2>&1"


rule merge:
    """Every evaluation and cost table -> data/results/results.csv (checked and sorted)."""
    input:
        tables=PLAN.results_tables(),
        code=code("merge"),
    output:
        "data/results/results.csv",
    conda:
        ENV
    log:
        "logs/merge.log",
    shell:
        "iai merge {input.tables} --out {output} > {log} 2>&1"
