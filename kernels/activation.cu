// ReLU (§2.1: every hidden layer) and dropout (§3.1: ratio 0.5 on FC1 and FC2),
// the GPU half of minivgg/functional/activation.py. Elementwise over n
// contiguous elements; grid-stride loops with 64-bit indices.
#include "common.cuh"

// y = max(x, 0), written "negative -> 0" so that NaN passes through.
template <typename T>
__device__ void relu_fwd(T* __restrict__ y, const T* __restrict__ x, long long n) {
    #pragma unroll 1  // one copy of the body: see common.cuh
    for (long long e = first_element(); e < n; e += grid_stride())
        y[e] = x[e] < T(0) ? T(0) : x[e];
}

extern "C" __global__ void relu_fwd_f32(float* y, const float* x, long long n) { relu_fwd(y, x, n); }
extern "C" __global__ void relu_fwd_f64(double* y, const double* x, long long n) { relu_fwd(y, x, n); }

// gx = gy where the OUTPUT y was positive, else 0 (the gradient at exactly 0
// is 0). Using y instead of a stored mask costs no memory: the next layer
// keeps y as its input anyway.
template <typename T>
__device__ void relu_bwd(T* __restrict__ gx, const T* __restrict__ gy, const T* __restrict__ y,
                         long long n) {
    #pragma unroll 1  // one copy of the body: see common.cuh
    for (long long e = first_element(); e < n; e += grid_stride())
        gx[e] = y[e] > T(0) ? gy[e] : T(0);
}

extern "C" __global__ void relu_bwd_f32(float* gx, const float* gy, const float* y, long long n) { relu_bwd(gx, gy, y, n); }
extern "C" __global__ void relu_bwd_f64(double* gx, const double* gy, const double* y, long long n) { relu_bwd(gx, gy, y, n); }

// Dropout's mask as a counter-based hash, the same function as
// minivgg.random.uniform24 in NumPy: element e of the stream with key `key`
// gets the top 24 bits of SplitMix64's finaliser applied to
// key + (e + 1) * 0x9E3779B97F4A7C15, and is kept when that is >= threshold
// (threshold = round(p * 2^24)). Integer arithmetic only, so the mask is
// bit-identical on every device, and backward recomputes it.
__device__ __forceinline__ bool dropout_keep(unsigned long long key, long long e,
                                             long long threshold) {
    unsigned long long z = key + (unsigned long long)(e + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z = z ^ (z >> 31);
    return (long long)(z >> 40) >= threshold;
}

// y = x * m, m = scale where kept and 0 where dropped (scale = 1 / (1 - p)).
template <typename T>
__device__ void dropout_fwd(T* __restrict__ y, const T* __restrict__ x, long long n,
                            unsigned long long key, long long threshold, T scale) {
    #pragma unroll 1  // one copy of the body: see common.cuh
    for (long long e = first_element(); e < n; e += grid_stride())
        y[e] = x[e] * (dropout_keep(key, e, threshold) ? scale : T(0));
}

extern "C" __global__ void dropout_fwd_f32(float* y, const float* x, long long n, unsigned long long key, long long threshold, float scale) {
    dropout_fwd(y, x, n, key, threshold, scale);
}
extern "C" __global__ void dropout_fwd_f64(double* y, const double* x, long long n, unsigned long long key, long long threshold, double scale) {
    dropout_fwd(y, x, n, key, threshold, scale);
}

// The same stream applied to the gradient: gx = gy * m.
extern "C" __global__ void dropout_bwd_f32(float* gx, const float* gy, long long n, unsigned long long key, long long threshold, float scale) {
    dropout_fwd(gx, gy, n, key, threshold, scale);
}
extern "C" __global__ void dropout_bwd_f64(double* gx, const double* gy, long long n, unsigned long long key, long long threshold, double scale) {
    dropout_fwd(gx, gy, n, key, threshold, scale);
}
