# Meta-training: each learned (family, learner) pair of `runs:` is its own job.


rule train:
    """Greedy meta-training of one learned learner; resumes from <learner>.resume.pt after a kill."""
    input:
        run="data/runs/{family}/{learner}.json",
        code=code("train"),
    output:
        model="data/models/{family}/{learner}.pt",
        history="data/models/{family}/{learner}.csv",
        summary="data/models/{family}/{learner}.json",
    params:
        file=PARAMS,
    threads: train_threads
    resources:
        gpu=1,  # a counter: one training per GPU with `--resources gpu=N` (workflow/profiles/gpu)
    conda:
        ENV
    log:
        "logs/train/{family}/{learner}.log",
    shell:
        "iai train --params {params.file} --family {wildcards.family} --learner {wildcards.learner}"
        " --out data/models > {log} 2>&1"
