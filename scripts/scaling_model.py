"""A scaling model for synchronous data parallelism (§3.3): how much faster N
GPUs train VGG than one, with and without overlapping the gradient exchange
with backward. Prints the tables of docs/distributed.md.

    python scripts/scaling_model.py [--gpu-tflops 40] [--batch 64] [--markdown]

The model (every assumption is an argument):

* compute per step per GPU: FLOPs / sustained throughput, with the FLOPs of
  a training step = 6 x the forward multiply-adds (forward, and two GEMMs
  per layer in backward) x the images per GPU; backward is 2/3 of it;
* the exchange: a ring allreduce of every gradient (4 bytes per parameter)
  takes 2 (N-1)/N x bytes / bandwidth + 2 (N-1) x latency, the bandwidth
  being that of the slowest link of the ring (between nodes: the node's
  network card, shared by its GPUs' ring traffic);
* without overlap the exchange follows backward; with overlap it runs in
  buckets during backward. In VGG the three FC layers hold 89% of the
  parameters and their gradients are the first to be complete, so almost
  the whole exchange can hide behind the convolutions' backward; what stays
  exposed is what does not fit in that time, and at least the last bucket.
* speed-up on N GPUs = N x step time on one GPU / step time on N GPUs
  (batch per GPU fixed, so the global batch grows with N, as in the paper:
  4 GPUs x 64 = 256).
"""
import argparse

from minivgg.models.vgg import CONFIGS, LRN, M

#: (name, GB/s of the slowest link, latency in microseconds per ring step,
#: GPU counts it serves): inside one node up to 8 GPUs; 64 GPUs = 8 nodes of 8.
LINKS = [
    ("NVLink 4 (H100/H200 SXM, one node)", 450.0, 3.0, (4, 8)),
    ("PCIe 4.0 x16 (one node)", 25.0, 5.0, (4, 8)),
    ("100 Gb Ethernet between nodes", 12.5, 20.0, (64,)),
    ("25 Gb Ethernet between nodes", 3.1, 20.0, (64,)),
]

#: The paper's machine: 4 NVIDIA Titan Black (5.1 TFLOP/s float32 peak) in one
#: host, gradients through PCIe 3.0 (about 10 GB/s), exchanged after backward.
PAPER = dict(tflops=5.1 * 0.6, link=10.0, latency=10.0, gpus=4, measured=3.75)


def counts(cfg, size=224, classes=1000, fc=4096):
    """(parameters, forward multiply-adds, FC parameters) of a configuration."""
    params = macs = 0
    c, s = 3, size
    for item in CONFIGS[cfg]:
        if item == M:
            s //= 2
        elif item == LRN:
            continue
        else:
            k_out, k = item if isinstance(item, tuple) else (item, 3)
            params += c * k_out * k * k + k_out
            macs += c * k_out * k * k * s * s
            c = k_out
    fc_params = 0
    for fin, fout in ((c * s * s, fc), (fc, fc), (fc, classes)):
        fc_params += fin * fout + fout
        macs += fin * fout
    return params + fc_params, macs, fc_params


def ring_allreduce_s(nbytes, n, gbps, latency_us):
    if n == 1:
        return 0.0
    return 2 * (n - 1) / n * nbytes / (gbps * 1e9) + 2 * (n - 1) * latency_us * 1e-6


def step_times(cfg, n, gbps, latency_us, gpu_tflops, batch, bucket_mb=25.0):
    """(compute s, exposed exchange without overlap, with overlap) per step."""
    params, macs, fc_params = counts(cfg)
    compute = 6 * macs * batch / (gpu_tflops * 1e12)
    backward = compute * 2 / 3
    t_all = ring_allreduce_s(4 * params, n, gbps, latency_us)
    # The FC gradients are complete after the FC layers' share of backward;
    # everything after that is the convolutions' backward, which the exchange can hide behind.
    conv_backward = backward * (1 - fc_params * batch * 6 / (6 * macs * batch))
    last_bucket = ring_allreduce_s(min(4 * params, bucket_mb * 2 ** 20), n, gbps, latency_us)
    exposed = max(t_all - conv_backward, last_bucket) if n > 1 else 0.0
    return compute, t_all, exposed


def speedup(cfg, n, gbps, latency_us, gpu_tflops, batch, overlap):
    compute, t_all, exposed = step_times(cfg, n, gbps, latency_us, gpu_tflops, batch)
    return n * compute / (compute + (exposed if overlap else t_all))


def tables(gpu_tflops, batch, markdown):
    out = []

    def row(cells):
        return (f"| {' | '.join(cells)} |" if markdown else "  ".join(cells))
    out.append(row(["config", "parameters", "gradient bytes / step",
                    "ring allreduce on 4 GPUs over NVLink 4 (ms)",
                    "over 100 GbE, 64 GPUs (ms)", "training GFLOP / image"]))
    if markdown:
        out.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for cfg in CONFIGS:
        params, macs, _ = counts(cfg)
        out.append(row([cfg, f"{params:,}", f"{4 * params / 1e6:.0f} MB",
                        f"{1e3 * ring_allreduce_s(4 * params, 4, 450.0, 3.0):.2f}",
                        f"{1e3 * ring_allreduce_s(4 * params, 64, 12.5, 20.0):.1f}",
                        f"{6 * macs / 1e9:.1f}"]))
    out.append("")
    compute, _, _ = step_times("D", 1, 1, 0, gpu_tflops, batch)
    out.append(f"VGG-D, batch {batch} per GPU, {gpu_tflops:g} TFLOP/s sustained per GPU: "
               f"{1e3 * compute:.0f} ms of compute per step.")
    out.append("")
    out.append(row(["interconnect", "GPUs", "exchange (ms)", "exposed with overlap (ms)",
                    "speed-up without overlap", "speed-up with overlap"]))
    if markdown:
        out.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, gbps, lat, gpus in LINKS:
        for n in gpus:
            _, t_all, exposed = step_times("D", n, gbps, lat, gpu_tflops, batch)
            out.append(row([name, str(n), f"{1e3 * t_all:.1f}", f"{1e3 * exposed:.1f}",
                            f"{speedup('D', n, gbps, lat, gpu_tflops, batch, False):.2f}x",
                            f"{speedup('D', n, gbps, lat, gpu_tflops, batch, True):.2f}x"]))
    p = PAPER
    s_paper = speedup("D", p["gpus"], p["link"], p["latency"], p["tflops"], batch, False)
    out.append("")
    out.append(f"The paper's machine (4 Titan Black at 60% of 5.1 TFLOP/s, PCIe 3.0 at about "
               f"10 GB/s, exchange after backward): the model predicts {s_paper:.2f}x on 4 "
               f"GPUs; the paper measured {p['measured']}x.")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gpu-tflops", type=float, default=40.0,
                   help="sustained training throughput of one GPU (default: 40, an assumption "
                        "for an H100-class GPU in TF32; replace it with a measured figure)")
    p.add_argument("--batch", type=int, default=64, help="images per GPU per step")
    p.add_argument("--markdown", action="store_true")
    a = p.parse_args(argv)
    print(tables(a.gpu_tflops, a.batch, a.markdown))


if __name__ == "__main__":
    main()
