"""Devices: moving tensors, modules and optimizer state; clear errors for a
missing GPU, for mixed devices and for wrong kernel arguments."""
import sys

import numpy as np
import pytest

from minivgg import Function, Tensor
from minivgg import functional as F
from minivgg.backend import DeviceError, device, parse_device
from minivgg.cuda import KernelArgumentError
from minivgg.nn import Linear
from minivgg.optim import SGD


def test_device_specs_parse_and_compare():
    assert parse_device("cuda:1") == ("cuda", 1)
    assert parse_device("GPU") == ("cuda", 0)
    assert device("cpu") == "cpu" and str(device("cpu")) == "cpu"
    for bad in ("tpu", "cuda:x", "emu:1", "cpu:0:1"):
        with pytest.raises(ValueError, match="unknown device"):
            parse_device(bad)


def test_cuda_without_a_gpu_is_one_clear_error():
    if device.__globals__["cupy_available"]():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match="GPU|CuPy"):
        device("cuda")


def test_cuda_without_cupy_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy now raises ImportError
    with pytest.raises(DeviceError, match=r"pip install -e \"\.\[gpu\]\".*cupy-cuda13x.*"
                                          r"cupy-cuda12x.*--device emu"):
        device("cuda")


def test_train_vgg_asks_for_cuda_without_one_fails_before_work(tmp_path, capsys):
    if device.__globals__["cupy_available"]():
        pytest.skip("this machine has a GPU")
    sys.path.insert(0, "examples")
    try:
        from train_vgg import main
    finally:
        sys.path.remove("examples")
    assert main(["--device", "cuda", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "GPU" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # nothing was written


def test_tensor_and_module_move_between_devices(emu, rng):
    t = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    e = t.to("emu")
    assert e.device == emu and e is not t and e.requires_grad
    np.testing.assert_array_equal(e.data, t.data)
    assert e.to(emu) is e
    assert "device='emu'" in repr(e)
    m = Linear(3, 2, dtype=np.float64)
    assert m.to("emu") is m and m.device == emu
    assert all(p.device == emu for p in m.parameters())


def test_mixing_devices_in_one_op_names_both(emu, rng):
    a = Tensor(rng.standard_normal((2, 3)))
    b = Tensor(rng.standard_normal((2, 3)), device=emu)
    with pytest.raises(DeviceError, match=r"Add: input 0 \(shape \(2, 3\)\) is on cpu but "
                                          r"input 1 \(shape \(2, 3\)\) is on emu"):
        a + b
    m = Linear(3, 2).to(emu)
    with pytest.raises(DeviceError, match="cpu.*emu|emu.*cpu"):
        m(Tensor(rng.standard_normal((4, 3)).astype(np.float32)))


def test_optimizer_state_follows_its_parameters(emu, rng):
    w0, x = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))

    def three_steps(devices):
        m = Linear(4, 3, dtype=np.float64)
        m.weight.data[...] = w0
        opt = SGD(m.parameters(), 0.1, momentum=0.9)
        for dev in devices:  # one step per device; the momentum must carry over
            m.to(dev)
            opt.zero_grad()
            m(Tensor(x, device=dev)).sum().backward()
            opt.step()
            assert opt.flat.device == dev
        return m.weight.data

    np.testing.assert_array_equal(three_steps(["cpu", emu, "cpu"]),
                                  three_steps(["cpu", "cpu", "cpu"]))


def test_kernel_arguments_are_checked_against_the_signature(emu):
    k = emu.kernels
    x = np.ones(8, np.float32)
    y = np.empty(8, np.float32)
    k.launch("relu_fwd", np.float32, 8, y, x, np.int64(8))
    np.testing.assert_array_equal(y, x)
    cases = [
        ((y, x, 8), r"argument 2 \(n\): expected np.int64\(...\), got int"),
        ((y, x, np.int32(8)), r"expected np.int64\(...\), got np.int32"),
        ((y, x.astype(np.float64), np.int64(8)), r"argument 1 \(x\): expected dtype float32"),
        ((y, np.ones(16, np.float32)[::2], np.int64(8)), "must be C-contiguous"),
        ((y, x), "takes 3 arguments, got 2"),
        ((y, 3.0, np.int64(8)), "expected a read-only float32 array, got float"),
    ]
    for args, msg in cases:
        with pytest.raises(KernelArgumentError, match=msg):
            k.launch("relu_fwd", np.float32, 8, *args)
    ro = np.empty(8, np.float32)
    ro.flags.writeable = False
    with pytest.raises(KernelArgumentError, match="writes this array, which is read-only"):
        k.launch("relu_fwd", np.float32, 8, ro, x, np.int64(8))
    with pytest.raises(TypeError, match="no entry point for dtype float16"):
        k.launch("relu_fwd", np.float16, 8, y, x, np.int64(8))


def test_a_cuda_error_inside_an_op_names_the_op_and_shapes_and_suggests_micro_batch():
    class OutOfMemoryError(Exception):
        pass
    OutOfMemoryError.__module__ = "cupy.cuda.memory"

    class Hungry(Function):
        def forward(self, x):
            raise OutOfMemoryError("out of memory allocating 1,073,741,824 bytes")

    with pytest.raises(DeviceError, match=r"Hungry forward on cpu with arrays of shape "
                                          r"\(2, 3\): out of memory .*--micro-batch"):
        Hungry()(Tensor(np.zeros((2, 3))))


def test_relu_gradient_at_zero_is_zero_on_every_device(emu):
    for dev in ("cpu", emu):
        x = Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True, device=dev)
        F.relu(x).sum().backward()
        np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])
