"""DataLoader: batching, per-epoch shuffling, worker determinism, resume, cleanup, corrupt images."""

import gc
import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest

from minivgg.data import CorruptImageError, DataLoader, SyntheticShapes, train_transform
from minivgg.data.loader import WorkerDied


class Indexed:
    """Image i is 4x4 filled with i % 256; label i; optional corrupt indices."""

    classes = ["x"]

    def __init__(self, n, corrupt=(), log=None):
        self.n, self.corrupt, self.log = n, set(corrupt), log

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.log is not None:
            self.log.append(i)
        if i in self.corrupt:
            raise CorruptImageError(f"cannot decode image /data/img{i}.jpg")
        return np.full((4, 4, 3), i % 256, np.uint8), int(i)

    def describe(self, i):
        return f"/data/img{i}.jpg"


def collect(it):
    return [(x.copy(), y.copy()) for x, y in it]


def assert_same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def no_children():
    deadline = time.time() + 5
    while mp.active_children() and time.time() < deadline:
        time.sleep(0.05)
    return not mp.active_children()


def test_shapes_dtypes_and_len():
    ld = DataLoader(Indexed(10), 4)
    batches = collect(ld)
    assert len(ld) == 3 and len(batches) == 3
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 3, 4, 4) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0, 0, 0], y / 255, rtol=1e-6)  # default ToFloat + ToCHW
    assert len(DataLoader(Indexed(10), 4, drop_last=True)) == 2
    assert [len(y) for _, y in DataLoader(Indexed(10), 4, drop_last=True)] == [4, 4]
    assert len(DataLoader(Indexed(3), 4, drop_last=True)) == 0


def test_each_epoch_is_a_permutation_and_differs():
    ld = DataLoader(Indexed(50), 8, seed=5)
    e0 = np.concatenate([y for _, y in ld])
    assert sorted(e0) == list(range(50))
    np.testing.assert_array_equal(e0, np.concatenate([y for _, y in ld]))  # same epoch again
    np.testing.assert_array_equal(e0, ld.order())
    ld.set_epoch(1)
    e1 = np.concatenate([y for _, y in ld])
    assert sorted(e1) == list(range(50)) and not np.array_equal(e0, e1)
    np.testing.assert_array_equal(e1, np.random.default_rng([5, 1]).permutation(50))
    assert not np.array_equal(e0, np.concatenate([y for _, y in DataLoader(Indexed(50), 8, seed=6)]))
    fixed = np.concatenate([y for _, y in DataLoader(Indexed(50), 8, shuffle=False)])
    np.testing.assert_array_equal(fixed, np.arange(50))


def test_augmentation_depends_on_seed_epoch_index_only():
    ds = SyntheticShapes(12, image_size=16)
    t = train_transform(12, (16, 20), [0.5] * 3)
    ld = DataLoader(ds, 5, t, seed=3)
    ld.set_epoch(2)
    x, y = next(iter(ld))
    i = int(ld.order()[0])
    np.testing.assert_array_equal(x[0], t(ds[i][0], ld.sample_rng(i)))
    ld.set_epoch(3)
    # Another epoch augments the same image differently.
    assert not np.array_equal(x[0], t(ds[i][0], ld.sample_rng(i)))


def test_workers_give_identical_batches():
    ds = SyntheticShapes(40, image_size=16)
    t = train_transform(12, (16, 24), [0.5] * 3)
    serial = DataLoader(ds, 6, t, seed=1, workers=0)
    par = DataLoader(ds, 6, t, seed=1, workers=2, prefetch=1)
    for epoch in (0, 1):
        serial.set_epoch(epoch)
        par.set_epoch(epoch)
        # No copies: a batch kept by the consumer must not change when its
        # shared-memory slot is reused for a later batch.
        assert_same(collect(serial), list(par))
    assert no_children()


def test_batches_whose_shape_differs_from_the_first_still_arrive():
    # The shared slots are sized from the first sample; other shapes are sent pickled.
    def grow(img, rng):
        return np.full((3, 2 + int(img[0, 0, 0]) // 4, 2), img[0, 0, 0], np.float32)

    serial = DataLoader(Indexed(12), 4, grow, shuffle=False)
    par = DataLoader(Indexed(12), 4, grow, shuffle=False, workers=2, prefetch=1)
    got = list(par)
    assert [x.shape[2] for x, _ in got] == [2, 3, 4]
    assert_same(collect(serial), got)


def test_spawn_start_method_pickles_batches():
    # The path taken where fork is unavailable (macOS, Windows): no shared slots.
    ds = SyntheticShapes(10, image_size=8)
    t = train_transform(6, (8, 10), [0.5] * 3)
    par = DataLoader(ds, 4, t, workers=1)
    par._start_method = "spawn"
    assert_same(collect(DataLoader(ds, 4, t)), list(par))
    assert no_children()


def test_more_workers_than_batches():
    assert_same(collect(DataLoader(Indexed(5), 4, workers=3)), collect(DataLoader(Indexed(5), 4)))
    assert collect(DataLoader(Indexed(0), 4, workers=2)) == []
    assert no_children()


@pytest.mark.parametrize("workers", [0, 2])
def test_iter_from_resumes_exactly_without_loading_skipped_batches(workers):
    full = DataLoader(Indexed(23), 4, seed=2)
    full.set_epoch(4)
    ref = collect(full)
    log = [] if workers == 0 else None
    ld = DataLoader(Indexed(23, log=log), 4, seed=2, workers=workers)
    ld.set_epoch(4)
    it = ld.iter_from(3)
    assert ld.position == 3
    got = collect(it)
    assert_same(got, ref[3:])
    assert ld.position == len(ld) == 6
    if log is not None:
        skipped = set(full.order()[:12].tolist())
        assert not skipped & set(log) and len(log) == 11
    assert collect(ld.iter_from(len(ld))) == []
    with pytest.raises(ValueError, match="0..6"):
        ld.iter_from(7)


def test_position_tracks_consumed_batches():
    ld = DataLoader(Indexed(20), 4)
    it = iter(ld)
    next(it)
    next(it)
    assert ld.position == 2 == it.position
    assert_same(collect(ld.iter_from(ld.position)), collect(DataLoader(Indexed(20), 4))[2:])


def test_early_break_stops_workers():
    ld = DataLoader(SyntheticShapes(200, image_size=16), 4, workers=2, prefetch=2)
    for _ in ld:
        break
    gc.collect()
    assert no_children()
    it = iter(ld)
    next(it)
    procs = list(it._procs)
    assert all(p.is_alive() for p in procs)
    del it
    gc.collect()
    assert not any(p.is_alive() for p in procs)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_consumer_exception_stops_workers(exc):
    ld = DataLoader(SyntheticShapes(200, image_size=16), 4, workers=2)
    with pytest.raises(exc):
        for _ in ld:
            raise exc("stop")
    gc.collect()
    assert no_children()


def test_context_manager_close():
    ld = DataLoader(Indexed(100), 2, workers=2)
    with iter(ld) as it:
        next(it)
        procs = list(it._procs)
    assert not any(p.is_alive() for p in procs)


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_images_are_skipped_with_warning(workers):
    ds = Indexed(12, corrupt=[3, 7])
    ld = DataLoader(ds, 4, shuffle=False, workers=workers)
    with pytest.warns(UserWarning) as rec:
        batches = collect(ld)
    messages = [str(w.message) for w in rec]
    assert len(messages) == 2
    assert "/data/img3.jpg" in messages[0] and "/data/img7.jpg" in messages[1]
    assert [y.tolist() for _, y in batches] == [[0, 1, 2], [4, 5, 6], [8, 9, 10, 11]]
    assert ld.skipped == ["/data/img3.jpg", "/data/img7.jpg"]
    ld.set_epoch(1)
    assert ld.skipped == []


def test_all_corrupt_batch_is_not_yielded():
    ld = DataLoader(Indexed(6, corrupt=[2, 3]), 2, shuffle=False)
    with pytest.warns(UserWarning):
        ys = [y.tolist() for _, y in ld]
    assert ys == [[0, 1], [4, 5]]
    assert ld.position == 3


@pytest.mark.parametrize("workers", [0, 2])
def test_strict_raises_with_file_name(workers):
    ld = DataLoader(Indexed(12, corrupt=[5]), 4, shuffle=False, workers=workers, strict=True)
    with pytest.raises(CorruptImageError, match=r"/data/img5\.jpg"):
        collect(ld)
    assert no_children()


def test_transform_errors_propagate_from_workers():
    def bad(img, rng):
        if img[0, 0, 0] == 6:
            raise ValueError("transform failed on six")
        return np.zeros((3, 2, 2), np.float32)

    ld = DataLoader(Indexed(12), 4, bad, shuffle=False, workers=2)
    with pytest.raises(ValueError, match="six") as e:
        collect(ld)
    assert any("worker" in n for n in getattr(e.value, "__notes__", []))
    assert no_children()


def test_mismatched_shapes_are_explained():
    ld = DataLoader(Indexed(4), 4, lambda img, rng: np.zeros((3, 1 + img[0, 0, 0], 2), np.float32))
    with pytest.raises(ValueError, match="crop"):
        collect(ld)


@pytest.mark.parametrize("kwargs, word", [
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=4, workers=-1), "workers"),
    (dict(batch_size=4, prefetch=0), "prefetch"),
    (dict(batch_size=4, seed=-1), "seed"),
    (dict(batch_size=4, transform="nope"), "transform"),
])
def test_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        DataLoader(Indexed(4), **kwargs)
    with pytest.raises(ValueError, match="epoch"):
        DataLoader(Indexed(4), 2).set_epoch(-1)


def test_worker_death_is_reported():
    class Dies(Indexed):
        def __getitem__(self, i):
            if i == 9:
                os._exit(3)
            return super().__getitem__(i)

    ld = DataLoader(Dies(16), 2, shuffle=False, workers=2)
    # The worker and its two replacements die on the same image: the third
    # death ends the pass.
    with pytest.warns(UserWarning, match="a new worker loads its batches again") as rec:
        with pytest.raises(WorkerDied, match="exited unexpectedly with code 3") as e:
            collect(ld)
    assert ["replacement 1 of 2" in str(w.message) for w in rec] == [True, False]
    assert e.value.deaths == 3 and e.value.exitcode == 3 and not e.value.killed_for_memory
    assert no_children()
    with pytest.raises(WorkerDied, match="epoch 1"):  # restarts=0: the first death ends it
        collect(DataLoader(Dies(16), 2, shuffle=False, workers=2, restarts=0))
    assert no_children()


class KilledOnce(Indexed):
    """Loading image ``victim`` SIGKILLs the worker, the first time only."""

    def __init__(self, n, victim, mark):
        super().__init__(n)
        self.victim, self.mark = victim, str(mark)

    def __getitem__(self, i):
        if i == self.victim and not os.path.exists(self.mark):
            open(self.mark, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(i)


@pytest.mark.parametrize("start", [0, 3])
def test_a_killed_worker_is_replaced_and_the_pass_is_unchanged(tmp_path, start):
    ds = KilledOnce(40, victim=21, mark=tmp_path / "killed")
    ld = DataLoader(ds, 4, seed=7, workers=2)
    ld.set_epoch(1)
    with pytest.warns(UserWarning, match=r"was killed by SIGKILL before handing over batch \d+ "
                                         r"of epoch 2; a new worker loads its batches again"):
        got = collect(ld.iter_from(start))
    assert os.path.exists(tmp_path / "killed")
    ref = DataLoader(Indexed(40), 4, seed=7)
    ref.set_epoch(1)
    assert_same(got, collect(ref.iter_from(start)))
    assert ld.position == len(ld)
    assert no_children()


SIGINT_SCRIPT = '''
import signal
import time
import numpy as np
# A shell that runs the suite as a background job starts it with SIGINT ignored,
# and Python then installs no KeyboardInterrupt handler; a terminal's Ctrl-C,
# which this script stands for, has one.
signal.signal(signal.SIGINT, signal.default_int_handler)
from minivgg.data import DataLoader

class Slow:
    classes = ["x"]
    def __len__(self):
        return 1000
    def __getitem__(self, i):
        time.sleep(0.05)
        return np.zeros((4, 4, 3), np.uint8), 0
    def describe(self, i):
        return str(i)

it = iter(DataLoader(Slow(), 2, workers=2))
next(it)
print(" ".join(str(p.pid) for p in it._procs), flush=True)
for _ in it:
    pass
'''


def test_ctrl_c_leaves_no_worker_behind(tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "sigint.py"
    script.write_text(SIGINT_SCRIPT)
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    # Its own session, so that Ctrl-C reaches the script and its workers only, like a terminal's.
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, start_new_session=True) as p:
        try:
            pids = [int(v) for v in p.stdout.readline().split()]
            assert len(pids) == 2, p.stderr.read()
            os.killpg(p.pid, signal.SIGINT)
            p.wait(timeout=20)
            assert "KeyboardInterrupt" in p.stderr.read()
        finally:
            if p.poll() is None:
                p.kill()
    deadline = time.time() + 5
    alive = pids
    while alive and time.time() < deadline:
        alive = [pid for pid in alive if _exists(pid)]
        time.sleep(0.05)
    assert not alive, f"workers still running: {alive}"


def _exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A reaped-late zombie counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def loader_threads():
    import threading
    return [t for t in threading.enumerate() if t.name == "minivgg-loader" and t.is_alive()]


def test_the_next_batch_loaded_ahead_in_a_thread_gives_the_same_batches():
    """workers=0 with overlap: the batch after the one handed out is loaded
    in a thread meanwhile; the batches are the same as loading in turn, for
    whole passes, epochs and a pass resumed in the middle; the thread ends
    with the pass."""
    from minivgg import threads as th
    ds = SyntheticShapes(40, image_size=16)
    t = train_transform(12, (16, 24), [0.5] * 3)
    plain = DataLoader(ds, 6, t, seed=1, overlap=False)
    ahead = DataLoader(ds, 6, t, seed=1, overlap=True)
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        ahead.set_epoch(epoch)
        assert_same(collect(plain), collect(ahead))
    assert_same(collect(plain.iter_from(3)), collect(ahead.iter_from(3)))
    assert not loader_threads()
    it = iter(ahead)
    next(it)
    assert len(loader_threads()) == 1
    it.close()                                  # an early break stops it
    assert not loader_threads()
    before = th.threads()
    try:                                        # by default: with more than one thread
        th.set_threads(1)
        assert not DataLoader(ds, 6, t).overlaps()
        th.set_threads(2)
        assert DataLoader(ds, 6, t).overlaps() and not plain.overlaps()
    finally:
        th.set_threads(None if before == th.cores() else before)


def test_an_error_loading_ahead_reaches_the_consumer_at_its_batch():
    def bad(img, rng):
        if img[0, 0, 0] == 6:
            raise ValueError("transform failed on six")
        return np.zeros((3, 2, 2), np.float32)

    got = []
    with pytest.raises(ValueError, match="six"):
        for x, y in DataLoader(Indexed(12), 4, bad, shuffle=False, overlap=True):
            got.append(list(y))
    assert got == [[0, 1, 2, 3]]       # the batch before the error, then the error
    assert not loader_threads()
    skipped = []
    ld = DataLoader(Indexed(12, corrupt=[5]), 4, shuffle=False, overlap=True,
                    on_skip=lambda d, m: skipped.append(d))
    assert [list(y) for _, y in ld] == [[0, 1, 2, 3], [4, 6, 7], [8, 9, 10, 11]]
    assert skipped == ["/data/img5.jpg"] and ld.skipped == ["/data/img5.jpg"]
