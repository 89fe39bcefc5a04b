# Meta-training: each training seed of each learned (family, learner) pair of `runs:` is its own job.


rule train:
    """Greedy meta-training of one training seed of one learned learner; resumes from
    seed<S>.resume.pt after a kill.

    Its params record holds the run's resolved entry, so editing one run retrains that run only.
    """
    input:
        code=CODE["train"],
    output:
        model="data/models/{family}/{learner}/seed{seed}.pt",
        history="data/models/{family}/{learner}/seed{seed}.csv",
        summary="data/models/{family}/{learner}/seed{seed}.json",
    params:
        file=PARAMS_FILE,
        run=lambda w: run_settings(w.family, w.learner),
    threads: train_threads
    resources:
        gpu=1,  # a counter: one training per GPU with `--resources gpu=N` (workflow/profiles/gpu)
    log:
        "logs/train/{family}/{learner}/seed{seed}.log",
    shell:
        "iai train --params {params.file} --family {wildcards.family} --learner {wildcards.learner}"
        " --seed {wildcards.seed} --out data/models > {log} 2>&1"


rule models:
    """Every learned run's checkpoint, training history and summary (the dvc.yaml stage `train`)."""
    input:
        [path for f, l in RUNS for ext in ("pt", "csv", "json") for path in run_files(f, l, ext)],
