"""The VGG paper's test protocols (§3.2 "Testing", §4.1-§4.4) and its metrics.

Shape letters: N images, K classes, C=3 channels, H x W an image, Q the test
scale (the image's shorter side after isotropic rescaling), crop the training
crop side (the model's ``input_size``, 224 in the paper), OH x OW the class
score map of the dense network.

Paper section                          code
-------------------------------------  ------------------------------------------
§3.2 FC layers as convolutions          ``VGG.to_fully_conv()`` (models/vgg.py)
§3.2 rescale to Q, crops, mean          views.py: ``rescale``, ``crop_positions``, ``normalise``
§3.2 dense evaluation (+ flip)          protocols.py: ``dense_score_map``, ``dense_scores``
§3.2/§4.3 multi-crop, 5x5 grid x flips  protocols.py: ``multicrop_scores``
§4.1 single test scale Q (Table 3)      scales.py: ``single_scale``; Table 3 is dense at one Q
(a quick check, not in the paper)       protocols.py: ``single_crop_scores``, one centre crop
§4.2 multi-scale test, Q per S          scales.py: ``test_scales``, ``check_scales``
§4.3 dense + multi-crop (Table 5)       evalnet.py: ``EvalNet.predict(..., "dense+multicrop")``
§4.4 ConvNet fusion (Table 6)           evalnet.py: ``fuse_posteriors``; run.py ``evaluate([a, b])``
top-1 / top-5 error                     metrics.py: ``topk_correct``, ``topk_error``
whole data sets, tables                 run.py: ``evaluate``, ``format_report``
§2.1 mean subtraction, other weights'   views.py ``normalise``, ``EvalNet.preprocess`` (presets of
  conventions                            data/preprocess.py), ``EvalNet.from_file``

The views of every protocol go through the network in batches
(batching.py) whose inputs never exceed ``batch_size`` crops' worth of
pixels; images of different sizes are never padded into one batch.
"""
from .batching import pool_score_map
from .evalnet import EvalNet, check_same_classes, fuse_posteriors, predict
from .metrics import confusion_matrix, per_class_accuracy, topk_correct, topk_error
from .protocols import dense_score_map, dense_scores, multicrop_scores, single_crop_scores
from .run import EvalReport, EvalRow, evaluate, format_report
from .scales import (FOREIGN_MULTI_Q, FOREIGN_SINGLE_Q, PROTOCOLS, SCALE_OFFSET, check_protocol,
                     check_scales, default_scales, foreign_scales, parse_scales, single_scale,
                     test_scales)
from .views import GRID, as_preprocess, crop_positions, dense_window, normalise, rescale

__all__ = [
    "PROTOCOLS", "SCALE_OFFSET", "GRID",
    "test_scales", "single_scale", "default_scales", "foreign_scales", "check_scales",
    "check_protocol", "FOREIGN_SINGLE_Q", "FOREIGN_MULTI_Q",
    "parse_scales",
    "rescale", "normalise", "as_preprocess", "crop_positions", "dense_window",
    "dense_score_map", "pool_score_map", "dense_scores", "multicrop_scores",
    "single_crop_scores", "predict",
    "EvalNet", "check_same_classes", "fuse_posteriors",
    "topk_correct", "topk_error", "confusion_matrix", "per_class_accuracy",
    "EvalRow", "EvalReport", "evaluate", "format_report",
]
