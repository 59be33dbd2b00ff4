// The CUDA built-ins, emulated on the CPU, so that g++ compiles the unchanged
// kernels/*.cu into an ordinary shared library (the "emu" device).
//
// Each .cu file includes this header only when it is NOT being compiled by
// NVRTC (which defines __CUDACC_RTC__):
//
//     #ifndef __CUDACC_RTC__
//     #include "minivgg_emu.h"
//     #endif
//
// What it provides:
//   * __global__, __device__, __host__, __forceinline__: plain C++ functions;
//   * threadIdx, blockIdx, blockDim, gridDim: thread-local variables that the
//     launcher sets before it runs each CUDA thread's body;
//   * the float and double overloads of the math functions the kernels call
//     (exp, log, pow, ...), as CUDA provides them in device code;
//   * minivgg_emu::launch(grid, block, body): runs body() once per CUDA thread,
//     blocks in order and threads in order inside each block.
//
// What it does not: __shared__ memory, __syncthreads(), warp intrinsics and
// atomics. Threads run one after another, so a kernel that waits for other
// threads of its block cannot be emulated this way; minivgg's kernels are
// written without them (grid-stride loops, gathers instead of atomics).
// Using one is a compile error here, on purpose.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>  // printf, which CUDA device code has without an include
#ifdef MINIVGG_EMU_FTZ
#if !defined(__x86_64__) && !defined(__i386__)
#error "flush-to-zero emulation (MINIVGG_EMU_GPU_MATH) is written for x86 CPUs"
#endif
#include <xmmintrin.h>
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
// __restrict__ is a GNU C++ keyword already.

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local uint3 threadIdx = {0, 0, 0};
inline thread_local uint3 blockIdx = {0, 0, 0};
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

using std::exp;
using std::log;
using std::pow;
using std::sqrt;
using std::fabs;

namespace minivgg_emu {

// Run `body` as the kernel launch <<<grid, block>>>: every (block, thread)
// pair in CUDA's order, with the built-in index variables set.
template <typename Body>
void launch(dim3 grid, dim3 block, Body body) {
    gridDim = grid;
    blockDim = block;
    for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
    for (unsigned int bx = 0; bx < grid.x; ++bx) {
        blockIdx = {bx, by, bz};
        for (unsigned int tz = 0; tz < block.z; ++tz)
        for (unsigned int ty = 0; ty < block.y; ++ty)
        for (unsigned int tx = 0; tx < block.x; ++tx) {
            threadIdx = {tx, ty, tz};
            body();
        }
    }
}

#ifdef MINIVGG_EMU_FTZ
// CUDA's -ftz=true (which CuPy compiles every kernel with): float32
// denormals read as zero and results that would be denormal become zero.
// On x86 these are the MXCSR's DAZ and FTZ bits; they apply to double too,
// so the generated launchers set them around float32 kernels only.
struct FlushToZero {
    unsigned saved;
    bool on;
    explicit FlushToZero(bool on_) : saved(_mm_getcsr()), on(on_) {
        if (on) _mm_setcsr(saved | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
    }
    ~FlushToZero() {
        if (on) _mm_setcsr(saved);
    }
};
#endif

}  // namespace minivgg_emu
