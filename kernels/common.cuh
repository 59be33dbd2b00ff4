// What every kernel file shares: the emulator's header when the compiler is
// not NVRTC, the grid-stride loop, and index arithmetic.
//
// minivgg/cuda/source.py pastes this file in place of its #include line
// before handing a .cu file to NVRTC, so that a kernel's compiled form (and
// CuPy's cache key) always covers it; g++ reads it through -I kernels/.
#pragma once

#ifndef __CUDACC_RTC__
#include "minivgg_emu.h"
#endif

// Grid-stride loops over 64-bit indices: thread t of the grid handles
// elements t, t + threads in the grid, t + 2 * threads, ... (VGG-D's
// column matrix at batch 64 has more elements than a 32-bit index reaches).
//     for (long long e = first_element(); e < n; e += grid_stride()) ...
__device__ __forceinline__ long long first_element() {
    return blockIdx.x * (long long)blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long grid_stride() {
    return (long long)blockDim.x * gridDim.x;
}

// Index arithmetic. A 64-bit integer division is not one GPU instruction
// but a subroutine of several dozen, so each kernel does at most one per
// element: it splits the 64-bit element index e once, and everything below
// that split fits in 32 bits (minivgg/cuda/ops.py checks the sizes before
// the launch), where division is far cheaper. Windows are found by their
// first and last position, never by testing every candidate with a modulo.
// tests/cuda/test_nvrtc.py counts the 64-bit div/rem instructions in the
// PTX of every kernel.

// e = outer * inner + rest with 0 <= rest < inner < 2^31: one 64-bit division.
struct Split {
    long long outer;
    unsigned rest;
};
__device__ __forceinline__ Split split_index(long long e, long long inner) {
    Split s;
    s.outer = e / inner;
    s.rest = (unsigned)(e - s.outer * inner);
    return s;
}

// The position (n, c, h, w) of element e of a C-order (N, C, H, W) array
// (C*H*W < 2^31): one 64-bit division, the rest in 32 bits.
struct Index4 {
    long long n;
    unsigned c, h, w;
};
__device__ __forceinline__ Index4 unravel_nchw(long long e, unsigned C, unsigned H,
                                               unsigned W) {
    const Split s = split_index(e, (long long)C * H * W);
    const unsigned hw = H * W;
    Index4 i;
    i.n = s.outer;
    i.c = s.rest / hw;
    const unsigned r = s.rest - i.c * hw;
    i.h = r / W;
    i.w = r - i.h * W;
    return i;
}

// The windows that contain input row h, for windows of `size` rows starting
// at o * stride - pad, o in [0, out): o runs from `first` to `last` (none when
// first > last), and h is row h + pad - o * stride of window o. The backward
// gathers (col2im, max-pool) walk this range instead of testing all `size`
// window rows for divisibility.
struct Windows {
    int first, last;
};
__device__ __forceinline__ Windows windows_of(unsigned h, unsigned pad, unsigned size,
                                              unsigned stride, unsigned out) {
    const unsigned t = h + pad;  // the row's position in the padded input
    Windows w;
    // first: the smallest o with o * stride + size > t; last: the largest with o * stride <= t.
    w.first = t < size ? 0 : (int)((t - size) / stride + 1);
    const unsigned last = t / stride;
    w.last = last < out ? (int)last : (int)out - 1;
    return w;
}
