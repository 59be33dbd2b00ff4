"""Interoperability: weights files in and out, and ONNX export.

``weights``: .safetensors, PyTorch .pth/.pt and .npz, torchvision's and timm's
key names (``layouts``), the configuration read from the shapes.
``onnx_export``: the §2.1 layers as an ONNX graph (``VGG.export_onnx``).
See docs/interop.md.
"""
from .layouts import LAYOUTS, WeightsError, infer_config
from .weights import (FORMATS, LoadedWeights, WeightsInfo, inspect_weights, load_model,
                      load_weights, save_weights, weights_format)

__all__ = ["load_model", "load_weights", "save_weights", "inspect_weights", "LoadedWeights",
           "WeightsInfo", "WeightsError", "FORMATS", "LAYOUTS", "weights_format", "infer_config"]
