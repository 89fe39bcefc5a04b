"""Fixed evaluation task banks on disk: one file per family holding every split.

Format: a ``torch.save`` of ``{"format": 1, "splits": {split: {tensor name: tensor}}}`` (plain
tensors and strings only, so it loads with ``weights_only=True``), written atomically.
"""

from __future__ import annotations

from pathlib import Path

from iai.core.tasks.base import TaskBatch
from iai.utils import ConfigError, torch_load, torch_save

BANK_FORMAT = 1


def save_bank(path: str | Path, splits: dict[str, TaskBatch]) -> None:
    torch_save(path, {"format": BANK_FORMAT,
                      "splits": {name: {k: v.clone() for k, v in batch.state_dict().items()}
                                 for name, batch in splits.items()}})  # clone: a view would save its whole storage


def load_bank(path: str | Path) -> dict[str, TaskBatch]:
    """Read a bank written by :func:`save_bank`: ``{split: TaskBatch}``."""
    data = torch_load(path, remedy="regenerate it with `iai generate` (or `dvc checkout --force` the recorded copy)")
    if not isinstance(data, dict) or data.get("format") != BANK_FORMAT:
        raise ConfigError(f"{path}: not an iai task bank (format {BANK_FORMAT} expected)")
    return {name: TaskBatch.from_state_dict(d) for name, d in data["splits"].items()}
