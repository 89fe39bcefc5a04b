# Helpers of the rules: job inputs and resources computed from the plan (workflow/scripts/plan.py).


def code(stage):
    """The iai source files the stage's command imports: editing one reruns the stage."""
    return [os.path.relpath(P.REPO / f) for f in P.code_files(P.STAGE_MODULES[stage])]


def train_threads(wildcards):
    """The run's train.threads (0 = every core Snakemake may use)."""
    return PLAN.params.run(wildcards.family, wildcards.learner).train.get("threads", 0) or workflow.cores


def evaluation_inputs(wildcards):
    """The family's bank, and for a learned learner its checkpoint."""
    inputs = {"bank": f"data/banks/{wildcards.family}.pt"}
    if wildcards.learner not in P.REFERENCES:
        inputs["model"] = f"data/models/{wildcards.family}/{wildcards.learner}.pt"
    return inputs
