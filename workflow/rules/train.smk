# Meta-training. A run with the params' `seeds` trains all its seeds in one job (`train_run`: torch's
# imports and the optimizer's setup, about 5 s of a CPU process, once per run rather than per seed);
# a run with its own seed count trains each seed in its own job (`train`). `train` also makes any one
# seed's files when asked for them alone (`snakemake data/models/F/L/seed1.pt`).


ruleorder: train_run > train


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
    threads: lambda w: train_threads(w.family, w.learner)
    resources:
        gpu=1,  # one slot of the GPU: workflow/profiles/gpu packs `--resources gpu=N` trainings onto it
    log:
        "logs/train/{family}/{learner}/seed{seed}.log",
    shell:
        "iai train --params {params.file} --family {wildcards.family} --learner {wildcards.learner}"
        " --seed {wildcards.seed} --out data/models > {log} 2>&1"


rule train_run:
    """Greedy meta-training of every seed of one learned learner, one seed after another in one
    process (runs with the params' `seeds`); each seed resumes from its seed<S>.resume.pt after a kill."""
    input:
        code=CODE["train"],
    output:
        models=[f"data/models/{{run}}/seed{s}.pt" for s in range(RAW.get("seeds", 1))],
        histories=[f"data/models/{{run}}/seed{s}.csv" for s in range(RAW.get("seeds", 1))],
        summaries=[f"data/models/{{run}}/seed{s}.json" for s in range(RAW.get("seeds", 1))],
    wildcard_constraints:
        run="|".join(re.escape(f"{f}/{l}") for f, l in RUNS_OF_ALL_SEEDS) or "(?!)",  # (?!): no run
    params:
        file=PARAMS_FILE,
        run=lambda w: run_settings(*w.run.split("/")),
        family=lambda w: w.run.split("/")[0],
        learner=lambda w: w.run.split("/")[1],
    threads: lambda w: train_threads(*w.run.split("/"))
    resources:
        gpu=1,
    log:
        "logs/train/{run}.log",
    shell:
        "iai train --params {params.file} --family {params.family} --learner {params.learner}"
        " --out data/models > {log} 2>&1"


rule models:
    """Every learned run's checkpoint, training history and summary (the dvc.yaml stage `train`)."""
    input:
        [path for f, l in RUNS for ext in ("pt", "csv", "json") for path in run_files(f, l, ext)],
