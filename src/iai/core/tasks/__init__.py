"""Task families: seeded samplers of many tasks at once, each with its own train and valid points.

>>> from iai.core.tasks import make_family
>>> fam = make_family("linear_regression", dim=8, noise_std=0.5)
>>> tasks = fam.sample(n_tasks=64, n_train=128, n_valid=32, seed=0)
>>> tasks.x_train.shape
torch.Size([64, 128, 8])
"""

from __future__ import annotations

from typing import Any

from iai.core.tasks.base import ClassificationFamily, RegressionFamily, TaskBatch, TaskFamily
from iai.core.tasks.causal import CausalOrderTasks
from iai.core.tasks.classification import LinearClassificationTasks, NonlinearClassificationTasks
from iai.core.tasks.generation import GenerationFamily, ImageGenerationTasks, MixtureGenerationTasks
from iai.core.tasks.images import ImageClassificationTasks
from iai.core.tasks.regression import LinearRegressionTasks, NonlinearRegressionTasks
from iai.utils import ConfigError

# families with a random teacher: theta drawn from the prior, f_valid the teacher's noiseless output
FAMILIES: dict[str, type[TaskFamily]] = {
    cls.kind: cls
    for cls in (LinearRegressionTasks, NonlinearRegressionTasks, LinearClassificationTasks,
                NonlinearClassificationTasks)
}
# families over real data (iai.core.tasks.images): no teacher, f_valid = the observed labels, theta empty
DATA_FAMILIES: dict[str, type[TaskFamily]] = {cls.kind: cls for cls in (ImageClassificationTasks,)}
# implicit-only families (iai.core.tasks.causal, iai.core.tasks.generation): no known predictor f(x, theta),
# so neither the parametric/explicit regimes nor the sgd/adam/map/knn references apply; their own
# learners (iai.core.learners.order, iai.core.learners.flow) and references do
IMPLICIT_FAMILIES: dict[str, type[TaskFamily]] = {
    cls.kind: cls for cls in (CausalOrderTasks, MixtureGenerationTasks, ImageGenerationTasks)
}
ALL_FAMILIES: dict[str, type[TaskFamily]] = {**FAMILIES, **DATA_FAMILIES, **IMPLICIT_FAMILIES}


def make_family(kind: str, **options: Any) -> TaskFamily:
    """Build a family by its kind name; options are the family dataclass's fields."""
    if kind not in ALL_FAMILIES:
        raise ConfigError(f"family kind: unknown {kind!r}; expected one of {sorted(ALL_FAMILIES)}")
    cls = ALL_FAMILIES[kind]
    fields = cls.__dataclass_fields__
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ConfigError(f"{kind}: unknown parameter(s) {unknown}; expected some of {sorted(fields)}")
    return cls(**options)


def family_splits(family: TaskFamily, splits: dict[str, dict[str, Any]] | None = None,
                  where: str = "splits") -> dict[str, TaskFamily]:
    """The family's in-distribution split ``id`` and its out-of-distribution variants.

    ``splits`` (from params) replaces the family's default variants; each value holds overrides.
    A bad split's message names its key path, ``<where>.<split>``.
    """
    specs = family.default_splits() if splits is None else splits
    if "id" not in specs:
        raise ConfigError(f"{where}: the in-distribution split 'id' is required")
    out = {}
    for name, overrides in specs.items():
        try:
            out[name] = family.variant(**overrides)
        except ConfigError as err:
            raise ConfigError(f"{where}.{name}: {err}") from err
    return out


__all__ = ["ALL_FAMILIES", "CausalOrderTasks", "DATA_FAMILIES", "FAMILIES", "GenerationFamily", "IMPLICIT_FAMILIES",
           "ClassificationFamily", "ImageClassificationTasks", "ImageGenerationTasks", "MixtureGenerationTasks",
           "LinearClassificationTasks", "LinearRegressionTasks",
           "NonlinearClassificationTasks", "NonlinearRegressionTasks", "RegressionFamily", "TaskBatch",
           "TaskFamily", "family_splits", "make_family"]


def build_family(spec) -> tuple[TaskFamily, dict[str, TaskFamily]]:
    """The in-distribution family of a params family entry (:class:`iai.params.FamilySpec`), and its
    named splits (id and out-of-distribution variants)."""
    try:
        family = make_family(spec.kind, **spec.options)
    except ConfigError as err:
        raise ConfigError(f"families.{spec.name}: {err}") from err
    return family, family_splits(family, spec.splits, where=f"families.{spec.name}.splits")
