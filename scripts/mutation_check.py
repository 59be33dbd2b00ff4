"""Plant known bugs one at a time and check that the test suite catches each.

    python scripts/mutation_check.py                 # every mutation, full suite each
    python scripts/mutation_check.py --list          # names and descriptions
    python scripts/mutation_check.py -m pool_pad_zero -m relu_grad_at_zero
    python scripts/mutation_check.py --first         # stop each run at the first failure
    python scripts/mutation_check.py --no-torch      # as on a machine without the oracle
    python scripts/mutation_check.py -- tests/test_modes.py   # pytest arguments after --

Each mutation is a list of (file, old, new) text replacements in the
project's mechanics (ops, configurations, training recipe, test protocols,
data transforms, checkpoints). For each one the tracked files of the
repository are copied to a temporary directory, the replacements are applied
there (each ``old`` must occur exactly once, so a mutation that no longer
applies is reported rather than silently skipped), and the suite is run in
that copy. A mutation is *caught* when the suite fails. The working tree is
never modified.

This is a development tool, not part of the test run (it takes about half a
minute per mutation on a 2-core machine). docs/testing.md explains how to add
a mutation when you add an op or a mechanism.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (description, [(file, old, new), ...])
MUTATIONS = {
    # -- convolution, textbook tier (minivgg/functional/conv.py) ----------------
    "im2col_taps_transposed": (
        "textbook im2col files kernel position (u, v) under (v, u)",
        [("minivgg/functional/conv.py", "col[:, u, v] = block_uv", "col[:, v, u] = block_uv")]),
    "im2col_stride_w": (
        "textbook im2col steps along W with the H stride",
        [("minivgg/functional/conv.py",
          "block_uv = xpad[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw]",
          "block_uv = xpad[:, :, u:u + sh * oh:sh, v:v + sw * ow:sh]")]),
    "col2im_overwrites": (
        "textbook col2im overwrites overlapping blocks instead of adding",
        [("minivgg/functional/conv.py", "v:v + sw * ow:sw] += col[:, u, v]",
          "v:v + sw * ow:sw] = col[:, u, v]")]),
    "conv_dw_not_transposed": (
        "textbook conv dW as col @ gy^T reshaped, the (CKK, K) product read as (K, CKK)",
        [("minivgg/functional/conv.py", "gw = (gy @ col.T).reshape(w.shape)",
          "gw = (col @ gy.T).reshape(w.shape)")]),
    "conv_bias_grad_mean": (
        "textbook conv bias gradient averaged instead of summed",
        [("minivgg/functional/conv.py", "gb = gy.sum(axis=1)", "gb = gy.mean(axis=1)")]),
    "output_size_ceil": (
        "sliding-window output size rounded up (ceil mode)",
        [("minivgg/functional/shapes.py", "return (size + 2 * padding - kernel) // stride + 1",
          "return (size + 2 * padding - kernel + stride - 1) // stride + 1")]),
    # -- convolution, fast tier (minivgg/fast/conv.py) ---------------------------
    "conv_dx_unflipped": (
        "fast conv input gradient with the kernel not flipped",
        [("minivgg/fast/conv.py", "w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)",
          "w[:, :, :, :].transpose(1, 0, 2, 3)")]),
    "conv_dx_padding": (
        "fast conv input gradient padded with P instead of K-1-P",
        [("minivgg/fast/conv.py", "pad_t = (kh - 1 - ph, kw - 1 - pw)", "pad_t = (ph, pw)")]),
    "fast_conv_bias_grad_mean": (
        "fast conv bias gradient (Winograd F(2x2), kernel devices) averaged instead of summed",
        [("minivgg/fast/conv.py", "gb = gy_masked().sum(axis=(0, 2, 3))",
          "gb = gy_masked().mean(axis=(0, 2, 3))")]),
    "fast_im2col_stride_w": (
        "fast im2col steps along W with the H stride",
        [("minivgg/fast/conv.py", "s_h * sh, s_w * sw))", "s_h * sh, s_w * sh))")]),
    "fast_col2im_overwrites": (
        "fast col2im overwrites overlapping receptive fields instead of adding",
        [("minivgg/fast/conv.py", "j:j + sw * ow:sw] += col6[:, i, j]",
          "j:j + sw * ow:sw] = col6[:, i, j]")]),
    # -- pooling ---------------------------------------------------------------
    "pool_argmax_last": (
        "textbook max-pool keeps the last of tied maxima as its argmax",
        [("minivgg/functional/pooling.py", "self.argmax = win.argmax(axis=-1)",
          "self.argmax = win.shape[-1] - 1 - win[..., ::-1].argmax(axis=-1)")]),
    "pool_textbook_pad_zero": (
        "textbook max-pool pads with 0 instead of -inf",
        [("minivgg/functional/pooling.py", "constant_values=-np.inf)", "constant_values=0)")]),
    "pool_textbook_overlap_overwrites": (
        "textbook max-pool backward overwrites where windows overlap",
        [("minivgg/functional/pooling.py", "v:v + sw * ow:sw] += gy * (self.argmax == s)",
          "v:v + sw * ow:sw] = gy * (self.argmax == s)")]),
    "pool_pad_zero": (
        "fast max-pool pads with 0 instead of -inf",
        [("minivgg/fast/pooling.py", "fill = -xp.inf if", "fill = 0 if")]),
    "pool_ties_all": (
        "fast max-pool gradient goes to every tied maximum, not the first",
        [("minivgg/fast/pooling.py", "                np.logical_and(won, free, out=won)\n",
          "                pass\n")]),
    "pool_overlap_overwrites": (
        "fast max-pool: overlapping windows overwrite each other's gradient",
        [("minivgg/fast/pooling.py", "if overlap:", "if False:")]),
    # -- ReLU, dropout ---------------------------------------------------------
    "relu_mask_at_zero": (
        "textbook ReLU's mask passes the gradient at exactly 0",
        [("minivgg/functional/activation.py", "self.mask = x > 0", "self.mask = x >= 0")]),
    "relu_grad_at_zero": (
        "fast ReLU passes the gradient at exactly 0",
        [("minivgg/fast/activation.py", "return gy * (y > 0)", "return gy * (y >= 0)"),
         ("minivgg/fast/activation.py", "np.multiply(gy[a:b], y[a:b] > 0,",
          "np.multiply(gy[a:b], y[a:b] >= 0,")]),
    "dropout_module_never_drops": (
        "nn.Dropout never drops in training mode",
        [("minivgg/nn/layers.py", "return select.dropout(x, self.p, self.training)",
          "return select.dropout(x, self.p, False)")]),
    "dropout_textbook_scale_1_over_p": (
        "textbook dropout scales kept units by 1/p instead of 1/(1-p)",
        [("minivgg/functional/activation.py", "self.scale = x.dtype.type(1.0 / (1.0 - self.p))",
          "self.scale = x.dtype.type(1.0 / self.p)")]),
    "dropout_textbook_backward_unmasked": (
        "textbook dropout backward ignores the keep mask",
        [("minivgg/functional/activation.py", "return gy * self.keep * self.scale",
          "return gy * self.scale")]),
    "dropout_keeps_p": (
        "dropout's keep mask (both tiers) keeps a fraction p instead of 1-p",
        [("minivgg/functional/activation.py", ".reshape(shape) >= mrandom.drop_threshold(p)",
          ".reshape(shape) < mrandom.drop_threshold(p)")]),
    "dropout_scale_1_over_p": (
        "fast dropout scales kept units by 1/p instead of 1/(1-p)",
        [("minivgg/fast/activation.py", "self.scale = 1.0 / (1.0 - p)",
          "self.scale = 1.0 / p")]),
    "dropout_backward_unmasked": (
        "fast dropout backward ignores the mask",
        [("minivgg/fast/activation.py", "        return self._apply(gy)",
          "        return gy")]),
    # -- linear ------------------------------------------------------------------
    "linear_dw_transposed_input": (
        "textbook Linear's dW from the transposed product, x^T @ gy read as (F_out, F_in)",
        [("minivgg/functional/linear.py", "gw = gy.T @ self.x if need[1] else None",
          "gw = (self.x.T @ gy).reshape(self.w.shape) if need[1] else None")]),
    "fast_linear_dw_overwrites": (
        "fast Linear writes dW over the gradient already in the optimizer's buffer",
        [("minivgg/fast/linear.py", "add=not self.grad_fresh[1])", "add=False)")]),
    # -- LRN -----------------------------------------------------------------------
    "alrn_k1": (
        "A-LRN built with k=1",
        [("minivgg/models/vgg.py", "alpha=1e-4, beta=0.75, k=2.0)",
          "alpha=1e-4, beta=0.75, k=1.0)")]),
    "alrn_size3": (
        "A-LRN built with a window of 3",
        [("minivgg/models/vgg.py", "LocalResponseNorm(size=5,", "LocalResponseNorm(size=3,")]),
    "alrn_after_pool": (
        "A-LRN's LRN placed after the first max-pool",
        [("minivgg/models/vgg.py", '"A-LRN": [64, LRN, M,', '"A-LRN": [64, M, LRN,')]),
    "lrn_alpha_mean": (
        "LRN divides alpha by the window size",
        [("minivgg/functional/normalization.py", "s *= x.dtype.type(self.alpha)",
          "s *= x.dtype.type(self.alpha / self.size)")]),
    "lrn_grad_factor": (
        "LRN backward drops the factor 2 of d(a^2)",
        [("minivgg/functional/normalization.py", "dt(2.0 * self.alpha * self.beta)",
          "dt(self.alpha * self.beta)")]),
    # -- loss ------------------------------------------------------------------------
    "ce_sum_not_mean": (
        "cross-entropy summed over the batch in forward",
        [("minivgg/functional/loss.py", "return -logp[rows, self.labels].mean()",
          "return -logp[rows, self.labels].sum()")]),
    "ce_grad_not_averaged": (
        "cross-entropy gradient not divided by N",
        [("minivgg/functional/loss.py", "g *= gy / n", "g *= gy")]),
    # -- autograd --------------------------------------------------------------------
    "sum_to_mean": (
        "broadcast gradients averaged instead of summed",
        [("minivgg/arithmetic.py", "y = x.sum(axis=axes, keepdims=True)",
          "y = x.mean(axis=axes, keepdims=True)")]),
    "div_grad": (
        "division's gradient w.r.t. the denominator missing a 1/b",
        [("minivgg/arithmetic.py", "-gy * self.a / (self.b * self.b)", "-gy * self.a / self.b")]),
    "getitem_repeated_overwrite": (
        "indexing's gradient overwrites repeated indices instead of adding",
        [("minivgg/arithmetic.py", "np.add.at(gx, self.index, gy)", "gx[self.index] = gy")]),
    "sum_axes_reversed": (
        "sum over several axes re-expands them in the wrong order",
        [("minivgg/arithmetic.py", "axes = sorted(a % len(self.in_shape) for a in axes)",
          "axes = sorted((a % len(self.in_shape) for a in axes), reverse=True)")]),
    "mean_count_first_axis": (
        "mean over several axes divides by the first axis only",
        [("minivgg/arithmetic.py", "count = int(np.prod([shape[a] for a in axes]))",
          "count = int(shape[axes[0]])")]),
    "pow_grad": (
        "power's gradient uses a**c instead of a**(c-1)",
        [("minivgg/arithmetic.py", "return gy * c * self.a ** (c - 1)",
          "return gy * c * self.a ** c")]),
    "leaf_grad_not_accumulated": (
        "the plain rule (textbook tier) overwrites a leaf's gradient instead of adding",
        [("minivgg/autograd.py", "leaf.grad = g.copy() if leaf.grad is None else leaf.grad + g",
          "leaf.grad = g.copy()")]),
    "handoff_grad_not_accumulated": (
        "the optimizer hand-off (fast tier) overwrites a leaf's gradient instead of adding",
        [("minivgg/fast/handoff.py", "            leaf.grad = _add_into(leaf.grad, g)",
          "            leaf.grad = g")]),
    # -- VGG ---------------------------------------------------------------------------
    "fc1_conv_hwc": (
        "dense net's FC1-as-conv weight reshaped in (H, W, C) order",
        [("minivgg/nn/layers.py", "reshape(self.weight, w_shape), self.bias",
          "reshape(self.weight, (w_shape[0], w_shape[2], w_shape[3], w_shape[1]))"
          ".transpose(0, 3, 1, 2), self.bias")]),
    "flatten_channels_last": (
        "classifier flattens the features channels-last",
        [("minivgg/models/vgg.py", "h = reshape(h, (h.shape[0], -1))",
          "h = reshape(h.transpose(0, 2, 3, 1), (h.shape[0], -1))")]),
    "both_hwc": (
        "classifier and dense net both channels-last (consistent with each other)",
        [("minivgg/nn/layers.py", "reshape(self.weight, w_shape), self.bias",
          "reshape(self.weight, (w_shape[0], w_shape[2], w_shape[3], w_shape[1]))"
          ".transpose(0, 3, 1, 2), self.bias"),
         ("minivgg/models/vgg.py", "h = reshape(h, (h.shape[0], -1))",
          "h = reshape(h.transpose(0, 2, 3, 1), (h.shape[0], -1))")]),
    "c_1x1_is_3x3": (
        "configuration C's 1x1 convs built as 3x3",
        [("minivgg/models/vgg.py", "channels, k = item if isinstance(item, tuple) else (item, 3)\n"
          "            channels = max(1, int(round(channels * width_mult)))\n"
          "            layers.append(",
          "channels, k = (item[0], 3) if isinstance(item, tuple) else (item, 3)\n"
          "            channels = max(1, int(round(channels * width_mult)))\n"
          "            layers.append(")]),
    "fc_bias_on_fc3": (
        "the fc_bias option also sets FC3's bias",
        [("minivgg/models/vgg.py", "for idx in (0, 3):  # FC1 and FC2",
          "for idx in (0, 3, 6):  #")]),
    "module_train_not_recursive": (
        "Module.train/eval changes only the top module",
        [("minivgg/nn/module.py",
          "for m in self.modules():\n            object.__setattr__(m, \"training\"",
          "for m in [self]:\n            object.__setattr__(m, \"training\"")]),
    # -- SGD, schedule -------------------------------------------------------------------
    "sgd_wd_halved": (
        "SGD with momentum applies half the weight decay",
        [("minivgg/optim/sgd.py", "np.multiply(ps, wd, out=ts)\n                    vs += ts",
          "np.multiply(ps, wd / 2, out=ts)\n                    vs += ts")]),
    "sgd_first_velocity_zero": (
        "SGD's momentum buffer does not start at zero (the first step is not v = g + wd p)",
        [("minivgg/optim/sgd.py", "self.velocity_flat = dev.xp.zeros(",
          "self.velocity_flat = dev.xp.ones(")]),
    "sgd_plain_no_wd": (
        "SGD without momentum ignores weight decay",
        [("minivgg/optim/sgd.py", "            if self.weight_decay:\n",
          "            if self.weight_decay and self.momentum:\n")]),
    "sched_equal_is_improvement": (
        "the plateau scheduler counts an unchanged accuracy as an improvement",
        [("minivgg/optim/scheduler.py", "return value > self.best + self.threshold",
          "return value > self.best - self.threshold")]),
    "sched_patience_off_by_one": (
        "the plateau scheduler drops the rate one epoch early",
        [("minivgg/optim/scheduler.py", "if self.bad_epochs > self.patience",
          "if self.bad_epochs >= self.patience")]),
    "sched_load_loses_patience": (
        "the scheduler's load_state_dict forgets the patience count",
        [("minivgg/optim/scheduler.py", "self.bad_epochs = int(state[\"bad_epochs\"])",
          "self.bad_epochs = 0")]),
    "sched_load_loses_drops": (
        "the scheduler's load_state_dict forgets the drops taken",
        [("minivgg/optim/scheduler.py", "self.reductions = int(state[\"reductions\"])",
          "self.reductions = 0")]),
    "train_sched_given_error": (
        "the trainer gives the scheduler the error instead of the accuracy",
        [("minivgg/train/trainer.py", "self.scheduler.step(1.0 - top1)", "self.scheduler.step(top1)")]),
    "train_sched_factor": (
        "the trainer divides the rate by 2 instead of 10",
        [("minivgg/train/trainer.py", "ReduceLROnPlateau(self.optimizer, \"max\", 0.1,",
          "ReduceLROnPlateau(self.optimizer, \"max\", 0.5,")]),
    "resume_loses_scheduler": (
        "resume does not restore the scheduler",
        [("minivgg/train/trainer.py", "self.scheduler.load_state_dict(ck.meta[\"scheduler\"])", "pass")]),
    "resume_loses_optimizer": (
        "resume does not restore the momentum buffers",
        [("minivgg/train/trainer.py", "self.optimizer.load_state_dict(ck.optimizer_state)", "pass")]),
    "resume_loses_rng": (
        "resume does not restore the dropout generator",
        [("minivgg/train/trainer.py", "self.comm.rank), state[\"counter\"])",
          "self.comm.rank), 0)")]),
    # -- training loop ------------------------------------------------------------------
    "val_in_train_mode": (
        "the training loop validates with dropout on",
        [("minivgg/train/validation.py", "    model.eval()\n    sums = np.zeros(4)",
          "    sums = np.zeros(4)")]),
    "val_mode_not_restored": (
        "validation leaves the model in eval mode (training continues without dropout)",
        [("minivgg/train/validation.py", "        model.train(was_training)\n", "        pass\n")]),
    "val_top5_is_top4": (
        "the logged validation top-5 is a top-4",
        [("minivgg/train/validation.py", "topk_correct(scores, ys, 5).sum()",
          "topk_correct(scores, ys, 4).sum()")]),
    "microbatch_unweighted": (
        "micro-batch losses summed without their share of the batch",
        [("minivgg/train/step.py", "(loss * (b - a)).backward()", "loss.backward()")]),
    "train_without_augmentation": (
        "the training loader uses the evaluation pipeline (no crop jitter, flip, colour)",
        [("minivgg/train/trainer.py", "train_transform(r.crop, scale, norm,",
          "eval_transform(r.crop, scale, norm,")]),
    "init_from_three_convs": (
        "init from A copies three conv layers instead of four",
        [("minivgg/finetune.py", "if n.startswith(\"conv\")][:4]", "if n.startswith(\"conv\")][:3]")]),
    # -- test protocols -------------------------------------------------------------------
    "eval_protocols_train_mode": (
        "evaluation protocols run the model in training mode (dropout on)",
        [("minivgg/evaluate/protocols.py", "        self.model.eval()\n", "")]),
    "eval_mode_not_restored": (
        "evaluation protocols leave the model in eval mode",
        [("minivgg/evaluate/protocols.py", "        for m, mode in self.modes:\n"
          "            object.__setattr__(m, \"training\", mode)\n",
          "        pass\n")]),
    "topk_ties_reversed": (
        "top-k ties broken towards the higher class index",
        [("minivgg/evaluate/metrics.py", "(cls < y[:, None])", "(cls > y[:, None])")]),
    "dense_flip_vertical": (
        "dense evaluation averages with the vertically flipped image",
        [("minivgg/evaluate/batching.py", "batcher.add(tag, np.ascontiguousarray(x[:, :, ::-1]))",
          "batcher.add(tag, np.ascontiguousarray(x[:, ::-1, :]))")]),
    "multicrop_no_flip": (
        "multi-crop evaluation without the flipped crops",
        [("minivgg/evaluate/evalnet.py", "_queue_crops(crops, (idx, \"crops\"), x, self.crop, grid, True)",
          "_queue_crops(crops, (idx, \"crops\"), x, self.crop, grid, False)")]),
    "dense_multicrop_halved": (
        "protocol posteriors divided by 2 whatever the number of parts",
        [("minivgg/evaluate/evalnet.py", "return sum(parts) / len(parts)", "return sum(parts) / 2")]),
    "single_scale_smin": (
        "single-scale test at S_min instead of the middle of the jitter range",
        [("minivgg/evaluate/scales.py", "    return (lo + hi) // 2\n", "    return lo\n")]),
    "evaluate_row_top5_off": (
        "the evaluation table's top-5 column computed as top-4",
        [("minivgg/evaluate/run.py",
          "topk_error(p, labels, 1), topk_error(p, labels, topk), len(labels)",
          "topk_error(p, labels, 1), topk_error(p, labels, topk - 1), len(labels)")]),
    "fusion_first_model": (
        "fusion keeps the first model's posteriors",
        [("minivgg/evaluate/evalnet.py", "return sum(ps) / len(ps)", "return ps[0]")]),
    "dense_pool_sum": (
        "dense evaluation sum-pools the score map by default",
        [("minivgg/evaluate/batching.py", "def _dense_forward(dense, pool):\n    def forward(batch):",
          "def _dense_forward(dense, pool):\n    pool = \"sum\"\n\n    def forward(batch):")]),
    # -- data transforms ----------------------------------------------------------------
    "pca_eigvec_transposed": (
        "colour shift uses the eigenvector matrix transposed",
        [("minivgg/data/transforms.py", "return self.eigvec @ (alpha * self.eigval)",
          "return self.eigvec.T @ (alpha * self.eigval)")]),
    "pca_sqrt_eigval": (
        "colour shift scales by sqrt(eigenvalue)",
        [("minivgg/data/transforms.py", "return self.eigvec @ (alpha * self.eigval)",
          "return self.eigvec @ (alpha * np.sqrt(self.eigval))")]),
    "pca_shift_subtracted": (
        "colour shift subtracted instead of added",
        [("minivgg/data/transforms.py", "return img + self.sample_shift(rng).astype(np.float32)",
          "return img - self.sample_shift(rng).astype(np.float32)")]),
    "rescale_anisotropic": (
        "training rescale squashes the image to S x S",
        [("minivgg/data/transforms.py", "return s, max(1, int(round(w * s / h)))\n"
          "        return max(1, int(round(h * s / w))), s",
          "return s, s\n        return s, s")]),
    "flip_vertical": (
        "random flip is vertical",
        [("minivgg/data/transforms.py", "return img[:, ::-1] if rng.random() < self.p else img",
          "return img[::-1] if rng.random() < self.p else img")]),
    "eval_q_smin": (
        "single-crop validation at S_min instead of the middle scale",
        [("minivgg/data/transforms.py", "q = (s_min + s_max) // 2", "q = s_min")]),
    # -- checkpoints ----------------------------------------------------------------------
    "ckpt_dropout_forgotten": (
        "checkpoints record dropout 0.5 whatever the model's",
        [("minivgg/checkpoint.py", "\"dropout\": model.classifier[2].p}", "\"dropout\": 0.5}")]),
    "ckpt_steps_forgotten": (
        "checkpoints lose the optimizer's step count",
        [("minivgg/checkpoint.py",
          "optimizer_state = {k: o[k] for k in "
          "(\"lr\", \"momentum\", \"weight_decay\", \"steps\")}",
          "optimizer_state = {k: o[k] for k in (\"lr\", \"momentum\", \"weight_decay\")}\n"
          "                optimizer_state[\"steps\"] = 0")]),
}


def tracked_files():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if os.path.isfile(os.path.join(ROOT, f))]


def copy_tree(dst):
    for f in tracked_files():
        os.makedirs(os.path.join(dst, os.path.dirname(f)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), os.path.join(dst, f))


def apply(tree, edits):
    """Apply the edits in ``tree``; returns {file: original text}."""
    originals = {}
    for rel, old, new in edits:
        path = os.path.join(tree, rel)
        text = open(path, encoding="utf-8").read()
        originals.setdefault(rel, text)
        n = text.count(old)
        if n != 1:
            raise ValueError(f"{rel}: the text to replace occurs {n} times (expected once): "
                             f"{old!r}")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace(old, new))
    return originals


def restore(tree, originals):
    for rel, text in originals.items():
        with open(os.path.join(tree, rel), "w", encoding="utf-8") as f:
            f.write(text)


def hide_torch(tree):
    """A directory whose 'torch' package fails to import (for --no-torch)."""
    d = os.path.join(tree, ".no-torch")
    os.makedirs(os.path.join(d, "torch"), exist_ok=True)
    with open(os.path.join(d, "torch", "__init__.py"), "w") as f:
        f.write("raise ImportError('PyTorch hidden by scripts/mutation_check.py --no-torch')\n")
    return d


def run_suite(tree, pytest_args, first, timeout, no_torch=False):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"]
    if first:
        cmd.append("-x")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("MINIVGG_CI", None)
    if no_torch:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [hide_torch(tree),
                                                          env.get("PYTHONPATH")]))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd + list(pytest_args), cwd=tree, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, [f"(timed out after {timeout} s)"], time.perf_counter() - t0
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, flags=re.M)
    run_suite.last_output = proc.stdout + proc.stderr
    return proc.returncode, failed, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--mutation", action="append", default=[],
                   help="run only this mutation (repeatable)")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    p.add_argument("--first", action="store_true", help="stop each suite at its first failure")
    p.add_argument("--timeout", type=int, default=1200, help="seconds per suite run")
    p.add_argument("--no-torch", action="store_true",
                   help="run the suite as on a machine without PyTorch (oracle tests skip)")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = p.parse_args(argv)
    if args.list:
        for name, (desc, _) in MUTATIONS.items():
            print(f"{name:<30} {desc}")
        return 0
    unknown = [m for m in args.mutation if m not in MUTATIONS]
    if unknown:
        p.error(f"unknown mutation(s) {unknown}; see --list")
    names = args.mutation or list(MUTATIONS)

    survivors, broken = [], []
    with tempfile.TemporaryDirectory(prefix="minivgg-mutants-") as tree:
        copy_tree(tree)
        run = (args.pytest_args, args.first, args.timeout, args.no_torch)
        rc, failed, secs = run_suite(tree, *run)
        if rc != 0:
            print(getattr(run_suite, "last_output", "")[-5000:], file=sys.stderr)
            print(f"the unmutated suite fails ({failed}); fix it first", file=sys.stderr)
            return 2
        print(f"unmutated suite passes ({secs:.0f} s)", flush=True)
        for name in names:
            desc, edits = MUTATIONS[name]
            try:
                originals = apply(tree, edits)
            except ValueError as e:
                broken.append(name)
                print(f"{name:<30} DOES NOT APPLY: {e}", flush=True)
                continue
            try:
                rc, failed, secs = run_suite(tree, *run)
            finally:
                restore(tree, originals)
            if rc == 0:
                survivors.append(name)
                print(f"{name:<30} SURVIVED  ({desc})", flush=True)
            else:
                shown = ", ".join(f.split("tests/", 1)[-1] for f in failed[:4])
                more = f" (+{len(failed) - 4} more)" if len(failed) > 4 else ""
                print(f"{name:<30} caught by {len(failed)} test(s) in {secs:.0f} s: "
                      f"{shown}{more}", flush=True)
    print(f"\n{len(names) - len(survivors) - len(broken)} of {len(names)} mutations caught"
          + (f"; survived: {', '.join(survivors)}" if survivors else "")
          + (f"; not applicable: {', '.join(broken)}" if broken else ""))
    return 1 if survivors or broken else 0


if __name__ == "__main__":
    sys.exit(main())
