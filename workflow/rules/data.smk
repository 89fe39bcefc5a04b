# Task banks and the resolved run specs: the inputs of training and evaluation.


rule generate:
    """The fixed evaluation task banks of one family, every split, from the bank seed stream."""
    input:
        code=code("generate"),
    output:
        bank="data/banks/{family}.pt",
        manifest="data/banks/{family}.json",
    params:
        file=PARAMS,
        settings=lambda w: P.settings(RAW, "generate", w.family),
    conda:
        ENV
    log:
        "logs/generate/{family}.log",
    shell:
        "iai generate --params {params.file} --family {wildcards.family} --out data/banks > {log} 2>&1"


rule resolve_run:
    """One learned run's entry of `runs:`, model and train defaults merged in: all that training reads.

    Both Snakemake (by checksum) and DVC (by hash) compare this file, so a change to one run's
    settings reruns that run's training only, wherever the run sits in the list.
    """
    output:
        "data/runs/{family}/{learner}.json",
    params:
        run=lambda w: P.canonical(P.resolved_run(PLAN.params, w.family, w.learner)),
    conda:
        ENV
    log:
        "logs/resolve_run/{family}/{learner}.log",
    shell:
        "python -m json.tool --sort-keys <<< {params.run:q} > {output} 2> {log}"
