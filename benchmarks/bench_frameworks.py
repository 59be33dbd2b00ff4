"""Training step against the NumPy frameworks a teacher might otherwise
pick: DeZero and Chainer (CPU), and PyTorch, in the same run.

The model is VGG-A (Table 1) with 10 classes and the paper's FC width 4096
(dropout 0.5 on FC1 and FC2), one SGD step with momentum 0.9 and weight
decay 5e-4, on random 32x32 inputs, batch 64 (``--size 224 --batch 8``: the
ImageNet-sized step of bench_train.py), written with each framework's own
layers. minivgg and PyTorch run in this process; each other framework
runs in a worker process of its own (started with the PYTHONPATH given on
the command line), which times one step whenever it is asked. The
contestants' steps are interleaved and the best of ``--repeats`` is kept.

Neither DeZero nor Chainer imports unmodified beside NumPy 2: each uses one
name that NumPy has since removed (``np.int`` and ``np.sctypes``). Two ways
to run them (docs/benchmarks.md has the install commands):

- ``--compat``: on this process's NumPy, with the removed names put back in
  the worker before the framework is imported (``restore_removed_numpy_names``),
  so that all contestants share one NumPy and one BLAS;
- a PYTHONPATH that puts an old NumPy (1.23) first, without ``--compat``.

    python benchmarks/bench_frameworks.py --compat \\
        --dezero-path /tmp/fw_dezero --chainer-path /tmp/fw_chainer \\
        [--size 224 --batch 8] [--threads 1] [--write-md docs/benchmarks.md]
"""
import argparse
import json
import os
import subprocess
import sys
import time

CLASSES, FC = 10, 4096
# Table 1, configuration A: channels of each 3x3 convolution, "M" a 2x2 max-pool.
VGG_A = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def data(np, size, batch):
    rng = np.random.RandomState(0)
    x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    return x, (np.arange(batch) % CLASSES).astype(np.int32)


def dezero_step(size, batch):
    import numpy as np
    import dezero
    import dezero.functions as F
    import dezero.layers as L
    from dezero import optimizers

    class VGG(dezero.Model):
        def __init__(self):
            super().__init__()
            self.convs, c = [], 3
            for i, v in enumerate(VGG_A):
                if v != "M":
                    conv = L.Conv2d(v, 3, 1, 1, in_channels=c)
                    setattr(self, f"conv{i}", conv)
                    self.convs.append(conv)
                    c = v
                else:
                    self.convs.append("M")
            self.fc1 = L.Linear(FC, in_size=c * (size // 32) ** 2)
            self.fc2 = L.Linear(FC, in_size=FC)
            self.fc3 = L.Linear(CLASSES, in_size=FC)

        def forward(self, x):
            for layer in self.convs:
                x = F.pooling(x, 2, 2) if layer == "M" else F.relu(layer(x))
            x = F.reshape(x, (x.shape[0], -1))
            x = F.dropout(F.relu(self.fc1(x)))
            x = F.dropout(F.relu(self.fc2(x)))
            return self.fc3(x)

    model = VGG()
    opt = optimizers.MomentumSGD(1e-4, 0.9).setup(model)
    opt.add_hook(optimizers.WeightDecay(5e-4))
    x, t = data(np, size, batch)
    label = f"DeZero {getattr(dezero, '__version__', '')} (numpy {np.__version__})"
    return chainer_like_step(F, model, opt, x, t), label


def chainer_like_step(F, model, opt, x, t):
    """One SGD step in DeZero or Chainer, whose APIs agree here (``F``: the functions module)."""
    def step():
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        opt.update()
    return step


def chainer_step(size, batch):
    import numpy as np
    import chainer
    import chainer.functions as F
    import chainer.links as L
    from chainer import optimizer_hooks, optimizers

    class VGG(chainer.Chain):
        def __init__(self):
            super().__init__()
            self.plan, c = [], 3
            with self.init_scope():
                for i, v in enumerate(VGG_A):
                    if v != "M":
                        setattr(self, f"conv{i}", L.Convolution2D(c, v, 3, 1, 1))
                        self.plan.append(f"conv{i}")
                        c = v
                    else:
                        self.plan.append("M")
                self.fc1 = L.Linear(c * (size // 32) ** 2, FC)
                self.fc2 = L.Linear(FC, FC)
                self.fc3 = L.Linear(FC, CLASSES)

        def forward(self, x):
            for name in self.plan:
                x = F.max_pooling_2d(x, 2) if name == "M" else F.relu(getattr(self, name)(x))
            x = F.dropout(F.relu(self.fc1(x)))
            x = F.dropout(F.relu(self.fc2(x)))
            return self.fc3(x)

    model = VGG()
    opt = optimizers.MomentumSGD(1e-4, 0.9)
    opt.setup(model)
    opt.add_hook(optimizer_hooks.WeightDecay(5e-4))
    x, t = data(np, size, batch)
    label = f"Chainer {chainer.__version__} (numpy {np.__version__})"
    return chainer_like_step(F, model, opt, x, t), label


def restore_removed_numpy_names():
    """Put back the two NumPy names that DeZero 0.0.13 and Chainer 7.8.1 use at
    import time and that NumPy has removed: ``np.int`` (removed in 1.24; DeZero
    uses it as a dtype, which ``int`` was an alias of) and ``np.sctypes``
    (removed in 2.0; Chainer reads its lists of scalar types). CuPy is hidden,
    so that neither framework looks for a GPU: this is a CPU benchmark."""
    import numpy as np
    sys.modules["cupy"] = None
    if not hasattr(np, "int"):
        np.int = int
    if not hasattr(np, "sctypes"):
        np.sctypes = {
            "int": [np.int8, np.int16, np.int32, np.int64],
            "uint": [np.uint8, np.uint16, np.uint32, np.uint64],
            "float": [np.float16, np.float32, np.float64],
            "complex": [np.complex64, np.complex128],
            "others": [bool, object, bytes, str, np.void],
        }
    return " with np.int/np.sctypes restored"


def keep_freed_memory_here():
    """minivgg.memory.keep_freed_memory() in a worker, without importing
    minivgg (its module needs nothing but ctypes)."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "minivgg", "memory.py")
    spec = importlib.util.spec_from_file_location("minivgg_memory", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.keep_freed_memory()


def worker(name, compat, size, batch, keep):
    """Time one step per line read from stdin; reply with a JSON line."""
    note = restore_removed_numpy_names() if compat else ""
    if keep and keep_freed_memory_here():
        note += ", freed memory kept"
    step, label = {"dezero": dezero_step, "chainer": chainer_step}[name](size, batch)
    print(json.dumps({"label": label.replace(")", note + ")", 1)}), flush=True)
    for _ in sys.stdin:
        t0 = time.perf_counter()
        step()
        print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)


class Remote:
    """A framework in its own process: ``remote()`` runs one step there and
    returns its time."""

    def __init__(self, name, pythonpath, threads, compat, size, batch, keep):
        env = dict(os.environ, PYTHONPATH=pythonpath, OPENBLAS_NUM_THREADS=str(threads),
                   OMP_NUM_THREADS=str(threads), SETUPTOOLS_USE_DISTUTILS="stdlib")
        self.proc = subprocess.Popen([sys.executable, "-W", "ignore", os.path.abspath(__file__),
                                      "--worker", name, "--size", str(size), "--batch", str(batch)]
                                     + ["--compat"] * compat
                                     + ["--keep-freed-memory-everywhere"] * keep,
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {name} worker did not start (PYTHONPATH={pythonpath})")
        self.label = json.loads(line)["label"]

    def __call__(self):
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["seconds"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", choices=["dezero", "chainer"], help=argparse.SUPPRESS)
    p.add_argument("--dezero-path", help="PYTHONPATH under which DeZero imports")
    p.add_argument("--chainer-path", help="PYTHONPATH under which Chainer imports")
    p.add_argument("--compat", action="store_true",
                   help="run DeZero and Chainer on this NumPy, with the names they need restored")
    p.add_argument("--threads", default="0,1",
                   help="thread counts for every framework, each measured at each, "
                        "comma-separated (0: one per core; default: 0,1, the machine's "
                        "default first, then one thread)")
    p.add_argument("--size", type=int, default=32, help="input height and width (default 32)")
    p.add_argument("--batch", type=int, default=64, help="images per step (default 64)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--release-freed-memory", action="store_true",
                   help="leave glibc's allocator as it is in this process (by default minivgg "
                        "keeps freed memory, as its Trainer does; PyTorch, in the same "
                        "process, then shares the setting)")
    p.add_argument("--keep-freed-memory-everywhere", action="store_true",
                   help="keep freed memory in the DeZero and Chainer workers too (they run "
                        "as shipped otherwise)")
    p.add_argument("--write-md", metavar="PATH")
    a = p.parse_args(argv)
    if a.size < 32 or a.size % 32:
        p.error(f"--size must be a multiple of 32 (VGG's five 2x2 poolings), got {a.size}")
    if a.batch < 1:
        p.error(f"--batch must be at least 1, got {a.batch}")
    if a.worker:
        return worker(a.worker, a.compat, a.size, a.batch, a.keep_freed_memory_everywhere)

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np
    import torch
    from common import (command_line, load_average, machine, thread_counts_arg, threads_label,
                        today, use_threads, write_section)
    from minivgg import Tensor
    from minivgg import functional as F
    from minivgg.models import vgg
    from minivgg.optim import SGD
    from minivgg.testing import torch_vgg

    counts = thread_counts_arg(a.threads)
    use_threads(counts[0], torch)
    from minivgg import memory
    kept = not a.release_freed_memory and memory.keep_freed_memory()
    load_before = load_average()
    model = vgg("A", num_classes=CLASSES, input_size=a.size, fc_width=FC, init="kaiming", seed=0)
    tmodel = torch_vgg(model)
    opt = SGD(model.parameters(), 1e-4, 0.9, 5e-4)
    topt = torch.optim.SGD(tmodel.parameters(), 1e-4, momentum=0.9, weight_decay=5e-4)
    x, t = data(np, a.size, a.batch)
    tx, tt = torch.tensor(x), torch.tensor(t.astype(np.int64))

    def timed(fn):
        def run():
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        return run

    def ours():
        loss = F.softmax_cross_entropy(model(Tensor(x)), t)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def theirs():
        loss = torch.nn.functional.cross_entropy(tmodel(tx), tt)
        topt.zero_grad()
        loss.backward()
        topt.step()

    best = {}
    for n in counts:
        use_threads(n, torch)
        contestants = [("minivgg", timed(ours)), (f"PyTorch {torch.__version__}", timed(theirs))]
        remotes = []
        for name, path in (("dezero", a.dezero_path), ("chainer", a.chainer_path)):
            if path:
                r = Remote(name, path, n, a.compat, a.size, a.batch,
                           kept and a.keep_freed_memory_everywhere)
                remotes.append(r)
                contestants.append((r.label, r))
        for label, _ in contestants:
            best.setdefault(label, {})[n] = float("inf")
        for k in range(a.repeats + 1):          # the first round is a warm-up
            for label, fn in contestants:
                s = fn()
                if k:
                    best[label][n] = min(best[label][n], s)
                print(f"{threads_label(n)}, round {k}: {label} {s:.3f} s", flush=True)
        for r in remotes:
            r.close()
    labels = [threads_label(n) for n in counts]
    ups = len(counts) > 1
    rows = [f"| {label} | " + " | ".join(
        f"{b[n]:.3f} | {a.batch / b[n]:.1f} | {b[n] / best['minivgg'][n]:.2f}" for n in counts) +
        (f" | {b[counts[-1]] / b[counts[0]]:.2f}" if ups else "") + " |"
        for label, b in best.items()]
    text = "\n".join([
        f"Measured by `benchmarks/bench_frameworks.py` on {today()}; machine: "
        f"{machine(load=False)}; threads: {', then '.join(labels)} for every framework "
        f"(the first is the machine's default: one per core); load average before the run "
        f"{load_before}, after {load_average()}.",
        "",
        f"Command: `{command_line()}`",
        "",
        f"VGG-A, {a.size}x{a.size} inputs, batch {a.batch}, FC width {FC}, {CLASSES} classes, "
        f"one SGD step "
        f"(momentum 0.9, weight decay 5e-4), written with each framework's own layers; best "
        f"of {a.repeats} interleaved runs after a warm-up, at each thread count. 'x minivgg' "
        f"is the framework's time over minivgg's with as many threads (above 1: minivgg is "
        f"faster); the speed-up, its one-thread time over its time with "
        f"{labels[0]}. "
        + ("Freed memory kept in the process (minivgg.memory, as minivgg's Trainer runs) "
           "for minivgg and for PyTorch beside it"
           + (", and in the other frameworks' workers." if a.keep_freed_memory_everywhere
              and remotes else "; the other frameworks run as shipped." if remotes else ".")
           if kept else "glibc's allocator as it is (freed memory handed back) for all."),
        "",
        "| framework | " + " | ".join(f"s/step, {t} | img/s, {t} | x minivgg, {t}"
                                      for t in labels) + (" | speed-up" if ups else "") + " |",
        "| --- |" + " ---: | ---: | ---: |" * len(labels) + " ---: |" * ups,
    ] + rows)
    print(text)
    if a.write_md:
        title = "Training step against DeZero and Chainer (CPU)"
        if (a.size, a.batch) != (32, 64):
            title = f"Training step against DeZero and Chainer, {a.size}x{a.size} (CPU)"
        write_section(a.write_md, title, text)


if __name__ == "__main__":
    main()
