// Local Response Normalisation across channels, AlexNet's form used by VGG's
// configuration A-LRN (§2.2), the GPU half of minivgg/functional/normalization.py:
//
//   s_c = k + alpha * sum_{c' = c-lo .. c+hi} x_{c'}^2     (clipped to [0, C))
//   y_c = x_c * s_c^(-beta)
//
// with lo = size/2, hi = (size-1)/2, and alpha multiplying the plain SUM of
// squares (PyTorch and Caffe divide it by size). Forward keeps s for backward:
//
//   dx_c = dy_c * s_c^(-beta)
//          - 2 alpha beta x_c * sum_{c' = c-hi .. c+lo} dy_{c'} x_{c'} s_{c'}^(-beta-1)
//
// (channel c is in the window of c' exactly when c' runs from c-hi to c+lo).
// One thread per element, a gather over its window: no atomics.
// x, y, s, dy, dx share one layout: element (n, c, h, w) at n*sn + c*sc + h*sh + w*sw.
#include "common.cuh"

template <typename T>
__device__ void lrn_fwd(T* __restrict__ y, T* __restrict__ s, const T* __restrict__ x,
                        long long N, long long C, long long H, long long W, long long sn,
                        long long sc, long long sh, long long sw, long long size, T alpha,
                        T beta, T k) {
    const long long lo = size >> 1, hi = (size - 1) >> 1;  // size >= 1: no division
    const long long total = N * C * H * W;
    #pragma unroll 1  // one copy of the body: see common.cuh
    for (long long e = first_element(); e < total; e += grid_stride()) {
        const Index4 p = unravel_nchw(e, (unsigned)C, (unsigned)H, (unsigned)W);
        const long long c = p.c, at = p.n * sn + c * sc + p.h * sh + p.w * sw;
        // The same order of additions as the CPU path: c, then c-1 .. c-lo, then c+1 .. c+hi.
        T sum = x[at] * x[at];
        for (long long d = 1; d <= lo && c - d >= 0; ++d) sum += x[at - d * sc] * x[at - d * sc];
        for (long long d = 1; d <= hi && c + d < C; ++d) sum += x[at + d * sc] * x[at + d * sc];
        const T sv = sum * alpha + k;
        s[at] = sv;
        y[at] = x[at] * pow(sv, -beta);
    }
}

extern "C" __global__ void lrn_fwd_f32(float* y, float* s, const float* x, long long N, long long C, long long H, long long W, long long sn, long long sc, long long sh, long long sw, long long size, float alpha, float beta, float k) {
    lrn_fwd(y, s, x, N, C, H, W, sn, sc, sh, sw, size, alpha, beta, k);
}
extern "C" __global__ void lrn_fwd_f64(double* y, double* s, const double* x, long long N, long long C, long long H, long long W, long long sn, long long sc, long long sh, long long sw, long long size, double alpha, double beta, double k) {
    lrn_fwd(y, s, x, N, C, H, W, sn, sc, sh, sw, size, alpha, beta, k);
}

template <typename T>
__device__ void lrn_bwd(T* __restrict__ gx, const T* __restrict__ gy, const T* __restrict__ x,
                        const T* __restrict__ s, long long N, long long C, long long H,
                        long long W, long long sn, long long sc, long long sh, long long sw,
                        long long size, T alpha, T beta) {
    const long long lo = size >> 1, hi = (size - 1) >> 1;  // size >= 1: no division
    const long long total = N * C * H * W;
    #pragma unroll 1  // one copy of the body: see common.cuh
    for (long long e = first_element(); e < total; e += grid_stride()) {
        const Index4 p = unravel_nchw(e, (unsigned)C, (unsigned)H, (unsigned)W);
        const long long c = p.c, at = p.n * sn + c * sc + p.h * sh + p.w * sw;
        T t = T(0);
        for (long long d = -hi; d <= lo; ++d) {
            const long long c2 = c + d;
            if (c2 < 0 || c2 >= C) continue;
            const long long o = at + d * sc;
            t += gy[o] * x[o] * pow(s[o], -beta) / s[o];
        }
        gx[at] = gy[at] * pow(s[at], -beta) - T(2) * alpha * beta * x[at] * t;
    }
}

extern "C" __global__ void lrn_bwd_f32(float* gx, const float* gy, const float* x, const float* s, long long N, long long C, long long H, long long W, long long sn, long long sc, long long sh, long long sw, long long size, float alpha, float beta) {
    lrn_bwd(gx, gy, x, s, N, C, H, W, sn, sc, sh, sw, size, alpha, beta);
}
extern "C" __global__ void lrn_bwd_f64(double* gx, const double* gy, const double* x, const double* s, long long N, long long C, long long H, long long W, long long sn, long long sc, long long sh, long long sw, long long size, double alpha, double beta) {
    lrn_bwd(gx, gy, x, s, N, C, H, W, sn, sc, sh, sw, size, alpha, beta);
}
