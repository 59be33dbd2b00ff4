"""minivgg's threads (minivgg/threads.py): the team that runs an op's tasks
side by side, BLAS on one thread inside the fast tier's ops, the cuts that
depend on the shapes alone, and what they are for: the same weights bit for
bit whatever the thread count, and the loader's batch loaded ahead in a
thread."""
import os
import threading

import numpy as np
import pytest

import minivgg
from minivgg import Tensor, profiler
from minivgg import functional as F
from minivgg import threads as th
from minivgg.backend import device
from minivgg.fast import products, select
from minivgg.models import vgg
from minivgg.optim import SGD


@pytest.fixture
def two_threads():
    before = th.threads()
    th.set_threads(2)
    yield
    th.set_threads(None if before == th.cores() else before)


def restore_threads(before):
    th.set_threads(None if before == th.cores() else before)


def test_ranges_cut_evenly():
    assert th.ranges(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert th.ranges(2, 5) == [(0, 1), (1, 2)]
    assert th.ranges(0, 4) == [(0, 0)]
    assert sum(b - a for a, b in th.ranges(1000, 7)) == 1000


def test_the_team_runs_each_task_once_on_both_threads(two_threads):
    seen, names, barrier = [], set(), threading.Barrier(2, timeout=10)

    def task(i):
        if i < 2:
            barrier.wait()      # both threads are in a task at once
        seen.append(i)
        names.add(threading.current_thread().name)
    th.parallel(task, 40)
    assert sorted(seen) == list(range(40))
    assert len(names) == 2      # the calling thread and one worker


def test_nested_calls_and_one_thread_run_in_order_here(two_threads):
    order = []

    def outer(i):
        th.parallel(lambda j: order.append((i, j, threading.current_thread().name)), 3)
    th.parallel(outer, 2)
    for i in (0, 1):    # each inner job ran whole on the thread of its outer task
        inner = [(j, name) for a, j, name in order if a == i]
        assert [j for j, _ in inner] == [0, 1, 2] and len({n for _, n in inner}) == 1
    th.set_threads(1)
    names = []
    th.parallel(lambda i: names.append(threading.current_thread().name), 4)
    assert names == [threading.current_thread().name] * 4


def test_an_error_in_a_task_reaches_the_caller(two_threads):
    def task(i):
        if i in (3, 7):
            raise ValueError(f"task {i}")
    with pytest.raises(ValueError, match="task 3"):
        th.parallel(task, 10)
    th.parallel(lambda i: None, 10)     # the team still works


def test_the_team_follows_the_thread_count_and_survives_fork(two_threads):
    th.parallel(lambda i: None, 4)
    assert th._team.size == 2
    th.set_threads(3)
    th.parallel(lambda i: None, 4)
    assert th._team.size == 3 and sum(t.is_alive() for t in th._team.workers) == 2
    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:    # the child has none of the parent's threads: a new team
        try:
            out = []
            th.parallel(lambda i: out.append(i), 6)
            os._exit(0 if sorted(out) == list(range(6)) else 1)
        except BaseException:
            os._exit(2)
    assert os.waitpid(pid, 0)[1] == 0


def test_side_by_side_and_sum_in_order(two_threads, rng):
    assert th.side_by_side(4) and th.side_by_side(2) and not th.side_by_side(3)
    assert not th.side_by_side(1) and th.side_by_side(5)
    parts = [rng.standard_normal((300, 200)).astype(np.float32) for _ in range(5)]
    want = parts[0].copy()
    for p in parts[1:]:
        want += p
    got = th.sum_in_order(parts)
    assert np.array_equal(got, want)
    first = parts[0]
    assert th.sum_in_order(parts, parts[0]) is first and np.array_equal(first, want)


def blas_threads():
    from threadpoolctl import threadpool_info
    return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]


def test_blas_runs_on_one_thread_inside_the_fast_ops(two_threads):
    before = blas_threads()
    assert before and all(n == 2 for n in before)
    seen = []

    @th.serial_blas
    def op():
        with th.serial_blas():      # nested: still one, restored by the outer one only
            seen.append(blas_threads())
        seen.append(blas_threads())
    op()
    assert seen == [[1] * len(before)] * 2 and blas_threads() == before


@pytest.mark.parametrize("shape", [(300, 40, 70), (40, 50, 700), (3, 5, 4)])
def test_products_cut_into_tasks_equal_one_product(two_threads, monkeypatch, rng, shape):
    """Along the rows or the columns, whichever is longer, written or added,
    and turned round; float64, cut into several tasks."""
    monkeypatch.setattr(products, "TASK_MACS", 10)
    monkeypatch.setattr(products, "MIN_EXTENT", 2)
    m, p, q = shape
    a, b = rng.standard_normal((m, p)), rng.standard_normal((p, q))
    assert products.tasks(m * p * q, max(m, q)) > 1
    np.testing.assert_allclose(products.matmul(a, b, np.empty((m, q))), a @ b, rtol=1e-12,
                               atol=1e-12)
    out = np.ones((m, q))
    np.testing.assert_allclose(products.matmul(a, b, out, add=True), a @ b + 1, rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(products.matmul_turned(a, b, np.empty((q, m))), (a @ b).T,
                               rtol=1e-12, atol=1e-12)


def test_profiler_names_layers_with_detail():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 16, 8, 8)).astype(np.float32))
    w = Tensor(np.zeros((16, 16, 3, 3), np.float32), requires_grad=True)
    with profiler.Profiler(device("cpu"), detail=True) as prof:
        select.conv2d(x, w, None, 1, 1).sum().backward()
    names = {n for n, _, _ in prof.totals()}
    algorithm = select.choose_conv(device("cpu"), x.shape, w.shape)[0]
    assert f"Conv2d.forward [{algorithm}, 16->16, 8x8]" in names
    assert f"Conv2d.backward [{algorithm}, 16->16, 8x8]" in names
    with profiler.Profiler(device("cpu")) as prof:
        select.conv2d(x, w, None, 1, 1)
    assert {n for n, _, _ in prof.totals()} == {"Conv2d.forward"}


# -- the same weights whatever the thread count ---------------------------------------------

def steps(threads, width, fc, batch, conv="auto", n_steps=3, size=32):
    """Weights after ``n_steps`` SGD steps of VGG-A on fixed random data."""
    before = th.threads()
    th.set_threads(threads)
    old = select.CONV
    select.CONV = conv
    try:
        minivgg.manual_seed(0)          # the dropout masks' counter
        model = vgg("A", num_classes=10, input_size=size, fc_width=fc, width_mult=width,
                    init="kaiming", seed=0)
        opt = SGD(model.parameters(), 1e-2, 0.9, 5e-4)
        rng = np.random.default_rng(0)
        for _ in range(n_steps):
            x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
            y = rng.integers(0, 10, batch)
            loss = F.softmax_cross_entropy(model(Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {k: v.copy() for k, v in model.state_dict().items()}
    finally:
        select.CONV = old
        restore_threads(before)


def assert_bit_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} differs between thread counts"


def test_the_default_models_training_is_bit_identical_on_one_and_two_threads(tmp_path):
    """examples/train_vgg.py's model (VGG-A x0.25, FC 128: im2col, F(4x4)
    and the whole-map GEMM) trained by the Trainer, which sets its threads
    with set_threads: the same weights after a few steps, one thread or two."""
    from minivgg.train import Recipe, Trainer

    def run(threads):
        r = Recipe(cfg="A", train_size=256, val_size=64, epochs=1, max_steps=3,
                   out=str(tmp_path / f"t{threads}"), progress=False, threads=threads)
        t = Trainer(r, log=lambda *a, **k: None)
        t.run()
        assert th.threads() == threads
        return {k: v.copy() for k, v in t.model.state_dict().items()}
    before = th.threads()
    try:
        one, two = run(1), run(2)
    finally:
        restore_threads(before)
    assert_bit_identical(one, two)


@pytest.mark.parametrize("conv", ["auto", "winograd2", "im2col-channels-last"])
def test_winograd_and_wide_fc_training_is_bit_identical_on_one_and_two_threads(conv):
    """Wider FC layers (1000: where OpenBLAS's own threads round a product
    differently with one thread and two) with dropout, the convolutions by
    the default rule (F(4x4), whole-map) and forced to F(2x2) and the
    channels-last im2col: the same weights after three steps."""
    assert_bit_identical(steps(1, 0.25, 1000, 16, conv), steps(2, 0.25, 1000, 16, conv))


def test_training_at_224_is_bit_identical_on_one_and_two_threads():
    """The first layer in bands of rows and F(4x4) in bands of tile rows."""
    assert_bit_identical(steps(1, 0.125, 64, 2, n_steps=2, size=224),
                         steps(2, 0.125, 64, 2, n_steps=2, size=224))
