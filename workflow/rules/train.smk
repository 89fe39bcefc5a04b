# Meta-training: each learned (family, learner) pair of `runs:` is its own job.


rule train:
    """Greedy meta-training of one learned learner; resumes from <learner>.resume.pt after a kill.

    Its params record holds the run's resolved entry, so editing one run retrains that run only.
    """
    input:
        code=CODE["train"],
    output:
        model="data/models/{family}/{learner}.pt",
        history="data/models/{family}/{learner}.csv",
        summary="data/models/{family}/{learner}.json",
    params:
        file=PARAMS_FILE,
        run=lambda w: run_settings(w.family, w.learner),
    threads: train_threads
    resources:
        gpu=1,  # a counter: one training per GPU with `--resources gpu=N` (workflow/profiles/gpu)
    log:
        "logs/train/{family}/{learner}.log",
    shell:
        "iai train --params {params.file} --family {wildcards.family} --learner {wildcards.learner}"
        " --out data/models > {log} 2>&1"


rule models:
    """Every learned run's checkpoint, training history and summary (the dvc.yaml stage `train`)."""
    input:
        [f"data/models/{f}/{l}.{ext}" for f, l in RUNS for ext in ("pt", "csv", "json")],
