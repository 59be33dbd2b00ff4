#!/usr/bin/env python
"""One training step of §3.1 in plain sight, on the textbook tier:
images -> augmentation -> VGG-A -> softmax cross-entropy -> backward ->
SGD with momentum and weight decay -> the learning-rate schedule.

    python examples/one_step.py

The Trainer (minivgg/train/step.py) runs this same step, with micro-batches, the
gradient exchange between processes and a check for a diverging loss
around it; docs/paper_to_code.md walks through each line.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minivgg  # noqa: E402
from minivgg import functional as F  # noqa: E402
from minivgg.data import SyntheticShapes, train_transform  # noqa: E402
from minivgg.models import vgg  # noqa: E402
from minivgg.optim import SGD, ReduceLROnPlateau  # noqa: E402

minivgg.use_ops("reference")  # the textbook ops of minivgg/functional, every module run

data = SyntheticShapes(8, image_size=40)                 # 8 images of 10 shape classes
mean_rgb = np.mean([img.reshape(-1, 3).mean(0) for img, _ in data], axis=0) / 255
augment = train_transform(crop=32, scale=(36, 40), mean_rgb=mean_rgb)  # S, crop, flip, colour
rng = np.random.default_rng(0)
x = np.stack([augment(img, rng) for img, _ in data])     # (N, 3, 32, 32) float32
y = np.array([label for _, label in data])               # (N,) class indices
print("batch", x.shape, x.dtype, "labels", y)

model = vgg("A", num_classes=10, input_size=32, width_mult=0.25, fc_width=128, seed=0)
optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
schedule = ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=0)

logits = model(minivgg.Tensor(x))                         # (N, 10) class scores
loss = F.softmax_cross_entropy(logits, y)                # the mean over the batch
optimizer.zero_grad()
loss.backward()                                          # every parameter's .grad
print("logits", logits.shape, "loss", round(float(loss.item()), 4))
print("first filter bank", model.features[0].weight.shape,
      "its gradient", model.features[0].weight.grad.shape)
optimizer.step()                                         # v = mu v + g + wd w; w -= lr v
for accuracy in (0.5, 0.4):                              # validation accuracy, epoch by epoch
    schedule.step(accuracy)                              # no improvement: lr / 10
    print("after a validation accuracy of", accuracy, "the learning rate is", optimizer.lr)
