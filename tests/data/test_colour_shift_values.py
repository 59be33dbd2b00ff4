"""The RGB colour shift of §3.1 (AlexNet's "fancy PCA", Krizhevsky et al.
2012 §4.1) against the formula worked out by hand: every pixel of an image
gets the same offset

    [p1, p2, p3] [a1 l1, a2 l2, a3 l3]^T,    a_i ~ N(0, 0.1^2)

where p_i are the eigenvectors (the *columns* of PCA_EIGVEC) and l_i the
eigenvalues of the RGB covariance, in [0, 1] pixel units, not clipped."""
import numpy as np
import pytest

from minivgg.data import PCA_EIGVAL, PCA_EIGVEC, PCAColourShift, ToFloat


class FixedAlphas(np.random.Generator):
    """A Generator whose normal draws are given: alphas * scale."""

    def __init__(self, alphas):
        super().__init__(np.random.PCG64(0))
        self.alphas = np.asarray(alphas, np.float64)

    def normal(self, loc=0.0, scale=1.0, size=None):
        assert np.shape(np.empty(size)) == (3,)
        return loc + scale * self.alphas

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        assert np.shape(np.empty(size)) == (3,)
        return self.alphas.astype(dtype)


def test_shift_by_hand():
    img = np.full((2, 3, 3), 0.5, np.float32)
    out = PCAColourShift(0.1)(img, FixedAlphas([1.0, -2.0, 0.5]))
    a = [0.1 * 0.2175, -0.2 * 0.0188, 0.05 * 0.0045]  # alpha_i * lambda_i
    want = [-0.5675 * a[0] + 0.7192 * a[1] + 0.4009 * a[2],     # R
            -0.5808 * a[0] - 0.0045 * a[1] - 0.8140 * a[2],     # G
            -0.5836 * a[0] - 0.6948 * a[1] + 0.4203 * a[2]]     # B
    assert want == pytest.approx([-0.0149571145, -0.01279863, -0.0099862845], rel=1e-8)
    assert out.dtype == np.float32 and out.shape == img.shape
    np.testing.assert_allclose(out.reshape(-1, 3) - 0.5, np.tile(want, (6, 1)), rtol=1e-5,
                               atol=1e-7)


def test_each_alpha_moves_along_its_own_eigenvector():
    img = np.zeros((1, 1, 3), np.float32)
    for i, lam in enumerate([0.2175, 0.0188, 0.0045]):
        alphas = np.zeros(3)
        alphas[i] = 1.0
        shift = PCAColourShift(0.1)(img, FixedAlphas(alphas)).ravel()
        np.testing.assert_allclose(shift, 0.1 * lam * PCA_EIGVEC[:, i], rtol=1e-5, atol=1e-9)
    # The first component, by far the largest, shifts R, G and B together (brightness).
    assert np.all(PCA_EIGVEC[:, 0] < 0) and np.ptp(PCA_EIGVEC[:, 0]) < 0.02


def test_shift_is_not_clipped():
    img = np.ones((1, 2, 3), np.float32)
    out = PCAColourShift(0.1)(img, FixedAlphas([-30.0, 0.0, 0.0]))
    # -30 * 0.1 * 0.2175 * (-0.5675, -0.5808, -0.5836): about +0.37 on every channel.
    np.testing.assert_allclose(out[0, 0], 1.0 + 0.6525 * np.array([0.5675, 0.5808, 0.5836]),
                               rtol=1e-5)
    assert out.max() > 1.0


def test_the_constants_are_an_eigendecomposition():
    v = PCA_EIGVEC
    np.testing.assert_allclose(v.T @ v, np.eye(3), atol=2e-3)  # orthonormal columns
    cov = v @ np.diag(PCA_EIGVAL) @ v.T
    for i in range(3):  # cov p_i = l_i p_i
        np.testing.assert_allclose(cov @ v[:, i], PCA_EIGVAL[i] * v[:, i], atol=1e-3)


def test_alphas_have_std_0_1_along_each_eigenvector():
    # Recover each image's alphas from its shift: a_i = p_i . shift / l_i.
    t = PCAColourShift()
    g = np.random.default_rng(3)
    img = ToFloat()(np.zeros((1, 1, 3), np.uint8))
    shifts = np.array([t(img, g).ravel() for _ in range(4000)], np.float64)
    alphas = shifts @ PCA_EIGVEC / PCA_EIGVAL
    np.testing.assert_allclose(alphas.std(axis=0), 0.1, rtol=0.06)
    np.testing.assert_allclose(alphas.mean(axis=0), 0.0, atol=0.01)
    corr = np.corrcoef(alphas.T)
    np.testing.assert_allclose(corr, np.eye(3), atol=0.08)
