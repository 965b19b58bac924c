"""decode() routes tree priors, split α and marginal mode to decode_structured (issue 10)."""

import numpy as np
import pytest
import torch

from causalmtl.gmtl import JointPrior, TreePrior, decode, decode_structured

# These tests pin the deprecated decode / decode_structured (kept for one release);
# tests/gmtl/test_decode_core.py covers gmtl_decode.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def log_probs(rng, n, n_classes):
    out = []
    for c in n_classes:
        x = rng.normal(size=(n, c)) * 2
        out.append(x - np.logaddexp.reduce(x, axis=1, keepdims=True))
    return out


def test_decode_routes_to_structured():
    rng = np.random.default_rng(0)
    tree = TreePrior.random((2,) * 25, seed=0)  # 2^25 cells: no table, tree decoding
    lp = log_probs(rng, 50, tree.n_classes)
    np.testing.assert_array_equal(decode(lp, tree, alpha=[0.0, 1.0]), decode_structured(lp, tree, alpha=[0.0, 1.0]))
    small = TreePrior.random((2, 3, 2), seed=1)
    lp = log_probs(rng, 80, small.n_classes)
    joint = small.to_joint()
    for kw in (dict(mode="marginal"), dict(alpha_marginal=0.0, alpha_dependence=0.8), dict(method="tree")):
        np.testing.assert_array_equal(decode(lp, joint, **kw), decode_structured(lp, joint, **kw))
    labels, info = decode(lp, small, alpha=0.5, return_info=True)
    assert info.method == "tree"
    # split α equal to α is the single-α decode through decode() too
    np.testing.assert_array_equal(decode(lp, joint, alpha=0.4),
                                  decode(lp, joint, alpha_marginal=0.4, alpha_dependence=0.4))
    # return_scores with a small tree prior keeps the table path (flattened table)
    y, scores = decode(lp, small, alpha=0.5, return_scores=True)
    assert scores.shape == (80, 2, 3, 2)
    with pytest.raises(ValueError, match="return_scores is only available"):
        decode(lp, joint, mode="marginal", return_scores=True)
    t = decode([torch.as_tensor(x) for x in lp], small, alpha=0.5)
    assert isinstance(t, torch.Tensor)
    assert JointPrior.uniform((2, 2)).n_tasks == 2
