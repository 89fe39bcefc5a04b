"""The results table: one tidy, long-format table that every figure, the report and the metrics read.

One row per (family, split, learner, n_train, step, metric). Columns (see :data:`COLUMNS`):

=============  ==============================================================================
family         family name from the params (e.g. ``linreg``)
kind           family kind (``linear_regression``, ...)
dim            input dimension of the family
split          ``id`` or an out-of-distribution split name (``ood_input_scale``, ...)
regime         ``parametric``, ``implicit``, ``explicit``, ``classical`` or ``exact``
learner        learner name (``bayes``, ``adam``, ``parametric_obs``, ...)
signal         ``obs``, ``grad``, ``both`` for learned parametric/explicit learners, else ``none``
state          implicit regime: what the running state carries (``logits``, ``hidden``, ``probs``);
               else ``none``
history        non-Markovian window of past states (0 = Markovian, and for non-learned learners)
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
value          mean over tasks
sem            standard error of the mean over tasks (NaN where not defined)
n_tasks        tasks averaged
seed           seed of the rollout's mini-batch stream
=============  ==============================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from iai.utils import ConfigError, atomic_path

COLUMNS = ["family", "kind", "dim", "split", "regime", "learner", "signal", "state", "history", "mode", "context", "batch_size",
           "n_train", "step", "n_seen", "metric", "value", "sem", "n_tasks", "seed"]
KEY = ["family", "split", "learner", "mode", "context", "n_train", "step", "metric"]
REGIMES = ("parametric", "implicit", "explicit", "classical", "exact")
MODES = ("iterative", "one_shot")
CONTEXTS = ("all", "capped")
QUALITY_METRICS = ("mse", "excess_risk", "error_rate", "nll", "edge_accuracy", "valid_order", "mmd", "sample_nll",
                   "cfm_loss")
COST_METRICS = ("wall_time_s", "peak_memory_mb")
METRICS = QUALITY_METRICS + COST_METRICS
HIGHER_IS_BETTER = ("edge_accuracy", "valid_order")  # every other metric is lower-is-better


def validate(df: pd.DataFrame, source: str = "results table", known_learners: Iterable[str] | None = None) -> pd.DataFrame:
    """Check columns and categorical values; raise one clear :class:`ConfigError` on the first problem."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ConfigError(f"{source}: missing column(s) {missing}; expected columns {COLUMNS}")
    for col, allowed in (("regime", REGIMES), ("mode", MODES), ("context", CONTEXTS), ("metric", METRICS)):
        bad = sorted(set(df[col].astype(str)) - set(allowed))
        if bad:
            raise ConfigError(f"{source}: column {col!r} has unknown value(s) {bad}; expected {list(allowed)}")
    if known_learners is not None:
        bad = sorted(set(df["learner"].astype(str)) - set(known_learners))
        if bad:
            raise ConfigError(f"{source}: unknown learner(s) {bad}; the params define {sorted(known_learners)}")
    dup = df.duplicated(KEY)
    if dup.any():
        row = df.loc[dup, KEY].iloc[0].to_dict()
        raise ConfigError(f"{source}: duplicate rows for {row}")
    return df


def to_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows (dicts with at least :data:`COLUMNS`) to a validated frame in column order."""
    df = pd.DataFrame(rows, columns=COLUMNS) if rows else pd.DataFrame(columns=COLUMNS)
    return validate(df)


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


def merge(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate per-job tables into one, checking each and the union."""
    frames = [read(p) for p in paths]
    if not frames:
        raise ConfigError("merge: no input tables")
    return validate(pd.concat(frames, ignore_index=True), "merged results")
