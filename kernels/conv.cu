// Convolution as im2col + GEMM (§2.1's 3x3 and 1x1 convolutions), the GPU
// half of minivgg/functional/conv.py (im2col, col2im) and of
// minivgg/fast/conv.py (bias_act). The GEMM itself is cuBLAS (cupy.matmul);
// these kernels build the column matrix, fold it back, and add the bias.
//
// Shapes (see minivgg/functional/__init__.py for the letters):
//   x    (N, C, H, W), any memory layout: element (n, c, h, w) sits at
//        x[n*sn + c*sc + h*sh + w*sw] (strides in elements)
//   col  (C*KH*KW, N*OH*OW), row-major: row r = (c*KH + i)*KW + j,
//        column q = (n*OH + oh)*OW + ow; the same layout as the CPU path.
//
// Every kernel is a grid-stride loop over 64-bit indices (common.cuh) and a
// gather: each output element is written by exactly one thread, so there are
// no atomics and the result is deterministic.
#include "common.cuh"

// col[r, q] = x[n, c, oh*SY - PY + i, ow*SX - PX + j], or 0 in the padding.
// One 64-bit division splits e into (r, q); C*KH*KW and N*OH*OW are below
// 2^31 (ops.py checks), so the rest is 32-bit arithmetic.
template <typename T>
__device__ void im2col(T* __restrict__ col, const T* __restrict__ x,
                       long long N, long long C, long long H, long long W,
                       long long sn, long long sc, long long sh, long long sw,
                       long long KH, long long KW, long long SY, long long SX,
                       long long PY, long long PX, long long OH, long long OW) {
    const long long cols = N * OH * OW;
    const long long total = C * KH * KW * cols;
    const unsigned kw = (unsigned)KW, khw = (unsigned)(KH * KW), ow_ = (unsigned)OW,
                   ohw = (unsigned)(OH * OW);
    #pragma unroll 1  // one copy of the body: see common.cuh
    for (long long e = first_element(); e < total; e += grid_stride()) {
        const Split rq = split_index(e, cols);
        const unsigned r = (unsigned)rq.outer, q = rq.rest;
        const unsigned c = r / khw, ij = r - c * khw, i = ij / kw, j = ij - i * kw;
        const unsigned n = q / ohw, pq = q - n * ohw, oh = pq / ow_, ow = pq - oh * ow_;
        const long long h = (long long)oh * SY - PY + i, w = (long long)ow * SX - PX + j;
        const bool inside = h >= 0 && h < H && w >= 0 && w < W;
        col[e] = inside ? x[n * sn + c * sc + h * sh + w * sw] : T(0);
    }
}

extern "C" __global__ void im2col_f32(float* col, const float* x, long long N, long long C, long long H, long long W, long long sn, long long sc, long long sh, long long sw, long long KH, long long KW, long long SY, long long SX, long long PY, long long PX, long long OH, long long OW) {
    im2col(col, x, N, C, H, W, sn, sc, sh, sw, KH, KW, SY, SX, PY, PX, OH, OW);
}
extern "C" __global__ void im2col_f64(double* col, const double* x, long long N, long long C, long long H, long long W, long long sn, long long sc, long long sh, long long sw, long long KH, long long KW, long long SY, long long SX, long long PY, long long PX, long long OH, long long OW) {
    im2col(col, x, N, C, H, W, sn, sc, sh, sw, KH, KW, SY, SX, PY, PX, OH, OW);
}

// The adjoint of im2col, as a gather: one thread per input pixel (c, n, h, w)
// adds up every column entry that im2col copied it to. dx is written
// channel-major, (C, N, H, W) contiguous, like the CPU path's col2im.
//
// Pixel row h lies in the windows oh = rows.first .. rows.last (windows_of in
// common.cuh), as row i = h + PY - oh*SY of each. The windows are visited
// from the last to the first, i.e. in increasing i and j, the order in
// which the CPU path adds the same terms.
template <typename T>
__device__ void col2im(T* __restrict__ dx, const T* __restrict__ col,
                       long long N, long long C, long long H, long long W,
                       long long KH, long long KW, long long SY, long long SX,
                       long long PY, long long PX, long long OH, long long OW) {
    const long long cols = N * OH * OW;
    const long long total = C * N * H * W;
    #pragma unroll 1  // one copy of the body: see common.cuh
    for (long long e = first_element(); e < total; e += grid_stride()) {
        // dx is (C, N, H, W): unravel as if N and C were swapped.
        const Index4 p = unravel_nchw(e, (unsigned)N, (unsigned)H, (unsigned)W);
        const long long c = p.n, n = p.c;
        const Windows rows = windows_of(p.h, (unsigned)PY, (unsigned)KH, (unsigned)SY,
                                        (unsigned)OH);
        const Windows across = windows_of(p.w, (unsigned)PX, (unsigned)KW, (unsigned)SX,
                                          (unsigned)OW);
        T sum = T(0);
        for (int oh = rows.last; oh >= rows.first; --oh) {
            const long long i = p.h + PY - oh * SY;
            for (int ow = across.last; ow >= across.first; --ow) {
                const long long j = p.w + PX - ow * SX;
                const long long r = (c * KH + i) * KW + j;
                sum += col[r * cols + (n * OH + oh) * OW + ow];
            }
        }
        dx[e] = sum;
    }
}

extern "C" __global__ void col2im_f32(float* dx, const float* col, long long N, long long C, long long H, long long W, long long KH, long long KW, long long SY, long long SX, long long PY, long long PX, long long OH, long long OW) {
    col2im(dx, col, N, C, H, W, KH, KW, SY, SX, PY, PX, OH, OW);
}
extern "C" __global__ void col2im_f64(double* dx, const double* col, long long N, long long C, long long H, long long W, long long KH, long long KW, long long SY, long long SX, long long PY, long long PX, long long OH, long long OW) {
    col2im(dx, col, N, C, H, W, KH, KW, SY, SX, PY, PX, OH, OW);
}

// The GEMM's (K, M) result plus the bias b[k], and, when relu != 0, the ReLU
// that follows every convolution in VGG, in the same pass over memory:
//   y[k, m] = max(y[k, m] + b[k], 0)
// (written as "negative -> 0" so that a NaN stays NaN, as np.maximum keeps it,
// and a diverging run is still seen in the loss).
template <typename T>
__device__ void bias_act(T* __restrict__ y, const T* __restrict__ b, long long K,
                         long long M, int relu) {
    const long long total = K * M;
    #pragma unroll 1  // one copy of the body: see common.cuh
    for (long long e = first_element(); e < total; e += grid_stride()) {
        const T v = y[e] + b[split_index(e, M).outer];
        y[e] = (relu && v < T(0)) ? T(0) : v;
    }
}

extern "C" __global__ void bias_act_f32(float* y, const float* b, long long K, long long M, int relu) {
    bias_act(y, b, K, M, relu);
}
extern "C" __global__ void bias_act_f64(double* y, const double* b, long long K, long long M, int relu) {
    bias_act(y, b, K, M, relu);
}
