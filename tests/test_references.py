"""The reference registry (iai.core.learners.references): one decorated builder per reference."""

import pytest

from iai.core.learners.references import REFERENCE_NAMES, REFERENCES, applies, reference, reference_learner
from iai.core.tasks import make_family
from iai.params import ReferencesConfig, reference_names
from iai.utils import ConfigError


def test_the_registry_holds_the_references_the_schema_lists():
    assert set(REFERENCES) == set(reference_names()) and REFERENCE_NAMES == reference_names()


def test_an_unknown_reference_names_the_param_and_the_known_ones():
    fam = make_family("linear_regression", dim=2)
    with pytest.raises(ConfigError, match=r"references\.learners: unknown reference 'newton'; expected one of "
                                          r"\['adam', 'adam_avg', 'bayes', .*'true_samples', 'var_sort'\]"):
        reference_learner("newton", fam, "linreg", ReferencesConfig(learners=()))
    assert not applies("newton", fam)


def test_a_reference_that_does_not_apply_says_so():
    with pytest.raises(ConfigError, match=r"'var_sort' does not apply to the linear_regression family 'linreg'"):
        reference_learner("var_sort", make_family("linear_regression", dim=2), "linreg", ReferencesConfig(learners=()))


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match=r"@reference\('bayes'\): the name is taken"):
        reference("bayes")(lambda b: None)


def test_each_reference_builds_the_learner_it_names():
    fam = make_family("linear_regression", dim=2)
    refs = ReferencesConfig.from_dict({"learners": [], "sgd": {"lr": {"linreg": 0.1}, "momentum": 0.5},
                                       "adam": {"lr": {"linreg": 0.01}}})
    built = {name: reference_learner(name, fam, "linreg", refs) for name in ("bayes", "ols", "sgd", "adam", "knn")}
    assert built["sgd"].lr == 0.1 and built["sgd"].momentum == 0.5 and built["adam"].lr == 0.01
    assert all(getattr(learner, "regime", None) in ("exact", "classical") for learner in built.values())
