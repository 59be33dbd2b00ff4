"""How the fast tier's CPU convolutions cut a batch into blocks whose
column matrices stay in cache (shared by conv.py and channels_last.py)."""
from ..threads import ranges


#: Images per im2col chunk are chosen so that one chunk's column matrix holds
#: about this many elements. On the CPU, 2^19 (2 MiB of float32): it is
#: written and read back while still in cache instead of making two trips to
#: memory (why 2^19 rather than 2^18 or 2^20: docs/benchmarks.md,
#: "Measurements behind the fast tier's constants"). On a GPU, 2^28 (1 GiB
#: of float32): big enough for cuBLAS to run at full speed, small enough
#: that VGG-D at batch 64 and 224x224 (whose first column matrices would
#: hold ~1.85e9 elements) fits in memory.
CHUNK_ELEMENTS = {"cpu": 1 << 19, "cuda": 1 << 28, "emu": 1 << 28}


def chunks(n, per_image, device_kind="cpu"):
    """Ranges [a, b) of images whose column matrix stays near the chunk size."""
    step = max(1, CHUNK_ELEMENTS[device_kind] // max(per_image, 1))
    return [(a, min(n, a + step)) for a in range(0, n, step)]


#: The CPU path cuts a batch of small images into at least this many
#: blocks (of equal numbers of images, give or take one), so that the
#: threads have blocks to share; a constant, not the thread count, since
#: the blocks decide how the products round (minivgg/threads.py).
MIN_BLOCKS = 8


def cpu_blocks(n, oh, ow, ckk, k):
    """The blocks (i0, i1, r0, r1) of the CPU path: images i0..i1, output
    rows r0..r1. Whole images, as few blocks as chunks() makes but at least
    MIN_BLOCKS (the images spread evenly over them), while one
    image's column matrix (CKK = C*KH*KW rows) fits CHUNK_ELEMENTS; a bigger
    image (the first layer at 224x224: 27 x 50,176) is cut into bands of
    output rows whose columns and K outputs together hold about
    CHUNK_ELEMENTS, so that each band's product, bias, ReLU and (backward)
    mask run on data still in cache."""
    if ckk * oh * ow <= CHUNK_ELEMENTS["cpu"]:
        count = max(len(chunks(n, ckk * oh * ow)), min(n, MIN_BLOCKS))
        return [(a, b, 0, oh) for a, b in ranges(n, count)]
    rows = max(1, CHUNK_ELEMENTS["cpu"] // ((ckk + k) * ow))
    return [(i, i + 1, r, min(oh, r + rows)) for i in range(n) for r in range(0, oh, rows)]
