"""The exact and classical reference learners of a family, built from params.

Every reference is a builder registered under its params name, with the families it applies to::

    @reference("ols", applies=lambda family: isinstance(family, LinearRegressionTasks))
    def ols(b: Build) -> Learner:
        return ConjugateLinearRegression.least_squares(b.family)

:func:`reference_learner` builds one by name, :func:`applies` says whether it is defined for a
family; the params schema lists the same names (``references.learners``; tests/test_references.py
holds the two lists equal).

Which references apply depends on the family: ``bayes`` and ``ols`` need the linear-Gaussian model,
``map`` needs a known predictor with a Gaussian prior (every family here has one), ``sgd``,
``adam``, their averaged, decaying-step variants ``sgd_avg`` and ``adam_avg``, the untrained
``nominal_rule`` of the learned parametric learners, and ``knn`` apply to every family with a known
predictor (:mod:`iai.core.learners.classical`). The learning rates of sgd, adam, sgd_avg and
adam_avg come from the params (``iai tune-lr``); nominal_rule's is the rule's own 0.5 unless
``references.nominal_rule.lr`` says otherwise. ``prior`` (the prior predictive, reading nothing: the competence gate's
floor) applies to every family but the order one. The implicit-only families have references of
their own and no others: ``random_order``, ``var_sort`` and ``sink_search`` for the topological
order (:mod:`iai.core.learners.order`), ``true_samples`` (the MMD floor) for generation
(:mod:`iai.core.learners.flow`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from iai.core.learners.base import Learner
from iai.core.learners.classical import GradientLearner
from iai.core.learners.exact import ConjugateLinearRegression, KNNLearner, MAPLearner, PriorLearner
from iai.core.learners.flow import TrueSamplesLearner
from iai.core.learners.order import RandomOrderLearner, SinkSearchLearner, VarSortLearner
from iai.core.tasks import CausalOrderTasks, GenerationFamily, LinearRegressionTasks, TaskFamily
from iai.params import ReferencesConfig, SGDReference, reference_names
from iai.utils import ConfigError

REFERENCE_NAMES = reference_names()  # the params schema's list, in its order


@dataclass(frozen=True)
class Build:
    """What a reference's builder is given: its name, the (split's) family, the family's params name,
    the params' ``references:`` section and the seed."""

    name: str
    family: TaskFamily
    family_name: str
    references: ReferencesConfig
    seed: int = 0

    @property
    def options(self) -> Any:
        """The reference's own section of ``references:`` (``references.<name>``)."""
        return getattr(self.references, self.name)


def has_predictor(family: TaskFamily) -> bool:
    """The families with a known predictor: neither the order nor a generation family."""
    return not isinstance(family, (CausalOrderTasks, GenerationFamily))


@dataclass(frozen=True)
class Reference:
    """A registered reference: its name, its builder and the families it applies to."""

    name: str
    build: Callable[[Build], Learner]
    applies: Callable[[TaskFamily], bool]


REFERENCES: dict[str, Reference] = {}


def reference(name: str, applies: Callable[[TaskFamily], bool] = has_predictor):
    """Register a builder ``Build -> Learner`` as reference ``name``, for the families ``applies`` accepts
    (default: every family with a known predictor)."""
    def register(build: Callable[[Build], Learner]) -> Callable[[Build], Learner]:
        if name in REFERENCES and REFERENCES[name].build.__qualname__ != build.__qualname__:  # a reload re-registers
            raise ValueError(f"@reference({name!r}): the name is taken by {REFERENCES[name].build.__qualname__}")
        REFERENCES[name] = Reference(name, build, applies)
        return build
    return register


def applies(name: str, family: TaskFamily) -> bool:
    """Whether reference ``name`` is defined for ``family`` (False for a name that is not a reference)."""
    return name in REFERENCES and REFERENCES[name].applies(family)


def reference_learner(name: str, family: TaskFamily, family_name: str, references: ReferencesConfig,
                      seed: int = 0) -> Learner:
    """Build reference learner ``name`` for ``family`` (a split's family: Bayes gets the true prior)."""
    if name not in REFERENCES:
        raise ConfigError(f"references.learners: unknown reference {name!r}; expected one of {sorted(REFERENCES)}")
    if not applies(name, family):
        raise ConfigError(f"references.learners: {name!r} does not apply to the {family.kind} family {family_name!r}")
    return REFERENCES[name].build(Build(name, family, family_name, references, seed))


# ---------------------------------------------------------------------------- the references


@reference("bayes", applies=lambda family: isinstance(family, LinearRegressionTasks) and family.noise_std > 0)
def bayes(b: Build) -> Learner:
    return ConjugateLinearRegression.bayes(b.family)


@reference("ols", applies=lambda family: isinstance(family, LinearRegressionTasks))
def ols(b: Build) -> Learner:
    return ConjugateLinearRegression.least_squares(b.family)


@reference("prior", applies=lambda family: not isinstance(family, CausalOrderTasks))
def prior(b: Build) -> Learner:
    return PriorLearner(b.family, b.seed)


@reference("sgd")
@reference("adam")
@reference("sgd_avg")
@reference("adam_avg")
def tuned_gradient(b: Build) -> Learner:
    """The gradient references with a learning rate per family (``iai tune-lr``)."""
    lr = b.options.lr.get(b.family_name)
    if lr is None:
        raise ConfigError(f"references.{b.name}.lr: no learning rate for family {b.family_name!r}")
    momentum = {"momentum": b.options.momentum} if isinstance(b.options, SGDReference) else {}  # sgd alone has one
    return GradientLearner.named(b.family, b.name, lr=lr, seed=b.seed, **momentum)


@reference("nominal_rule")
def nominal_rule(b: Build) -> Learner:
    """The rule as written: one step size for every family, not tuned."""
    return GradientLearner.named(b.family, b.name, lr=b.options.lr, seed=b.seed)


@reference("map")
def map_estimate(b: Build) -> Learner:
    return MAPLearner(b.family)


@reference("knn")
def knn(b: Build) -> Learner:
    return KNNLearner(b.family, k=b.options.k)


@reference("random_order", applies=lambda family: isinstance(family, CausalOrderTasks))
def random_order(b: Build) -> Learner:
    return RandomOrderLearner(b.seed)


@reference("var_sort", applies=lambda family: isinstance(family, CausalOrderTasks))
def var_sort(b: Build) -> Learner:
    return VarSortLearner()


@reference("sink_search", applies=lambda family: isinstance(family, CausalOrderTasks))
def sink_search(b: Build) -> Learner:
    return SinkSearchLearner()


@reference("true_samples", applies=lambda family: isinstance(family, GenerationFamily))
def true_samples(b: Build) -> Learner:
    return TrueSamplesLearner(b.family, b.seed)
