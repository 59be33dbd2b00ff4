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

// The position (n, c, h, w) of element e of a C-order (N, C, H, W) array.
struct Index4 {
    long long n, c, h, w;
};
__device__ __forceinline__ Index4 unravel_nchw(long long e, long long C, long long H,
                                               long long W) {
    Index4 i;
    i.w = e % W;
    i.h = (e / W) % H;
    i.c = (e / (W * H)) % C;
    i.n = e / (W * H * C);
    return i;
}

// The window that puts input row h at row i of the window, for windows
// starting at o * stride - pad (o in [0, out)): that o, or -1 if there is
// none. The backward gathers (col2im, max-pool) ask this for every i.
__device__ __forceinline__ long long window_at(long long h, long long pad, long long i,
                                               long long stride, long long out) {
    const long long t = h + pad - i;
    return (t >= 0 && t % stride == 0 && t / stride < out) ? t / stride : -1;
}
