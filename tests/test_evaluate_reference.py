"""evaluate() (§3.2, §4.1-§4.4) against a plain re-statement of each
protocol written here: isotropic bilinear rescale (Pillow), mean
subtraction, centre crop, 5x5 grid of crops with their mirror images, the
dense score map as the classifier applied at every feature-map cell of
the centred window the map covers, soft-max, averaging; top-k by sorting. It shares no code path with
EvalNet.predict."""
import numpy as np
import pytest
from PIL import Image

import minivgg
from minivgg import Tensor
from minivgg import evaluate as ev
from minivgg.models import vgg

MEAN = np.array([0.45, 0.5, 0.55])
CROP = 32


def net(cfg="A", seed=0, classes=10):
    return vgg(cfg, num_classes=classes, input_size=CROP, fc_width=16, width_mult=1 / 16,
               init="kaiming", seed=seed, dtype=np.float64, fc_bias=0.1).eval()


def image(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def softmax(s):
    e = np.exp(s - s.max())
    return e / e.sum()


def rescaled(img, q):
    h, w = img.shape[:2]
    nh, nw = (q, int(round(w * q / h))) if h <= w else (int(round(h * q / w)), q)
    out = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
    return ((out / 255.0 - MEAN).transpose(2, 0, 1)).astype(np.float32).astype(np.float64)


def logits(m, x):
    with minivgg.no_grad():
        return m(Tensor(x[None])).data[0]


def single_ref(m, img, q):
    x = rescaled(img, q)
    y0, x0 = (x.shape[1] - CROP) // 2, (x.shape[2] - CROP) // 2
    return softmax(logits(m, x[:, y0:y0 + CROP, x0:x0 + CROP]))


def multicrop_ref(m, img, q, grid=5):
    x = rescaled(img, q)
    ys = [round(i * (x.shape[1] - CROP) / (grid - 1)) for i in range(grid)]
    xs = [round(i * (x.shape[2] - CROP) / (grid - 1)) for i in range(grid)]
    crops = []
    for y0 in ys:
        for x0 in xs:
            c = x[:, y0:y0 + CROP, x0:x0 + CROP]
            crops += [c, c[:, :, ::-1]]
    with minivgg.no_grad():
        scores = m(Tensor(np.stack(crops))).data
    assert len(scores) == 2 * grid * grid
    return np.mean([softmax(s) for s in scores], axis=0)


def dense_map_ref(m, x):
    """Score map of the crop-32 model: FC layers applied at every 1x1 feature cell."""
    with minivgg.no_grad():
        feat = m.features(Tensor(x[None])).data[0]
        cells = feat.transpose(1, 2, 0).reshape(-1, feat.shape[0])
        scores = m.classifier(Tensor(cells)).data
    return scores.reshape(feat.shape[1], feat.shape[2], -1)


def centred_window(x, stride=32):
    """The part of x (3, H, W) a crop-32 net's score map covers, centred: the
    H - 32 - 32k rows (and columns) it cannot cover, half off each side (the odd
    one off the bottom or right)."""
    h, w = x.shape[1:]
    cut_h, cut_w = (h - CROP) % stride, (w - CROP) % stride
    return x[:, cut_h // 2:h - (cut_h - cut_h // 2), cut_w // 2:w - (cut_w - cut_w // 2)]


def dense_ref(m, img, q):
    x = centred_window(rescaled(img, q))
    posts = [softmax(dense_map_ref(m, v).mean(axis=(0, 1))) for v in (x, x[:, :, ::-1].copy())]
    return np.mean(posts, axis=0)


def protocol_ref(m, img, protocol, scales):
    if protocol == "single":
        return single_ref(m, img, scales[0])
    parts = []
    if protocol in ("multicrop", "dense+multicrop"):
        parts.append(np.mean([multicrop_ref(m, img, q) for q in scales], axis=0))
    if protocol in ("dense", "dense+multicrop"):
        parts.append(np.mean([dense_ref(m, img, q) for q in scales], axis=0))
    return np.mean(parts, axis=0)


def rank_of_label(p, label):
    order = np.argsort(-p, kind="stable")
    return int(np.nonzero(order == label)[0][0])


class ListData:
    def __init__(self, images, labels, classes):
        self.images, self.labels, self.classes = images, labels, classes

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


IMAGES = [image(32, 32, 1), image(37, 50, 2), image(61, 40, 3)]
CLASSES = [f"c{i}" for i in range(10)]


def labels_ranked(posteriors, ranks, apart=1e-4):
    """For each image, the class that its posteriors rank at ranks[i] (0 = top),
    checked to lie ``apart`` (relative) from its neighbours in the ranking:
    far more than the 1e-6 by which the evaluator's posteriors may differ
    from these, so the rank cannot change with the machine's rounding."""
    labels = []
    for p, r in zip(posteriors, ranks):
        order = np.argsort(-p, kind="stable")
        for nb in (r - 1, r + 1):
            if 0 <= nb < len(p):
                assert abs(p[order[r]] - p[order[nb]]) > apart * p[order[r]], \
                    "the test's images put two classes too close: pick another rank"
        labels.append(int(order[r]))
    return labels


@pytest.mark.parametrize("protocol,scales", [("single", [40]), ("dense", [32, 40]),
                                             ("multicrop", [32, 48]),
                                             ("dense+multicrop", [32, 40])])
def test_evaluate_equals_the_protocol_written_plainly(protocol, scales):
    # (float32 images and float64 arithmetic: the two mean subtractions round
    # differently at 1e-7.)
    m = net(seed=4)
    want = np.stack([protocol_ref(m, img, protocol, scales) for img in IMAGES])
    # Labels chosen so that the true classes rank 5th, 1st and 6th.
    labels = labels_ranked(want, [4, 0, 5])
    e = ev.EvalNet(m, MEAN, train_scale=40, classes=CLASSES)
    rep = ev.evaluate(e, ListData(IMAGES, labels, CLASSES), protocol, scales, batch_size=8,
                      progress=False)
    np.testing.assert_allclose(rep.posteriors[0], want, rtol=1e-6, atol=1e-12)
    assert [rank_of_label(p, y) for p, y in zip(rep.posteriors[0], labels)] == [4, 0, 5]
    row = rep.rows[0]
    assert row.top1 == pytest.approx(2 / 3) and row.top5 == pytest.approx(1 / 3)
    assert row.images == 3 and row.scales == ",".join(map(str, scales))


def test_fusion_averages_the_models_posteriors():
    a, b = net("A", seed=5), net("C", seed=6)
    scales = [32, 40]
    pa = np.stack([protocol_ref(a, img, "dense", scales) for img in IMAGES])
    pb = np.stack([protocol_ref(b, img, "dense", scales) for img in IMAGES])
    fused = (pa + pb) / 2
    labels = labels_ranked(fused, [0, 4, 7])
    nets = [ev.EvalNet(x, MEAN, train_scale=40, classes=CLASSES) for x in (a, b)]
    rep = ev.evaluate(nets, ListData(IMAGES, labels, CLASSES), "dense", scales, progress=False)
    np.testing.assert_allclose(rep.posteriors[0], pa, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(rep.posteriors[1], pb, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(rep.fused, fused, rtol=1e-6, atol=1e-12)
    fusion = rep.rows[-1]
    assert fusion.model.startswith("fusion")
    assert fusion.top1 == pytest.approx(2 / 3) and fusion.top5 == pytest.approx(1 / 3)
    cm = rep.confusion_matrix()
    assert cm.sum() == 3 and cm[labels[0], labels[0]] == 1


def test_default_scales_follow_the_training_scale():
    # §4.1: single-scale test at Q = S, or (S_min + S_max) / 2 for jittered S;
    # §4.2: Q = {S - 32, S, S + 32}, or {S_min, (S_min + S_max) / 2, S_max}.
    m = net(seed=7)
    fixed = ev.EvalNet(m, MEAN, train_scale=64)
    jitter = ev.EvalNet(m, MEAN, train_scale=[32, 64])
    assert fixed.scales_for("single") == [64] and jitter.scales_for("single") == [48]
    assert fixed.scales_for("dense") == [32, 64, 96]
    assert jitter.scales_for("multicrop") == [32, 48, 64]
    img = IMAGES[1]
    np.testing.assert_allclose(jitter.predict(img, "single"), single_ref(m, img, 48), rtol=1e-6)


# -- top-k, with ties ---------------------------------------------------------------------

def test_topk_ties_go_to_the_lower_class_index():
    flat = np.zeros((4, 6))
    assert ev.topk_correct(flat, np.array([0, 1, 5, 4]), 1).tolist() == [True, False, False,
                                                                         False]
    assert ev.topk_correct(flat, np.array([0, 1, 5, 4]), 5).tolist() == [True, True, False,
                                                                         True]
    p = np.array([[0.2, 0.35, 0.35, 0.1],
                  [0.2, 0.35, 0.35, 0.1],
                  [0.25, 0.25, 0.25, 0.25]])
    assert ev.topk_correct(p, np.array([1, 2, 3]), 1).tolist() == [True, False, False]
    assert ev.topk_correct(p, np.array([1, 2, 3]), 2).tolist() == [True, True, False]
    assert ev.topk_correct(p, np.array([1, 2, 3]), 4).tolist() == [True, True, True]


def test_topk_error_by_hand_on_ten_classes():
    s = np.tile(np.arange(10.0)[::-1], (10, 1))  # class c ranked c-th
    y = np.arange(10)
    for k in range(1, 11):
        assert ev.topk_error(s, y, k) == pytest.approx(1 - k / 10)
