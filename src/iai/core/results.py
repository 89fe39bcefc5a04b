"""The results tables: per-task rows (what every comparison pairs on) and their tidy summary.

``data/results/per_task.parquet`` has one row per (family, split, learner, training seed, n, step,
metric, task): :data:`TASK_COLUMNS`. Every learner evaluated on a family's split sees the same bank
tasks and the same mini-batches, so two learners' rows pair up by ``task``; a learned learner has one
row per training ``seed`` (references: seed 0). The claims read this table.

``data/results/results.csv`` is its summary (:func:`summarize`), one row per (family, split, learner,
n_train, step, metric), plus the cost rows of ``iai bench`` (which are measurements, not per task):

=============  ==============================================================================
family         family name from the params (e.g. ``linreg``)
kind           family kind (``linear_regression``, ...)
dim            input dimension of the family
split          ``id`` or an out-of-distribution split name (``ood_input_scale``, ...)
regime         ``parametric``, ``implicit``, ``explicit``, ``classical`` or ``exact``
learner        learner name (``bayes``, ``adam``, ``parametric_obs``, ...)
signal         ``obs``, ``grad``, ``both`` for learned parametric/explicit learners, else ``none``
state          implicit regime: what the running state carries (``logits``, ``hidden``, ``probs``,
               ``probs_residual``); else ``none``
history        non-Markovian window of past states (0 = Markovian, and for non-learned learners)
gain           learned learners: how each update is scaled (``inverse_step``: by the hand-written
               b/(n+b); ``constant``: by 1); ``none`` for the others
nominal        whether the update contains the hand-written gradient term (learned parametric and
               explicit learners with ``nominal: true``; the ``nominal_rule`` reference is that term alone)
mode           ``iterative``, or ``one_shot`` (the whole context in one step)
context        ``all`` (every one of the n_train points) or ``capped`` (one-shot learner fed a random
               subset of its training context size)
batch_size     mini-batch size B of the rollout (for one-shot: the context it read)
n_train        dataset size n the learner was given
step           steps taken so far (1 .. ceil(n/B) * epochs)
n_seen         points read so far, repeats included
metric         ``mse``, ``excess_risk`` (regression), ``error_rate``, ``nll`` (classification),
               ``edge_accuracy``, ``valid_order`` (topological order; higher is better),
               ``mmd``, ``sample_nll``, ``cfm_loss`` (generation), or the cost metrics
               ``wall_time_s``, ``peak_memory_mb``
value          mean over tasks of the mean over training seeds
sem            standard error over tasks of the seed-averaged value (NaN where not defined)
seed_sd        standard deviation across training seeds of each seed's mean over tasks (NaN: one seed)
n_tasks        tasks averaged
n_seeds        training seeds averaged (references and cost rows: 1)
=============  ==============================================================================
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from iai.core.vocab import CONTEXTS, MODES, REGIMES, TABLE_METRICS
from iai.utils import ConfigError, NoContentHash, atomic_path

LEARNER_COLUMNS = ["family", "kind", "dim", "split", "regime", "learner", "signal", "state", "history", "nominal",
                   "gain", "mode", "context", "batch_size"]
COLUMNS = LEARNER_COLUMNS + ["n_train", "step", "n_seen", "metric", "value", "sem", "seed_sd", "n_tasks", "n_seeds"]
TASK_COLUMNS = LEARNER_COLUMNS + ["n_train", "step", "n_seen", "metric", "seed", "task", "value"]
KEY = ["family", "split", "learner", "mode", "context", "n_train", "step", "metric"]
TASK_KEY = KEY + ["seed", "task"]
VALID_SPLIT = "valid"  # the banks' validation tasks (banks.valid_tasks)
_DEFAULTS = {"nominal": False, "gain": "none", "seed_sd": np.nan, "n_seeds": 1}


def validate(df: pd.DataFrame, source: str = "results table", known_learners: Iterable[str] | None = None,
             columns: list[str] = COLUMNS, key: list[str] = KEY) -> pd.DataFrame:
    """Check columns and categorical values; raise one clear :class:`ConfigError` on the first problem."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigError(f"{source}: missing column(s) {missing}; expected columns {columns}")
    for col, allowed in (("regime", REGIMES), ("mode", MODES), ("context", CONTEXTS), ("metric", TABLE_METRICS)):
        bad = sorted(set(map(str, df[col].unique())) - set(allowed))  # unique first: fast on Arrow strings
        if bad:
            raise ConfigError(f"{source}: column {col!r} has unknown value(s) {bad}; expected {list(allowed)}")
    if known_learners is not None:
        bad = sorted(set(map(str, df["learner"].unique())) - set(known_learners))
        if bad:
            raise ConfigError(f"{source}: unknown learner(s) {bad}; the params define {sorted(known_learners)}")
    dup = df.duplicated(key)
    if dup.any():
        row = df.loc[dup, key].iloc[0].to_dict()
        raise ConfigError(f"{source}: duplicate rows for {row}")
    return df


def to_frame(rows: list[dict]) -> pd.DataFrame:
    """Summary rows (dicts with :data:`COLUMNS`; ``nominal``, ``seed_sd`` and ``n_seeds`` may be left
    out: False, NaN, 1) to a validated frame in column order."""
    rows = [{**_DEFAULTS, **r} for r in rows]
    df = pd.DataFrame(rows, columns=COLUMNS) if rows else pd.DataFrame(columns=COLUMNS)
    return validate(df)


def task_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A validated per-task frame in :data:`TASK_COLUMNS` order (``gain`` may be left out: ``none``)."""
    if "gain" not in df.columns:
        df = df.assign(gain="none")
    return validate(df[TASK_COLUMNS].reset_index(drop=True), "per-task table", columns=TASK_COLUMNS, key=TASK_KEY)


def summarize(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per-task rows -> summary rows: the mean over seeds and tasks, the standard error over tasks of
    the seed-averaged values, and the spread (sd) across seeds of each seed's task mean."""
    if tasks.empty:
        return pd.DataFrame(columns=COLUMNS)
    group = LEARNER_COLUMNS + ["n_train", "step", "n_seen", "metric"]
    # the wide key factorized once into one integer (summary rows in order of first appearance);
    # the three reductions then group by small integer keys
    ids = tasks.groupby(group, sort=False, dropna=False).ngroup().to_numpy()
    rows = pd.DataFrame({"g": ids, "task": tasks["task"].to_numpy(), "seed": tasks["seed"].to_numpy(),
                         "value": tasks["value"].to_numpy(dtype=float)})
    per_task = rows.groupby(["g", "task"], sort=False)["value"].mean().groupby(level="g", sort=True)
    per_seed = rows.groupby(["g", "seed"], sort=False)["value"].mean().groupby(level="g", sort=True)
    out = tasks[group].iloc[np.unique(ids, return_index=True)[1]].reset_index(drop=True)
    out["value"], out["sem"], out["n_tasks"] = per_task.mean().to_numpy(), per_task.sem().to_numpy(), \
        per_task.count().to_numpy()
    out["seed_sd"], out["n_seeds"] = per_seed.std().to_numpy(), per_seed.count().to_numpy()
    return validate(out[COLUMNS])


def read(path: str | Path, known_learners: Iterable[str] | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: results table not found")
    df = pd.read_csv(path)
    return validate(df, str(path), known_learners)


def write(df: pd.DataFrame, path: str | Path) -> None:
    """Sorted rows, fixed column order, fixed float format: same numbers give the same bytes."""
    df = validate(df[COLUMNS]).sort_values(KEY, kind="stable").reset_index(drop=True)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.9g")


def read_tasks(path: str | Path, known_learners: Iterable[str] | None = None) -> pd.DataFrame:
    """A per-task table (Parquet)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: per-task table not found")
    try:
        table = pq.read_table(path)
    except Exception as err:  # a truncated or overwritten file
        raise ConfigError(f"{path}: not a readable per-task table ({type(err).__name__}: {err}); "
                          f"{TASKS_REMEDY}") from err
    recorded = (table.schema.metadata or {}).get(TABLE_HASH_KEY)
    if recorded is None:
        raise NoContentHash(f"{path}: not an iai per-task table (no {TABLE_HASH_KEY.decode()} in its metadata: "
                            f"tables written by iai carry one)")
    df = table.to_pandas()
    found = frame_sha256(df)
    if found != recorded.decode():
        raise ConfigError(f"{path}: corrupted: content hash {found[:16]} differs from the recorded "
                          f"{recorded.decode()[:16]}; {TASKS_REMEDY}")
    return validate(df, str(path), known_learners, columns=TASK_COLUMNS, key=TASK_KEY)


TABLE_HASH_KEY = b"iai.content_sha256"  # Parquet key-value metadata: the hash of the table's content
TASKS_REMEDY = "delete it and rerun the pipeline (`make reproduce`), or `dvc checkout --force` the recorded copy"


def frame_sha256(df: pd.DataFrame) -> str:
    """A hash of a frame's content: column names, kinds of dtype and every value (row order included).

    The kind, not the dtype, since a string column may come back from Parquet as ``str`` where it was
    written as ``object`` (pandas hashes both alike)."""
    h = hashlib.sha256(repr([(str(c), t.kind) for c, t in df.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def write_tasks(df: pd.DataFrame, path: str | Path) -> None:
    """A per-task table as Parquet, sorted, atomically, with its :func:`frame_sha256` in the file's
    metadata (checked by :func:`read_tasks`: a changed value is an error, not a wrong result)."""
    df = task_frame(df).sort_values(TASK_KEY, kind="stable").reset_index(drop=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), TABLE_HASH_KEY: frame_sha256(df).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_any(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(summary rows, per-task rows)`` of one job's output: a per-task Parquet (summarized here) or a
    summary CSV (cost measurements; no per-task rows)."""
    path = Path(path)
    if path.suffix == ".parquet":
        tasks = read_tasks(path)
        return summarize(tasks), tasks
    return read(path), pd.DataFrame(columns=TASK_COLUMNS)


def merge(paths: Iterable[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-job tables (per-task Parquet, or summary CSV for cost rows) -> (summary, per-task), each
    checked, and their unions checked."""
    parts = [read_any(p) for p in paths]
    if not parts:
        raise ConfigError("merge: no input tables")
    summary = validate(pd.concat([s for s, _ in parts], ignore_index=True), "merged results")
    # the validation tasks are the claims' competence gate only: per-task rows, never in the summary the figures read
    summary = summary[summary.split != VALID_SPLIT].reset_index(drop=True)
    tasks = [t for _, t in parts if not t.empty]
    per_task = (validate(pd.concat(tasks, ignore_index=True), "merged per-task table", columns=TASK_COLUMNS,
                         key=TASK_KEY) if tasks else pd.DataFrame(columns=TASK_COLUMNS))
    return summary, per_task
