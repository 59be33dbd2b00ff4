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
template <typename T>
__device__ void im2col(T* __restrict__ col, const T* __restrict__ x,
                       long long N, long long C, long long H, long long W,
                       long long sn, long long sc, long long sh, long long sw,
                       long long KH, long long KW, long long SY, long long SX,
                       long long PY, long long PX, long long OH, long long OW) {
    const long long cols = N * OH * OW;
    const long long total = C * KH * KW * cols;
    for (long long e = first_element(); e < total; e += grid_stride()) {
        const long long r = e / cols, q = e % cols;
        const long long j = r % KW, i = (r / KW) % KH, c = r / (KW * KH);
        const long long ow = q % OW, oh = (q / OW) % OH, n = q / (OW * OH);
        const long long h = oh * SY - PY + i, w = ow * SX - PX + j;
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
// Pixel h is row i of the window at output row oh when h + PY = oh*SY + i
// (window_at in common.cuh finds that oh, if any).
template <typename T>
__device__ void col2im(T* __restrict__ dx, const T* __restrict__ col,
                       long long N, long long C, long long H, long long W,
                       long long KH, long long KW, long long SY, long long SX,
                       long long PY, long long PX, long long OH, long long OW) {
    const long long cols = N * OH * OW;
    const long long total = C * N * H * W;
    for (long long e = first_element(); e < total; e += grid_stride()) {
        // dx is (C, N, H, W): unravel as if N and C were swapped.
        const Index4 p = unravel_nchw(e, N, H, W);
        const long long c = p.n, n = p.c;
        T sum = T(0);
        for (long long i = 0; i < KH; ++i) {
            const long long oh = window_at(p.h, PY, i, SY, OH);
            if (oh < 0) continue;
            for (long long j = 0; j < KW; ++j) {
                const long long ow = window_at(p.w, PX, j, SX, OW);
                if (ow < 0) continue;
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
    for (long long e = first_element(); e < total; e += grid_stride()) {
        const T v = y[e] + b[e / M];
        y[e] = (relu && v < T(0)) ? T(0) : v;
    }
}

extern "C" __global__ void bias_act_f32(float* y, const float* b, long long K, long long M, int relu) {
    bias_act(y, b, K, M, relu);
}
extern "C" __global__ void bias_act_f64(double* y, const double* b, long long K, long long M, int relu) {
    bias_act(y, b, K, M, relu);
}
