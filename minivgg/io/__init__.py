"""Interoperability: weights files in and out.

``weights``: .safetensors, PyTorch .pth/.pt and .npz, torchvision's and timm's
key names (``layouts``), the configuration read from the shapes. The ONNX
export of the §2.1 layers is ``VGG.export_onnx`` (minivgg/nn/onnx.py).
See docs/interop.md.
"""
from .layouts import LAYOUTS, WeightsError, infer_config
from .weights import (FORMATS, LoadedWeights, WeightsInfo, inspect_weights, load_model,
                      load_weights, save_weights, weights_format)

__all__ = ["load_model", "load_weights", "save_weights", "inspect_weights", "LoadedWeights",
           "WeightsInfo", "WeightsError", "FORMATS", "LAYOUTS", "weights_format", "infer_config"]
