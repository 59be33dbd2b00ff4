"""Checks that need a real GPU (they skip elsewhere, with the reason): whole
VGG-A and VGG-D forward and backward on cuda against the CPU backend, in
float64 and float32, exact resume on the GPU, train_vgg.py --device cuda,
and TF32. The per-kernel comparisons with a GPU are in test_kernels.py."""
import numpy as np
import pytest

import minivgg
from minivgg import Tensor
from minivgg import functional as F
from minivgg.backend import as_numpy, set_tf32
from minivgg.models import vgg


def forward_backward(cfg, dev, dtype, size=64):
    m = vgg(cfg, num_classes=10, input_size=size, fc_width=64, width_mult=0.25, init="kaiming",
            seed=0, fc_bias=0.1, dtype=dtype).to(dev)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3, size, size)).astype(dtype)
    labels = np.array([1, 5, 9])
    minivgg.manual_seed(5)  # dropout on: the masks are the same on every device
    xt = Tensor(x, requires_grad=True).to(dev)
    loss = F.softmax_cross_entropy(m(xt), labels)
    loss.backward()
    out = {"loss": as_numpy(loss.data), "x": as_numpy(xt.grad)}
    out.update({n: as_numpy(p.grad) for n, p in m.named_parameters()})
    return out


@pytest.mark.parametrize("cfg", ["A", "D", "A-LRN"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-3)])
def test_vgg_forward_backward_on_cuda_equals_cpu(gpu, cfg, dtype, tol):
    set_tf32(gpu, False)
    cpu = forward_backward(cfg, "cpu", dtype)
    dev = forward_backward(cfg, gpu, dtype)
    for k in cpu:
        err = np.abs(dev[k] - cpu[k]).max() / max(np.abs(cpu[k]).max(), 1e-30)
        assert err <= tol, f"VGG-{cfg} {np.dtype(dtype)} {k}: relative error {err:.3g}"


def test_tf32_runs_and_stays_close(gpu):
    set_tf32(gpu, True)
    try:
        dev = forward_backward("A", gpu, np.float32)
    finally:
        set_tf32(gpu, False)
    cpu = forward_backward("A", "cpu", np.float32)
    assert abs(float(dev["loss"]) - float(cpu["loss"])) <= 2e-2 * abs(float(cpu["loss"]))


def test_resume_on_the_gpu_is_exact(gpu, check_exact_resume):
    check_exact_resume(gpu)


def test_train_vgg_on_cuda_follows_the_cpu_run(gpu, train_vgg_weights):
    cpu, dev = train_vgg_weights("cpu"), train_vgg_weights(gpu)
    for k in cpu:
        assert np.abs(cpu[k] - dev[k]).max() <= 1e-4 * max(np.abs(cpu[k]).max(), 1e-30), k


def test_train_vgg_on_cuda_1_follows_the_cpu_run(gpu1, train_vgg_weights):
    # CuPy allocates on the CURRENT device: an op that does not make its
    # inputs' device current puts its outputs on cuda:0.
    cpu, dev = train_vgg_weights("cpu"), train_vgg_weights(gpu1)
    for k in cpu:
        assert np.abs(cpu[k] - dev[k]).max() <= 1e-4 * max(np.abs(cpu[k]).max(), 1e-30), k


def test_a_model_moved_between_gpus_trains_on_as_on_the_cpu(gpu, gpu1):
    from minivgg.optim import SGD

    def steps(devices):
        m = vgg("A", num_classes=4, input_size=32, fc_width=16, width_mult=1 / 8, init="kaiming",
                seed=0, fc_bias=0.1, dtype=np.float64)
        opt = SGD(m.parameters(), 0.002, momentum=0.9)
        rng = np.random.default_rng(0)
        minivgg.manual_seed(0)  # the same dropout masks in both runs
        for dev in devices:
            m.to(dev)  # the weights, and the momentum with them, cross between devices
            x = Tensor(rng.standard_normal((2, 3, 32, 32))).to(dev)
            opt.zero_grad()
            F.softmax_cross_entropy(m(x), np.array([1, 3])).backward()
            opt.step()
            assert all(p.device == dev for p in m.parameters())
        return {k: as_numpy(v) for k, v in m.state_dict().items()}

    moved = steps([gpu, gpu1, gpu, gpu1])
    cpu = steps(["cpu"] * 4)
    for k in cpu:
        np.testing.assert_allclose(moved[k], cpu[k], rtol=1e-9, atol=1e-12, err_msg=k)
