"""Helpers for checking minivgg against PyTorch (tests and benchmarks).

``torch_vgg(model)`` builds the same network in PyTorch from the model's
Table 1 configuration, with torchvision's layer indices, and copies the
weights over; PyTorch is imported only when this is called.
"""
from .models.vgg import CONFIGS, LRN, M


def torch_vgg(model, dtype=None):
    """A ``torch.nn.Module`` equal to ``model`` (a minivgg VGG), same weights.

    Its ``state_dict`` keys are torchvision's (``features.{i}``,
    ``classifier.{0,3,6}``). LRN maps to ``nn.LocalResponseNorm`` with alpha
    multiplied by the window size (PyTorch divides it by the size).
    """
    import torch
    from torch import nn

    layers = []
    c = 3
    for item in CONFIGS[model.cfg]:
        if item == M:
            layers.append(nn.MaxPool2d(2, 2))
        elif item == LRN:
            layers.append(nn.LocalResponseNorm(5, alpha=1e-4 * 5, beta=0.75, k=2.0))
        else:
            channels, k = item if isinstance(item, tuple) else (item, 3)
            channels = max(1, int(round(channels * model.width_mult)))
            layers += [nn.Conv2d(c, channels, k, padding=k // 2), nn.ReLU(inplace=False)]
            c = channels
    cls = model.classifier
    p = cls[2].p

    class TorchVGG(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(
                nn.Linear(cls[0].in_features, cls[0].out_features), nn.ReLU(), nn.Dropout(p),
                nn.Linear(cls[3].in_features, cls[3].out_features), nn.ReLU(), nn.Dropout(p),
                nn.Linear(cls[6].in_features, cls[6].out_features))

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    net = TorchVGG()
    if dtype is not None:
        net = net.to(dtype)
    sd = model.state_dict()
    net.load_state_dict({k: torch.tensor(v) for k, v in sd.items()}, strict=True)
    return net
