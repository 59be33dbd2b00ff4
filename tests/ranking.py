"""Top-k claims checked without hanging on rounding: two classes whose
posteriors lie within the comparison's tolerance may come out in either order
on another machine's BLAS, so either order is accepted there, and only there."""
import numpy as np


def assert_top_k(p, got, rtol, name=lambda i: i):
    """``got``: [(label, posterior), ...], claimed to be the top k of the
    posteriors ``p`` (K,) in order, labels given by ``name(class index)``.
    The posteriors must equal p's k largest within ``rtol``; each label must
    be a class whose posterior is within ``rtol`` of the one claimed, among
    the k + 1 largest (so a near-tie may be broken either way, nothing else)."""
    k = len(got)
    order = np.argsort(-p, kind="stable")
    np.testing.assert_allclose([q for _, q in got], p[order[:k]], rtol=rtol)
    for label, q in got:
        near = [name(i) for i in order[:k + 1] if abs(p[i] - q) <= rtol * abs(q)]
        assert label in near, f"{label!r} ({q:.6g}) is not among the top {k} of p"
    assert len({label for label, _ in got}) == k, "a class is listed twice"
