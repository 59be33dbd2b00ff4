"""Float64 gradient checks of the kernel-backed ops on the emulated device,
and a whole small VGG on ``emu`` against the CPU backend."""
import numpy as np
import pytest

import minivgg
from minivgg import Tensor, gradcheck
from minivgg import functional as F
from minivgg.models import vgg
from minivgg.gradcheck import away_from_kinks, distinct_values, pool_ties, relu_kinks
from minivgg.fast import select
from minivgg.optim import SGD
from kinks import conv_inputs, conv_relu_kinks


def relu_kinks_of(x):
    return [relu_kinks(x)]


def leaf(a, emu):
    return Tensor(a, requires_grad=True, device=emu)


@pytest.mark.parametrize("stride,pad,relu", [(1, 1, False), (1, 1, True), (2, 0, False),
                                             (1, 0, True)])
@pytest.mark.parametrize("tier", ["fast", "reference"])
def test_conv2d_gradcheck_on_emu(emu, tier, stride, pad, relu):
    """The fast tier's kernel path (chunks, bias and ReLU fused) and the
    textbook's (im2col, product, col2im kernels)."""
    x, w, b = (leaf(a, emu) for a in conv_inputs((2, 3, 5, 6), (4, 3, 3, 3), stride, pad, relu))
    with minivgg.use_ops(tier):
        assert gradcheck(lambda x, w, b: select.conv2d(x, w, b, stride, pad, relu=relu),
                         [x, w, b], kinks=conv_relu_kinks(stride, pad) if relu else None) < 1e-5


@pytest.mark.parametrize("k,s,pad", [(2, 2, 0), (3, 2, 1)])
def test_max_pool_gradcheck_on_emu(emu, rng, k, s, pad):
    # Distinct values (a permutation) so that no window has a tie to break.
    x = leaf(distinct_values((2, 3, 7, 7), rng, gap=0.1), emu)
    assert gradcheck(lambda t: F.max_pool2d(t, k, s, pad), [x],
                     kinks=lambda a: [pool_ties(a, k, s, pad)]) < 1e-5


def test_lrn_gradcheck_on_emu(emu, rng):
    x = leaf(3 * rng.standard_normal((2, 7, 3, 3)), emu)
    assert gradcheck(lambda t: F.local_response_norm(t, 5, alpha=1e-2, beta=0.75, k=2.0),
                     [x]) < 1e-6


def test_dropout_and_relu_gradcheck_on_emu(emu, rng):
    x = leaf(away_from_kinks(lambda r: (r.standard_normal((4, 9)),), relu_kinks_of, 1e-4)[0], emu)
    assert gradcheck(lambda t: F.dropout(F.relu(t), 0.4, True, key=17), [x],
                     kinks=relu_kinks_of) < 1e-8


def test_softmax_cross_entropy_gradcheck_on_emu(emu, rng):
    z = leaf(3 * rng.standard_normal((5, 7)), emu)
    labels = rng.integers(0, 7, 5)
    assert gradcheck(lambda t: F.softmax_cross_entropy(t, labels), [z]) < 1e-7


def train_steps(cfg, dev, dtype, steps=2):
    m = vgg(cfg, num_classes=5, input_size=32, fc_width=16, width_mult=1 / 8, init="kaiming",
            seed=0, fc_bias=0.1, dtype=dtype).to(dev)
    opt = SGD(m.parameters(), 0.01, 0.9, 5e-4)
    rng = np.random.default_rng(0)
    minivgg.manual_seed(3)
    losses = []
    for _ in range(steps):
        x = rng.standard_normal((4, 3, 32, 32)).astype(dtype)
        y = rng.integers(0, 5, 4)
        opt.zero_grad()
        loss = F.softmax_cross_entropy(m(Tensor(x, device=dev)), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return m, losses


@pytest.mark.parametrize("cfg", ["A", "A-LRN"])
def test_whole_vgg_step_on_emu_equals_cpu_in_float64(emu, cfg):
    cpu, l_cpu = train_steps(cfg, "cpu", np.float64)
    em, l_emu = train_steps(cfg, emu, np.float64)
    assert all(p.device == emu for p in em.parameters())
    np.testing.assert_allclose(l_emu, l_cpu, rtol=1e-12)
    for (name, a), (_, b) in zip(cpu.named_parameters(), em.named_parameters()):
        err = np.abs(a.data - b.data).max() / max(np.abs(a.data).max(), 1e-30)
        assert err <= 1e-10, f"{name}: relative error {err:.3g}"


def test_train_vgg_three_steps_on_emu_give_the_cpu_weights(train_vgg_weights):
    cpu, emu = train_vgg_weights("cpu"), train_vgg_weights("emu")
    assert len(cpu) == 22
    for k in cpu:
        err = np.abs(cpu[k] - emu[k]).max() / max(np.abs(cpu[k]).max(), 1e-30)
        assert err <= 1e-5, f"{k}: relative error {err:.3g}"


def test_resume_on_emu_is_exact(emu, check_exact_resume):
    check_exact_resume(emu)
