"""What the CuPy stand-in (tests/standin) observes and a GPU does not report:
host synchronisations, planted kernel faults, races between streams. These
run under the stand-in only (tests/cuda/test_standin_suite.py starts them;
on a real GPU they skip): first the defects of the GPU path they guard
against, then that the stand-in refuses what CuPy and CUDA refuse (a
stand-in that let these through would prove nothing)."""
import numpy as np
import pytest

import minivgg
from minivgg import Tensor
from minivgg import functional as F
from minivgg.backend import DeviceError
from minivgg.models import vgg


@pytest.fixture
def clean(standin):
    """The stand-in, with planted faults and sticky errors cleared afterwards
    (a real device would need a new process)."""
    yield standin
    for st in standin._devices.values():
        st.sticky, st.limit = None, 0
        st.faults.clear()


def tiny(dev, dtype=np.float32):
    return vgg("A", num_classes=5, input_size=32, fc_width=16, width_mult=1 / 8, init="kaiming",
               seed=0, fc_bias=0.1, dtype=dtype).to(dev)


def batch(dev, n=4, dtype=np.float32):
    x = np.random.default_rng(0).standard_normal((n, 3, 32, 32)).astype(dtype)
    return Tensor(x).to(dev), np.arange(n) % 5


# ---------------------------------------------------------------------------
# Host synchronisations: each one stalls the host until the GPU catches up
# ---------------------------------------------------------------------------

def test_the_loss_waits_for_nothing(clean, gpu):
    m = tiny(gpu)
    x, y = batch(gpu)
    logits = m(x)
    for labels in (y, gpu.asarray(y)):   # on the host, and already on the GPU
        with clean.count_host_syncs() as syncs:
            loss = F.softmax_cross_entropy(logits, labels)
            loss.backward(retain_graph=True)
        assert syncs == [], f"host synchronisations in the loss: {syncs}"
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\), got values in \[0, 7\]"):
        F.softmax_cross_entropy(logits, np.array([0, 1, 7, 2]))


def test_a_label_out_of_range_on_the_gpu_makes_its_row_nan(clean, gpu):
    # Not checked on the host (that would be a wait); the kernel must not
    # read outside the row either.
    logits = Tensor(np.zeros((3, 4), np.float64)).to(gpu)
    assert np.isnan(F.softmax_cross_entropy(logits, gpu.asarray(np.array([1, 9, 2]))).item())
    assert F.softmax_cross_entropy(logits, gpu.asarray(np.array([1, 3, 2]))).item() == \
        pytest.approx(np.log(4))


def test_a_training_step_waits_for_the_device_once(clean, gpu1, tmp_path):
    from minivgg.train import Recipe, Trainer
    r = Recipe(cfg="A", data="synthetic", image_size=32, train_size=32, val_size=8, crop=32,
               scale="32:36", batch_size=16, micro_batch=8, epochs=1, width_mult=0.125,
               fc_width=16, out=str(tmp_path / "run"), progress=False, seed=3, device=str(gpu1),
               threads=1)
    t = Trainer(r, log=lambda *a: None)
    t._setup()
    (x, y), = [next(iter(t.train_loader.iter_from(0)))]
    t.train_step(x, y)
    with clean.count_host_syncs() as syncs:
        loss, correct, images = t.train_step(x, y)
    assert len(syncs) == 1, f"a step of two micro-batches waited {len(syncs)} times: {syncs}"
    assert images == 16 and np.isfinite(loss) and 0 <= correct <= 16


# ---------------------------------------------------------------------------
# A kernel that faults: CUDA reports it at the next synchronisation
# ---------------------------------------------------------------------------

def forward_backward_read(dev):
    m = tiny(dev)
    x, y = batch(dev)
    loss = F.softmax_cross_entropy(m(x), y)
    loss.backward()
    return loss.item()


def test_a_faulting_kernel_is_a_device_error_at_the_next_wait(clean, gpu):
    forward_backward_read(gpu)          # nothing pending
    clean.device_state(gpu.index).faults.add("max_pool_fwd_f32")
    with pytest.raises(DeviceError) as err:
        forward_backward_read(gpu)
    msg = str(err.value)
    assert f"a CUDA error on {gpu} surfaced while reading an array on the host" in msg
    assert "cudaErrorIllegalAddress" in msg and "CUDA_LAUNCH_BLOCKING=1" in msg
    assert "the first im2col_f32 and the last" in msg


def test_with_blocking_launches_the_fault_names_its_op(clean, gpu, monkeypatch):
    monkeypatch.setenv("CUDA_LAUNCH_BLOCKING", "1")
    clean.device_state(gpu.index).faults.add("max_pool_fwd_f32")
    with pytest.raises(DeviceError, match=r"MaxPool2d forward on cuda:0 with arrays of shape "
                                          r"\(4, 8, 32, 32\): CUDARuntimeError: "
                                          r"cudaErrorIllegalAddress"):
        forward_backward_read(gpu)


def test_out_of_memory_in_an_op_suggests_micro_batches(clean, gpu):
    m = tiny(gpu)
    x, _ = batch(gpu, n=8)
    import cupy
    with gpu.context():
        cupy.get_default_memory_pool().set_limit(cupy.get_default_memory_pool().used_bytes()
                                                 + 2 ** 16)
    with pytest.raises(DeviceError, match=r"Conv2d forward on cuda:0 .*out of memory.*"
                                          r"--micro-batch"):
        m(x)


# ---------------------------------------------------------------------------
# The stand-in refuses what CuPy and CUDA refuse
# ---------------------------------------------------------------------------

def test_no_implicit_conversion_to_numpy(standin, gpu):
    import cupy
    a = cupy.arange(4.0)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        a + np.ones(4)
    with pytest.raises(TypeError, match="Unsupported type"):
        a[...] = np.ones(4)
    assert type(np.exp(a)) is cupy.ndarray            # NumPy functions dispatch to CuPy's
    assert type(a.sum()) is cupy.ndarray and a.sum().ndim == 0   # 0-d, not a scalar
    with standin.count_host_syncs() as syncs:
        assert float(a.sum()) == 6.0 and int(a.max()) == 3
    assert [s[0] for s in syncs] == [".get()", ".get()"]


def test_arrays_live_on_the_current_device(standin, gpu, gpu1):
    import cupy
    a = cupy.ones(3)
    with cupy.cuda.Device(1):
        b = cupy.ones(3)
        assert b.device.id == 1 and a.device.id == 0
        assert cupy.empty_like(a).device.id == 1         # the current device, not a's
        with pytest.raises(ValueError, match=r"resides \(0\) is different from the current "
                                             r"device \(1\)"):
            a + 1
        cupy.cuda.Device(0).synchronize()                # the host has waited for a ...
        assert a.copy().device.id == 1                   # ... so it may cross devices
    with pytest.raises(ValueError, match="different from the current device"):
        a + b


def test_a_missing_wait_between_streams_is_a_race(standin, gpu):
    import cupy
    x = cupy.ones(8)
    side = cupy.cuda.Stream(non_blocking=True)
    with side:                       # side does not wait for the null stream's fill
        with pytest.raises(standin.RaceError, match="reads memory that fill"):
            x * 2
    ready = cupy.cuda.Event()
    ready.record()
    side.wait_event(ready)
    with side:
        y = x * 2                    # now ordered after the fill
    with pytest.raises(standin.RaceError, match="writes"):
        y.get()                      # the null stream has not waited for side
    done = cupy.cuda.Event()
    done.record(side)
    cupy.cuda.get_current_stream().wait_event(done)
    np.testing.assert_array_equal(y.get(), 2.0)


def test_kernel_arguments_travel_as_cupy_passes_them(standin, gpu):
    # minivgg's launcher refuses both of these (KernelArgumentError); CuPy
    # does not, and neither does the stand-in.
    import cupy
    from minivgg.cuda.source import signatures
    relu = gpu.kernels.function(signatures()["relu_fwd_f32"])
    y = cupy.zeros(8, np.float32)
    wide = cupy.arange(16, dtype=np.float32)
    relu((1,), (32,), (y, wide[::2], np.int64(8)))      # strides ignored: read as contiguous
    np.testing.assert_array_equal(y.get(), np.arange(8))
    # A Python float is passed as a double; the kernel reads the 4 bytes a
    # float takes, the low half of 0.5's double: 0.0. The update does nothing.
    sgd = gpu.kernels.function(signatures()["sgd_step_f32"])
    one = np.float32(1)
    for lr, want in ((np.float32(0.5), 0.5), (0.5, 1.0)):
        p, v, g = cupy.ones(4, np.float32), cupy.zeros(4, np.float32), cupy.ones(4, np.float32)
        sgd((1,), (32,), (p, v, g, np.int64(4), lr, np.float32(0), np.float32(0), one))
        np.testing.assert_array_equal(p.get(), want)


def test_the_memory_pool_counts_as_cupys(standin, gpu):
    import cupy
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    before = pool.used_bytes()
    a = cupy.empty(100, np.float32)                      # 400 bytes: one 512-byte unit
    assert pool.used_bytes() - before == 512
    del a
    assert pool.used_bytes() == before and pool.free_bytes() >= 512
    pool.free_all_blocks()
    assert pool.free_bytes() == 0


def test_elapsed_time_needs_completed_events(standin, gpu):
    import cupy
    a, b = cupy.cuda.Event(), cupy.cuda.Event()
    with pytest.raises(Exception, match="cudaErrorInvalidResourceHandle"):
        cupy.cuda.get_elapsed_time(a, b)                 # never recorded
    a.record()
    cupy.ones(10).sum()
    b.record()
    b.synchronize()
    assert cupy.cuda.get_elapsed_time(a, b) >= 0.0


def test_cuda_visible_devices_hides_the_stand_ins_devices(standin, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    import cupy
    with pytest.raises(cupy.cuda.runtime.CUDARuntimeError, match="cudaErrorNoDevice"):
        cupy.cuda.runtime.getDeviceCount()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert cupy.cuda.runtime.getDeviceCount() == 1


def test_minivgg_runs_under_the_stand_in(standin, gpu):
    # The fixture chain that brought this test here: the cuda device is the stand-in's.
    import cupy
    assert cupy.STANDIN and gpu.xp is cupy
    minivgg.manual_seed(0)
