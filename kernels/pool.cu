// Max-pooling (§2.1: 2x2 windows, stride 2, after each block of Table 1),
// the GPU half of minivgg/functional/pooling.py.
//
//   x, gx   (N, C, H, W):    element (n, c, h, w) at n*xn + c*xc + h*xh + w*xw
//   y, arg, gy (N, C, OH, OW): element (n, c, oh, ow) at n*yn + c*yc + oh*yh + ow*yw
//
// (strides in elements, so the channel-major activations that the
// convolution produces are read and written without a transposing copy).
//
// Forward: one thread per output. It scans its window in row-major order and
// keeps the FIRST maximum (a later equal value does not replace it), the tie
// rule of the CPU path and of PyTorch. arg stores the winner's position inside
// the window, i*KW + j, in one byte (windows have at most 255 positions).
// Positions in the padding are skipped, which is padding with -infinity. A NaN
// in the window becomes the output, as np.maximum makes it on the CPU.
//
// Backward: a gather, one thread per input pixel: it visits every window that
// contains the pixel and adds that window's gradient if the pixel was its
// winner. No atomics, deterministic, and correct for overlapping windows too.
#include "common.cuh"

template <typename T>
__device__ void max_pool_fwd(T* __restrict__ y, unsigned char* __restrict__ arg,
                             const T* __restrict__ x, long long N, long long C, long long H,
                             long long W, long long xn, long long xc, long long xh, long long xw,
                             long long OH, long long OW, long long yn, long long yc,
                             long long yh, long long yw, long long KH, long long KW,
                             long long SY, long long SX, long long PY, long long PX) {
    const long long total = N * C * OH * OW;
    #pragma unroll 1  // one copy of the body: see common.cuh
    for (long long e = first_element(); e < total; e += grid_stride()) {
        const Index4 o = unravel_nchw(e, (unsigned)C, (unsigned)OH, (unsigned)OW);
        const long long oh = o.h, ow = o.w;
        const T* plane = x + o.n * xn + o.c * xc;
        T best = T(0);
        long long best_at = -1;
        for (long long i = 0; i < KH; ++i) {
            const long long h = oh * SY - PY + i;
            if (h < 0 || h >= H) continue;
            for (long long j = 0; j < KW; ++j) {
                const long long w = ow * SX - PX + j;
                if (w < 0 || w >= W) continue;
                const T v = plane[h * xh + w * xw];
                if (best_at < 0 || v > best || (v != v && best == best)) {  // NaN wins
                    best = v;
                    best_at = i * KW + j;
                }
            }
        }
        const long long at = o.n * yn + o.c * yc + oh * yh + ow * yw;
        y[at] = best;
        arg[at] = (unsigned char)best_at;
    }
}

extern "C" __global__ void max_pool_fwd_f32(float* y, unsigned char* arg, const float* x, long long N, long long C, long long H, long long W, long long xn, long long xc, long long xh, long long xw, long long OH, long long OW, long long yn, long long yc, long long yh, long long yw, long long KH, long long KW, long long SY, long long SX, long long PY, long long PX) {
    max_pool_fwd(y, arg, x, N, C, H, W, xn, xc, xh, xw, OH, OW, yn, yc, yh, yw, KH, KW, SY, SX, PY, PX);
}
extern "C" __global__ void max_pool_fwd_f64(double* y, unsigned char* arg, const double* x, long long N, long long C, long long H, long long W, long long xn, long long xc, long long xh, long long xw, long long OH, long long OW, long long yn, long long yc, long long yh, long long yw, long long KH, long long KW, long long SY, long long SX, long long PY, long long PX) {
    max_pool_fwd(y, arg, x, N, C, H, W, xn, xc, xh, xw, OH, OW, yn, yc, yh, yw, KH, KW, SY, SX, PY, PX);
}

// gx[n, c, h, w] = sum of gy[n, c, oh, ow] over the windows (oh, ow) that
// contain (h, w) and whose arg points at it. Pixel row h lies in windows
// oh = rows.first .. rows.last, as row i = h + PY - oh*SY (windows_of in
// common.cuh); they are visited in increasing i and j, the CPU path's order.
template <typename T>
__device__ void max_pool_bwd(T* __restrict__ gx, const T* __restrict__ gy,
                             const unsigned char* __restrict__ arg, long long N, long long C,
                             long long H, long long W, long long xn, long long xc, long long xh,
                             long long xw, long long OH, long long OW, long long yn, long long yc,
                             long long yh, long long yw, long long KH, long long KW,
                             long long SY, long long SX, long long PY, long long PX) {
    const long long total = N * C * H * W;
    #pragma unroll 1  // one copy of the body: see common.cuh
    for (long long e = first_element(); e < total; e += grid_stride()) {
        const Index4 p = unravel_nchw(e, (unsigned)C, (unsigned)H, (unsigned)W);
        const Windows rows = windows_of(p.h, (unsigned)PY, (unsigned)KH, (unsigned)SY,
                                        (unsigned)OH);
        const Windows across = windows_of(p.w, (unsigned)PX, (unsigned)KW, (unsigned)SX,
                                          (unsigned)OW);
        T sum = T(0);
        for (int oh = rows.last; oh >= rows.first; --oh) {
            const long long i = p.h + PY - oh * SY;
            for (int ow = across.last; ow >= across.first; --ow) {
                const long long j = p.w + PX - ow * SX;
                const long long o = p.n * yn + p.c * yc + oh * yh + ow * yw;
                if (arg[o] == i * KW + j) sum += gy[o];
            }
        }
        gx[p.n * xn + p.c * xc + p.h * xh + p.w * xw] = sum;
    }
}

extern "C" __global__ void max_pool_bwd_f32(float* gx, const float* gy, const unsigned char* arg, long long N, long long C, long long H, long long W, long long xn, long long xc, long long xh, long long xw, long long OH, long long OW, long long yn, long long yc, long long yh, long long yw, long long KH, long long KW, long long SY, long long SX, long long PY, long long PX) {
    max_pool_bwd(gx, gy, arg, N, C, H, W, xn, xc, xh, xw, OH, OW, yn, yc, yh, yw, KH, KW, SY, SX, PY, PX);
}
extern "C" __global__ void max_pool_bwd_f64(double* gx, const double* gy, const unsigned char* arg, long long N, long long C, long long H, long long W, long long xn, long long xc, long long xh, long long xw, long long OH, long long OW, long long yn, long long yc, long long yh, long long yw, long long KH, long long KW, long long SY, long long SX, long long PY, long long PX) {
    max_pool_bwd(gx, gy, arg, N, C, H, W, xn, xc, xh, xw, OH, OW, yn, yc, yh, yw, KH, KW, SY, SX, PY, PX);
}
