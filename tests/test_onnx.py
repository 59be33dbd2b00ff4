"""ONNX export (minivgg.nn.onnx), checked with onnxruntime as the oracle:
the exported graph gives minivgg's logits and dense score maps."""
import os

import numpy as np
import pytest

import minivgg
from minivgg.models import vgg

from conftest import onnx_or_skip


def small(cfg, seed=0):
    return vgg(cfg, num_classes=10, input_size=32, fc_width=16, width_mult=0.125,
               init="kaiming", seed=seed).eval()


def run_onnx(path, x):
    _, ort = onnx_or_skip()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def forward(model, x):
    with minivgg.no_grad():
        return model(minivgg.Tensor(x)).data


def rel_err(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("cfg", ["A", "A-LRN", "C", "D"])
def test_exported_graph_gives_minivggs_logits(tmp_path, cfg):
    onnx, _ = onnx_or_skip()
    m = small(cfg)
    # Pixel-sized inputs (as the caffe preset gives) make the LRN of A-LRN
    # far from a constant factor, so a wrong alpha would show.
    x = np.random.default_rng(1).normal(0, 60, (3, 3, 32, 32)).astype(np.float32)
    path = m.export_onnx(tmp_path / f"{cfg}.onnx")
    got = run_onnx(path, x)
    assert got.shape == (3, 10)
    assert rel_err(got, forward(m, x)) <= 1e-5
    proto = onnx.load(path)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert {i.name for i in proto.graph.initializer} == set(m.state_dict())
    lrn = [n for n in proto.graph.node if n.op_type == "LRN"]
    assert len(lrn) == (cfg == "A-LRN")
    if lrn:  # minivgg's alpha multiplies the sum of squares, ONNX's the mean
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in lrn[0].attribute}
        assert attrs["size"] == 5 and attrs["alpha"] == pytest.approx(5e-4)
        assert attrs["bias"] == 2.0 and attrs["beta"] == 0.75


def test_dense_export_with_free_and_fixed_image_sizes(tmp_path):
    onnx_or_skip()
    dense = small("D", seed=2).to_fully_conv()
    free = dense.export_onnx(tmp_path / "free.onnx")
    fixed = dense.export_onnx(tmp_path / "fixed.onnx", input_size=(64, 96))
    rng = np.random.default_rng(3)
    for path, shapes in ((free, [(2, 3, 64, 96), (1, 3, 32, 32), (1, 3, 100, 40)]),
                         (fixed, [(2, 3, 64, 96)])):
        for shape in shapes:
            x = rng.normal(0, 1, shape).astype(np.float32)
            want = forward(dense, x)
            got = run_onnx(path, x)
            assert got.shape == want.shape and rel_err(got, want) <= 1e-5


def test_bad_exports_name_the_problem_and_write_nothing(tmp_path):
    onnx_or_skip()
    m = small("A-LRN")
    with pytest.raises(ValueError, match="takes 32x32 crops .* got input_size 64; export the "
                                         "dense net"):
        m.export_onnx(tmp_path / "a.onnx", input_size=64)
    with pytest.raises(ValueError, match=r"input_size \(16, 64\) is smaller than the 32x32"):
        m.to_fully_conv().export_onnx(tmp_path / "a.onnx", input_size=(16, 64))
    with pytest.raises(ValueError, match="input_size must be an int S or a pair"):
        m.to_fully_conv().export_onnx(tmp_path / "a.onnx", input_size="big")
    m.features[2].size = 4
    with pytest.raises(ValueError, match="features.2: LRN size 4 is even"):
        m.export_onnx(tmp_path / "a.onnx")
    assert os.listdir(tmp_path) == []
