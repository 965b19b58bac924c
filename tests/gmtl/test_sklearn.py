import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.multioutput import MultiOutputClassifier
from sklearn.utils import estimator_checks

from causalmtl.gmtl import JointPrior, decode
from causalmtl.gmtl.sklearn import GMTLClassifier


def data(seed=0, n=300, agree=0.9):
    rng = np.random.default_rng(seed)
    y0 = rng.integers(0, 3, size=n)
    y1 = np.where(rng.random(n) < agree, y0 % 2, rng.integers(0, 2, size=n))
    Y = np.stack([y0, y1], axis=1)
    X = np.concatenate([np.eye(3)[y0] + rng.normal(scale=1.2, size=(n, 3)),
                        y1[:, None] + rng.normal(scale=1.2, size=(n, 1))], axis=1)
    return X, Y


def test_predict_equals_decode_on_wrapped_probabilities():
    X, Y = data()
    base = MultiOutputClassifier(LogisticRegression()).fit(X, Y)
    clf = GMTLClassifier(base, alpha=0.7, pseudocount=0.5, prefit=True).fit(X, Y)
    assert clf.estimator_ is base
    lp = [np.log(p) for p in base.predict_proba(X)]
    expected = decode(lp, JointPrior.fit(Y, (3, 2), pseudocount=0.5), alpha=0.7, normalized=False)
    np.testing.assert_array_equal(clf.predict(X), expected)
    # α = 0 is the wrapped classifier's own prediction
    dmtl = GMTLClassifier(base, alpha=0.0, prefit=True).fit(X, Y)
    np.testing.assert_array_equal(dmtl.predict(X), base.predict(X))


def test_string_labels_and_proba_consistency():
    X, Y = data(1)
    names = np.array(["cat", "dog", "eel"])[Y[:, 0]]
    Ys = np.stack([names, np.array(["no", "yes"])[Y[:, 1]]], axis=1)
    clf = GMTLClassifier(MultiOutputClassifier(LogisticRegression()), alpha=1.0).fit(X, Ys)
    pred = clf.predict(X)
    assert set(pred[:, 0]) <= {"cat", "dog", "eel"} and set(pred[:, 1]) <= {"no", "yes"}
    joint = clf.predict_joint_proba(X)
    np.testing.assert_allclose(joint.reshape(len(X), -1).sum(axis=1), 1.0)
    flat = joint.reshape(len(X), -1).argmax(axis=1)
    idx = np.stack(np.unravel_index(flat, clf.n_classes_), axis=1)
    np.testing.assert_array_equal(pred[:, 0], clf.classes_[0][idx[:, 0]])
    marg = clf.predict_proba(X)
    np.testing.assert_allclose(marg[0], joint.sum(axis=2))


def test_known_target_prior():
    X, Y = data(2)
    q = np.full((3, 2), 1 / 6)
    clf = GMTLClassifier(MultiOutputClassifier(LogisticRegression()), target_prior=q).fit(X, Y)
    lp = [np.log(p) for p in clf.estimator_.predict_proba(X)]
    expected = decode(lp, clf.prior_, target_prior=q, normalized=False)
    np.testing.assert_array_equal(clf.predict(X), expected)
    with pytest.raises(ValueError, match="target_prior has n_classes"):
        GMTLClassifier(MultiOutputClassifier(LogisticRegression()), target_prior=np.full((2, 2), 0.25)).fit(X, Y)


def test_clone_get_params_and_pickle():
    X, Y = data(3)
    clf = GMTLClassifier(MultiOutputClassifier(LogisticRegression(C=0.5)), alpha=0.3)
    assert clone(clf).get_params()["alpha"] == 0.3
    assert clf.get_params()["estimator__estimator__C"] == 0.5
    fitted = clf.fit(X, Y)
    back = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(back.predict(X), fitted.predict(X))
    assert 0 <= fitted.score(X, Y) <= 1


def test_single_output_is_refused_with_clear_message():
    X, Y = data(4)
    with pytest.raises(ValueError, match="at least 2 target columns"):
        GMTLClassifier(MultiOutputClassifier(LogisticRegression())).fit(X, Y[:, 0])


# Checks of sklearn.utils.estimator_checks that apply to a multi-output-only meta-estimator.
# The others feed a 1-D y (single output), which joint decoding cannot use; and
# check_classifier_multioutput compares predict with the per-output argmax of predict_proba,
# which a joint MAP decision differs from by design.
APPLICABLE = [
    "check_estimator_cloneable", "check_estimator_repr", "check_get_params_invariance",
    "check_set_params", "check_no_attributes_set_in_init", "check_parameters_default_constructible",
    "check_estimators_unfitted", "check_do_not_raise_errors_in_init_or_set_params",
    "check_mixin_order", "check_valid_tag_types", "check_estimator_tags_renamed",
    "check_estimators_empty_data_messages", "check_complex_data", "check_supervised_y_no_nan",
]


@pytest.mark.parametrize("check_name", APPLICABLE)
def test_sklearn_estimator_checks(check_name):
    est = GMTLClassifier(MultiOutputClassifier(LogisticRegression()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(estimator_checks, check_name)(type(est).__name__, est)
