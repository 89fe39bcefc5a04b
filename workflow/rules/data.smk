# Task banks: the fixed evaluation tasks of every family and split.


rule generate:
    """The fixed evaluation task banks of one family, every split, from the bank seed stream."""
    input:
        code=CODE["generate"],
    output:
        bank="data/banks/{family}.pt",
        manifest="data/banks/{family}.json",
    params:
        file=PARAMS_FILE,
        settings=lambda w: settings(seed=RAW["seed"], banks=RAW["banks"], family=RAW["families"][w.family]),
    log:
        "logs/generate/{family}.log",
    shell:
        "iai generate --params {params.file} --family {wildcards.family} --out data/banks > {log} 2>&1"


rule banks:
    """Every family's bank (the dvc.yaml stage `generate`)."""
    input:
        expand("data/banks/{family}.{ext}", family=FAMILIES, ext=("pt", "json")),
