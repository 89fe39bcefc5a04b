"""The written contract of a learned learner: its base class, what it says about itself, its registry.

Every learned learner subclasses :class:`LearnedLearner` and is registered under a name::

    @learner("toy", example=("linear_regression", {"dim": 4}, {"regime": "implicit"}))
    class ToyLearner(LearnedLearner):
        regime = "implicit"
        def init(self, x_query): ...
        def step(self, state, x, y): ...
        def predict(self, state, x_query): ...

A run picks it by ``arch: toy`` in its params entry, or, without ``arch``, gets the registered class
that is the default for its regime, ``update`` and family (:func:`learner_class`). The base class
sets the attributes the results table and the bench read (:class:`LearnerInfo`), once; ``example``
is the smallest configuration of the learner, which the conformance tests build and check
(tests/test_learner_contract.py): permutation invariance, any batch size, save and load, no
gradient across steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from iai.core.tasks import IMPLICIT_FAMILIES
from iai.utils import ConfigError

if TYPE_CHECKING:
    from iai.core.learners.backbone import LearnerConfig, ModelConfig
    from iai.core.tasks import TaskFamily


def has_predictor(family: "TaskFamily") -> bool:
    """Whether a family names a known predictor f(x, theta) (the implicit-only families do not)."""
    return family.kind not in IMPLICIT_FAMILIES


@dataclass(frozen=True)
class LearnerInfo:
    """What a learner is, as the results table's describing columns (:data:`iai.core.results.LEARNER_COLUMNS`)."""

    regime: str
    learner: str  # its name: a reference's, or the run's
    signal: str = "none"  # obs | grad | both for learned parametric and explicit learners
    state: str = "none"  # implicit regime: what the running state carries
    history: int = 0  # past states a step reads (0: Markovian)
    nominal: bool = False  # the update contains the hand-written gradient term
    mode: str = "iterative"  # or one_shot: the whole context in one step
    gain: str = "none"  # learned learners: how each update is scaled (train.update_scale)

    @classmethod
    def of(cls, learner) -> "LearnerInfo":
        """A learned learner's own :meth:`LearnedLearner.info`; a reference's from the protocol's attributes."""
        if isinstance(learner, LearnedLearner):
            return learner.info()
        return cls(regime=learner.regime, learner=learner.name, signal=learner.signal,
                   nominal=bool(getattr(learner, "nominal", False)))

    def columns(self) -> dict[str, Any]:
        return {"regime": self.regime, "learner": self.learner, "signal": self.signal, "state": self.state,
                "history": self.history, "nominal": self.nominal, "mode": self.mode, "gain": self.gain}


class LearnedLearner(nn.Module):
    """A trained learner: the protocol of :mod:`iai.core.learners.base`, built from a run's configs.

    Subclasses set ``regime`` and build their networks after ``super().__init__``; they override
    :meth:`info` only where a column is not the config's (MAML's update *is* the nominal term).
    ``for_update`` and ``for_families`` say which runs it is the default for: the regime's runs with that
    ``update`` on families with a known predictor (``for_families = ()``), or on the named family classes.
    """

    regime: ClassVar[str]
    arch: ClassVar[str]  # its registry name, set by @learner
    for_update: ClassVar[str] = "network"
    for_families: ClassVar[tuple[type, ...]] = ()
    example: ClassVar[tuple[str, dict, dict]]  # (family kind, family options, run options), set by @learner

    def __init__(self, name: str, family: "TaskFamily", cfg: "LearnerConfig", model: "ModelConfig",
                 batch_size: int, context_size: int):
        super().__init__()
        self.name, self.family, self.cfg, self.model_cfg = name, family, cfg, model
        self.batch_size, self.context_size = batch_size, context_size  # B and n_ctx = B * K_train
        self.mode, self.signal, self.history, self.nominal = cfg.mode, cfg.signal, cfg.history, cfg.nominal
        self.state_kind = cfg.state if self.regime == "implicit" else "none"

    def info(self) -> LearnerInfo:
        return LearnerInfo(regime=self.regime, learner=self.name, signal=self.signal, state=self.state_kind,
                           history=int(self.history), nominal=bool(self.nominal), mode=self.mode,
                           gain=self.cfg.update_scale)

    @classmethod
    def default_for(cls, cfg: "LearnerConfig", family: "TaskFamily") -> bool:
        """Whether a run without ``arch`` of this regime and update, on ``family``, gets this class."""
        own_family = isinstance(family, cls.for_families) if cls.for_families else has_predictor(family)
        return cls.regime == cfg.regime and cls.for_update == cfg.update and own_family


LEARNERS: dict[str, type[LearnedLearner]] = {}


def learner(arch: str, example: tuple[str, dict, dict]):
    """Register a :class:`LearnedLearner` subclass under ``arch``, with its smallest example configuration."""
    def register(cls: type[LearnedLearner]) -> type[LearnedLearner]:
        if not (isinstance(cls, type) and issubclass(cls, LearnedLearner)):
            raise TypeError(f"@learner({arch!r}): {cls!r} is not a LearnedLearner subclass")
        if arch in LEARNERS and LEARNERS[arch].__qualname__ != cls.__qualname__:  # a reloaded module may re-register
            raise ValueError(f"@learner({arch!r}): the name is taken by {LEARNERS[arch].__qualname__}")
        cls.arch, cls.example = arch, example
        LEARNERS[arch] = cls
        return cls
    return register


def learner_class(cfg: "LearnerConfig", family: "TaskFamily", where: str = "run") -> type[LearnedLearner]:
    """The class that builds a run: the one its ``arch`` names, else the default for its regime and family."""
    if cfg.arch is not None:
        if cfg.arch not in LEARNERS:
            raise ConfigError(f"{where}.arch: unknown learner {cfg.arch!r}; expected one of {sorted(LEARNERS)}")
        return LEARNERS[cfg.arch]
    found = [cls for cls in LEARNERS.values() if cls.default_for(cfg, family)]
    if found:
        return found[0]
    if not has_predictor(family):
        raise ConfigError(f"{where}.regime: the {family.kind} family has no known predictor, so only the "
                          f"implicit regime applies; got {cfg.regime!r}")
    raise ConfigError(f"{where}: no learner for regime {cfg.regime!r} with update {cfg.update!r} on the "
                      f"{family.kind} family (set arch: to one of {sorted(LEARNERS)})")
