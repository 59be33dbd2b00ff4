"""Where the time of a step goes: per-op and per-kernel timings.

    from minivgg.profiler import Profiler
    with Profiler(model.device) as prof:
        loss = F.softmax_cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    print(prof.table())

While a Profiler is active, every ``Function`` forward and backward is
timed (``Conv2d.forward``, ``MaxPool2d.backward``, ...), and so is every
CUDA kernel launch (``kernel relu_fwd_f32``); ``span(name)`` times any
other block. On a GPU the times come from CUDA events recorded around each
piece of work on the stream (read once at the end, so profiling does not
serialise the GPU); elsewhere from the CPU clock. Kernel times are part of
their op's time: the two groups are separate tables, not a sum.
"""
import collections
import time

_ACTIVE = None


def active():
    """The running Profiler, or None."""
    return _ACTIVE


class Profiler:
    """``detail=True`` names each op's spans after what the op says about
    itself (``fn.profile_detail()``, where it has one: a convolution's
    algorithm and shapes), so that layers of one kind are timed apart."""

    def __init__(self, device, detail=False):
        if not hasattr(device, "kind"):
            raise TypeError(f"Profiler takes a Device (minivgg.backend.device('cpu'), "
                            f"model.device), got {device!r}")
        self.device = device
        self.detail = detail
        self.spans = collections.defaultdict(list)   # name -> [(start, end)]

    def __enter__(self):
        global _ACTIVE
        if _ACTIVE is not None:
            raise RuntimeError("a Profiler is already running")
        _ACTIVE = self
        return self

    def __exit__(self, *exc):
        global _ACTIVE
        _ACTIVE = None
        return False

    def _mark(self):
        if self.device.kind == "cuda":
            ev = self.device.xp.cuda.Event()
            ev.record()
            return ev
        return time.perf_counter()

    def span(self, name):
        """A context manager timing its body under ``name`` (its ``name``
        attribute, which the body may still change)."""
        prof = self

        class _Span:
            def __enter__(self_inner):
                self_inner.t0 = prof._mark()

            def __exit__(self_inner, *exc):
                prof.spans[self_inner.name].append((self_inner.t0, prof._mark()))
                return False
        sp = _Span()
        sp.name = name
        return sp

    def totals(self):
        """[(name, calls, total ms)], largest total first."""
        if self.device.kind == "cuda":
            cp = self.device.xp
            self.device.synchronize()
            ms = {n: sum(cp.cuda.get_elapsed_time(a, b) for a, b in v)
                  for n, v in self.spans.items()}
        else:
            ms = {n: 1e3 * sum(b - a for a, b in v) for n, v in self.spans.items()}
        rows = [(n, len(self.spans[n]), ms[n]) for n in self.spans]
        return sorted(rows, key=lambda r: -r[2])

    def table(self, fmt="text"):
        """The totals as a text or Markdown table, ops and kernels apart."""
        rows = self.totals()
        out = []
        for title, pick in (("op", lambda n: not n.startswith("kernel ")),
                            ("kernel", lambda n: n.startswith("kernel "))):
            group = [r for r in rows if pick(r[0])]
            if not group:
                continue
            total = sum(r[2] for r in group)
            if fmt == "markdown":
                out += [f"| {title} | calls | ms | share |", "| --- | ---: | ---: | ---: |"]
                out += [f"| {n.replace('kernel ', '')} | {c} | {t:.2f} | {100 * t / total:.1f}% |"
                        for n, c, t in group]
                out.append("")
            else:
                out.append(f"{title:<32} {'calls':>6} {'ms':>10} {'share':>7}")
                out += [f"{n.replace('kernel ', ''):<32} {c:>6} {t:>10.2f} {100 * t / total:>6.1f}%"
                        for n, c, t in group]
                out.append("")
        return "\n".join(out)
