"""Table 1 as rows: each layer's output shape, parameters, multiply-adds and
receptive field, computed from the configuration table alone (no network
is built). ``python -m minivgg.summary`` prints them; the trainer sizes its
threads by the multiply-adds of a step.
"""
import dataclasses

from .vgg import CONFIGS, LRN, M, NUM_POOLS

BYTES_PER_VALUE = 4  # float32


@dataclasses.dataclass
class LayerRow:
    """One layer of a VGG configuration."""
    notation: str      # Table 1: conv3-64, conv1-256, LRN, maxpool, FC-4096, soft-max
    name: str          # the paper's: conv1_1, pool1, lrn1, fc6, soft-max
    block: int         # 1-5 for the conv stack, 6 for the classifier
    shape: tuple       # output (C, H, W) or (F,)
    params: int
    mult_adds: int
    receptive_field: int   # input pixels on a side; 0 where not meaningful (soft-max)
    step: int              # input pixels between neighbouring outputs

    @property
    def values(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def train_bytes(self):
        """Forward value and backward gradient of the output, float32, batch 1."""
        return 2 * BYTES_PER_VALUE * self.values


def _check(cfg, input_size, num_classes, width_mult, fc_width):
    if cfg not in CONFIGS:
        raise ValueError(f"unknown VGG configuration {cfg!r}; valid ones are "
                         f"{', '.join(CONFIGS)}")
    if input_size < 2 ** NUM_POOLS:
        raise ValueError(f"input {input_size} is too small for VGG's {NUM_POOLS} poolings; "
                         f"use at least {2 ** NUM_POOLS}")
    if num_classes < 1 or fc_width < 1 or not width_mult > 0:
        raise ValueError(f"classes, FC width and width multiplier must be positive, got "
                         f"{num_classes}, {fc_width}, {width_mult}")


def layer_rows(cfg, input_size=224, num_classes=1000, width_mult=1.0, fc_width=4096):
    """The rows of configuration ``cfg`` for an input_size x input_size RGB image.

    Channel counts are scaled as ``VGG(width_mult=...)`` scales them, so the
    rows match the minivgg model built with the same arguments.
    Returns a list of LayerRow, input image excluded, soft-max last.
    """
    _check(cfg, input_size, num_classes, width_mult, fc_width)
    rows = []
    c, s = 3, input_size
    rf, step = 1, 1
    block, i = 1, 0
    for item in CONFIGS[cfg]:
        if item == M:
            s //= 2
            rf += step
            step *= 2
            rows.append(LayerRow("maxpool", f"pool{block}", block, (c, s, s), 0, 0, rf, step))
            block, i = block + 1, 0
        elif item == LRN:
            rows.append(LayerRow("LRN", f"lrn{block}", block, (c, s, s), 0, 0, rf, step))
        else:
            k_out, k = item if isinstance(item, tuple) else (item, 3)
            k_scaled = max(1, int(round(k_out * width_mult)))
            rf += (k - 1) * step
            i += 1
            params = k_scaled * c * k * k + k_scaled
            macs = s * s * k_scaled * c * k * k
            rows.append(LayerRow(f"conv{k}-{k_scaled}", f"conv{block}_{i}", block,
                                 (k_scaled, s, s), params, macs, rf, step))
            c = k_scaled
    # The classifier: fc6 reads the whole s x s x c map (a 7x7 window at 224).
    rf += (s - 1) * step
    f_in = c * s * s
    for name, f_out in (("fc6", fc_width), ("fc7", fc_width), ("fc8", num_classes)):
        rows.append(LayerRow(f"FC-{f_out}", name, 6, (f_out,), f_in * f_out + f_out,
                             f_in * f_out, rf, step))
        f_in = f_out
    rows.append(LayerRow("soft-max", "soft-max", 6, (num_classes,), 0, 0, 0, 0))
    return rows


def totals(rows):
    """{'params', 'mult_adds', 'values', 'train_bytes', 'weight_layers'} summed over rows."""
    return {"params": sum(r.params for r in rows),
            "mult_adds": sum(r.mult_adds for r in rows),
            "values": sum(r.values for r in rows),
            "train_bytes": sum(r.train_bytes for r in rows),
            "weight_layers": sum(r.params > 0 for r in rows)}
