"""The exact and classical reference learners of a family, built from params.

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

from iai.core.learners.base import Learner
from iai.core.learners.classical import GradientLearner
from iai.core.learners.exact import ConjugateLinearRegression, KNNLearner, MAPLearner, PriorLearner
from iai.core.learners.flow import TrueSamplesLearner
from iai.core.learners.order import RandomOrderLearner, SinkSearchLearner, VarSortLearner
from iai.core.tasks import CausalOrderTasks, GenerationFamily, LinearRegressionTasks, TaskFamily
from iai.params import ReferencesConfig, SGDReference, reference_names
from iai.utils import ConfigError

REFERENCE_NAMES = reference_names()
ORDER_REFERENCES = ("random_order", "var_sort", "sink_search")
GENERATION_REFERENCES = ("true_samples",)


def applies(name: str, family: TaskFamily) -> bool:
    """Whether reference ``name`` is defined for ``family``."""
    if isinstance(family, CausalOrderTasks):
        return name in ORDER_REFERENCES
    if isinstance(family, GenerationFamily):
        return name in GENERATION_REFERENCES + ("prior",)
    if name in ORDER_REFERENCES + GENERATION_REFERENCES:
        return False
    if name in ("bayes", "ols"):
        return isinstance(family, LinearRegressionTasks) and (name == "ols" or family.noise_std > 0)
    return name in REFERENCE_NAMES


def reference_learner(name: str, family: TaskFamily, family_name: str, references: ReferencesConfig,
                      seed: int = 0) -> Learner:
    """Build reference learner ``name`` for ``family`` (a split's family: Bayes gets the true prior)."""
    if not applies(name, family):
        raise ConfigError(f"references.learners: {name!r} does not apply to the {family.kind} family {family_name!r}")
    if name == "bayes":
        return ConjugateLinearRegression.bayes(family)
    if name == "ols":
        return ConjugateLinearRegression.least_squares(family)
    if name == "map":
        return MAPLearner(family)
    if name == "prior":
        return PriorLearner(family, seed)
    if name == "random_order":
        return RandomOrderLearner(seed)
    if name == "var_sort":
        return VarSortLearner()
    if name == "sink_search":
        return SinkSearchLearner()
    if name == "true_samples":
        return TrueSamplesLearner(family, seed)
    if name == "knn":
        return KNNLearner(family, k=references.knn.k)
    opts = getattr(references, name)
    if name == "nominal_rule":  # the rule as written: one step size for every family, not tuned
        return GradientLearner.named(family, name, lr=opts.lr, seed=seed)
    lr = opts.lr.get(family_name)
    if lr is None:
        raise ConfigError(f"references.{name}.lr: no learning rate for family {family_name!r}")
    momentum = {"momentum": opts.momentum} if isinstance(opts, SGDReference) else {}  # sgd alone has one
    return GradientLearner.named(family, name, lr=lr, seed=seed, **momentum)
