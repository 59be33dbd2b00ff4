"""Checkpoints: round trip, no pickle, atomic writes, corruption detected."""
import io
import zipfile

import numpy as np
import pytest

from minivgg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minivgg.models import vgg
from minivgg.optim import SGD

META = {"classes": ["a", "b", "c"], "mean_rgb": [0.4, 0.5, 0.6], "epoch": 1}


def small():
    return vgg("A", num_classes=3, input_size=32, fc_width=8, width_mult=0.125, seed=0)


def test_round_trip_with_optimizer(tmp_path):
    m = small()
    opt = SGD(m.parameters(), 0.1, 0.9)
    for p in m.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    path = save_checkpoint(tmp_path / "c.npz", m, META, opt)
    ck = load_checkpoint(path)
    assert ck.meta["classes"] == META["classes"] and ck.meta["model"]["cfg"] == "A"
    m2 = ck.build_model()
    for (n, a), (_, b) in zip(m.named_parameters(), m2.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)
    for v, w in zip(opt.state_dict()["velocity"], ck.optimizer_state["velocity"]):
        np.testing.assert_array_equal(v, w)


def test_directory_resolves_to_last_npz(tmp_path):
    save_checkpoint(tmp_path / "last.npz", small(), META)
    assert load_checkpoint(tmp_path).path == str(tmp_path / "last.npz")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint in directory"):
        load_checkpoint(tmp_path / "empty")


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_truncated_file_is_a_clear_error(tmp_path, cut):
    path = save_checkpoint(tmp_path / "c.npz", small(), META)
    data = open(path, "rb").read()
    open(path, "wb").write(data[:int(len(data) * cut)])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(path)


def test_flipped_byte_is_detected_by_the_crc(tmp_path):
    m = small()
    path = save_checkpoint(tmp_path / "c.npz", m, META)
    data = bytearray(open(path, "rb").read())
    # Corrupt a byte inside the largest array's payload.
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    data[info.header_offset + 200] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_pickled_object_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __meta__=np.array([{"format": "minivgg-checkpoint"}], dtype=object))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_foreign_npz_is_refused(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a minivgg checkpoint"):
        load_checkpoint(tmp_path / "x.npz")


def test_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.npz", small(), META)
    before = open(path, "rb").read()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, small(), dict(META, epoch=2))
    assert open(path, "rb").read() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.npz"]  # no temp file left
