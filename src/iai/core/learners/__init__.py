"""Learners: the protocol (``base``), exact and classical references, and the learned learners.

Learned learners are built from a params run entry and a task family::

    learner = build_learner(run, family)           # parametric | implicit | explicit, iterative | one_shot
    state = learner.init(x_query)
    state = learner.step(state, x, y)               # one mini-batch of any size
    pred = learner.predict(state, x_query)

and saved as a checkpoint holding the state dict and the full config as JSON, so that
:func:`load_learner` can rebuild one with nothing but the file (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from iai.core.learners.backbone import LearnerConfig, ModelConfig
from iai.core.learners.explicit import ExplicitLearner
from iai.core.learners.flow import FlowLearner
from iai.core.learners.implicit import ImplicitLearner
from iai.core.learners.learned import LEARNERS, LearnedLearner, LearnerInfo, learner, learner_class
from iai.core.learners.maml import MAMLLearner
from iai.core.learners.order import OrderLearner
from iai.core.learners.parametric import ParametricLearner
from iai.core.tasks import TaskFamily, make_family
from iai.utils import ConfigError, torch_load, torch_save

if TYPE_CHECKING:
    from iai.params import RunSpec

CHECKPOINT_FORMAT = "iai-learner-1"

# every module of this package is imported, so that a new learner module registers itself (@learner)
# without an edit here
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def _sizes(train: dict[str, Any], where: str) -> tuple[int, int]:
    """(B, B * K_train) from a run's train section."""
    b, k = train.get("batch_size", 16), train.get("max_steps", 8)
    for key, value in (("batch_size", b), ("max_steps", k)):
        if not (isinstance(value, int) and value >= 1):
            raise ConfigError(f"{where}.train.{key}: expected an integer >= 1, got {value!r}")
    return b, b * k


def run_config(run: "RunSpec", family: TaskFamily) -> dict[str, Any]:
    """Everything that defines a trained learner, as plain JSON types (stored in its checkpoint)."""
    cfg = LearnerConfig.from_dict(run.learner)
    return {"family_name": run.family, "name": run.name, "learner": cfg.as_dict(),
            "model": asdict(ModelConfig.from_dict(run.model)), "train": dict(sorted(run.train.items())),
            "family": family.params()}


def _build(config: dict[str, Any], family: TaskFamily, seed: int) -> nn.Module:
    where = f"runs[{config['family_name']}/{config['name']}]"
    cfg, model = LearnerConfig.from_dict(config["learner"]), ModelConfig.from_dict(config["model"])
    if cfg.history and cfg.mode == "one_shot":
        raise ConfigError(f"{where}.history: a one-shot learner takes one step and has no history; "
                          f"expected 0, got {cfg.history}")
    batch_size, context_size = _sizes(config["train"], where)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cls = learner_class(cfg, family, where)
        learner = cls(config["name"], family, cfg, model, batch_size, context_size)
    learner.config = config
    return learner


def build_learner(run: "RunSpec", family: TaskFamily, seed: int = 0) -> nn.Module:
    """A fresh learned learner for run (F, NAME) on ``family``; weights drawn from ``seed``."""
    return _build(run_config(run, family), family, seed)


def _same_structure(a: TaskFamily, b: TaskFamily) -> bool:
    """Whether a learner trained on ``a`` can run on ``b`` (same kind, same predictor shapes; noise,
    prior and input scale may differ: that is what out-of-distribution splits change). Families without
    a predictor say what a learner's shapes depend on by ``structure()`` (order: nothing, so any graph
    size; generation: the dimension)."""
    if a.kind != b.kind:
        return False
    if hasattr(a, "structure"):
        return a.structure() == b.structure()
    return a.predictor == b.predictor


def save_learner(path: str | Path, learner: nn.Module) -> None:
    """Write the state dict and the config JSON atomically."""
    state = {k: v.detach().cpu() for k, v in learner.state_dict().items()}
    torch_save(path, {"format": CHECKPOINT_FORMAT, "config": json.dumps(learner.config, sort_keys=True),
                      "state_dict": state})


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, state dict) of a learner checkpoint; ConfigError if the file is not one."""
    blob = torch_load(path, remedy="retrain it with `iai train` (or `dvc checkout --force` the recorded copy)")
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path}: not an iai learner checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return json.loads(blob["config"]), blob["state_dict"]


def load_learner(path: str | Path, family: TaskFamily | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a trained learner from its checkpoint, in eval mode, on ``device``.

    ``family`` defaults to the one it was trained on; a family of another kind or predictor shape
    (e.g. a different dim or number of classes) raises :class:`ConfigError`.
    """
    config, state_dict = read_checkpoint(path)
    trained_on = dict(config["family"])
    trained = make_family(trained_on.pop("kind"), **trained_on)
    family = family or trained
    if not _same_structure(trained, family):
        raise ConfigError(f"{path}: trained on {config['family']} but asked to run on {family.params()} "
                          f"(a different kind or predictor shape); retrain it for this family")
    learner = _build(config, family, seed=0)
    try:
        learner.load_state_dict(state_dict)
    except RuntimeError as err:
        raise ConfigError(f"{path}: its weights do not fit its config ({str(err).splitlines()[0]})") from err
    return learner.to(device).eval()


__all__ = ["CHECKPOINT_FORMAT", "LEARNERS", "ExplicitLearner", "FlowLearner", "ImplicitLearner", "LearnedLearner",
           "LearnerConfig", "LearnerInfo", "ModelConfig", "MAMLLearner", "OrderLearner", "ParametricLearner", "learner",
           "learner_class", "build_learner", "load_learner",
           "read_checkpoint", "run_config", "save_learner"]


def describe(learner) -> dict:
    """The results-table columns that say what a learner is (:class:`LearnerInfo`)."""
    return LearnerInfo.of(learner).columns()


def run_dir(models_dir: str | Path, family_name: str, learner_name: str) -> Path:
    """Where a run's checkpoints live: ``<models_dir>/<family>/<name>/seed<S>.pt``, one per training seed."""
    return Path(models_dir) / family_name / learner_name


def load_run(params, family_name: str, learner_name: str, models_dir: Path, family: TaskFamily,
             device: torch.device, seed: int = 0):
    """Training seed ``seed`` of a params run (:class:`iai.params.Params`), from :func:`run_dir`."""
    run = params.run(family_name, learner_name)  # a clear error when the params have no such run
    if not 0 <= seed < run.seeds:
        raise ConfigError(f"{params.path}: run {run.id} has seeds 0..{run.seeds - 1}; asked for seed {seed}")
    return load_learner(run_dir(models_dir, family_name, learner_name) / f"seed{seed}.pt", family, device)
